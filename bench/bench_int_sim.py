#!/usr/bin/env python3
"""Throughput and accuracy of the bit-accurate Loihi 2 integer simulator
(runtime_sim/int_sim.py) against the float burst-SNN simulator
(runtime_sim/float_sim.py), side by side in one run.

    python bench/bench_int_sim.py                         # defaults below
    python bench/bench_int_sim.py --models mnist_vgg --threads 1 --repeats 5
    python bench/bench_int_sim.py --no-xylo

For every model (bench/models.py; mnist_vgg, mnist_resnet by default):

  conversion  adacal.pipeline.convert at T=8, φ=4 (256 calibration samples,
              light calibration: the defaults), then the Loihi 2 lowering the
              compile command uses (backends/loihi2/evaluate.lower_calibrated:
              fold pooling, lower_loihi2, calibrate_int); the uncalibrated lowering
              is evaluated too
  throughput  the same --samples test samples through
                float  simulate(conv.snn, x, T, batch_size=--batch)  (the float
                       SNN as the pipeline evaluates it, pooling unfolded)
                folded simulate(fold_pooling(conv.snn), ...)  (the float SNN
                       with the synapses the integer network has: pooling
                       folded into larger, strided kernels)
                int    simulate_int(low.graph, x, T, batch_size=--batch)
              timed alternately (float, folded, int, ...) --repeats times
              each, best run counted; samples/s = samples / seconds; ratio =
              int / float.  Once with every torch thread count in --threads.
  accuracy    on the full test split: the ANN, the float SNN, the integer
              network without and with calibrate_int
  headroom    on the first 256 test samples: the largest |current| into any
              neuron, |membrane state v| and |readout current| per step, to
              compare with Loihi 2's 24-bit state (2^23 = 8388608)

With --xylo (default) bench/bench_xylo_sim.py's "typical" scenario runs too
(its own output captured) and its adacal-vs-XyloSim ratio joins the table.
Wall-clock timings depend on whatever else the machine runs; the load average
is printed at start and end (a full run took 10-16 min on a shared 2-core
machine at load 2-6, most of it in the two conversions + lowerings, the
throughput repeats and the full-test-set accuracy runs).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _load(name: str):
    import models
    p = models.get(name)
    with np.load(p["calib"]) as f:
        xc, yc = f["x"], f["y"]
    with np.load(p["test"]) as f:
        xt, yt = f["x"], f["y"]
    return p["onnx"], xc, yc, xt, yt


def _headroom(low, x: np.ndarray) -> dict[str, float]:
    """Largest |current|, |v| (int64 replay of each neuron) and |readout|."""
    from adacal import int_ir
    from adacal.runtime_sim.int_sim import simulate_int

    peak = {"current": 0.0, "v": 0.0}

    def hook(node, current):
        op: int_ir.IntBurstNeuron = node.op
        cur = np.rint(current).astype(np.int64)
        shape = (-1,) + (1,) * (cur.ndim - 3)
        theta = np.asarray(op.threshold, np.int64).reshape(shape)
        drive = cur + np.asarray(op.bias, np.int64).reshape(shape)
        v = np.broadcast_to(np.asarray(op.v_init, np.int64), cur.shape[1:]).copy()
        vmax = np.abs(v).max()
        for t in range(low.timesteps):
            v += drive[0] if drive.shape[0] == 1 else drive[t]
            vmax = max(vmax, np.abs(v).max())  # before the reset: what the state register must hold
            v -= np.clip(np.floor_divide(v, theta), 0, op.max_spikes) * theta
        peak["current"] = max(peak["current"], float(np.abs(cur).max()))
        peak["v"] = max(peak["v"], float(vmax))
        return op

    res, _ = simulate_int(low.graph, x, low.timesteps, neuron_hook=hook)
    peak["readout"] = float(np.abs(res.readout).max())
    return peak


def bench_model(name: str, args) -> dict:
    from adacal.backends.loihi2.evaluate import lower_calibrated as lower_for_loihi2
    from adacal.passes.fold_pooling import fold_pooling
    from adacal.pipeline import convert, pick_calibration
    from adacal.runtime_sim.float_sim import simulate
    from adacal.runtime_sim.int_sim import simulate_int

    T, phi = args.timesteps, args.max_spikes
    onnx_path, xc, yc, xt, yt = _load(name)
    t0 = time.perf_counter()
    conv, _ = convert(str(onnx_path), (xc, yc), timesteps=T, max_spikes=phi)
    t_conv = time.perf_counter() - t0
    x_cal, _ = pick_calibration(xc, yc, conv.options.calib_samples, conv.options.seed)
    t0 = time.perf_counter()
    low_raw = lower_for_loihi2(conv, x_cal, calibrate=False)
    low = lower_for_loihi2(conv, x_cal, calibrate=True)
    t_lower = time.perf_counter() - t0
    print(f"[{name}] converted in {t_conv:.1f} s, lowered + calibrated in {t_lower:.1f} s", flush=True)

    # ---- throughput, same samples, alternating -------------------------------
    xs = xt[: args.samples]
    folded = fold_pooling(conv.snn)
    runs = {"float": lambda x: simulate(conv.snn, x, T, batch_size=args.batch),
            "folded": lambda x: simulate(folded, x, T, batch_size=args.batch),
            "int": lambda x: simulate_int(low.graph, x, T, batch_size=args.batch)}
    rates = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for run in runs.values():  # warm-up
            run(xs[: args.batch])
        best = {k: np.inf for k in runs}
        for _ in range(args.repeats):
            for kind, run in runs.items():
                t0 = time.perf_counter()
                run(xs)
                best[kind] = min(best[kind], time.perf_counter() - t0)
        rates[threads] = {k: len(xs) / v for k, v in best.items()}
        print(f"[{name}] {threads} thread(s): " + ", ".join(f"{k} {v:.0f} samples/s" for k, v in rates[threads].items()),
              flush=True)
    torch.set_num_threads(args.threads[0])

    # ---- accuracy on the full test split --------------------------------------
    fsim, _ = simulate(conv.snn, xt, T)
    acc = {
        "ann": float((conv.ann.run(xt).reshape(len(xt), -1).argmax(1) == yt).mean()),
        "float": float((fsim.mean_output().reshape(len(xt), -1).argmax(1) == yt).mean()),
    }
    for key, lw in (("int_raw", low_raw), ("int", low)):
        res, _ = simulate_int(lw.graph, xt, T)
        acc[key] = float((lw.logits(res.readout).reshape(len(xt), -1).argmax(1) == yt).mean())
    head = _headroom(low, xt[:256])
    return {"name": name, "test": len(xt), "rates": rates, "acc": acc, "head": head,
            "depth": low.depth, "seconds": {"convert": t_conv, "lower": t_lower}}


def xylo_ratio(args) -> tuple[float, bool, str] | None:
    try:
        import bench_xylo_sim as bx
    except Exception:  # pragma: no cover - Rockpool missing
        return None
    ns = argparse.Namespace(batch=256, steps=32, xylosim_samples=16, repeats=3, seed=0, device="xylo-audio2")
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            ratio, same = bx.run_scenario("typical", 3, ns)
    except Exception as e:  # pragma: no cover
        return float("nan"), False, f"failed: {type(e).__name__}: {e}"
    return ratio, same, buf.getvalue()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="mnist_vgg,mnist_resnet")
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--max-spikes", type=int, default=4)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--samples", type=int, default=1024, help="test samples timed (at most the test split)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="torch thread counts to time, comma-separated")
    ap.add_argument("--no-xylo", dest="xylo", action="store_false")
    args = ap.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(args.threads[0])

    load0 = os.getloadavg()
    print(f"cpus {os.cpu_count()}, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"T={args.timesteps}, phi={args.max_spikes}, batch {args.batch}, best of {args.repeats}", flush=True)
    rows = [bench_model(m, args) for m in args.models.split(",")]
    xy = xylo_ratio(args) if args.xylo else None
    load1 = os.getloadavg()

    print()
    print(f"Integer (Loihi 2, bit-accurate) vs float burst-SNN simulator, T={args.timesteps}, "
          f"phi={args.max_spikes}, batch {args.batch}")
    head = (f"{'model':<14}{'thr':>4}{'float smp/s':>13}{'int smp/s':>11}{'int/float':>11}"
            f"{'folded float smp/s':>20}{'int/folded':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        for th, rt in r["rates"].items():
            print(f"{r['name']:<14}{th:>4}{rt['float']:>13.0f}{rt['int']:>11.0f}{rt['int'] / rt['float']:>10.2f}x"
                  f"{rt['folded']:>20.0f}{rt['int'] / rt['folded']:>11.2f}x")
    if xy is not None:
        ratio, same, _ = xy
        print(f"{'xylo_mlp':<14}{1:>4}{'(adacal Xylo sim vs XyloSim, T=32, typical)':>45}  "
              f"{ratio:.1f}x, {'identical' if same else 'MISMATCH'}")
    print()
    head = (f"{'model':<14}{'test':>6}{'ANN':>8}{'float SNN':>11}{'int':>8}{'int+cal':>9}{'int-float':>11}"
            f"{'max|I|':>10}{'max|v|':>10}{'max|readout|':>14}")
    print(head)
    print("-" * len(head))
    for r in rows:
        a, h = r["acc"], r["head"]
        print(f"{r['name']:<14}{r['test']:>6}{a['ann']:>8.4f}{a['float']:>11.4f}{a['int_raw']:>8.4f}"
              f"{a['int']:>9.4f}{100 * (a['int'] - a['float']):>+10.2f}p"
              f"{h['current']:>10.0f}{h['v']:>10.0f}{h['readout']:>14.0f}")
    print(f"(int = lower_loihi2 only; int+cal = with calibrate_int; int-float in points for int+cal; "
          f"24-bit limit 2^23 = {2 ** 23})")
    print(f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f} (on {os.cpu_count()} cpus)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
