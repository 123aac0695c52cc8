"""Check a Loihi 2 artifact against Lava's own bit-accurate models: every
neuron layer's payloads and the readout currents, every step."""
from __future__ import annotations

import time

import numpy as np

from adacal.errors import AdacalError
from adacal.progress import noop_advance, progress_task
from adacal.target import merge_verify_results


def verify(low, x: np.ndarray, log=None) -> dict:
    """adacal's integer simulator against Lava (Loihi2SimCfg, fixed_pt) on x."""
    from adacal.backends.loihi2.lava_run import run_lava
    from adacal.runtime_sim.int_sim import simulate_int

    if log:
        log(f"verify: adacal's bit-accurate simulator on {len(x)} samples ...")
    t0 = time.perf_counter()
    ours, _ = simulate_int(low.graph, x, low.timesteps, record_payloads=True)
    t1 = time.perf_counter()
    if log:
        log(f"verify: Lava (Loihi2SimCfg fixed_pt) on {len(x)} samples ...")
    with progress_task(log, "Lava run", len(x), "samples") as advance:
        ref = run_lava(low.graph, x, low.timesteps, progress=None if advance is noop_advance else advance)
    t2 = time.perf_counter()
    first, bad = compare(ours.payloads, ours.readout, ref["payloads"], ref["readout"], low.graph)
    return {"samples": len(x), "reference": "lava-fixed_pt", "mismatched_samples": int(bad.sum()),
            "first_mismatch": first, "layers_compared": len(ours.payloads) + 1,
            "adacal_seconds": t1 - t0, "reference_seconds": t2 - t1}


def merge(low, parts: list[tuple[int, dict]]) -> dict:
    """verify's result on all samples from its results on consecutive shards
    [(offset of the shard's first sample, result), ...]: the first mismatch
    in compare's order (layer in graph order, the readout last; then step,
    sample, neuron)."""
    g = low.graph
    rank = {nd.name: i for i, nd in enumerate(g.nodes)}
    rank[g.output] = len(g.nodes)
    return merge_verify_results(parts, key=lambda m: (rank.get(m["layer"], len(g.nodes)), m["step"], m["sample"],
                                                      m["neuron"]))


def compare(pay_a, out_a, pay_b, out_b, g) -> tuple[dict | None, np.ndarray]:
    """First mismatch (layer, step, sample, neuron, both values) and a per-sample flag."""
    n = out_a.shape[1]
    bad = np.zeros(n, bool)
    first = None
    order = [nd.name for nd in g.nodes if nd.name in pay_a] + [g.output]
    for name in order:
        a = pay_a[name] if name in pay_a else out_a
        b = np.asarray(pay_b[name] if name in pay_a else out_b)
        if a.shape != b.shape:
            raise AdacalError(f"verify: layer '{name}' has shape {a.shape} here and {b.shape} in the reference")
        diff = a != b
        bad |= diff.reshape(diff.shape[0], n, -1).any(axis=(0, 2))
        if first is None and diff.any():
            t, s, *idx = np.argwhere(diff)[0]
            first = {"layer": name, "step": int(t) + 1, "sample": int(s), "neuron": [int(i) for i in idx],
                     "adacal": int(a[(t, s, *idx)]), "reference": int(b[(t, s, *idx)])}
    return first, bad
