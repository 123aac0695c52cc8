"""The Xylo design rules (backends/xylo/rules.py) and the device table
(backends/xylo/devices.py).

* the device table: sizes, windows, fan-out and number formats of the three
  chips, and the event caps the simulator applies;
* design_rule_check on layer plans (too many inputs, hidden neurons,
  outputs, fan-out, input / output window, burst cap, input events), on
  specifications (XyloSpec and raw from_specification dicts) and on a
  lowering;
* check_network (the plan check a compile runs before lowering) reports what
  lower_xylo reports, and a compile (check_network, then
  lower_xylo(checked=True)) runs the plan check exactly once.
"""
from __future__ import annotations

import numpy as np
import pytest

from adacal import ir
from adacal.backends.xylo import lower as lower_module
from adacal.backends.xylo import rules
from adacal.backends.xylo.devices import DEVICES, get_device
from adacal.backends.xylo.lower import lower_xylo
from adacal.backends.xylo.encoder import fit_encoder
from adacal.backends.xylo.plan import HiddenLayerPlan, XyloPlan, xylo_plan
from adacal.backends.xylo.rules import check_network, design_rule_check
from adacal.backends.xylo.spec import XyloSpec
from adacal.errors import UnsupportedError
from adacal.pipeline import convert
from adacal.runtime_sim import xylo_sim

DEVICE_NAMES = ["xylo-audio2", "xylo-audio3", "xylo-imu"]


def _dense_graph(sizes, seed=0):
    """Input -> [Dense -> Relu]* -> Dense with random weights (an ANN IR graph)."""
    rng = np.random.default_rng(seed)
    nodes = [ir.Node("input", ir.Input(), (), (sizes[0],))]
    prev = "input"
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = (rng.normal(size=(b, a)) / np.sqrt(a)).astype(np.float32)
        nodes.append(ir.Node(f"fc{i}", ir.Dense(w, np.zeros(b, np.float32)), (prev,), (b,)))
        prev = f"fc{i}"
        if i < len(sizes) - 2:
            nodes.append(ir.Node(f"relu{i}", ir.Relu(), (prev,), (b,)))
            prev = f"relu{i}"
    return ir.Graph(tuple(nodes), prev)


def _snn(sizes, seed=0, n=64):
    g = _dense_graph(sizes, seed)
    x = np.random.default_rng(seed + 1).normal(size=(n, sizes[0])).astype(np.float32)
    conv, _ = convert(g, x, timesteps=4, max_spikes=4, calibration="none")
    return conv, x


# --------------------------------------------------------------------------

# --------------------------------------------------------------------------
# the device table
# --------------------------------------------------------------------------
def test_device_table():
    expect = {  # rockpool 3.1.0 syns61201 / syns65302 / syns63300 (docs/xylo.md)
        "xylo-audio2": ("syns61201", 16, 1000, 8, 2, 64, None, None),
        "xylo-audio3": ("syns65302", 16, 992, 32, 2, 1024, 128, 128),
        "xylo-imu": ("syns63300", 16, 496, 16, 1, 512, 128, 128),
    }
    for name, (chip, n_in, h, o, s, fan, ien, oen) in expect.items():
        d = get_device(name)
        assert get_device(d) is d and str(d) == name
        assert (d.chip, d.n_inputs, d.n_hidden, d.n_outputs, d.synapses_per_neuron, d.max_fanout,
                d.input_window, d.output_window) == (chip, n_in, h, o, s, fan, ien, oen)
        assert d.weight_range == (-128, 127) and d.threshold_range == (1, 32767)
        assert d.dash_range == (0, 15) and d.weight_shift_range == (0, 8)
        assert d.state_range == (-32768, 32767) and d.max_alias_targets == 1
        # the event caps are the ones the simulator applies (xylosim's)
        assert (d.max_input_events, d.max_hidden_events, d.max_output_events) == \
               (xylo_sim.MAX_INPUT_EVENTS, xylo_sim.MAX_HIDDEN_EVENTS, xylo_sim.MAX_OUTPUT_EVENTS) == (15, 31, 1)
        assert d.weight_shift_range[1] == xylo_sim.MAX_WEIGHT_SHIFT
        assert d.as_dict()["weight_range"] == [-128, 127]
    assert sorted(DEVICES) == sorted(expect)
    with pytest.raises(ValueError, match="unknown Xylo device 'xylo-9000'; expected one of xylo-audio2"):
        get_device("xylo-9000")


# --------------------------------------------------------------------------
# design-rule check
# --------------------------------------------------------------------------
def _plan(n_in=8, sizes=(32, 16), fanouts=None, n_out=3, max_spikes=4):
    fanouts = fanouts or [*sizes[1:], n_out]
    hidden = tuple(HiddenLayerPlan(f"layer{i}", s, f, max_spikes) for i, (s, f) in enumerate(zip(sizes, fanouts)))
    return XyloPlan(n_in, hidden, n_out, input_name="x", readout_name="out")


def test_drc_plan_that_fits():
    for d in DEVICE_NAMES:
        assert design_rule_check(_plan(), d) == []


def test_drc_too_many_inputs():
    msgs = design_rule_check(_plan(n_in=20), "xylo-audio3")
    assert msgs == ["input 'x': 20 input channels exceed xylo-audio3's 16"]


def test_drc_too_many_hidden_neurons():
    msgs = design_rule_check(_plan(sizes=(100, 1000, 100), fanouts=[100, 100, 3]), "xylo-imu")
    assert any("layer 'layer1': 1200 hidden neurons in total" in m and "exceed xylo-imu's 496" in m
               for m in msgs), msgs


def test_drc_too_many_hidden_neurons_audio3():
    msgs = design_rule_check(_plan(sizes=(100, 800, 100), fanouts=[100, 100, 3]), "xylo-audio3")
    assert msgs == ["layer 'layer2': 1000 hidden neurons in total ('layer0' 100 + 'layer1' 800 + "
                    "'layer2' 100) exceed xylo-audio3's 992"]


def test_drc_too_many_outputs():
    assert design_rule_check(_plan(n_out=10), "xylo-audio2") == [
        "readout 'out': 10 output neurons exceed xylo-audio2's 8"]
    assert design_rule_check(_plan(n_out=10), "xylo-imu") == []
    assert "exceed xylo-imu's 16" in design_rule_check(_plan(n_out=20), "xylo-imu")[0]


def test_drc_fanout():
    msgs = design_rule_check(_plan(sizes=(32, 100), fanouts=[100, 3]), "xylo-audio2")
    assert msgs == ["layer 'layer0': a neuron drives 100 synapses (fan-out), xylo-audio2 allows at most "
                    "64 per hidden neuron"]
    assert design_rule_check(_plan(sizes=(32, 100), fanouts=[100, 3]), "xylo-audio3") == []


def test_drc_input_and_output_windows():
    plan = _plan(sizes=(200, 16, 200), fanouts=[16, 200, 3])
    for d in ("xylo-audio3", "xylo-imu"):
        msgs = design_rule_check(plan, d)
        assert f"layer 'layer0': receives the input with 200 neurons, but on {d} inputs reach only the " \
               f"first 128 hidden neurons (input window)" in msgs
        assert f"layer 'layer2': drives the outputs with 200 neurons, but on {d} only the last 128 hidden " \
               f"neurons reach the outputs (output window)" in msgs
    assert all("window" not in m for m in design_rule_check(plan, "xylo-audio2"))


def test_drc_burst_cap_and_input_events():
    msgs = design_rule_check(_plan(max_spikes=40), "xylo-imu")
    assert msgs == [f"layer 'layer{i}': burst cap max_spikes=40 exceeds xylo-imu's 31 events per hidden neuron "
                    f"and step" for i in (0, 1)]
    plan = XyloPlan(8, _plan().hidden, 3, input_name="x", max_input_events=20)
    assert design_rule_check(plan, "xylo-audio3") == [
        "input 'x': the encoder emits up to 20 events per channel and step, xylo-audio3 takes at most 15"]
    assert design_rule_check(XyloPlan(8, (), 3), "xylo-audio2") == [
        "network: no hidden layer; xylo-audio2 needs at least one hidden neuron between inputs and outputs"]
    plan = XyloPlan(8, _plan().hidden, 3, synapses=2)
    assert design_rule_check(plan, "xylo-imu") == ["network: uses 2 synapses per hidden neuron, xylo-imu has 1"]
    assert design_rule_check(plan, "xylo-audio2") == []



def _spec(n_in=4, sizes=(8, 4), n_out=2, **over):
    """A packed feed-forward spec (dense blocks of ones)."""
    h = sum(sizes)
    first = np.concatenate([[0], np.cumsum(sizes)])
    w_in = np.zeros((n_in, h), np.int64)
    w_in[:, :sizes[0]] = 1
    w_rec = np.zeros((h, h), np.int64)
    for i in range(1, len(sizes)):
        w_rec[first[i - 1]:first[i], first[i]:first[i + 1]] = 1
    w_out = np.zeros((h, n_out), np.int64)
    w_out[first[-2]:] = 1
    kw = dict(weights_in=w_in, weights_out=w_out, weights_rec=w_rec, dash_mem=np.full(h, 15),
              dash_mem_out=np.zeros(n_out), dash_syn=np.ones(h), dash_syn_2=np.ones(h),
              dash_syn_out=np.full(n_out, 15), threshold=np.full(h, 100), threshold_out=np.full(n_out, 32767),
              bias=np.zeros(h), bias_out=np.zeros(n_out), weight_shift_in=0, weight_shift_rec=0,
              weight_shift_out=0, output_mode="Vmem")
    kw.update(over)
    return XyloSpec(**kw)




def test_drc_on_specs():
    assert design_rule_check(_spec(), "xylo-imu") == []
    assert design_rule_check(_spec(n_in=20), "xylo-audio2") == ["input: 20 input channels exceed xylo-audio2's 16"]
    assert design_rule_check(_spec(n_out=9), "xylo-audio2") == ["readout: 9 output neurons exceed xylo-audio2's 8"]
    msgs = design_rule_check(_spec(sizes=(100, 600)), "xylo-imu")
    assert msgs == ["hidden population: 700 hidden neurons in total exceed xylo-imu's 496",
                    "fan-out: hidden neuron 0 drives 600 synapses (100 neuron(s) above the limit), xylo-imu "
                    "allows at most 512 per hidden neuron",
                    "output window: hidden neuron 100 drives an output, but on xylo-imu only the last 128 hidden "
                    "neurons (ids >= 572) reach the outputs"]
    msgs = design_rule_check(_spec(sizes=(8, 70)), "xylo-audio2")
    assert msgs == ["fan-out: hidden neuron 0 drives 70 synapses (8 neuron(s) above the limit), xylo-audio2 "
                    "allows at most 64 per hidden neuron"]
    msgs = design_rule_check(_spec(sizes=(130, 4)), "xylo-audio3")
    assert msgs == ["input window: inputs reach hidden neuron 129, but on xylo-audio3 inputs reach only the "
                    "first 128 hidden neurons"]
    msgs = design_rule_check(_spec(sizes=(8, 130)), "xylo-imu")
    assert msgs == ["output window: hidden neuron 8 drives an output, but on xylo-imu only the last 128 hidden "
                    "neurons (ids >= 10) reach the outputs"]
    # a second synapse on the IMU (one synapse per neuron)
    w_in = np.zeros((4, 12, 2), np.int64)
    w_in[:, :8, 1] = 1
    msgs = design_rule_check(_spec(weights_in=w_in), "xylo-imu")
    assert msgs == ["weights_in: hidden neuron 0 uses synapse 2, xylo-imu has 1 synapse per hidden neuron"]
    assert design_rule_check(_spec(weights_in=w_in), "xylo-audio2") == []
    # more than one alias target per neuron (XyloSim takes any number, the chip one)
    aliases = [[] for _ in range(12)]
    aliases[3] = [4, 5]
    assert design_rule_check(_spec(aliases=aliases), "xylo-audio3") == [
        "aliases: hidden neuron 3 has 2 alias targets, xylo-audio3 allows 1"]


def test_drc_on_raw_specification_dicts():
    """The number formats XyloSpec enforces, reported (all of them) for a
    dict of from_specification kwargs that XyloSpec would refuse to build."""
    kw = _spec().as_kwargs()
    kw.update(threshold=np.full(12, 40000), dash_mem=np.full(12, 16), weight_shift_rec=9)
    assert design_rule_check(kw, "xylo-audio2") == [
        "dash_mem: value 16 outside dash 0..15", "threshold: value 40000 outside threshold 1..32767",
        "weight_shift_rec: 9 outside weight shift range 0..8"]
    # formats and the device's limits together
    kw = _spec(n_out=9).as_kwargs()
    kw["weights_out"] = kw["weights_out"].astype(np.int64) * 200
    assert design_rule_check(kw, "xylo-audio2") == ["weights_out: value 200 outside int8 -128..127",
                                                    "readout: 9 output neurons exceed xylo-audio2's 8"]
    # unreadable arguments stop the check
    kw = _spec().as_kwargs()
    del kw["bias_out"], kw["threshold"]
    assert design_rule_check(kw, "xylo-imu") == [
        "threshold: required (XyloSim's defaults are not usable; pass every field)",
        "bias_out: required (XyloSim's defaults are not usable; pass every field)"]
    kw = _spec().as_kwargs()
    kw["weights_out"] = np.zeros((13, 2))
    assert design_rule_check(kw, "xylo-imu") == ["weights_out: 13 source neurons > Nhid = 12 (OEN <= RSN)"]


def test_drc_on_a_lowering_names_its_layers():
    """An object with .spec and .plan: the plan's problems, then the spec's,
    with hidden ids named by the plan's layers."""
    class Lowered:
        plan = _plan(sizes=(8, 70), fanouts=[70, 2])
        spec = _spec(sizes=(8, 70))

    assert design_rule_check(Lowered(), "xylo-audio2") == [
        "layer 'layer0': a neuron drives 70 synapses (fan-out), xylo-audio2 allows at most 64 per hidden neuron",
        "fan-out: layer 'layer0' (hidden neuron 0) drives 70 synapses (8 neuron(s) above the limit), xylo-audio2 "
        "allows at most 64 per hidden neuron"]


# --------------------------------------------------------------------------
# the check before lowering
# --------------------------------------------------------------------------
def test_lower_xylo_reports_every_violation_up_front():
    # 20 features, a 200-wide first layer feeding 70 neurons, 10 classes
    conv, x = _snn([20, 200, 70, 10])
    with pytest.raises(UnsupportedError) as e:
        lower_xylo(conv.snn, x, "xylo-audio2", 8)
    msg = str(e.value)
    assert "input 'input': 20 input channels (20 features: 20 offset) exceed xylo-audio2's 16" in msg
    assert "readout 'fc2': 10 output neurons exceed xylo-audio2's 8" in msg
    assert "layer 'relu0': a neuron drives 71 synapses (fan-out, incl. 1 self-reset synapse), xylo-audio2 " \
           "allows at most 64 per hidden neuron" in msg
    with pytest.raises(UnsupportedError) as e:
        lower_xylo(conv.snn, x, "xylo-imu", 8)
    assert "layer 'relu0': receives the input with 200 neurons, but on xylo-imu inputs reach only the " \
           "first 128 hidden neurons (input window)" in str(e.value)
    conv, x = _snn([8, 400, 200, 4])
    with pytest.raises(UnsupportedError, match=r"layer 'relu1': 603 hidden neurons in total \('relu0' 400 \+ "
                                               r"'bias units' 3 \+ 'relu1' 200\) exceed xylo-imu's 496"):
        lower_xylo(conv.snn, x, "xylo-imu", 8)
    with pytest.raises(UnsupportedError, match=r"layer 'relu1': 600 hidden neurons in total \('relu0' 400 \+ "
                                               r"'relu1' 200\) exceed xylo-imu's 496"):
        lower_xylo(conv.snn, x, "xylo-imu", 8, neuron="leaky")




def test_check_network_reports_what_lower_xylo_reports():
    conv, x = _snn([20, 200, 70, 10])
    for device in DEVICE_NAMES:
        problems = check_network(conv.snn, x, device)
        assert problems and problems == design_rule_check(xylo_plan(conv.snn, fit_encoder(x, 16), device), device)
        with pytest.raises(UnsupportedError) as e:
            lower_xylo(conv.snn, x, device, 8)
        assert str(e.value) == f"the network does not fit {device}: " + "; ".join(problems)
    conv, x = _snn([8, 16, 4])
    assert check_network(conv.snn, x, "xylo-audio3") == []


def _count_plan_checks(monkeypatch) -> list:
    """Count the plan checks through both paths (rules.design_rule_check
    and lower_xylo)."""
    calls = []
    real = rules.plan_problems

    def counting(plan, device):
        calls.append(plan)
        return real(plan, device)

    monkeypatch.setattr(rules, "plan_problems", counting)
    monkeypatch.setattr(lower_module, "plan_problems", counting)
    return calls


def test_a_compile_checks_the_plan_once(monkeypatch):
    conv, x = _snn([8, 16, 4])
    calls = _count_plan_checks(monkeypatch)
    lower_xylo(conv.snn, x, "xylo-audio3", 4, calibration_iters=0)  # a direct call checks the plan itself
    assert len(calls) == 1
    calls.clear()
    # what a compile does: check_network, then the lowering told so
    assert check_network(conv.snn, x, "xylo-audio3") == []
    low = lower_xylo(conv.snn, x, "xylo-audio3", 4, calibration_iters=0, checked=True)
    assert len(calls) == 1 and calls[0] == low.plan
    assert design_rule_check(low, "xylo-audio3") == []


def test_checked_lowering_still_checks_the_event_gain():
    conv, x = _snn([8, 16, 4])  # max_spikes 4: 4 x 8 = 32 events > 31
    with pytest.raises(UnsupportedError, match=r"the network does not fit xylo-audio3: layer 'relu0': max_spikes=4 "
                                               r"x event_gain=8 events exceed xylo-audio3's 31"):
        lower_xylo(conv.snn, x, "xylo-audio3", 4, event_gain=8, checked=True)
