"""Install guard for the Loihi 2 toolchain: Lava (lava-nc 0.10.0) on this
Python through adacal's var_model import hook, and the exact arithmetic of its
bit-accurate Dense model checked against numpy.

Dense arithmetic, from lava/proc/dense/models.py (AbstractPyDenseModelBitAcc,
lines 57-107; PyDenseModelBitAcc is tagged "fixed_pt" at lines 110-114) and
lava/utils/weightutils.py (determine_sign_mode line 21, truncate_weights line
204, clip_weights line 250):
 * on the first step the weights are clipped to 8 bits by sign mode
   (clip_weights: mixed [-256, 255], excitatory [0, 255], inhibitory
   [-255, 0]; the sign mode comes from determine_sign_mode when not given),
   then truncate_weights drops (8 - num_weight_bits + mixed) LSBs:
   (w >> n) << n, i.e. with mixed signs every odd weight goes DOWN by one
   (floor: 7 -> 6, -7 -> -8); excitatory/inhibitory weights keep their LSB;
 * graded input (num_message_bits > 0): a = W . s with the full integer
   payload (num_message_bits is only tested for > 0, nothing is clipped);
 * weight_exp is applied to the SUM: a << weight_exp, or
   a >> -weight_exp (arithmetic, floor towards -inf);
 * a_out sends the value computed in the previous step (one step latency).
RingBuffer source (lava/proc/io/source.py) sends data[:, t-1] at step t;
the sink stores a_in at column t-1 and Var.get() returns float64.
GradedReluVec (lava/proc/graded/models.py lines 55-77) sends v * (v > vth) in the
same step and then zeroes v (no memory); GradedVec uses |v| > vth.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from adacal.backends.loihi2.compat import (
    VAR_MODEL_MODULE,
    ensure_lava,
    lava_fixed_pt_run_config,
    rewrite_var_model_source,
    source_has_mutable_default,
)

BUGGY = textwrap.dedent(
    '''\
    """Shaped like lava/magma/compiler/var_model.py lines 5-9 and 210-238."""
    from __future__ import annotations

    import typing as ty
    from dataclasses import dataclass, InitVar


    @dataclass
    class ByteEncoder:
        base: int = 0
        len: int = 0
        ptr: int = 0


    @dataclass
    class CoreEncoder:
        x: ByteEncoder = ByteEncoder()
        y: ByteEncoder = ByteEncoder()
        p: ByteEncoder = ByteEncoder()


    @dataclass
    class ChipEncoder:
        x: ByteEncoder = ByteEncoder()
        y: ByteEncoder = ByteEncoder()
        z: ByteEncoder = ByteEncoder()


    @dataclass
    class AxonEncoder:
        hi: ByteEncoder = ByteEncoder()
        lo: ByteEncoder   =   ByteEncoder()  # odd spacing, trailing comment
    '''
)
FIXED = BUGGY.replace("= ByteEncoder()", "= field(default_factory=ByteEncoder)").replace(
    "lo: ByteEncoder   =   ByteEncoder()", "lo: ByteEncoder = field(default_factory=ByteEncoder)"
).replace("import dataclass, InitVar", "import dataclass, InitVar, field")


def _exec(source: str) -> dict:
    # dataclasses resolves string annotations through sys.modules[__module__]
    mod = types.ModuleType("adacal_test_fake_var_model")
    sys.modules[mod.__name__] = mod
    try:
        exec(compile(source, "fake_var_model.py", "exec", dont_inherit=True), mod.__dict__)
    finally:
        del sys.modules[mod.__name__]
    return mod.__dict__


# --------------------------------------------------------------------------
# the rewrite
# --------------------------------------------------------------------------
def test_rewrite_fixes_buggy_pattern():
    assert source_has_mutable_default(BUGGY)
    if sys.version_info >= (3, 11):
        with pytest.raises(ValueError, match="mutable default"):
            _exec(BUGGY)
    out = rewrite_var_model_source(BUGGY)
    assert out != BUGGY
    assert "ByteEncoder()" not in out
    assert out.count("field(default_factory=ByteEncoder)") == 8
    assert "from dataclasses import dataclass, InitVar, field\n" in out
    assert out.count("\n") == BUGGY.count("\n")  # line numbers preserved
    assert "# odd spacing, trailing comment" in out
    ns = _exec(out)
    a, b = ns["CoreEncoder"](), ns["CoreEncoder"]()
    assert a.x == ns["ByteEncoder"]() and a.x is not b.x
    assert ns["AxonEncoder"]().lo is not ns["AxonEncoder"]().lo


def test_rewrite_is_noop_without_bug():
    assert not source_has_mutable_default(FIXED)
    assert rewrite_var_model_source(FIXED) is FIXED
    once = rewrite_var_model_source(BUGGY)
    assert rewrite_var_model_source(once) is once
    _exec(FIXED)


def test_rewrite_adds_field_import_when_missing():
    src = BUGGY.replace("from dataclasses import dataclass, InitVar", "import dataclasses\ndataclass = dataclasses.dataclass")
    out = rewrite_var_model_source(src)
    assert out.count("\n") == src.count("\n")
    ns = _exec(out)
    assert ns["ChipEncoder"]().z is not ns["ChipEncoder"]().z


def test_installed_lava_is_patched_in_process():
    import importlib.util

    origin = importlib.util.find_spec("lava").submodule_search_locations
    path = next(
        os.path.join(p, "magma", "compiler", "var_model.py")
        for p in origin
        if os.path.isfile(os.path.join(p, "magma", "compiler", "var_model.py"))
    )
    with open(path, encoding="utf-8") as fh:
        vendor = fh.read()
    expected = source_has_mutable_default(vendor) and sys.version_info >= (3, 11)
    assert ensure_lava() is expected
    assert ensure_lava() is expected  # idempotent
    mod = sys.modules[VAR_MODEL_MODULE]
    assert os.path.samefile(mod.__file__, path)
    assert os.path.samefile(mod.__spec__.origin, path)
    assert mod.CoreEncoder().x is not mod.CoreEncoder().x
    if expected:
        # only the 8 default lines and the dataclasses import change
        new = rewrite_var_model_source(vendor)
        changed = [
            (i + 1) for i, (a, b) in enumerate(zip(vendor.splitlines(), new.splitlines())) if a != b
        ]
        assert len(changed) == 9 and len(new.splitlines()) == len(vendor.splitlines())


# --------------------------------------------------------------------------
# the hook in fresh interpreters
# --------------------------------------------------------------------------
def _run(code: str, pythonpath: str | None = None) -> str:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_recovers_after_failed_import():
    out = _run(
        """
        import sys
        try:
            import lava.magma.compiler.var_model
            print("imported-without-fix")
        except ValueError as exc:
            assert "mutable default" in str(exc), exc
            print("failed-first")
        from adacal.backends.loihi2.compat import ensure_lava
        patched = ensure_lava()
        import lava.magma.compiler.var_model as vm
        from lava.magma.compiler.compiler import Compiler  # imports var_model
        print("patched" if patched else "not-needed", vm.CoreEncoder().x is not vm.CoreEncoder().x)
        """
    )
    if sys.version_info >= (3, 11) and "failed-first" in out:
        assert "patched True" in out
    else:
        assert "not-needed True" in out


@pytest.mark.parametrize("buggy", [False, True])
def test_hook_only_active_when_bug_present(tmp_path, buggy):
    # a stand-in Lava checkout that shadows the installed one (namespace
    # packages merge, the first portion on sys.path wins)
    pkg = tmp_path / "lava" / "magma" / "compiler"
    pkg.mkdir(parents=True)
    (pkg / "var_model.py").write_text(BUGGY if buggy else FIXED)
    out = _run(
        f"""
        import os, sys
        from adacal.backends.loihi2.compat import ensure_lava
        patched = ensure_lava()
        import lava.magma.compiler.var_model as vm
        hooks = [f for f in sys.meta_path if getattr(f, "_adacal_lava_var_model_hook", False)]
        assert os.path.samefile(vm.__file__, {str(pkg / "var_model.py")!r}), vm.__file__
        assert os.path.samefile(vm.__spec__.origin, vm.__file__)
        assert vm.CoreEncoder().x is not vm.CoreEncoder().x
        print(patched, len(hooks), type(vm.__spec__.loader).__name__)
        """,
        pythonpath=str(tmp_path),
    )
    if buggy and sys.version_info >= (3, 11):
        assert out.split() == ["True", "1", "_PatchedSourceLoader"]
    else:
        assert out.split() == ["False", "0", "SourceFileLoader"]


# --------------------------------------------------------------------------
# a real multi-process Lava run, bit-exact against numpy
# --------------------------------------------------------------------------
def lava_weights(w: np.ndarray, num_weight_bits: int = 8, force_mixed=False) -> np.ndarray:
    """Weights as PyDenseModelBitAcc uses them (weightutils clip + truncate)."""
    w = np.asarray(w, dtype=np.int64)
    if force_mixed:  # a deliberately wrong variant
        lo, hi, mixed, inh = -256, 255, 1, False
    elif w.min() >= 0:
        lo, hi, mixed, inh = 0, 255, 0, False
    elif w.max() <= 0:
        lo, hi, mixed, inh = 0, 255, 0, True
    else:
        lo, hi, mixed, inh = -256, 255, 1, False
    v = -w if inh else w
    v = np.clip(v, lo, hi)
    n = 8 - num_weight_bits + mixed
    v = (v >> n) << n
    return -v if inh else v


def dense_step(wq: np.ndarray, s: np.ndarray, weight_exp: int, trunc_shift=False) -> np.ndarray:
    a = wq @ np.asarray(s, dtype=np.int64)
    if weight_exp >= 0:
        return a << weight_exp
    if trunc_shift:  # a deliberately wrong variant: round toward zero
        return np.trunc(a / 2 ** -weight_exp).astype(np.int64)
    return a >> -weight_exp  # Lava: np.right_shift, floor


def reference(x, w1, e1, vth, w2, e2, keep_lsb=False, trunc_shift=False, all_mixed=False):
    """Step-by-step pipeline: source -> Dense1 -> GradedReluVec -> Dense2 -> sink.

    Returns (Dense1 output, Dense2 output), shape (neurons, steps).
    keep_lsb / trunc_shift / all_mixed give deliberately wrong variants.
    """
    q1 = np.asarray(w1, dtype=np.int64) if keep_lsb else lava_weights(w1)
    q2 = lava_weights(w2, force_mixed=all_mixed)
    buf1 = np.zeros(q1.shape[0], dtype=np.int64)
    buf2 = np.zeros(q2.shape[0], dtype=np.int64)
    d1_out, d2_out = [], []
    for t in range(x.shape[1]):
        s = x[:, t]  # the source sends data[:, t-1] at (1-based) step t
        # each Dense sends last step's sum, then accumulates this step's input
        a1, buf1 = buf1, dense_step(q1, s, e1, trunc_shift)
        r = a1 * (a1 > vth)  # GradedReluVec, same step
        a2, buf2 = buf2, dense_step(q2, r, e2, trunc_shift)
        d1_out.append(a1)
        d2_out.append(a2)
    return np.array(d1_out).T, np.array(d2_out).T


def test_lava_graded_dense_network_bit_exact():
    ensure_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.dense.process import Dense
    from lava.proc.graded.process import GradedReluVec
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    x = np.array(
        [
            [16, 10, 7, 1, 2, -4, 9, 0],
            [-4, -5, -1, 15, 11, 17, 3, 0],
            [7, 10, 19, 13, 10, 8, -6, 0],
            [8, 120, 1, 15, 11, -5, 12, 0],
        ],
        dtype=np.int32,
    )
    # mixed signs, odd weights (they lose their LSB), weight_exp = -2 (floor)
    w1 = np.array([[3, -7, 12, 5], [-9, 4, 1, -2], [15, 0, -3, 7], [21, 11, -1, 2], [-5, 6, 9, 13]])
    e1, vth = -2, 6
    # all non-negative (excitatory: odd weights survive), weight_exp = +2
    w2 = np.array([[5, 3, 0, 1, 2], [1, 6, 9, 0, 7]])
    e2 = 2
    T = x.shape[1]

    src = Source(data=x)
    d1 = Dense(weights=w1, weight_exp=e1, num_message_bits=8)
    neu = GradedReluVec(shape=(w1.shape[0],), vth=vth)
    d2 = Dense(weights=w2, weight_exp=e2, num_message_bits=8)
    sink1 = Sink(shape=(w1.shape[0],), buffer=T)
    sink2 = Sink(shape=(w2.shape[0],), buffer=T)
    src.s_out.connect(d1.s_in)
    d1.a_out.connect(neu.a_in)
    d1.a_out.connect(sink1.a_in)
    neu.s_out.connect(d2.s_in)
    d2.a_out.connect(sink2.a_in)
    try:
        sink2.run(condition=RunSteps(num_steps=T), run_cfg=lava_fixed_pt_run_config())
        got1 = sink1.data.get()
        got2 = sink2.data.get()
    finally:
        sink2.stop()

    ref1, ref2 = reference(x, w1, e1, vth, w2, e2)
    np.testing.assert_array_equal(got1, ref1.astype(float))
    np.testing.assert_array_equal(got2, ref2.astype(float))
    assert got1.dtype == np.float64  # sink data comes back as float
    np.testing.assert_array_equal(got2[:, :2], 0)  # two Dense = two steps latency

    # the data are such that every modelled detail matters
    assert np.any(ref1 < 0) and np.any(ref1 % 2 != 0)
    assert np.any((ref1 > 0) & (ref1 <= vth))   # threshold drops some values
    assert (ref1 * (ref1 > vth)).max() > 255  # payload beyond 8 message bits: not clipped
    params = dict(w1=w1, e1=e1, vth=vth, w2=w2, e2=e2)
    for change in (
        {"keep_lsb": True},       # no LSB drop for mixed-sign weights
        {"trunc_shift": True},    # round toward zero instead of floor
        {"all_mixed": True},      # excitatory weights losing their LSB too
        {"vth": 0},               # no threshold
    ):
        alt1, alt2 = reference(x, **{**params, **change})
        assert not (np.array_equal(alt1, ref1) and np.array_equal(alt2, ref2)), change

