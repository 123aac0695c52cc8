"""The typed summary (adacal.summary): per-sample figures counted up to each
sample's exit step, energy, and the JSON field names."""
from types import SimpleNamespace

import numpy as np
import pytest

from adacal.runtime_sim import energy
from adacal.summary import accuracy, accuracy_by_step, measure


def test_measure_counts_each_sample_up_to_its_exit_step():
    T = 3
    spikes = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # (T, N) one layer
    run = SimpleNamespace(spikes={"r": spikes}, events={"r": spikes > 2}, synops={"r": 10 * spikes},
                          event_synops={"r": 10.0 * (spikes > 2)})
    act = measure(run, np.array([1, 0]), np.array([1, 1]), np.array([1, 3]), T, input_macs=100)
    # sample 0 stops after step 1 (counts 1), sample 1 runs all steps (2 + 4 + 6)
    assert act.spikes_per_sample == pytest.approx((1 + 12) / 2)
    assert act.events_per_sample == pytest.approx((0 + 2) / 2)  # 4 and 6 are > 2
    assert act.synops_per_sample == pytest.approx(130 / 2)
    assert act.avg_timesteps == 2.0 and act.exit_histogram == (1, 0, 1) and act.accuracy == 0.5
    assert act.energy_pj_per_sample == pytest.approx(energy.E_MAC_PJ * 100 * 2.0 + energy.E_AC_PJ * 65)
    assert act.layers["r"].spikes == act.spikes_per_sample
    js = act.as_json()
    assert list(js) == ["samples", "accuracy", "avg_timesteps", "exit_histogram", "spikes_per_sample",
                        "events_per_sample", "synops_per_sample", "graded_synops_per_sample",
                        "energy_pj_per_sample"]


def test_no_labels_no_accuracy():
    assert accuracy([1, 2], None) is None and accuracy_by_step(np.zeros((2, 3)), None) is None
    assert accuracy_by_step(np.array([[0, 1], [1, 1]]), np.array([1, 1])) == [0.5, 1.0]
