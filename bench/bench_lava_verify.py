"""Loihi 2: compile the benchmark models, verify them bit-exactly against
Lava's fixed_pt models, and time Lava against adacal's integer simulator on
the same network and samples (side by side, one run).

    .venv/bin/python bench/bench_lava_verify.py [--models ...] [--samples 10] [-T 8] [--max-spikes 4]

Prints, per model: bit-accurate vs float-SNN accuracy on the full test set,
the verification result, and per-sample wall time of Lava (build + run +
reading every layer's payloads, as `adacal verify` does) vs adacal on the
same samples, and adacal's per-sample time at batch 256.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import models  # noqa: E402

from adacal.artifact import compile_model  # noqa: E402
from adacal.backends.loihi2 import load_network  # noqa: E402
from adacal.data import load_data  # noqa: E402
from adacal.pipeline import ConvertOptions  # noqa: E402
from adacal.runtime_sim.int_sim import simulate_int  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="digits_cnn,mnist_vgg,mnist_resnet,wine_mlp")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("-T", "--timesteps", type=int, default=8)
    ap.add_argument("--max-spikes", type=int, default=4)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rows, failed = [], False
    for name in args.models.split(","):
        p = models.get(name)
        xc, yc = load_data(p["calib"])
        xv, yv = load_data(p["test"])
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            art, s = compile_model(str(p["onnx"]), "loihi2", (xc, yc), Path(tmp) / "art", val=(xv, yv),
                                   options=ConvertOptions(timesteps=args.timesteps, max_spikes=args.max_spikes),
                                   model_path=str(p["onnx"]))
            compile_s = time.perf_counter() - t0
            v = art.verify(xv, args.samples)
            low = load_network(art.path)  # the integer network, from network.h5
            batch = xv[:256]
            t0 = time.perf_counter()
            simulate_int(low.graph, batch, low.timesteps)
            batch_ms = (time.perf_counter() - t0) / len(batch) * 1e3
        failed |= v["mismatched_samples"] > 0
        n = v["samples"]
        lava_ms, ours_ms = v["reference_seconds"] / n * 1e3, v["adacal_seconds"] / n * 1e3
        rows.append((name, s["ann_accuracy"], s["float_snn_accuracy"], s["snn_accuracy"], n,
                     v["mismatched_samples"], lava_ms, ours_ms, batch_ms, compile_s))
        print(f"{name}: verify {n} samples, {v['mismatched_samples']} mismatched; first mismatch {v['first_mismatch']}",
              flush=True)
    print(f"\nT = {args.timesteps}, max spikes {args.max_spikes}; accuracy on the full test sets")
    print("model         ANN      float    bit-acc  verified  mism.  Lava ms/s  adacal ms/s  ratio   "
          "adacal@256 ms/s  ratio@256  compile s")
    for r in rows:
        name, ann, flt, bit, n, bad, lava, ours, b256, cs = r
        print(f"{name:12} {100 * ann:6.2f} % {100 * flt:6.2f} % {100 * bit:6.2f} % {n:8d} {bad:6d} {lava:10.1f} "
              f"{ours:12.2f} {lava / ours:6.0f}x {b256:16.3f} {lava / b256:9.0f}x {cs:10.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
