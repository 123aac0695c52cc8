"""onnx's own backend test data through the frontend.

Every case (model.onnx + test_data_set_*/input_*.pb, output_*.pb) under
onnx/backend/test/data/{node,pytorch-converted,pytorch-operator,light} (the
`node` folder is used when the installed onnx ships it) either loads and
reproduces the expected outputs, or is refused cleanly with an AdacalError
(never another exception).  The number that pass may only grow.
"""
from __future__ import annotations

import glob
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import adacal
from adacal.errors import AdacalError

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
FOLDERS = ("node", "pytorch-converted", "pytorch-operator", "light")
#: Cases that load and match (or, for `light`, load): raise when it grows.
MIN_PASSED = 60


def _cases():
    for folder in FOLDERS:
        root = DATA / folder
        if folder == "light":
            yield from ((folder, p.stem, p, None) for p in sorted(root.glob("*.onnx")))
        elif root.is_dir():
            for d in sorted(root.iterdir()):
                if (d / "model.onnx").exists():
                    yield folder, d.name, d / "model.onnx", d


def _read(path) -> np.ndarray:
    t = onnx.TensorProto()
    t.ParseFromString(Path(path).read_bytes())
    return numpy_helper.to_array(t)


def _matches(g, case_dir: Path) -> bool | None:
    """True / False, or None when the stored data does not fit float32 (adacal
    computes in float32; test_operator_addconstant stores uninitialised doubles)."""
    for ds in sorted(glob.glob(str(case_dir / "test_data_set_*"))):
        ins, outs = sorted(glob.glob(f"{ds}/input_*.pb")), sorted(glob.glob(f"{ds}/output_*.pb"))
        if len(ins) != 1 or len(outs) != 1:
            return False
        x, want = _read(ins[0]), _read(outs[0])
        with np.errstate(over="ignore"):
            if not (np.all(np.isfinite(x.astype(np.float32))) and np.all(np.isfinite(want.astype(np.float32)))):
                return None
        y = g.run(x.astype(np.float32))
        if g.dropped_head:  # the logits keep the argmax of the dropped Softmax / LogSoftmax
            y, want = y.reshape(len(y), -1), want.reshape(len(want), -1)
            if not np.array_equal(y.argmax(1), want.argmax(1)):
                return False
            continue
        if y.size != want.size or not np.allclose(y.reshape(want.shape), want, rtol=1e-3, atol=1e-4):
            return False
    return True


def run_conformance() -> dict[str, list[str]]:
    result: dict[str, list[str]] = {"passed": [], "refused": [], "mismatch": [], "unchecked": []}
    for folder, name, model, case_dir in _cases():
        key = f"{folder}/{name}"
        try:
            g = adacal.load_onnx(model)
        except AdacalError as e:
            result["refused"].append(f"{key}: {str(e).splitlines()[0]}")
            continue
        ok = True if case_dir is None else _matches(g, case_dir)
        result["unchecked" if ok is None else "passed" if ok else "mismatch"].append(key)
    return result


def test_backend_test_data_loads_or_is_refused_cleanly():
    r = run_conformance()
    assert not r["mismatch"], r["mismatch"]
    assert len(r["passed"]) >= MIN_PASSED, (len(r["passed"]), r["refused"])
    for line in r["refused"]:
        assert "\n" not in line


if __name__ == "__main__":  # print the table README.md's "Supported ONNX" summarises
    res = run_conformance()
    for k, v in res.items():
        print(f"== {k}: {len(v)}")
        for line in v:
            print("  ", line[:220])
