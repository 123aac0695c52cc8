"""XyloSpec (backends/xylo/spec.py): the XyloSim.from_specification keyword
arguments, normalised and checked once when built (number formats and
shapes), read-only; validate(device) checks one device's limits."""
from __future__ import annotations

import numpy as np
import pytest

from adacal.backends.xylo.reference import run_xylosim
from adacal.backends.xylo.spec import XyloSpec
from adacal.runtime_sim.xylo_sim import simulate

from test_xylo_sim import base_kwargs


def test_spec_normalises_and_round_trips():
    kw = base_kwargs(n_syn=1)
    kw["weights_in"] = kw["weights_in"][:, :, 0].astype(np.int64)  # 2-D
    kw["weights_rec"] = kw["weights_rec"][:, :, 0].tolist()
    kw["threshold"] = [1, 32767]
    spec = XyloSpec(**kw)
    assert spec.weights_in.shape == (2, 2, 1) and spec.weights_in.dtype == np.int8
    assert spec.weights_rec.shape == (2, 2, 1)
    assert spec.threshold.dtype == np.int16 and spec.dash_mem.dtype == np.uint8
    assert (spec.n_in, spec.n_hidden, spec.n_out) == (2, 2, 1)
    assert not spec.weights_in.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        spec.weights_in[0, 0, 0] = 1
    with pytest.raises(AttributeError):
        spec.weight_shift_in = 3  # frozen
    kw2 = spec.as_kwargs()
    assert set(kw2) == set(base_kwargs())
    assert kw2["weights_in"].flags.writeable  # fresh copies
    again = XyloSpec(**kw2)
    for k, v in kw2.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(getattr(again, k), v)
    changed = spec.replace(weight_shift_in=3)
    assert changed.weight_shift_in == 3 and spec.weight_shift_in == 0
    with pytest.raises(ValueError, match="weight_shift_in.*9"):
        spec.replace(weight_shift_in=9)  # replace re-validates
    # run_xylosim accepts the kwargs dict as well as the spec
    x = np.ones((1, 3, 2), int)
    np.testing.assert_array_equal(simulate(spec, x).vmem_out, run_xylosim(kw2, x).vmem_out)


def test_padded_weights_out_and_has_bias():
    kw = base_kwargs(h=3)
    kw["weights_out"] = np.array([[5]], np.int8)  # OEN = 1: hidden neuron 2
    spec = XyloSpec(**kw)
    np.testing.assert_array_equal(spec.padded_weights_out(), [[0], [0], [5]])
    assert not spec.has_bias
    assert spec.replace(bias_out=[-1]).has_bias


BAD_FIELDS = [
    ("weights_in", np.full((2, 2, 2), 128), r"weights_in: value 128 outside int8 -128\.\.127"),
    ("weights_rec", np.full((2, 2, 2), -129), r"weights_rec.*-129"),
    ("weights_out", np.zeros((3, 1)), r"weights_out.*3.*Nhid"),
    ("weights_in", np.zeros((2, 2, 3)), r"weights_in.*shape"),
    ("threshold", [0, 5], r"threshold: value 0 outside threshold 1\.\.32767"),
    ("threshold_out", [32768], r"threshold_out.*32768"),
    ("dash_mem", [16, 0], r"dash_mem: value 16 outside dash 0\.\.15"),
    ("dash_syn_out", [-1], r"dash_syn_out.*-1"),
    ("bias", [40000, 0], r"bias.*40000"),
    ("weight_shift_rec", 9, r"weight_shift_rec: 9 outside weight shift range 0\.\.8"),
    ("weight_shift_in", -1, r"weight_shift_in.*-1"),
    ("weight_shift_out", 1.5, r"weight_shift_out: expected an integer"),
    ("aliases", [[2], []], r"aliases\[0\].*2"),
    ("aliases", [[1]], r"aliases.*2 lists"),
    ("aliases", [[0.5], []], r"aliases: neuron ids must be integers"),
    ("dash_syn", [1, 2, 3], r"dash_syn.*shape"),
    ("threshold", [1.5, 2], r"threshold.*integer"),
    ("output_mode", "Rate", r"output_mode"),
    ("dt", 0.0, r"dt: must be > 0"),
    ("bias_out", None, r"bias_out.*required"),
]


@pytest.mark.parametrize("field, value, match", BAD_FIELDS, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_FIELDS)])
def test_spec_validation(field, value, match):
    kw = base_kwargs()
    kw[field] = value
    with pytest.raises(ValueError, match=match):
        XyloSpec(**kw)


def test_validate_checks_one_devices_limits():
    spec = XyloSpec(**base_kwargs(n_syn=2))
    assert spec.validate() is spec and spec.validate("xylo-audio2") is spec
    spec.validate("xylo-imu")  # synapse 2 present but all zero
    kw = base_kwargs(n_syn=2)
    kw["weights_rec"][0, 1, 1] = 3
    with pytest.raises(ValueError, match="weights_rec: hidden neuron 1 uses synapse 2, xylo-imu has 1 synapse"):
        XyloSpec(**kw).validate("xylo-imu")
    with pytest.raises(ValueError, match="readout: 9 output neurons exceed xylo-audio2's 8"):
        XyloSpec(**base_kwargs(n_out=9)).validate("xylo-audio2")
    kw = base_kwargs(n_in=1, h=130)
    kw["weights_in"][0, 128, 0] = 1
    XyloSpec(**kw).validate("xylo-audio2")
    with pytest.raises(ValueError, match="input window: inputs reach hidden neuron 128.*first 128"):
        XyloSpec(**kw).validate("xylo-audio3")
    kw = base_kwargs(n_in=1, h=130)
    kw["weights_out"][1, 0] = 1
    with pytest.raises(ValueError, match="output window: hidden neuron 1 drives an output.*last 128"):
        XyloSpec(**kw).validate("xylo-imu")
    kw["weights_out"] = kw["weights_out"][2:]  # OEN = 128: the last 128 rows
    XyloSpec(**kw).validate("xylo-imu")
    with pytest.raises(ValueError, match="unknown Xylo device 'xylo-9000'"):
        spec.validate("xylo-9000")
