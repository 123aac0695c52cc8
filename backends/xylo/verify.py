"""Check a Xylo artifact against SynSense's XyloSim (through Rockpool): every
hidden neuron's events per step, the output Vmem and the output events."""
from __future__ import annotations

import time

import numpy as np

from adacal.errors import AdacalError
from adacal.progress import noop_advance, progress_task
from adacal.target import merge_verify_results

#: compare's quantities, in the order it checks them (ties at one step and sample go to the earlier)
QUANTITIES = ("events", "vmem_out", "events_out")


def verify(low, x: np.ndarray, log=None) -> dict:
    """adacal's Xylo simulator against XyloSim on the encoded inputs of x."""
    from adacal.backends.xylo.reference import run_xylosim
    from adacal.runtime_sim import xylo_sim

    enc = low.encode(np.asarray(x, np.float32))
    if log:
        log(f"verify: adacal's Xylo simulator on {len(x)} samples ...")
    t0 = time.perf_counter()
    ours = xylo_sim.simulate(low.spec, enc, record_isyn=False)
    t1 = time.perf_counter()
    if log:
        log(f"verify: XyloSim ({low.device}) on {len(x)} samples ...")
    with progress_task(log, "XyloSim run", len(x), "samples") as advance:
        ref = run_xylosim(low.spec, enc, low.device, progress=None if advance is noop_advance else advance)
    t2 = time.perf_counter()
    first, bad = compare(low, ours, ref)
    return {"samples": len(x), "reference": "xylosim", "device": low.device, "mismatched_samples": int(bad.sum()),
            "first_mismatch": first, "layers_compared": len(low.layers) + bool(low.bias_neurons) + 1,
            "steps": int(enc.shape[1]), "adacal_seconds": t1 - t0, "reference_seconds": t2 - t1}


def _hidden_owner(low) -> dict:
    """hidden neuron id -> (layer name, index in the layer)"""
    where = {}
    for L in low.layers:
        for i in range(L.first, L.stop):
            where[i] = (L.name, i - L.first)
    for k, i in enumerate(low.bias_neurons):
        where[i] = ("bias units", k)
    return where


def merge(low, parts: list[tuple[int, dict]]) -> dict:
    """verify's result on all samples from its results on consecutive shards
    [(offset of the shard's first sample, result), ...]: the first mismatch
    in compare's order (step, sample, quantity, neuron)."""
    def key(m):
        return (m["step"], m["sample"], QUANTITIES.index(m["quantity"]), m.get("hidden_id", m.get("output_id", 0)))
    return merge_verify_results(parts, key=key)


def compare(low, ours, ref) -> tuple[dict | None, np.ndarray]:
    """The earliest mismatch (by step, then sample) and a per-sample flag."""
    where = _hidden_owner(low)
    rname = low.readout.name
    n = np.asarray(ours.spikes).shape[0]
    bad = np.zeros(n, bool)
    first = None
    for quantity, a, b in zip(QUANTITIES, (ours.spikes, ours.vmem_out, ours.spikes_out),
                              (ref.spikes, ref.vmem_out, ref.spikes_out)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            raise AdacalError(f"verify: {quantity} has shape {a.shape} here and {b.shape} in XyloSim")
        diff = a != b
        bad |= diff.any(axis=(1, 2))
        if diff.any():
            cells = np.argwhere(diff)  # (sample, step, neuron)
            s, t, j = min(map(tuple, cells), key=lambda c: (c[1], c[0], c[2]))
            layer, idx = where.get(int(j), ("hidden", int(j))) if quantity == "events" else (rname, int(j))
            cand = {"layer": layer, "quantity": quantity, "step": int(t) + 1, "sample": int(s), "neuron": [idx],
                    "hidden_id" if quantity == "events" else "output_id": int(j),
                    "adacal": int(a[s, t, j]), "reference": int(b[s, t, j])}
            if first is None or (cand["step"], cand["sample"]) < (first["step"], first["sample"]):
                first = cand
    return first, bad
