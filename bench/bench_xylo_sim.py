#!/usr/bin/env python3
"""Throughput of adacal's batched Xylo simulator against Rockpool's XyloSim.

    python bench/bench_xylo_sim.py                 # defaults below
    python bench/bench_xylo_sim.py --batch 512 --xylosim-samples 32

One run, one spec, the same inputs for both:

  network   a Xylo-sized MLP: 16 inputs -> 3 hidden layers of 64 neurons
            (packed into weights_rec as off-diagonal blocks) -> 8 outputs,
            random int8 weights scaled for moderate bursting, 2 synapses
            (Xylo Audio 2), dash_syn 1/2, dash_mem 4
  inputs    random event counts 0..15 per channel per step, T = 32
  adacal    `adacal.runtime_sim.xylo_sim.simulate` on the whole batch
            (best of --repeats runs)
  XyloSim   `adacal.backends.xylo.reference.run_xylosim`
            (XyloSim.from_specification, one sample at a
            time with reset_state) on the first --xylosim-samples samples;
            samples/s = samples / seconds (module construction excluded)
  scenarios "typical" (weight shift 3: no isyn saturation, all fast path)
            and "saturating" (shift 6, thresholds x8: most steps take the
            exact per-source path for part of the cells)

Both must give identical hidden/output events, Vmem and Isyn on the samples
XyloSim ran; the script exits with status 1 otherwise.  Prints samples/s of
each, the ratio (goal >= 10x) and which delivery paths the simulator used.
Timings are wall-clock on whatever else the machine is running; the
simulator uses one torch thread (see `simulate(torch_threads=...)`).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def make_mlp_spec(seed: int = 0, n_in: int = 16, width: int = 64, layers: int = 3,
                  n_out: int = 8, shift: int = 3):
    from adacal.backends.xylo.spec import XyloSpec

    rng = np.random.default_rng(seed)
    h = width * layers
    w_in = np.zeros((n_in, h, 2), np.int8)
    w_in[:, :width, 0] = np.clip(rng.normal(4, 12, (n_in, width)), -128, 127)
    w_in[:, :width, 1] = np.clip(rng.normal(0, 6, (n_in, width)), -128, 127)
    w_rec = np.zeros((h, h, 2), np.int8)
    for layer in range(layers - 1):
        src = slice(layer * width, (layer + 1) * width)
        dst = slice((layer + 1) * width, (layer + 2) * width)
        w_rec[src, dst, 0] = np.clip(rng.normal(2, 14, (width, width)), -128, 127)
        w_rec[src, dst, 1] = np.clip(rng.normal(0, 6, (width, width)), -128, 127)
    w_out = np.clip(rng.normal(2, 20, (width, n_out)), -128, 127).astype(np.int8)
    return XyloSpec(
        weights_in=w_in, weights_out=w_out, weights_rec=w_rec,
        dash_mem=np.full(h, 4), dash_mem_out=np.full(n_out, 4),
        dash_syn=np.full(h, 1), dash_syn_2=np.full(h, 2), dash_syn_out=np.full(n_out, 1),
        threshold=rng.integers(1500, 3000, h), threshold_out=np.full(n_out, 4000),
        bias=np.zeros(h, int), bias_out=np.zeros(n_out, int),
        weight_shift_in=shift, weight_shift_rec=shift, weight_shift_out=shift,
        aliases=None, dt=1e-3, output_mode="Vmem",
    )


FIELDS = ("spikes", "spikes_out", "vmem", "vmem_out", "isyn", "isyn2", "isyn_out")

# (name, weight shift): thresholds scale with 2**shift, so the activity stays
# similar while isyn saturates much more at the larger shift
SCENARIOS = (("typical", 3), ("saturating", 6))


def run_scenario(name: str, shift: int, args) -> tuple[float, bool]:
    from adacal.backends.xylo.compat import xylosim_class
    from adacal.backends.xylo.reference import run_xylosim
    from adacal.runtime_sim.xylo_sim import simulate

    spec = make_mlp_spec(args.seed, shift=3)
    if shift != 3:
        f = 2 ** (shift - 3)
        spec = make_mlp_spec(args.seed, shift=shift).replace(
            threshold=np.minimum(np.asarray(spec.threshold, np.int64) * f, 32767),
            threshold_out=np.minimum(np.asarray(spec.threshold_out, np.int64) * f, 32767))
    rng = np.random.default_rng(args.seed + 1)
    x = rng.integers(0, 16, (args.batch, args.steps, spec.n_in))

    simulate(spec, x[:2])  # warm-up
    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ours = simulate(spec, x)
        best = min(best, time.perf_counter() - t0)
    ours_rate = args.batch / best

    m = min(args.xylosim_samples, args.batch)
    run_xylosim(spec, x[:1], args.device)  # warm-up (imports)
    t0 = time.perf_counter()
    xylosim_class(args.device).from_specification(**spec.as_kwargs())
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = run_xylosim(spec, x[:m], args.device)
    t_ref = max(time.perf_counter() - t0 - t_build, 1e-9)
    ref_rate = m / t_ref

    mismatch = [f for f in FIELDS
                if not np.array_equal(getattr(ours, f)[:m], getattr(ref, f))]
    st = ours.stats
    print(f"--- {name}: weight shift {shift}, T={args.steps}, batch={args.batch}")
    print(f"activity: {ours.spikes.mean():.2f} hidden events / neuron / step, "
          f"{ours.spikes_out.mean():.3f} output events / neuron / step, "
          f"max burst {int(ours.spikes.max())}")
    cells = args.batch * args.steps * (st["static_fast_columns"] + st["checked_columns"])
    print(f"paths: {st['static_fast_columns']} isyn columns static-fast, "
          f"{st['checked_columns']} checked; exact path in {st['exact_steps']}/{st['steps']} "
          f"steps, {st['exact_sample_steps']} sample-steps, "
          f"{st['exact_cells']}/{cells} cells ({100 * st['exact_cells'] / max(cells, 1):.1f}%)")
    print(f"adacal simulate : {ours_rate:10.1f} samples/s  ({best * 1e3:.1f} ms for {args.batch})")
    print(f"XyloSim         : {ref_rate:10.1f} samples/s  ({t_ref * 1e3:.1f} ms for {m}, "
          f"+ {t_build * 1e3:.0f} ms module construction, not counted)")
    print(f"ratio           : {ours_rate / ref_rate:10.1f} x  (goal >= 10x)")
    if mismatch:
        print(f"MISMATCH on the {m} XyloSim samples: {', '.join(mismatch)}")
    else:
        print(f"identical on the {m} XyloSim samples: {', '.join(FIELDS)}")
    return ours_rate / ref_rate, not mismatch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--xylosim-samples", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="xylo-audio2")
    ap.add_argument("--scenarios", default=",".join(n for n, _ in SCENARIOS),
                    help="comma-separated subset of: " + ", ".join(n for n, _ in SCENARIOS))
    args = ap.parse_args(argv)

    print(f"network: 16 -> 3x64 hidden (Nhid=192, packed in weights_rec) -> 8, "
          f"device={args.device}")
    ok = True
    for name, shift in SCENARIOS:
        if name in args.scenarios.split(","):
            _, same = run_scenario(name, shift, args)
            ok &= same
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
