"""How far can threshold choices alone take check (ii) on the shallow models?  (issue 3)

Check (ii) asks, on every benchmark model, for an adacal network at T ≤ 4 that
is at least as accurate as the best peer at any T ≤ 256 with at least 10× fewer
synops (spikes × fan-out), on the same test samples.  This script takes the
peers' best row from a finished bench_conversion.py run (bench/results/
conversion.json) and asks whether *any* choice of thresholds could meet it —
per channel, which is finer than anything the method (or adacal) searches.

Starting from adacal's converted network (light calibration) at T = 1 and
φ ∈ {1, 2, 4, 8}, a greedy search multiplies one channel's threshold at a time
by a factor (or silences the channel) and keeps the move that saves the most
synops while every selection sample the starting network classifies as
required stays so, until no move helps:

  train   the selection samples are the training samples (all of them),
          required to keep the ANN's class: what a converter could use;
  oracle  the selection samples are the test samples of the comparison with
          their labels — thresholds fitted to the test set itself, which no
          converter can do: the least synops that test set allows this way.

Everything is simulated by adacal's own simulator (runtime_sim.float_sim, the
benchmark's fan-out maps) on the comparison's test samples.

With --price events the greedy minimises, and the table shows, events ×
fan-out instead (Loihi 2's convention: a burst is one graded event; the peers'
IF neurons send one spike per event, so their figure is unchanged).

Run: .venv/bin/python bench/bench_channel_floor.py [--models wine_mlp,digits_cnn]
     [--price spikes|events] [--phis 1,2,4,8]
(about 3 minutes for both, in either pricing)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import bench_conversion as bench  # noqa: E402

from adacal.pipeline import convert  # noqa: E402
from adacal.passes.to_spiking import neuron_names, set_neuron  # noqa: E402
from adacal.runtime_sim import energy  # noqa: E402
from adacal.runtime_sim.float_sim import simulate  # noqa: E402

T = 1
FACTORS = (0.7, 0.85, 1.2, 1.5, 2.0, 3.0, None)  # None: silence the channel
SILENT = np.float32(1e30)  # k = round(v / θ) = 0 for any reachable v, and k·θ = 0


def measure(snn, fan, x, price="spikes"):
    """Predicted class and synops per sample (spikes or, priced in events,
    events x fan-out: Loihi 2's graded spikes)."""
    res, _ = simulate(snn, x, T, fanout=fan)
    cost = getattr(res, energy.SYNOPS_TABLE[price])
    synops = sum(cost[n].sum(axis=0) for n in cost)
    return res.mean_output().reshape(len(x), -1).argmax(axis=1), synops


def greedy(snn, fan, x, ref, price="spikes"):
    """Per-channel threshold moves that keep pred == ref on every sample of x
    where the starting network has it."""
    pred, syn = measure(snn, fan, x, price)
    x, ref = x[pred == ref], ref[pred == ref]
    cost, names = measure(snn, fan, x, price)[1].mean(), neuron_names(snn)
    while True:
        best = None
        for name in names:
            theta = snn.node(name).op.threshold
            for c in range(theta.shape[0]):
                if theta[c] == SILENT:
                    continue
                for f in FACTORS:
                    th = theta.copy()
                    th[c] = SILENT if f is None else theta[c] * np.float32(f)
                    trial = set_neuron(snn, name, threshold=th)
                    p, s = measure(trial, fan, x, price)
                    if (p == ref).all() and s.mean() < cost - 1e-9 and (best is None or s.mean() < best[0]):
                        best = (s.mean(), trial)
        if best is None:
            return snn
        cost, snn = best


def peers_best(results: dict, name: str) -> dict:
    if name not in results.get("results", {}):
        raise SystemExit(f"{name} is not in the benchmark results: run bench/bench_conversion.py first")
    r = results["results"][name]
    return max(r["sweep"], key=lambda row: (row["accuracy"], -row["synops_per_sample"])) | {"n": r["sweep_samples"]}


def run(name: str, results: dict, price: str = "spikes", phis=(1, 2, 4, 8)) -> None:
    info = bench.ModelInfo(name)
    peer = peers_best(results, name)
    sub = bench.stratified(info.y_test, peer["n"])
    x_te, y_te = info.x_test[sub], info.y_test[sub]
    x_tr = info.x_cal_all
    target = peer["synops_per_sample"] / 10
    print(f"{name}: the peers' best on {len(sub)} test samples is {100 * peer['accuracy']:.1f} % "
          f"({peer['method']}, T={peer['T']}, {peer['synops_per_sample']:.0f} synops); (ii) needs "
          f"≥ {100 * peer['accuracy']:.1f} % with ≤ {target:.0f} synops"
          + (" (adacal priced in events × fan-out, the peers' events are their spikes)" if price == "events" else ""),
          flush=True)
    print(f"  {'φ':>2} | {'adacal: acc':>11} {'synops':>7} | {'train-selected: acc':>19} {'synops':>7}"
          f" | {'oracle: acc':>11} {'synops':>7}", flush=True)
    for phi in phis:
        conv, _ = convert(str(info.paths["onnx"]), x_tr, None, timesteps=T, max_spikes=phi, calibration="light")
        snn, fan = conv.snn, energy.fanout_maps(conv.snn)
        cols = []
        for g in (snn, greedy(snn, fan, x_tr, conv.ann.run(x_tr).reshape(len(x_tr), -1).argmax(axis=1), price),
                  greedy(snn, fan, x_te, y_te, price)):
            p, s = measure(g, fan, x_te, price)
            ok = (p == y_te).mean() >= peer["accuracy"] and s.mean() <= target
            cols.append(f"{100 * (p == y_te).mean():10.1f}%{'*' if ok else ' '} {s.mean():7.0f}")
        print(f"  {phi:>2} | {cols[0]:>19} | {cols[1]:>27} | {cols[2]:>19}", flush=True)
    print("  (* meets (ii))", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="wine_mlp,digits_cnn")
    ap.add_argument("--results", default=str(ROOT / "bench" / "results" / "conversion.json"))
    ap.add_argument("--price", choices=energy.SEARCH_COSTS, default="spikes",
                    help="spikes: synops = spikes x fan-out; events: events x fan-out (Loihi 2's graded spikes)")
    ap.add_argument("--phis", default="1,2,4,8", help="burst caps to start from")
    args = ap.parse_args(argv)
    results = json.loads(Path(args.results).read_text())
    t0 = time.time()
    for name in args.models.split(","):
        run(name, results, args.price, tuple(int(p) for p in args.phis.split(",")))
    print(f"({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
