"""Assembling the XyloSpec: the quantised layers placed in the one hidden
population, the neuron realisation's dash / bias settings, and (exact
neurons) the bias pipeline (docs/xylo.md, "Hidden neurons" and "Packing and
timing")."""
from __future__ import annotations

import numpy as np

from adacal.backends.xylo.devices import XyloDevice
from adacal.backends.xylo.plan import Layout
from adacal.backends.xylo.quantise import HiddenQuant, HiddenTerms, ReadoutQuant
from adacal.backends.xylo.spec import XyloSpec
from adacal.errors import UnsupportedError

__all__ = ["assemble_spec", "OUT_DASH"]

I16_MAX = 2 ** 15 - 1
I16_MIN = -(2 ** 15)
HIDDEN_DASH_MEM = 15  # leaky neurons: leak 1 LSB / step, the least possible
HIDDEN_DASH_SYN = 1  # leaky: 0 would kill the input; 1 = half now, the rest later
EXACT_DASH_SYN = 15  # exact neurons: isyn integrates (leaks 1 LSB / step)
EXACT_DASH_MEM = 0  # exact: Vmem = isyn + bias every step
OUT_THRESHOLD = I16_MAX  # outputs integrate, never fire
#: readout -> (dash_mem_out, dash_syn_out): "isyn": isyn integrates (leak 1 LSB
#: per step) and Vmem = isyn + bias_out every step; "vmem": the membrane
#: integrates the (spread) synaptic current
OUT_DASH = {"isyn": (0, 15), "vmem": (15, 1)}


def _hidden_arrays(lay: Layout, q: HiddenQuant, terms: HiddenTerms, ro: ReadoutQuant, n_channels: int,
                   exact: bool) -> dict:
    """The weight matrices and the hidden neurons' parameters, bias units
    left at their defaults."""
    H, K, L = lay.n_hidden, len(ro.bias), len(q.thresholds)
    rg = lay.ranges
    a = {"weights_in": np.zeros((n_channels, H, 1), np.int64), "weights_rec": np.zeros((H, H, 1), np.int64),
         "weights_out": np.zeros((H, K), np.int64), "threshold": np.ones(H, np.int64),
         "bias": np.zeros(H, np.int64), "dash_mem": np.full(H, HIDDEN_DASH_MEM),
         "dash_syn": np.full(H, HIDDEN_DASH_SYN)}
    a["weights_in"][:, rg[0][0]:rg[0][1], 0] = q.weights[0].T
    for i in range(1, L):
        a["weights_rec"][rg[i - 1][0]:rg[i - 1][1], rg[i][0]:rg[i][1], 0] = q.weights[i].T
    a["weights_out"][rg[-1][0]:rg[-1][1]] = ro.weights.T
    for i in range(L):
        lo, hi = rg[i]
        a["threshold"][lo:hi] = q.thresholds[i]
        if exact:
            # isyn integrates (dash_syn 15), Vmem = isyn + bias (dash_mem 0),
            # reset through the self synapse -r = -Theta >> s_rec; bias = the
            # start potential (>= 1 so that Vmem never pins at -32768)
            idx = np.arange(lo, hi)
            a["weights_rec"][idx, idx, 0] = -q.resets[i]
            a["dash_mem"][lo:hi], a["dash_syn"][lo:hi] = EXACT_DASH_MEM, EXACT_DASH_SYN
            a["bias"][lo:hi] = np.clip(np.round(terms.start[i] * q.thresholds[i]), 1, I16_MAX)
        else:  # a current per step: the bias and the start spread over the window
            a["bias"][lo:hi] = np.clip(np.round(terms.bias_per_step[i] * q.thresholds[i]), I16_MIN, I16_MAX)
    return a


def _bias_rates(layers, q: HiddenQuant, terms: HiddenTerms, T: int, n_steps: int, dev: XyloDevice) -> list:
    """c_l, the events per step of stage l's bias units: the smallest count
    that keeps the bias weights int8."""
    c = []
    for i in range(len(layers)):
        need = np.abs(terms.bias_total[i]) * q.resets[i] / T  # weight x events per step
        c.append(max(1, int(np.ceil(need.max() / 127.0))) if need.size else 1)
        if c[-1] > dev.max_hidden_events:
            raise UnsupportedError(
                f"layer '{layers[i].name}': a bias of {np.abs(terms.bias_total[i]).max() / T:.3g} thresholds "
                f"per step needs {c[-1]} bias events per step, more than Xylo's {dev.max_hidden_events}")
    off = 127 * 2 ** q.shift_rec  # the timer's inhibition, must outlast the run (isyn leaks 1 LSB per step)
    if off <= c[0] + n_steps:
        raise UnsupportedError(f"Xylo lowering: {n_steps} steps are too many for the bias timer "
                               f"(inhibition {off} LSB); use fewer timesteps")
    return c


def _bias_pipeline(a: dict, lay: Layout, layers, q: HiddenQuant, terms: HiddenTerms, T: int, n_steps: int,
                   dev: XyloDevice) -> dict:
    """Set the bias units' parameters and synapses in a: stage 0 fires c_0
    events per step during steps [0, T) (switched off by the timer), a
    stage-l relay c_l per step during [l, l + T); layer l receives them in
    [l + 1, l + 1 + T), exactly its input steps (the input is delayed by one
    step).  Returns (layer, index in layer) -> (hidden id of its bias unit,
    events per step of that unit)."""
    c = _bias_rates(layers, q, terms, T, n_steps, dev)
    w_rec, rg, unit_of = a["weights_rec"], lay.ranges, {}
    for g, u in enumerate(lay.units):
        uid, i = lay.bias_first + g, u.stage
        if i < 0:  # the timer: v_t = t + 2 (bias 2, leak 1), fires at step T - 1
            a["threshold"][uid], a["bias"][uid] = T + 1, 2
            for kk in u.drives:
                w_rec[uid, lay.unit_id(0, kk), 0] = -127
            continue
        if i == 0:  # c_0 events per step from step 0; isyn keeps the timer's inhibition
            a["threshold"][uid], a["bias"][uid] = 1, c[0]
            a["dash_syn"][uid] = EXACT_DASH_SYN
        else:  # relay: exact neuron, input c_{i-1} x w_u = c_i x Theta_u
            k = 127 // max(c[i], c[i - 1])
            r_u = c[i - 1] * k
            th_u = r_u * 2 ** q.shift_rec
            if th_u < n_steps + 1:
                raise UnsupportedError(
                    f"Xylo lowering: a bias relay threshold of {th_u} cannot absorb {n_steps} steps of isyn "
                    f"leak; use fewer timesteps")
            a["threshold"][uid], a["bias"][uid] = th_u, th_u - 1
            a["dash_mem"][uid], a["dash_syn"][uid] = EXACT_DASH_MEM, EXACT_DASH_SYN
            w_rec[uid, uid, 0] = -r_u
        for kk in u.drives:
            w_rec[uid, lay.unit_id(i + 1, kk), 0] = c[i + 1] * (127 // max(c[i + 1], c[i]))
        a0, z0 = u.targets
        want = terms.bias_total[i][a0:z0] * q.resets[i][a0:z0] / (c[i] * T)
        w_rec[uid, rg[i][0] + a0:rg[i][0] + z0, 0] = np.clip(np.round(want), -128, 127)
        for j in range(a0, z0):
            unit_of[(i, j)] = (uid, c[i])
    return unit_of


def assemble_spec(lay: Layout, layers, q: HiddenQuant, terms: HiddenTerms, ro: ReadoutQuant, n_channels: int,
                  neuron: str, readout_mode: str, T: int, n_steps: int, dev: XyloDevice):
    """The XyloSpec of the quantised network, and (exact neurons) the map
    (layer, index in layer) -> (bias unit's hidden id, its events per step)
    the calibration uses ({} for leaky neurons)."""
    exact = neuron == "exact"
    a = _hidden_arrays(lay, q, terms, ro, n_channels, exact)
    unit_of = _bias_pipeline(a, lay, layers, q, terms, T, n_steps, dev) if exact else {}
    K = len(ro.bias)
    spec = XyloSpec(
        weights_in=a["weights_in"], weights_out=a["weights_out"], weights_rec=a["weights_rec"],
        dash_mem=a["dash_mem"], dash_mem_out=np.full(K, OUT_DASH[readout_mode][0]),
        dash_syn=a["dash_syn"], dash_syn_2=a["dash_syn"].copy(), dash_syn_out=np.full(K, OUT_DASH[readout_mode][1]),
        threshold=a["threshold"], threshold_out=np.full(K, OUT_THRESHOLD), bias=a["bias"], bias_out=ro.bias,
        weight_shift_in=int(q.shift_in), weight_shift_rec=int(q.shift_rec), weight_shift_out=int(ro.shift),
        aliases=None, dt=1e-3, output_mode="Vmem")
    return spec, unit_of
