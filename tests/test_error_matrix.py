"""The error matrix: every failure a user can cause, through the CLI.

Each case must give exactly one `adacal: error: ...` line on stderr (argparse's
own errors may add its usage line before it), nothing on stdout, no
traceback, exit code 2 — and, for a command given `-o DIR`, leave no partial
artifact: DIR does not exist afterwards (or, if it existed, is untouched) and
no `.DIR.tmp-*` / `.DIR.old-*` siblings remain.

The complete table (case -> where it is tested):

==================================================  =================================================
case                                                test
==================================================  =================================================
missing model file                                  test_cli_errors (inspect); here: convert -o
directory given as the model                        test_cli_errors (inspect); here: compile -o
empty model file                                    test_cli_errors.test_empty_file
unreadable model file (/proc/self/mem: EIO as root)  here
not a regular file (/dev/zero: would never end)     here
text file / Python source as the model              test_cli_errors (inspect); here: text via -o
random bytes as the model                           test_cli_errors (inspect, 6 seeds); here: -o
an .npz given as the model                          here
truncated ONNX                                      test_cli_errors (inspect); here: compile -o
dynamic non-batch input dimension                   test_cli_errors.test_dynamic_non_batch_dim
unsupported op (Sin/Erf/LSTM), node named           test_cli_errors (inspect); here: compile-xylo -o
unsupported pattern: MaxPool (docs/method.md)       here (convert -o, compile-loihi2 -o)
unsupported pattern: mid-network conv without ReLU  here
NaN / Inf in model weights (initializer named)      here (inspect, compile -o); frontend details in
                                                    test_fuzz_onnx
missing data file                                   test_convert_cli; here: -o
data file not .npz/.npy (garbage)                   test_convert_cli; here: -o
data without array 'x'                              test_convert_cli.test_bad_data_is_a_user_error
wrong data shape                                    test_convert_cli; here: -o
wrong data dtype (strings, object arrays, complex)  here
NaN / Inf in data (calib and val)                   test_convert_cli (NaN); here: Inf, -o
labels out of range / negative / non-integer        test_convert_cli (range, negative); here: all, -o
label count != sample count                         test_convert_cli.test_bad_data_is_a_user_error
corrupt compressed .npz member                      here
infeasible burst budget (--energy-budget 0.01)      test_convert_cli (convert); here: compile -o
infeasible sensitivity budget                       cannot happen for a budget >= 0 (ratio 1 always
                                                    fits); a negative budget is a bad option (here)
Xylo design rules (too many hidden neurons)         here; 10 classes on xylo-audio2: test_compile_xylo
Loihi 2 limits (conv weights > one core)            here
output exists, adacal output, no --force            test_convert_cli; here: compile, untouched
output exists, not an adacal output (+/- --force)   test_convert_cli (convert); here: compile, files
                                                    untouched
adacal output holding a user's file, --force        here (refused, nothing touched)
output path is a file                               test_convert_cli (convert); here: compile
output path below a file                            here
bad option values (-T 0, --max-spikes 0,            here (all); test_convert_cli (the first three and
 --threshold percentile:200, --spike-range 5:2,      --spike-range 4)
 --calib-samples 0, --energy-budget 0,
 --sensitivity-budget -1, --exit-level 1.5,
 --seed -1, --spike-range 4, -T abc, --device x)
OS error while writing the output (disk full)       here (one line; created parents removed)
a --force replace that fails half way               here (the previous output is restored)
simulate: not an artifact, wrong data shape, no     here
 exit policy, damaged network.h5; verify --samples 0
==================================================  =================================================

Most cases run `adacal.cli.main` in this process (cheap); a few go through a
real `python -m adacal` subprocess (tests/test_cli_errors.run_cli) to check
the process-level behaviour too.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx_fixtures as fixtures
from test_cli_errors import assert_user_error, run_cli

# ---------------------------------------------------------------------------
# small models and data (onnx.helper, no torch export: milliseconds)
# ---------------------------------------------------------------------------


def _model(nodes, inits, in_shape, out_dim, name="m") -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", out_dim])],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def mlp(hidden=16, n_in=8, n_out=3, seed=0, nan=False) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((hidden, n_in)) / np.sqrt(n_in)).astype(np.float32)
    if nan:
        w1[1, 2] = np.nan
    inits = [("w1", w1), ("b1", (0.1 * rng.standard_normal(hidden)).astype(np.float32)),
             ("w2", (rng.standard_normal((n_out, hidden)) / np.sqrt(hidden)).astype(np.float32)),
             ("b2", np.zeros(n_out, np.float32))]
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["output"], name="fc2", transB=1)]
    return _model(nodes, inits, (n_in,), n_out, "mlp")


def cnn(variant: str) -> onnx.ModelProto:
    """(1,8,8) -> Conv 1->4 -> Relu -> [MaxPool 2 | AvgPool 2] -> Flatten -> Gemm -> 3;
    'no_relu': Conv -> Conv (no ReLU between) -> Relu -> AvgPool -> Flatten -> Gemm."""
    rng = np.random.default_rng(1)
    inits = [("c1_w", (0.5 * rng.standard_normal((4, 1, 3, 3))).astype(np.float32)),
             ("c1_b", np.zeros(4, np.float32)),
             ("c2_w", (0.3 * rng.standard_normal((4, 4, 3, 3))).astype(np.float32)),
             ("c2_b", np.zeros(4, np.float32)),
             ("fc_w", (0.2 * rng.standard_normal((3, 64))).astype(np.float32)),
             ("fc_b", np.zeros(3, np.float32))]
    conv = lambda i, o, n: helper.make_node("Conv", [i, f"{n}_w", f"{n}_b"], [o], name=n,  # noqa: E731
                                            kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    if variant == "no_relu":
        nodes = [conv("input", "c1", "c1"), conv("c1", "c2", "c2"), helper.make_node("Relu", ["c2"], ["r"], name="relu")]
    else:
        nodes = [conv("input", "c1", "c1"), helper.make_node("Relu", ["c1"], ["r"], name="relu")]
    pool = "MaxPool" if variant == "maxpool" else "AveragePool"
    nodes += [helper.make_node(pool, ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
              helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
              helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["output"], name="fc", transB=1)]
    if variant != "no_relu":
        inits = [i for i in inits if not i[0].startswith("c2")]
    return _model(nodes, inits, (1, 8, 8), 3, "cnn")


def big_conv() -> onnx.ModelProto:
    """(512,43,43) -> Conv 512->2 43x43 (one output channel's kernels: 946,688 weights > one Loihi 2
    core's 937,500) -> Relu -> Gemm."""
    rng = np.random.default_rng(2)
    inits = [("w", (rng.standard_normal((2, 512, 43, 43)) / 400).astype(np.float32)), ("b", np.zeros(2, np.float32)),
             ("fc_w", (rng.standard_normal((3, 2)) / 2).astype(np.float32)), ("fc_b", np.zeros(3, np.float32))]
    nodes = [helper.make_node("Conv", ["input", "w", "b"], ["c"], name="big_conv", kernel_shape=[43, 43]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["output"], name="fc", transB=1)]
    return _model(nodes, inits, (512, 43, 43), 3, "big_conv")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("matrix")
    p = {}

    def save(name, model):
        p[name] = d / f"{name}.onnx"
        onnx.save(model, str(p[name]))

    save("mlp", mlp())
    save("mlp_nan", mlp(nan=True))
    save("mlp_wide", mlp(hidden=1100))
    save("maxpool", cnn("maxpool"))
    save("no_relu", cnn("no_relu"))
    save("big_conv", big_conv())
    save("sin", fixtures.unsupported_op_model("Sin", "weird_node"))  # input (4,), 3 outputs
    p["truncated"] = d / "truncated.onnx"
    p["truncated"].write_bytes(p["mlp"].read_bytes()[:300])
    p["text"] = d / "notes.onnx"
    p["text"].write_text("layer,op\nfc1,Gemm\n")
    p["random"] = d / "random.onnx"
    p["random"].write_bytes(np.random.default_rng(5).bytes(2048))
    rng = np.random.default_rng(0)
    x = rng.standard_normal((48, 8)).astype(np.float32)
    y = np.arange(48) % 3

    def data(name, **arrays):
        p[name] = d / f"{name}.npz"
        np.savez(p[name], **arrays)

    data("calib", x=x, y=y)
    data("calib4", x=x[:, :4], y=y)
    data("img", x=rng.standard_normal((16, 1, 8, 8)).astype(np.float32), y=np.arange(16) % 3)
    data("big_img", x=rng.standard_normal((4, 512, 43, 43)).astype(np.float32))
    p["npz_model"] = p["calib"]
    data("shape", x=x[:, :7], y=y)
    data("strings", x=np.array([["a"] * 8] * 48), y=y)
    data("object", x=np.array([[None] * 8] * 48, dtype=object), y=y)
    data("complex", x=x.astype(np.complex64), y=y)
    x_inf = x.copy()
    x_inf[3, 2] = np.inf
    data("inf", x=x_inf, y=y)
    x_nan = x.copy()
    x_nan[0, 0] = np.nan
    data("nan", x=x_nan, y=y)
    data("labels_high", x=x, y=np.where(np.arange(48) == 7, 3, y))
    data("labels_neg", x=x, y=np.where(np.arange(48) == 7, -1, y))
    data("labels_frac", x=x, y=y + 0.5)
    data("labels_str", x=x, y=np.array(["cat"] * 48))
    (d / "garbage.npz").write_bytes(b"not a zip at all")
    p["garbage"] = d / "garbage.npz"
    # a .npz whose compressed 'x' member is damaged (zlib error / bad CRC on read)
    p["corrupt"] = d / "corrupt.npz"
    np.savez_compressed(p["corrupt"], x=x, y=y)
    raw = bytearray(p["corrupt"].read_bytes())
    with zipfile.ZipFile(p["corrupt"]) as z:
        info = z.getinfo("x.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 20, start + 60):
        raw[i] ^= 0x5A
    p["corrupt"].write_bytes(bytes(raw))
    p["dir"] = d
    return p


# ---------------------------------------------------------------------------
# running the CLI and checking for leftovers
# ---------------------------------------------------------------------------

class Proc:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli(capsys):
    """`adacal.cli.main(argv)` in this process, stdout/stderr captured."""
    import torch

    from adacal.cli import main

    def run(*args):
        capsys.readouterr()
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            rc = main([str(a) for a in args])
        except SystemExit as e:  # argparse errors
            rc = e.code
        finally:
            torch.set_num_threads(threads)
        out, err = capsys.readouterr()
        return Proc(rc, out, err)

    return run


def one_error(proc, *mentions, usage_ok=False) -> str:
    """Exit 2, one `adacal: error:` line (after argparse's usage line if usage_ok), empty stdout."""
    if usage_ok:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        usage = [ln for ln in lines if not ln.startswith("adacal: error: ")]
        assert all(ln.startswith(("usage:", "  ", "               ")) for ln in usage), proc.stderr
        proc = Proc(proc.returncode, proc.stdout, "\n".join(ln for ln in lines if ln.startswith("adacal: error: ")))
    line = assert_user_error(proc, *mentions)
    assert proc.stdout.strip() == "", f"stdout not empty:\n{proc.stdout}"
    return line


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir()
                  if p.name.startswith(f".{out.name}.tmp-") or p.name.startswith(f".{out.name}.old-"))


def assert_nothing_written(out: Path, before: dict | None = None):
    """out does not exist (or holds exactly `before`: name -> bytes) and no temp siblings remain."""
    if before is None:
        assert not out.exists(), f"{out} was created: {sorted(p.name for p in out.iterdir())}"
    else:
        now = {p.name: p.read_bytes() for p in out.iterdir()}
        assert now == before, f"{out} changed: {sorted(now)} vs {sorted(before)}"
    assert not leftovers(out), leftovers(out)


def snapshot(d: Path) -> dict:
    return {p.name: p.read_bytes() for p in d.iterdir()}


FAST = ("-T", "4", "--calib-samples", "32", "--quiet")

# ---------------------------------------------------------------------------
# the model file
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("cmd", ["convert", "compile-loihi2", "compile-xylo"])
@pytest.mark.parametrize("which, mentions", [
    ("missing", ["does_not_exist.onnx", "no such file"]),
    ("dir", ["is a directory"]),
    ("truncated", ["truncated.onnx"]),
    ("text", ["notes.onnx", "not a valid ONNX model"]),
    ("random", ["random.onnx"]),
    ("npz_model", ["calib.npz", "ONNX"]),
])
def test_bad_model_file_writes_nothing(files, cli, tmp_path, cmd, which, mentions):
    model = files["dir"] / "does_not_exist.onnx" if which == "missing" else files[which]
    out = tmp_path / "out"
    extra = ("--device", "xylo-audio3") if cmd == "compile-xylo" else ()
    one_error(cli(cmd, model, "--calib", files["calib"], "-o", out, *extra, *FAST), *mentions)
    assert_nothing_written(out)


def test_unreadable_model_file(cli):
    """Running as root, chmod 000 does not stop reading; /proc/self/mem is a regular
    file whose read fails (EIO) for everyone."""
    one_error(cli("inspect", "/proc/self/mem"), "/proc/self/mem", "cannot read")


def test_model_that_is_not_a_regular_file(cli):
    """/dev/zero would be read forever: refused before opening."""
    one_error(cli("inspect", "/dev/zero"), "/dev/zero", "not a regular file")


def test_unreadable_model_file_in_a_real_process(files):
    assert_user_error(run_cli("inspect", "/proc/self/mem"), "cannot read")


@pytest.mark.parametrize("cmd", ["inspect", "compile-loihi2"])
def test_nan_weights_name_the_initializer(files, cli, tmp_path, cmd):
    out = tmp_path / "out"
    args = ("inspect", files["mlp_nan"]) if cmd == "inspect" else (
        cmd, files["mlp_nan"], "--calib", files["calib"], "-o", out, *FAST)
    one_error(cli(*args), "initializer 'w1'", "NaN")
    assert_nothing_written(out)


def test_unsupported_op_names_the_node(files, cli, tmp_path):
    out = tmp_path / "out"
    one_error(cli("compile-xylo", files["sin"], "--calib", files["calib4"], "-o", out, "--device", "xylo-audio3",
                  *FAST), "weird_node", "Sin", "supported ops")
    assert_nothing_written(out)


@pytest.mark.parametrize("cmd", ["convert", "compile-loihi2"])
def test_maxpool_converts_as_a_spiking_stage(files, cli, tmp_path, cmd):
    """A max pool over neurons is no longer refused: it runs as a max-pool stage."""
    out = tmp_path / "out"
    proc = cli(cmd, files["maxpool"], "--calib", files["img"], "-o", out, *FAST)
    assert proc.returncode == 0, proc.stderr


def test_inspect_reports_maxpool_as_a_stage(files, cli):
    proc = cli("inspect", files["maxpool"])
    assert proc.returncode == 0 and "convertible: yes" in proc.stdout and "max pool" in proc.stdout, proc.stdout


def test_mid_network_conv_without_relu_becomes_signed_neurons(files, cli, tmp_path):
    proc = cli("inspect", files["no_relu"])
    assert proc.returncode == 0 and "convertible: yes" in proc.stdout and "signed burst neurons" in proc.stdout


# ---------------------------------------------------------------------------
# data files
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, option, mentions", [
    ("missing", "--calib", ["missing.npz", "no such file"]),
    ("garbage", "--calib", ["garbage.npz", "not a readable"]),
    ("corrupt", "--calib", ["corrupt.npz", "not a readable"]),
    ("shape", "--calib", ["shape.npz", "(7,)", "(8,)"]),
    ("strings", "--calib", ["strings.npz", "dtype"]),
    ("object", "--val", ["object.npz"]),
    ("complex", "--calib", ["complex.npz", "complex"]),
    ("inf", "--calib", ["inf.npz", "Inf"]),
    ("nan", "--val", ["nan.npz", "NaN"]),
    ("labels_high", "--val", ["labels_high.npz", "0..2", "3"]),
    ("labels_neg", "--calib", ["labels_neg.npz", "-1"]),
    ("labels_frac", "--val", ["labels_frac.npz", "integer"]),
    ("labels_str", "--calib", ["labels_str.npz", "integer"]),
    ("dir", "--calib", ["has no x.npy"]),
])
@pytest.mark.parametrize("cmd", ["convert", "compile-xylo"])
def test_bad_data_writes_nothing(files, cli, tmp_path, cmd, name, option, mentions):
    data = {"--calib": files["calib"], "--val": files["calib"]}
    data[option] = files["dir"] / "missing.npz" if name == "missing" else files[name]
    out = tmp_path / "out"
    extra = ("--device", "xylo-audio3") if cmd == "compile-xylo" else ()
    one_error(cli(cmd, files["mlp"], "--calib", data["--calib"], "--val", data["--val"], "-o", out, *extra,
                  *FAST), *mentions)
    assert_nothing_written(out)


# ---------------------------------------------------------------------------
# searches and hardware limits
# ---------------------------------------------------------------------------


def test_infeasible_burst_budget(files, cli, tmp_path):
    out = tmp_path / "out"
    one_error(cli("compile-loihi2", files["mlp"], "--calib", files["calib"], "-o", out, *FAST,
                  "--search-spikes", "--spike-range", "1:4", "--energy-budget", "0.01"), "energy budget", "0.01")
    assert_nothing_written(out)


def test_xylo_design_rules(files, cli, tmp_path):
    out = tmp_path / "out"
    one_error(cli("compile-xylo", files["mlp_wide"], "--calib", files["calib"], "-o", out, "--device",
                  "xylo-audio2", *FAST), "does not fit xylo-audio2", "1100")
    assert_nothing_written(out)


def test_loihi2_core_limit():
    """A layer whose one output channel's kernels exceed a core is refused naming
    the layer and both numbers (a conv is split across cores by output channel)."""
    from adacal.backends.loihi2.resources import _cores
    from adacal.errors import AdacalError
    with pytest.raises(AdacalError) as e:
        _cores("relu", 2 * 43 * 43, 2, 0, 2 * 512 * 43 * 43)
    assert "layer 'relu'" in str(e.value) and "946,688" in str(e.value) and "937,500" in str(e.value)
    assert _cores("relu", 256 * 9, 256, 0, 256 * 512 * 9) == 2  # 1,179,648 weights: two cores of 128 channels


# ---------------------------------------------------------------------------
# the output path
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def artifact(files, tmp_path_factory):
    """A real compile-loihi2 output (to be refused without --force)."""
    from adacal.cli import main

    out = tmp_path_factory.mktemp("art") / "art"
    assert main(["compile-loihi2", str(files["mlp"]), "--calib", str(files["calib"]), "-o", str(out), *FAST]) == 0
    return out


def test_existing_adacal_output_needs_force(files, cli, artifact):
    before = snapshot(artifact)
    one_error(cli("compile-loihi2", files["mlp"], "--calib", files["calib"], "-o", artifact, *FAST), "--force")
    assert_nothing_written(artifact, before)


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("cmd", ["compile-loihi2", "compile-xylo"])
def test_foreign_directory_is_never_replaced(files, cli, tmp_path, cmd, force):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    (out / "manifest.json").write_text('{"format": "my-own-thing"}')
    before = snapshot(out)
    extra = ("--device", "xylo-audio3") if cmd == "compile-xylo" else ()
    one_error(cli(cmd, files["mlp"], "--calib", files["calib"], "-o", out, *extra, *FAST,
                  *(("--force",) if force else ())), "not an adacal output")
    assert_nothing_written(out, before)


def test_adacal_output_holding_a_users_file_is_not_replaced_even_with_force(files, cli, tmp_path, artifact):
    out = tmp_path / "art"
    out.mkdir()
    for p in artifact.iterdir():
        (out / p.name).write_bytes(p.read_bytes())
    (out / "my_notes.txt").write_text("results of last week")
    before = snapshot(out)
    one_error(cli("compile-loihi2", files["mlp"], "--calib", files["calib"], "-o", out, "--force", *FAST),
              "my_notes.txt")
    assert_nothing_written(out, before)


@pytest.mark.parametrize("cmd", ["convert", "compile-loihi2"])
def test_output_path_is_a_file(files, cli, tmp_path, cmd):
    f = tmp_path / "out"
    f.write_text("a file")
    one_error(cli(cmd, files["mlp"], "--calib", files["calib"], "-o", f, *FAST), "not a directory")
    assert f.read_text() == "a file" and not leftovers(f)


def test_output_path_below_a_file(files, cli, tmp_path):
    f = tmp_path / "file"
    f.write_text("a file")
    out = f / "sub" / "out"
    one_error(cli("compile-loihi2", files["mlp"], "--calib", files["calib"], "-o", out, *FAST), "file")
    assert f.read_text() == "a file"


def test_output_dir_written_in_a_real_process_and_refused_next_time(files, tmp_path):
    out = tmp_path / "out"
    ok = run_cli("convert", files["mlp"], "--calib", files["calib"], "-o", out, *FAST)
    assert ok.returncode == 0, ok.stderr
    before = snapshot(out)
    assert_user_error(run_cli("convert", files["mlp"], "--calib", files["calib"], "-o", out, *FAST), "--force")
    assert_nothing_written(out, before)


# ---------------------------------------------------------------------------
# option values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("args, mentions", [
    (("--timesteps", "0"), ["--timesteps", "0"]),
    (("--max-spikes", "0"), ["--max-spikes", "0"]),
    (("--threshold", "percentile:200"), ["percentile"]),
    (("--threshold", "median"), ["median"]),
    (("--spike-range", "5:2"), ["--spike-range", "5:2"]),
    (("--spike-range", "0:3"), ["--spike-range", "0:3"]),
    (("--search-spikes", "--spike-range", "1:2", "--max-spikes", "4"), ["--max-spikes", "1:2"]),
    (("--calib-samples", "0"), ["--calib-samples", "0"]),
    (("--energy-budget", "0"), ["--energy-budget"]),
    (("--energy-budget", "nan"), ["--energy-budget"]),
    (("--sensitivity-budget", "-1"), ["--sensitivity-budget"]),
    (("--exit-level", "1.5"), ["--exit-level"]),
    (("--seed", "-1"), ["--seed"]),
])
@pytest.mark.parametrize("cmd", ["convert", "compile-loihi2"])
def test_bad_option_values(files, cli, tmp_path, cmd, args, mentions):
    out = tmp_path / "out"
    one_error(cli(cmd, files["mlp"], "--calib", files["calib"], "-o", out, "--quiet", *args), *mentions)
    assert_nothing_written(out)


@pytest.mark.parametrize("args, mentions", [
    (("--spike-range", "4"), ["MIN:MAX"]),
    (("-T", "abc"), ["abc"]),
    (("--calibration", "heavy"), ["heavy"]),
])
def test_unparsable_option_values(files, cli, tmp_path, args, mentions):
    out = tmp_path / "out"
    one_error(cli("compile-loihi2", files["mlp"], "--calib", files["calib"], "-o", out, *args), *mentions,
              usage_ok=True)
    assert_nothing_written(out)


def test_unknown_xylo_device(files, cli, tmp_path):
    out = tmp_path / "out"
    one_error(cli("compile-xylo", files["mlp"], "--calib", files["calib"], "-o", out, "--device", "xylo-9000"),
              "xylo-9000", usage_ok=True)
    assert_nothing_written(out)


# ---------------------------------------------------------------------------
# failures while writing: nothing left behind, a replaced output restored
# ---------------------------------------------------------------------------


def _disk_full(*_args, **_kw):
    raise OSError(28, "No space left on device")


def test_disk_full_while_writing_is_one_error_and_leaves_nothing(files, cli, tmp_path, monkeypatch):
    import adacal.output

    monkeypatch.setattr(adacal.output, "dumps", _disk_full)
    out = tmp_path / "new" / "deeper" / "out"
    one_error(cli("convert", files["mlp"], "--calib", files["calib"], "-o", out, *FAST),
              "cannot write output directory", "No space left on device")
    assert not (tmp_path / "new").exists(), "parent directories created for the output were left behind"


def test_failed_replace_restores_the_previous_output(tmp_path):
    from adacal.output import write_output_dir

    out = write_output_dir(tmp_path / "out", {"manifest.json": {"format": "adacal-float"}, "report.json": {"a": 1}})
    before = snapshot(out)

    def broken(path):
        path.write_bytes(b"half")
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        write_output_dir(out, {"manifest.json": {"format": "adacal-float"}, "network.h5": broken}, force=True)
    assert_nothing_written(out, before)
    write_output_dir(out, {"manifest.json": {"format": "adacal-float"}}, force=True)  # a good replace works
    assert sorted(snapshot(out)) == ["manifest.json"] and not leftovers(out)


# ---------------------------------------------------------------------------
# simulate / verify on artifacts
# ---------------------------------------------------------------------------


def test_simulate_a_directory_that_is_not_an_artifact(files, cli, tmp_path):
    one_error(cli("simulate", tmp_path, "--data", files["calib"]), "not an adacal artifact", "manifest.json")


def test_simulate_with_data_of_the_wrong_shape(files, cli, artifact):
    one_error(cli("simulate", artifact, "--data", files["calib4"]), "calib4.npz", "(4,)", "(8,)")


def test_simulate_adaptive_without_an_exit_policy(files, cli, artifact):
    one_error(cli("simulate", artifact, "--data", files["calib"], "--adaptive-timesteps"), "exit policy")


def test_verify_with_zero_samples(files, cli, artifact):
    one_error(cli("verify", artifact, "--data", files["calib"], "--samples", "0"), "--samples")


def test_simulate_a_damaged_artifact(files, cli, artifact, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for p in artifact.iterdir():
        (broken / p.name).write_bytes(p.read_bytes())
    (broken / "network.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    one_error(cli("simulate", broken, "--data", files["calib"]), "network.h5")
