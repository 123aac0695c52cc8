"""The searches' shortcut: resuming a simulation from a snapshot equals
running it whole."""
import numpy as np

from adacal import ir
from adacal.passes.to_spiking import neuron_names, set_neuron, to_spiking
from adacal.runtime_sim.float_sim import simulate

from test_passes import build, conv, dense


def test_resume_from_snapshot_equals_full_run():
    g = build((3, 8, 8), ("c1", conv(3, 4), ["x"]), ("r1", ir.Relu(), ["c1"]),
              ("c2", conv(4, 4), ["r1"]), ("add", ir.Add(), ["c2", "r1"]), ("r2", ir.Relu(), ["add"]),
              ("p", ir.GlobalAvgPool(), ["r2"]), ("fl", ir.Flatten(), ["p"]), ("d", dense(4, 3), ["fl"]))
    snn = to_spiking(g, 3)
    x = np.random.default_rng(1).normal(size=(6, 3, 8, 8)).astype(np.float32)
    T = 5
    names = neuron_names(snn)
    snaps = simulate(snn, x, T, snapshot_at=names)[0].snapshots
    trial = set_neuron(snn, "r2", threshold=np.full(4, 0.7, np.float32))
    full, _ = simulate(trial, x, T)
    part, _ = simulate(trial, x, T, resume=("r2", snaps["r2"]))
    np.testing.assert_array_equal(part.outputs, full.outputs)
    np.testing.assert_array_equal(part.spikes["r2"], full.spikes["r2"])
    assert "r1" not in part.spikes  # only the layers run are counted
    base, _ = simulate(snn, x, T)
    assert not np.array_equal(base.outputs, full.outputs)  # the trial really changed something
