"""Streamed data and bounded memory (adacal.data, the streamed calibration):

* a directory with x.npy / y.npy converts, compiles and simulates to the same
  results as the same arrays in a .npz;
* calibration streamed in batches (more calibration samples than
  --batch-size) gives the artifact of the in-memory calibration, byte for
  byte, for light and advanced calibration, the percentile thresholds and
  both searches;
* the streamed ANN statistics choose exactly the values the threshold search
  sees in memory;
* the Python API takes iterables of (x, y) batches (re-iterable and one-shot);
* `simulate --batch-size` does not change the answer;
* bad directories and values found while streaming are one `adacal: error:`
  line, exit 2, and nothing written;
* --device: cpu runs, a device that is not there is refused in one line.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ("-T", "4", "--quiet")


def adacal(*args):
    return subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    out = tmp_path_factory.mktemp("examples")
    subprocess.run([sys.executable, str(ROOT / "examples" / "digits_cnn.py"), "--out", str(out)], check=True,
                   capture_output=True)
    for name in ("digits_calib", "digits_test"):
        d = out / name
        d.mkdir()
        with np.load(out / f"{name}.npz") as f:
            np.save(d / "x.npy", f["x"])
            np.save(d / "y.npy", f["y"])
    return out


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def files_equal(a: Path, b: Path, names=("manifest.json", "network.h5")) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_directory_data_equals_npz(example, tmp_path):
    model = example / "digits_cnn.onnx"
    npz, dirs = tmp_path / "npz", tmp_path / "dir"
    r1 = adacal("compile-loihi2", model, "--calib", example / "digits_calib.npz", "--val", example / "digits_test.npz",
                "-o", npz, *FAST)
    r2 = adacal("compile-loihi2", model, "--calib", example / "digits_calib", "--val", example / "digits_test",
                "-o", dirs, *FAST)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    files_equal(npz, dirs)
    rep1, rep2 = (json.loads((p / "report.json").read_text()) for p in (npz, dirs))
    for key in ("ann_accuracy", "float_snn_accuracy", "snn_accuracy", "spikes_per_sample", "calibration_check"):
        assert rep1[key] == rep2[key], key
    s1 = adacal("simulate", npz, "--data", example / "digits_test.npz", "--json")
    s2 = adacal("simulate", npz, "--data", example / "digits_test", "--json", "--batch-size", "37")
    j1, j2 = json.loads(s1.stdout), json.loads(s2.stdout)
    for key in ("accuracy", "samples", "spikes_per_sample", "synops_per_sample", "output_error"):
        assert j1[key] == j2[key], key
    assert j1["samples"] == len(np.load(example / "digits_test" / "y.npy"))


@pytest.mark.parametrize("extra", [(), ("--calibration", "advanced"), ("--threshold", "percentile:99.9"),
                                   ("--search-spikes", "--spike-range", "2:5", "--energy-budget", "0.8",
                                    "--search-thresholds")])
def test_streamed_calibration_gives_the_in_memory_artifact(example, tmp_path, extra):
    model, cal = example / "digits_cnn.onnx", example / "digits_calib"
    mem, streamed = tmp_path / "mem", tmp_path / "streamed"
    common = ("--calib", cal, "--calib-samples", "300", *FAST, *extra)
    r1 = adacal("compile-loihi2", model, "-o", mem, "--batch-size", "512", *common)
    r2 = adacal("compile-loihi2", model, "-o", streamed, "--batch-size", "64", *common)
    assert r1.returncode == 0 and r2.returncode == 0, r1.stderr + r2.stderr
    files_equal(mem, streamed)
    assert "batch_size" not in manifest(mem)["options"]
    if "--search-spikes" in extra:  # the searches ran, streamed, to the same tables
        rep = [json.loads((p / "report.json").read_text())["searches"] for p in (mem, streamed)]
        assert rep[0] == rep[1] and set(rep[0]) == {"burst_caps", "threshold_ratios"}


def test_streamed_statistics_pick_the_in_memory_values(monkeypatch):
    """More positive values per channel than the search keeps (700 x 36 =
    25,200 > 8,192): the streamed pass draws the same ones.  The ANN here is
    a stand-in whose activations are its input."""
    import adacal.interpret as interp
    from adacal.passes import ann_statistics, thresholds
    x = np.random.default_rng(3).normal(size=(700, 4, 6, 6)).astype(np.float32)
    class Ann:  # its output is named "out"
        output = "out"

    monkeypatch.setattr(interp, "run_graph", lambda ann, xb, keep, batch_size: {"n": xb, "out": xb[:, 0, 0, :2]})
    stats, out = ann_statistics.gather(Ann(), lambda: (x[s:s + 97] for s in range(0, len(x), 97)), ["n"],
                                       {"n": False}, "mse")
    assert np.array_equal(out, x[:, 0, 0, :2])
    assert np.array_equal(stats["n"].table, thresholds._per_channel(x))
    assert np.array_equal(stats["n"].thresholds(4, 4, "mse"), thresholds.channel_thresholds(x, 4, 4, "mse"))
    assert np.allclose(stats["n"].channel_mean, x.transpose(1, 0, 2, 3).reshape(4, -1).mean(axis=1), atol=1e-6)


def test_python_api_takes_batches(example):
    import adacal
    with np.load(example / "digits_calib.npz") as f:
        x, y = f["x"], f["y"]
    opts = dict(timesteps=4, calib_samples=200)
    ref = adacal.convert(example / "digits_cnn.onnx", (x, y), (x[:300], y[:300]), **opts).summary
    batches = [(x[s:s + 50], y[s:s + 50]) for s in range(0, len(x), 50)]
    again = adacal.convert(example / "digits_cnn.onnx", batches, [(x[:300], y[:300])], **opts).summary
    once = adacal.convert(example / "digits_cnn.onnx", (b for b in batches), iter([(x[:300], y[:300])]),
                          compute_device="cpu", **opts).summary
    import torch
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=64)
    dl = adacal.convert(example / "digits_cnn.onnx", loader, [(x[:300], y[:300])], **opts).summary
    for res in (again, once, dl):
        for key in ("snn_accuracy", "ann_accuracy", "spikes_per_sample", "calibration_check"):
            assert res[key] == ref[key], key


def test_bad_directories_write_nothing(example, tmp_path):
    model = example / "digits_cnn.onnx"
    empty = tmp_path / "empty"
    empty.mkdir()
    r = adacal("convert", model, "--calib", empty, "-o", tmp_path / "o1", *FAST)
    assert r.returncode == 2 and r.stderr.count("adacal: error:") == 1 and "has no x.npy" in r.stderr
    assert not (tmp_path / "o1").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    with np.load(example / "digits_test.npz") as f:
        x = f["x"].copy()
    x[123, 0, 1, 1] = np.nan
    np.save(bad / "x.npy", x)
    r = adacal("compile-loihi2", model, "--calib", example / "digits_calib", "--val", bad, "-o", tmp_path / "o2",
               *FAST)
    assert r.returncode == 2 and r.stderr.count("adacal: error:") == 1, r.stderr
    assert "NaN" in r.stderr and "sample 123" in r.stderr and str(bad) in r.stderr
    assert not (tmp_path / "o2").exists()
    r = adacal("convert", model, "--calib", example / "digits_calib", "--batch-size", "0", *FAST)
    assert r.returncode == 2 and "--batch-size" in r.stderr
    renamed = tmp_path / "x_only.npz"  # an .npy array under a .npz name
    with open(renamed, "wb") as f:
        np.save(f, x)
    r = adacal("convert", model, "--calib", renamed, *FAST)
    assert r.returncode == 2 and r.stderr.count("adacal: error:") == 1 and "name it .npy" in r.stderr, r.stderr


def test_device(example, tmp_path):
    import torch
    model, cal = example / "digits_cnn.onnx", example / "digits_calib.npz"
    r = adacal("convert", model, "--calib", cal, "--device", "cpu", "--json", *FAST[:2])
    assert r.returncode == 0, r.stderr
    for dev in ("cuda", "cuda:7", "mps", "tpu"):
        if (dev.startswith("cuda") and torch.cuda.is_available()) or (dev == "mps" and torch.backends.mps.is_available()):
            continue
        r = adacal("convert", model, "--calib", cal, "--device", dev, "-o", tmp_path / "o", *FAST)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"device {dev}" in r.stderr, r.stderr
        assert not (tmp_path / "o").exists()
    r = adacal("compile-xylo", model, "--calib", cal, "--device", "xylo-audio3", "--compute-device", "tpu",
               "-o", tmp_path / "x", *FAST)
    assert r.returncode == 2 and "device tpu" in r.stderr
