"""Loihi 2 backend (Lava).  Vendor imports stay inside functions."""
from __future__ import annotations

from pathlib import Path


def load_network(path):
    """The integer network stored in an artifact directory (or a network.h5
    file), read from the file alone: a Loihi2Lowering whose `.graph` can be
    run on Lava with `run_network` (or simulated with adacal's integer
    simulator)."""
    from adacal.backends.loihi2.network_file import read_network
    p = Path(path)
    return read_network(p / "network.h5" if p.is_dir() else p)


def run_network(path, x):
    """Build the Lava process graph from the artifact's network.h5 alone and
    run it under Loihi2SimCfg(select_tag='fixed_pt') on samples x.  Returns
    run_lava's result (per-neuron payloads and readout, lock-step time)."""
    from adacal.backends.loihi2.lava_run import run_lava
    low = load_network(path)
    return run_lava(low.graph, x, low.timesteps)
