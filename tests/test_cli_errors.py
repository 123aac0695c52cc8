"""User errors through the CLI: exit code 2, one `adacal: error: ...` line, no traceback.

Runs `python -m adacal ...` in a subprocess, the way a user would.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import onnx_fixtures as models


def run_cli(*args, cwd=None, timeout=120):
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    return subprocess.run(
        [sys.executable, "-m", "adacal", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout,
    )


def assert_user_error(proc, *must_mention):
    """Exit 2, stderr is exactly one `adacal: error: ...` line mentioning each item."""
    err = proc.stderr
    assert proc.returncode == 2, f"exit code {proc.returncode}, stderr:\n{err}"
    assert "Traceback" not in err and "Traceback" not in proc.stdout, f"traceback printed:\n{err}"
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("adacal: error: "), f"stderr does not start with 'adacal: error: ':\n{err}"
    for item in must_mention:
        assert item.lower() in lines[0].lower(), f"stderr does not mention {item!r}:\n{err}"
    return lines[0]


# ---------------------------------------------------------------------------
# unsupported ops
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("op_type", ["Sin", "Erf"])
def test_unsupported_op_names_node_and_op(tmp_path, op_type):
    path = tmp_path / "unsupported.onnx"
    onnx.save(models.unsupported_op_model(op_type, "weird_node"), str(path))
    proc = run_cli("inspect", path)
    line = assert_user_error(proc, "weird_node", op_type, "supported")
    # "mentions the supported ops": at least a few of the core ones are listed
    listed = [op for op in ("Conv", "Gemm", "Relu", "BatchNormalization", "MatMul") if op in line]
    assert len(listed) >= 2, f"message does not list the supported ops:\n{line}"


def test_unsupported_op_lstm(tmp_path):
    """A real LSTM node (static shapes) named weird_node."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    hidden, feat = 3, 4
    inits = [
        numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, feat)).astype(np.float32), "W"),
        numpy_helper.from_array(rng.standard_normal((1, 4 * hidden, hidden)).astype(np.float32), "R"),
    ]
    node = helper.make_node("LSTM", ["input", "W", "R"], ["Y"], name="weird_node", hidden_size=hidden)
    graph = helper.make_graph(
        [node], "lstm",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [5, 2, feat])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [5, 1, 2, hidden])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = tmp_path / "lstm.onnx"
    onnx.save(model, str(path))
    assert_user_error(run_cli("inspect", path), "weird_node", "LSTM", "supported")


# ---------------------------------------------------------------------------
# bad files
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp_bytes(onnx_model):
    return onnx_model("mlp@nocf").read_bytes()


def test_random_bytes(tmp_path):
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    assert_user_error(run_cli("inspect", path), path.name)


@pytest.mark.parametrize("seed", range(5))
def test_random_bytes_many_seeds(tmp_path, seed):
    """Random bytes sometimes parse as a (garbage) protobuf: still a user error."""
    path = tmp_path / f"random{seed}.onnx"
    path.write_bytes(np.random.default_rng(100 + seed).bytes(64 + 97 * seed))
    assert_user_error(run_cli("inspect", path), path.name)


def test_truncated_model(tmp_path, mlp_bytes):
    path = tmp_path / "truncated.onnx"
    path.write_bytes(mlp_bytes[: len(mlp_bytes) // 2])
    assert_user_error(run_cli("inspect", path), path.name)


def test_missing_file(tmp_path):
    path = tmp_path / "does_not_exist.onnx"
    assert_user_error(run_cli("inspect", path), path.name)


def test_directory_instead_of_file(tmp_path):
    path = tmp_path / "a_directory.onnx"
    path.mkdir()
    assert_user_error(run_cli("inspect", path), path.name)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    assert_user_error(run_cli("inspect", path), path.name)


def test_text_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not an ONNX model\nlayer,op,shape\nconv1,Conv,1x8x8\n")
    assert_user_error(run_cli("inspect", path), path.name)


def test_python_source_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(Path(models.__file__).read_text())
    assert_user_error(run_cli("inspect", path), path.name)


def test_dynamic_non_batch_dim(tmp_path):
    path = tmp_path / "dynamic_hw.onnx"
    onnx.save(models.dynamic_spatial_model(), str(path))
    line = assert_user_error(run_cli("inspect", path))
    # should say which input / which dims are the problem
    assert "input" in line.lower(), line
    assert any(word in line for word in ("'H'", "H,", "H]", "'W'", "dynamic", "Dynamic", "symbolic", "fixed")), line


# ---------------------------------------------------------------------------
# inspect on a good model
# ---------------------------------------------------------------------------

def test_inspect_json(onnx_model):
    proc = run_cli("inspect", onnx_model("mlp@nocf"), "--json")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    data = json.loads(proc.stdout)
    layers = data["layers"] if isinstance(data, dict) else data
    assert isinstance(layers, list) and layers, data
    for layer in layers:
        missing = {"name", "op", "shape", "params", "macs", "role"} - set(layer)
        assert not missing, f"layer {layer} lacks {sorted(missing)}"
    # 20-32-16-5: the three dense layers hold 1285 parameters; BatchNorm (if
    # inspect shows it unfolded) adds at most 4 per channel.
    params = sum(layer["params"] for layer in layers)
    dense_params = (20 * 32 + 32) + (32 * 16 + 16) + (16 * 5 + 5)
    assert dense_params <= params <= dense_params + 4 * (32 + 16), (params, layers)
    macs = sum(layer["macs"] for layer in layers)
    assert macs >= 20 * 32 + 32 * 16 + 16 * 5, (macs, layers)


def test_inspect_text(onnx_model):
    proc = run_cli("inspect", onnx_model("handmade"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip(), "inspect printed nothing"
    assert proc.stdout.endswith("\n"), f"inspect output does not end with a newline: {proc.stdout[-40:]!r}"


def test_no_arguments_is_usage_error():
    proc = run_cli()
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr


def test_stdout_closed_early_gives_no_traceback(onnx_model):
    """`adacal inspect --json MODEL | head -1`: the reader goes away before
    adacal has written; adacal must end quietly (exit 1), not with a
    BrokenPipeError traceback."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "adacal", "inspect", str(onnx_model("handmade")), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # nobody reads stdout
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1
    assert "Traceback" not in err and "BrokenPipe" not in err, err
