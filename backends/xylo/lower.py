"""Lowering a converted burst SNN onto SynSense Xylo, bit-accurate and
calibrated: ``lower_xylo`` runs the stages encode -> plan (design rules) ->
float reference -> quantise -> readout -> assemble -> calibrate and returns
an :class:`~adacal.backends.xylo.lowering.XyloLowering`.  Every choice and
its measured effect: docs/xylo.md."""
from __future__ import annotations

from typing import Optional

import numpy as np

from adacal import ir
from adacal.backends.xylo.assemble import OUT_DASH, assemble_spec
from adacal.backends.xylo.calibrate import calibrate_layers, calibrate_readout, float_reference
from adacal.backends.xylo.devices import XyloDevice, get_device
from adacal.backends.xylo.encoder import fit_encoder
from adacal.backends.xylo.lowering import XyloLayer, XyloLowering, XyloReadout
from adacal.backends.xylo.network import extract_chain
from adacal.backends.xylo.plan import XyloPlan, layout, plan_layers, timing
from adacal.backends.xylo.quantise import hidden_terms, quantise_hidden, quantise_readout
from adacal.backends.xylo.rules import device_problems, plan_problems
from adacal.errors import AdacalError, UnsupportedError

__all__ = ["lower_xylo", "NEURONS"]

NEURONS = ("exact", "leaky")


def _check_options(dev: XyloDevice, T: int, neuron: str, event_gain: int, input_max_count: int,
                   readout: str, drain_steps: Optional[int], v_floor: Optional[float]) -> tuple[int, float]:
    """AdacalError for a bad option; returns (drain_steps, v_floor) with
    their per-neuron defaults filled in."""
    if neuron not in NEURONS:
        raise AdacalError(f"neuron must be one of {', '.join(NEURONS)}, got {neuron!r}")
    if T < 1:
        raise AdacalError(f"timesteps must be >= 1, got {T}")
    if not 1 <= input_max_count <= dev.max_input_events:
        raise AdacalError(f"input_max_count must be 1..{dev.max_input_events}, got {input_max_count}")
    if event_gain < 1:
        raise AdacalError(f"event_gain must be >= 1, got {event_gain}")
    if readout not in OUT_DASH:
        raise AdacalError(f"readout must be one of {', '.join(OUT_DASH)}, got {readout!r}")
    drain_steps = (0 if neuron == "exact" else 4) if drain_steps is None else int(drain_steps)
    v_floor = (8.0 if neuron == "exact" else 0.0) if v_floor is None else float(v_floor)
    if drain_steps < 0:
        raise AdacalError(f"drain_steps must be >= 0, got {drain_steps}")
    return drain_steps, v_floor


def _calibration_set(snn, x_cal, max_samples: int, seed: int) -> np.ndarray:
    """x_cal as float32 (at most max_samples: a seeded random subset, in order)."""
    x_cal = np.asarray(x_cal, np.float32)
    if x_cal.shape[1:] != tuple(snn.input_shape):
        raise AdacalError(f"calibration data has per-sample shape {x_cal.shape[1:]}, the model expects "
                          f"{tuple(snn.input_shape)}")
    if len(x_cal) > max_samples:
        idx = np.sort(np.random.default_rng(seed).permutation(len(x_cal))[:max_samples])
        x_cal = x_cal[idx]
    return x_cal


def _check_fit(plan: XyloPlan, layers, event_gain: int, dev: XyloDevice, checked: bool) -> None:
    """UnsupportedError naming every design-rule violation: the plan's (unless
    the caller has checked it already) and the burst caps times event_gain."""
    problems = [] if checked else plan_problems(plan, dev)
    for l in layers:
        if l.max_spikes * event_gain > dev.max_hidden_events and l.max_spikes <= dev.max_hidden_events:
            problems.append(f"layer '{l.name}': max_spikes={l.max_spikes} x event_gain={event_gain} events exceed "
                            f"{dev.name}'s {dev.max_hidden_events} events per hidden neuron and step")
    if problems:
        raise UnsupportedError(f"the network does not fit {dev.name}: " + "; ".join(problems))


def lower_xylo(snn: ir.Graph, x_cal, device, T: int, *, ann: Optional[ir.Graph] = None,
               neuron: str = "exact", event_gain: int = 1, input_max_count: int = 15,
               input_margin: float = 0.1, drain_steps: Optional[int] = None, calibration_iters: int = 4,
               readout_calibration: bool = True, headroom: float = 0.8, readout_headroom: float = 0.7,
               v_floor: Optional[float] = None, readout: str = "isyn",
               max_calib_samples: int = 512, seed: int = 0, log=None, checked: bool = False) -> XyloLowering:
    """Compile the float burst SNN ``snn`` for Xylo ``device`` with T input
    steps (docs/xylo.md explains every choice).

    x_cal: calibration inputs (N, *input_shape); at most max_calib_samples
    (a seeded random subset) are used.
    ann: the float ANN of the same conversion (``conv.ann``); with it the
    calibration targets the ANN's activations and logits, otherwise the float
    SNN's time-averaged ones.
    neuron: "exact" (integrate-and-fire through an integrating isyn and a
    self-reset synapse, the default) or "leaky" (dash_syn 1, dash_mem 15).
    event_gain: Xylo events per float spike (phi * event_gain <= 31).
    input_max_count: events per input channel and step at the calibration
    maximum (<= 15); input_margin: encoded range beyond the calibration range.
    drain_steps: input-free steps before the layers' windows close (run =
    T + drain + L; default 0 for exact, 4 for leaky neurons).
    headroom / v_floor: int16 headroom of the hidden thresholds (v_floor:
    events of negative membrane range to keep; default 8 exact, 0 leaky);
    readout_headroom: of the output Vmem; readout: "isyn" or "vmem".
    calibration_iters / readout_calibration: the Xylo-exact bias correction.
    log: optional callable(str) for progress lines.
    checked: the caller has run the design-rule check of the network's plan
    for this device (``rules.check_network``); it is not repeated.

    Raises UnsupportedError for a network that cannot be placed (every
    design-rule violation in one message) and AdacalError for bad options.
    """
    dev = get_device(device)
    drain_steps, v_floor = _check_options(dev, T, neuron, event_gain, input_max_count, readout, drain_steps, v_floor)
    x_cal = _calibration_set(snn, x_cal, max_calib_samples, seed)

    # ---- structure and the design rules, before any quantisation ----------
    layers, ro_map = extract_chain(snn)
    encoder = fit_encoder(x_cal, dev.n_inputs, input_max_count, input_margin)
    plan = plan_layers(snn, layers, ro_map, encoder, neuron, dev)
    _check_fit(plan, layers, event_gain, dev, checked)
    tm = timing(neuron, T, drain_steps, len(layers))
    lay = layout([l.threshold.size for l in layers], neuron, dev.max_fanout)

    # ---- the float reference, quantisation, the spec -----------------------
    ref = float_reference(snn, ann, layers, x_cal, T, float(event_gain))
    enc_cal = encoder.encode(x_cal, T, tm.steps, tm.delay)
    terms = hidden_terms(layers, encoder, enc_cal, ref.spikes, T, float(event_gain), neuron == "exact",
                         tm.windows)
    q = quantise_hidden(terms, neuron, headroom, v_floor, tm.steps, seed)
    ro = quantise_readout(ref.outputs, ro_map, terms.event_value[-1], T, len(x_cal), tm.steps, readout,
                          readout_headroom)
    spec, unit_of = assemble_spec(lay, layers, q, terms, ro, encoder.n_channels, neuron, readout, T, tm.steps, dev)

    # ---- calibration through the exact Xylo arithmetic ---------------------
    spec, hist = calibrate_layers(spec, enc_cal, layers, lay.ranges, tm.windows, terms.event_value, q.thresholds,
                                  ref.targets, T, calibration_iters, neuron == "exact", unit_of, log)
    history = {"layers": hist, "readout": []}
    if readout_calibration:
        spec, history["readout"] = calibrate_readout(spec, enc_cal, ro.gain, T, ref.out_target, ro.bias_steps)
    readout_rec = XyloReadout(ro_map.name, int(ro_map.n_classes), float(ro.gain), int(ro.shift), readout)
    return _lowering(dev, spec, encoder, T, tm, layers, lay, terms, q, readout_rec, plan, event_gain, history,
                     neuron, drain_steps)


def _lowering(dev, spec, encoder, T, tm, layers, lay, terms, q, readout, plan, event_gain, history, neuron,
              drain_steps) -> XyloLowering:
    """The XyloLowering record; its spec must meet the device's limits (the
    plan fitted, so a violation is a bug in the lowering)."""
    rg = lay.ranges
    xl = tuple(XyloLayer(l.name, int(rg[i][0]), int(rg[i][1]), terms.event_value[i].copy(),
                         np.asarray(q.thresholds[i]).copy(), int(q.shift_in if i == 0 else q.shift_rec),
                         tm.windows[i], l.note) for i, l in enumerate(layers))
    bias_ids = tuple(range(lay.bias_first, lay.bias_first + lay.n_bias))
    low = XyloLowering(dev.name, spec, encoder, int(T), int(tm.steps), xl, readout, plan, int(event_gain), history,
                       neuron, bias_ids, int(drain_steps), tm.delay)
    problems = device_problems(spec, dev, plan.layer_ranges())
    if problems:
        raise AssertionError("lowered network violates the design rules: " + "; ".join(problems))
    return low
