"""Batched, bit-exact integer simulator of a Xylo network specification.

:func:`simulate` runs a specification (the ``XyloSim.from_specification``
arguments, read as attributes) on a batch of input event rasters and
reproduces xylosim 0.1.3 (src/v2/cpp/XyloLayer.cpp, XyloIAFNeuron.cpp,
XyloIAFNeuron.h) bit for bit.  What xylosim computes per step and the
simulator's fast / checked / exact delivery paths: docs/xylo.md, "The
simulator".  Simulator arithmetic only: no vendor and no compiler import.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Mapping, Optional

import numpy as np

__all__ = ["XyloResult", "simulate"]

I16_MIN, I16_MAX = -(2 ** 15), 2 ** 15 - 1
# xylosim v2 XyloIAFNeuron.h
MAX_INPUT_EVENTS = 15  # MAX_NUM_INP_SPIKES
MAX_HIDDEN_EVENTS = 31  # MAX_NUM_SPIKES
MAX_OUTPUT_EVENTS = 1  # MAX_NUM_OUT_SPIKES
MAX_WEIGHT_SHIFT = 8  # int8 << 8 still fits int16: (C @ w) << shift is exact



@dataclass
class XyloResult:
    """Per-sample, per-step recordings (N samples, T steps).

    ``spikes`` are the hidden neurons' outgoing event counts (XyloSim's
    'Spikes': the buffer delivered at t+1, alias events included); ``vmem``
    / ``isyn`` / ``isyn2`` / ``vmem_out`` / ``isyn_out`` are the states after
    the step (XyloSim's 'Vmem', 'Isyn', 'Isyn2', 'Vmem_out', 'Isyn_out';
    Vmem after the threshold subtraction).  ``isyn2`` may be None (XyloSim's
    IMU class does not record it).  ``stats``: which delivery paths ran.
    """

    spikes: np.ndarray  # (N, T, Nhid) uint8
    spikes_out: np.ndarray  # (N, T, Nout) uint8
    vmem: np.ndarray  # (N, T, Nhid) int16
    vmem_out: np.ndarray  # (N, T, Nout) int16
    isyn: np.ndarray  # (N, T, Nhid) int16
    isyn2: Optional[np.ndarray]  # (N, T, Nhid) int16
    isyn_out: np.ndarray  # (N, T, Nout) int16
    output_mode: str = "Spike"
    stats: dict = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray:
        """What ``XyloSim.evolve`` returns for the spec's output_mode
        ((N, T, Nout): events, Vmem_out or Isyn_out)."""
        return {"Spike": self.spikes_out, "Vmem": self.vmem_out,
                "Isyn": self.isyn_out}[self.output_mode]

    def __len__(self) -> int:
        return self.spikes.shape[0]


# ----------------------------------------------------------------------
# the specification, as the simulator reads it
# ----------------------------------------------------------------------
class SpecSizes:
    """What follows from a specification's arrays (shared by the simulator's
    view of a spec and the backend's XyloSpec)."""

    @property
    def n_in(self) -> int:
        return self.weights_in.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.weights_rec.shape[0]

    @property
    def n_out(self) -> int:
        return self.weights_out.shape[1]

    @property
    def has_bias(self) -> bool:
        """xylosim's switch (from_specification): biases are added only if
        any hidden or output bias is non-zero."""
        return bool(np.any(self.bias != 0) or np.any(self.bias_out != 0))

    def padded_weights_out(self) -> np.ndarray:
        """weights_out as (Nhid, Nout): XyloSim's row k of weights_out is
        hidden neuron Nhid - OEN + k, so the first Nhid - OEN rows are zero."""
        h = self.n_hidden
        out = np.zeros((h, self.n_out), dtype=self.weights_out.dtype)
        out[h - self.weights_out.shape[0]:] = self.weights_out
        return out


@dataclass(frozen=True, eq=False)
class _Spec(SpecSizes):
    """The arrays of a specification object (2-D weights get the synapse
    axis, as from_specification does) and the sizes derived from them."""
    weights_in: np.ndarray  # (Nin, IEN, S)
    weights_rec: np.ndarray  # (Nhid, Nhid, S)
    weights_out: np.ndarray  # (OEN, Nout)
    dash_mem: np.ndarray
    dash_mem_out: np.ndarray
    dash_syn: np.ndarray
    dash_syn_2: np.ndarray
    dash_syn_out: np.ndarray
    threshold: np.ndarray
    threshold_out: np.ndarray
    bias: np.ndarray
    bias_out: np.ndarray
    weight_shift_in: int
    weight_shift_rec: int
    weight_shift_out: int
    aliases: Optional[tuple]
    output_mode: str


#: the specification attributes simulate reads (the first 12 are arrays)
SPEC_ATTRIBUTES = tuple(f.name for f in fields(_Spec))


def _as_spec(spec) -> _Spec:
    """Read a specification object's attributes (duck typing: any object
    with the XyloSpec attributes; it is trusted to hold valid values)."""
    if isinstance(spec, Mapping):
        raise TypeError("simulate reads the specification's attributes; build a spec object from a dict of "
                        "from_specification arguments first (e.g. XyloSpec(**kwargs))")
    missing = [a for a in SPEC_ATTRIBUTES if not hasattr(spec, a)]
    if missing:
        raise TypeError(f"expected a Xylo specification (an object with {', '.join(SPEC_ATTRIBUTES)}), "
                        f"got {type(spec).__name__} without {', '.join(missing)}")
    values = {a: getattr(spec, a) for a in SPEC_ATTRIBUTES}
    for a in SPEC_ATTRIBUTES[:12]:
        values[a] = np.asarray(values[a])
    for a in ("weights_in", "weights_rec"):
        if values[a].ndim == 2:
            values[a] = values[a][:, :, None]
    shifts = [int(values[a]) for a in ("weight_shift_in", "weight_shift_rec", "weight_shift_out")]
    if not all(0 <= s <= MAX_WEIGHT_SHIFT for s in shifts):
        raise ValueError(f"weight shifts must be 0..{MAX_WEIGHT_SHIFT} (int8 << shift must fit int16), "
                         f"got {shifts}")
    return _Spec(**values)


def _as_inputs(inputs, n_in: int) -> np.ndarray:
    x = np.asarray(inputs)
    if x.ndim != 3 or x.shape[2] != n_in:
        raise ValueError(f"inputs: expected shape (N, T, {n_in}) event counts, got {x.shape}")
    if x.dtype == bool:
        x = x.astype(np.int64)
    elif x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise ValueError("inputs: event counts must be integers")
    elif x.dtype.kind not in "iu":
        raise ValueError(f"inputs: expected integer event counts, got dtype {x.dtype}")
    if x.size and x.min() < 0:
        raise ValueError(f"inputs: event counts must be >= 0 (found {x.min()})")
    return x


_MM_CACHE: list = []


def _int8_matmul():
    """An exact int8 x int8 -> int32 matrix product on torch CPU tensors.

    ``torch._int_mm`` (int8 operands, int32 accumulation, integer
    arithmetic throughout) is about 15x faster here than torch's int32 mm;
    it is used after a self-test against an int64 product, otherwise
    int32 ``torch.mm`` (also exact: callers keep sums inside int32).
    """
    if _MM_CACHE:
        return _MM_CACHE[0]
    import torch

    def fallback(a, b):
        return torch.mm(a.to(torch.int32), b.to(torch.int32))

    f = fallback
    int_mm = getattr(torch, "_int_mm", None)
    if int_mm is not None:
        try:
            g = torch.Generator().manual_seed(0)
            ok = True
            for m, k, n in ((1, 1, 1), (3, 17, 5), (40, 144, 67)):
                a = torch.randint(0, 32, (m, k), dtype=torch.int8, generator=g)
                b = torch.randint(-128, 128, (k, n), dtype=torch.int8, generator=g)
                b[0] = -128
                a[:, 0] = 31
                r = int_mm(a, b)
                ok &= r.dtype == torch.int32 and torch.equal(r.long(), a.long() @ b.long())
            if ok:
                f = int_mm
        except Exception:  # not available for CPU / these shapes in this torch
            pass
    _MM_CACHE.append(f)
    return f


class _Plan:
    """Per-spec (and per input bound) precomputed delivery and neuron data.

    Target columns (isyn states) in logical order: hidden syn 0 (Nhid),
    outputs (Nout), hidden syn 1 (Nhid).  Only columns with a weight are
    stored, as [statically safe | checked | one constant zero column];
    ``idx0`` / ``idx1`` map every neuron (hidden, then outputs) to its syn 0
    / syn 1 column there (or the zero column).
    """

    def __init__(self, spec: _Spec, max_input_count: int):
        raw, shift = _delivery_weights(spec)
        wsh = raw << shift  # int16(w << shift), signed, shifted
        n_in = spec.n_in
        rows_active = np.any(raw != 0, axis=1)
        cols_active = np.any(raw != 0, axis=0)
        self.in_rows = np.flatnonzero(rows_active[:n_in])
        self.hid_rows = np.flatnonzero(rows_active[n_in:])
        rows = np.concatenate([self.in_rows, n_in + self.hid_rows])
        cols = np.flatnonzero(cols_active)
        wa = wsh[rows][:, cols]
        # the most events a source delivers per step
        cmax = np.where(rows < n_in, max(0, min(int(max_input_count), MAX_INPUT_EVENTS)),
                        MAX_HIDDEN_EVENTS)[:, None]
        safe = self._layout_columns(spec, cols, wa, cmax)
        self._index_checked(wa[:, ~safe].astype(np.int32))
        self._matmul_operands(spec, raw, shift, rows, wa, cmax)
        self._neurons(spec)
        self._aliases(spec)

    def _layout_columns(self, spec: _Spec, cols, wa, cmax) -> np.ndarray:
        """Split the active columns by the static no-saturation proof
        (docs/xylo.md, "The simulator"): [safe | checked | zero]."""
        h, n_out = spec.n_hidden, spec.n_out
        ql = 2 * h + n_out
        b_pos = (cmax * np.maximum(wa, 0)).sum(axis=0)
        b_neg = (cmax * np.maximum(-wa, 0)).sum(axis=0)
        dash_logical = np.concatenate([spec.dash_syn, spec.dash_syn_out, spec.dash_syn_2]).astype(np.int64)
        d = dash_logical[cols]
        safe = (((b_pos + 1) << d) <= 2 ** 15) & ((b_neg << d) <= 2 ** 15)
        safe_cols, chk_cols = cols[safe], cols[~safe]
        self.ns, self.nc = ns, nc = len(safe_cols), len(chk_cols)
        self.layout = layout = np.concatenate([safe_cols, chk_cols])
        self.width = ns + nc + 1  # + the zero column
        zero = ns + nc
        pos_of = np.full(ql, zero, np.int64)
        pos_of[layout] = np.arange(ns + nc)
        self.idx0 = np.concatenate([pos_of[:h], pos_of[h:h + n_out]])
        self.idx1 = np.concatenate([pos_of[h + n_out:], np.full(n_out, zero)])
        self.use_syn2 = bool(np.any(self.idx1 != zero))
        self.dash_col = np.concatenate([dash_logical[layout], [0]]).astype(np.int32)[None, :]
        return safe

    def _index_checked(self, W_chk: np.ndarray) -> None:
        """The checked columns' signed ``w << shift`` (for the exact path),
        each column's first / last source row and its entries (CSC)."""
        nc = self.nc
        self.W_chk = W_chk
        nz = W_chk != 0
        if nz.size:  # first / last source row per checked column
            self.chk_lo = np.argmax(nz, axis=0)
            self.chk_hi = nz.shape[0] - 1 - np.argmax(nz[::-1], axis=0)
        else:
            self.chk_lo = self.chk_hi = np.zeros(nc, np.int64)
        self.chk_span = self.chk_hi - self.chk_lo + 1
        self.chk_nnz = nz.sum(axis=0)
        # ... column by column (CSC: indptr, source rows ascending, weights)
        col_of, src_of = np.nonzero(W_chk.T)
        self.chk_csc = (
            np.concatenate([[0], np.cumsum(np.bincount(col_of, minlength=nc))]).astype(np.int64),
            src_of.astype(np.int64),
            W_chk[src_of, col_of].astype(np.int32),
        )

    def _matmul_operands(self, spec: _Spec, raw, shift, rows, wa, cmax) -> None:
        """Raw int8 weights, columns [safe | chk+ | chk-]; one product per
        source block (inputs / hidden) times 2**shift."""
        import torch

        ns, nc, layout, n_in = self.ns, self.nc, self.layout, spec.n_in

        def block(r):
            w = raw[r][:, layout]
            m = np.concatenate([w[:, :ns], np.maximum(w[:, ns:], 0), np.minimum(w[:, ns:], 0)], axis=1)
            return torch.from_numpy(np.ascontiguousarray(m.astype(np.int8)))

        def mult(r):
            sh = shift[r[:1]][:, layout] if len(r) else np.zeros((1, ns + nc), np.int64)
            sh = np.concatenate([sh[:, :ns], sh[:, ns:], sh[:, ns:]], axis=1)
            return (np.int64(1) << sh).astype(np.int32)

        self.W_in = block(self.in_rows)
        self.W_hid = block(n_in + self.hid_rows)
        self.mult_in = mult(self.in_rows)
        self.mult_hid = mult(n_in + self.hid_rows)
        self.has_delivery = ns + nc > 0 and len(rows) > 0
        # every drive / partial sum below is bounded by cmax * sum |w << shift|
        bound = int((cmax * np.abs(wa)).sum(axis=0).max()) if wa.size else 0
        self.rdtype = np.int32 if bound + 2 ** 16 < 2 ** 31 else np.int64
        self.mm = _int8_matmul()
        if self.rdtype is np.int64 or len(rows) * MAX_HIDDEN_EVENTS * 128 >= 2 ** 31:
            self.mm = lambda a, b: torch.mm(a.to(torch.int64), b.to(torch.int64))

    def _neurons(self, spec: _Spec) -> None:
        """Neuron parameters, [hidden (h) | outputs (n_out)]."""
        h, n_out = spec.n_hidden, spec.n_out
        self.dash_mem = np.concatenate([spec.dash_mem, spec.dash_mem_out]).astype(np.int32)[None, :]
        self.th = np.concatenate([spec.threshold, spec.threshold_out]).astype(np.int32)[None, :]
        self.bias = np.concatenate([spec.bias, spec.bias_out]).astype(np.int32)[None, :]
        self.has_bias = spec.has_bias
        self.cap = np.concatenate([np.full(h, MAX_HIDDEN_EVENTS),
                                   np.full(n_out, MAX_OUTPUT_EVENTS)]).astype(np.int32)[None, :]

    def _aliases(self, spec: _Spec) -> None:
        """Neurons that must run one by one (alias sources and targets)."""
        self.alias_order: list = []
        self.alias_nodes = np.zeros(0, np.int64)
        if spec.aliases is not None and any(len(r) for r in spec.aliases):
            nodes = set()
            for i, row in enumerate(spec.aliases):
                if row:
                    nodes.add(i)
                    nodes.update(row)
            self.alias_nodes = np.array(sorted(nodes), np.int64)
            self.alias_order = [(int(i), tuple(spec.aliases[i])) for i in self.alias_nodes]


def _delivery_weights(spec: _Spec):
    """Every source (inputs, then hidden neurons) x every target column
    (hidden syn 0, outputs, hidden syn 1): the raw int8 weight and its shift
    (int64 arrays)."""
    h, n_out, n_in = spec.n_hidden, spec.n_out, spec.n_in
    ql = 2 * h + n_out
    raw = np.zeros((n_in + h, ql), np.int64)  # int8 weights, unshifted
    shift = np.zeros((n_in + h, ql), np.int64)
    wi = spec.weights_in.astype(np.int64)
    ien, s_i = wi.shape[1], wi.shape[2]
    raw[:n_in, :ien] = wi[:, :, 0]
    if s_i == 2:
        raw[:n_in, h + n_out:h + n_out + ien] = wi[:, :, 1]
    wr = spec.weights_rec.astype(np.int64)
    raw[n_in:, :h] = wr[:, :, 0]
    if wr.shape[2] == 2:
        raw[n_in:, h + n_out:] = wr[:, :, 1]
    raw[n_in:, h:h + n_out] = spec.padded_weights_out()
    shift[:n_in, :] = spec.weight_shift_in
    shift[n_in:, :] = spec.weight_shift_rec
    shift[n_in:, h:h + n_out] = spec.weight_shift_out
    return raw, shift


def _decay_step(x: np.ndarray, dash: np.ndarray) -> np.ndarray:
    """x - decay(x, dash), XyloIAFNeuron.cpp ``decay``: ``x >> dash``, or one
    LSB towards zero when that is 0 (only for 0 < x < 2**dash: a negative x
    never shifts to 0)."""
    dv = x >> dash
    return x - dv - ((dv == 0) & (x > 0))


def simulate(spec, inputs, *, record_isyn: bool = True,
             torch_threads: Optional[int] = 1) -> XyloResult:
    """Run the spec on ``inputs`` (N, T, Nin) integer event counts (>= 0;
    counts above 15 are clamped to 15 as xylosim does; XyloSim itself rejects
    counts > 255).  Every sample starts from the zero state (as after
    ``XyloSim.reset_state()``).  Exact: bit-for-bit what xylosim 0.1.3
    computes.

    ``spec``: any object with the ``XyloSim.from_specification`` arguments
    as attributes (an ``XyloSpec``: the simulator trusts them to be valid).
    With ``record_isyn=False`` the isyn recordings are left out (None) to
    save memory and time.

    ``torch_threads``: torch's intra-op thread count during the call
    (restored afterwards; None leaves it alone).  The per-step matmuls are
    small, and with more threads than free cores torch's OpenMP workers
    spin-wait: on a loaded 2-core machine 1 thread was ~10x faster than 2.
    """
    import torch

    if torch_threads is None:
        return _simulate(spec, inputs, record_isyn)
    before = torch.get_num_threads()
    torch.set_num_threads(int(torch_threads))
    try:
        return _simulate(spec, inputs, record_isyn)
    finally:
        torch.set_num_threads(before)


def _simulate(spec, inputs, record_isyn: bool) -> XyloResult:
    spec = _as_spec(spec)
    x = _as_inputs(inputs, spec.n_in)
    plan = _Plan(spec, int(x.max()) if x.size else 0)
    run = _Run(spec, plan, x, record_isyn)
    for t in range(x.shape[1]):
        if plan.has_delivery:  # inputs of step t and hidden events of t-1
            run.deliver(t)
        run.evolve()  # XyloIAFNeuron::evolve
        run.record(t)
    return run.result(spec.output_mode)


class _Run:
    """The state of one simulation (a batch of N samples) and its recordings."""

    def __init__(self, spec: _Spec, plan: _Plan, x: np.ndarray, record_isyn: bool):
        import torch

        n, T, _ = x.shape
        h, n_out = spec.n_hidden, spec.n_out
        self.plan, self.h, self.record_isyn = plan, h, record_isyn
        # per-step source counts: inputs clamped to 15 (deliver_spikes), hidden
        # events of t-1 (<= 31); int8 for the matmul
        self.xin = np.minimum(x[:, :, plan.in_rows], MAX_INPUT_EVENTS).astype(np.int8)
        self.c_in = np.zeros((n, len(plan.in_rows)), np.int8)
        self.c_hid = np.zeros((n, len(plan.hid_rows)), np.int8)
        self.c_in_t, self.c_hid_t = torch.from_numpy(self.c_in), torch.from_numpy(self.c_hid)
        self.isyn = np.zeros((n, plan.width), plan.rdtype)
        self.v = np.zeros((n, h + n_out), np.int32)
        self.counts = np.zeros((n, h), np.int32)  # hidden events of the previous step
        self.k = None  # events of the current step, [hidden | outputs]
        self.spikes = np.empty((n, T, h), np.uint8)
        self.spikes_out = np.empty((n, T, n_out), np.uint8)
        self.vmem = np.empty((n, T, h), np.int16)
        self.vmem_out = np.empty((n, T, n_out), np.int16)
        self.isyn_rec = self.isyn2_rec = self.isyn_out_rec = None
        if record_isyn:
            self.isyn_rec = np.empty((n, T, h), np.int16)
            self.isyn2_rec = np.zeros((n, T, h), np.int16)
            self.isyn_out_rec = np.empty((n, T, n_out), np.int16)
        self.stats = {"static_fast_columns": plan.ns, "checked_columns": plan.nc,
                      "steps": T, "exact_steps": 0, "exact_sample_steps": 0, "exact_cells": 0,
                      "exact_by_source": 0, "exact_by_contribution": 0}

    def _drive(self, t: int) -> Optional[np.ndarray]:
        """The step's delivery as one product, columns [safe | chk+ | chk-]
        (None: nothing to deliver)."""
        plan = self.plan
        self.c_in[:] = self.xin[:, t]
        if len(plan.hid_rows):
            self.c_hid[:] = self.counts[:, plan.hid_rows]
        R = None
        if self.c_in.size and self.c_in.any():
            R = plan.mm(self.c_in_t, plan.W_in).numpy().astype(plan.rdtype, copy=False) * plan.mult_in
        if self.c_hid.size and self.c_hid.any():
            r2 = plan.mm(self.c_hid_t, plan.W_hid).numpy().astype(plan.rdtype, copy=False) * plan.mult_hid
            R = r2 if R is None else R + r2
        return R

    def deliver(self, t: int) -> None:
        """Add the step's delivery to isyn: safe columns directly, checked
        cells directly unless a partial sum could saturate, those replayed
        in xylosim's order (_replay)."""
        R = self._drive(t)
        if R is None:
            return
        ns, nc, isyn = self.plan.ns, self.plan.nc, self.isyn
        if ns:
            isyn[:, :ns] += R[:, :ns]
        if not nc:
            return
        pos, neg = R[:, ns:ns + nc], R[:, ns + nc:]
        x0 = isyn[:, ns:ns + nc]  # a view
        hi, lo = x0 + pos, x0 + neg
        bad = (hi > I16_MAX) | (lo < I16_MIN)
        if bad.any():
            new = hi + neg
            si, ki = np.nonzero(bad)
            new[si, ki] = _replay(x0[si, ki], self.c_in, self.c_hid, si, ki, self.plan, self.stats)
            x0[...] = new
            self.stats["exact_steps"] += 1
            self.stats["exact_sample_steps"] += int(bad.any(axis=1).sum())
            self.stats["exact_cells"] += len(si)
        else:
            x0 += pos
            x0 += neg

    def evolve(self) -> None:
        """Every neuron's step: synaptic decay, membrane update, events."""
        plan, v = self.plan, self.v
        self.isyn = isyn = _decay_step(self.isyn, plan.dash_col)
        isum = isyn[:, plan.idx0]
        if plan.use_syn2:
            isum += isyn[:, plan.idx1]
        dec = v >> plan.dash_mem
        dec += (dec == 0) & (v > 0)
        dv = -dec
        dv[dv == 2 ** 15] = I16_MIN  # int16(-decay(-32768, 0)) wraps (XyloIAFNeuron::evolve)
        dv += isum
        np.clip(dv, I16_MIN, I16_MAX, out=dv)
        if plan.has_bias:
            dv += plan.bias
            np.clip(dv, I16_MIN, I16_MAX, out=dv)
        v += dv
        np.clip(v, I16_MIN, I16_MAX, out=v)
        k = v // plan.th
        np.maximum(k, 0, out=k)  # = XyloIAFNeuron::evolve's while (v >= th) count, th >= 1
        if plan.alias_order:
            k = self._fire_with_aliases(k)
        else:
            np.minimum(k, plan.cap, out=k)
            v -= k * plan.th
        self.k = k
        self.counts = k[:, :self.h]

    def _fire_with_aliases(self, k: np.ndarray) -> np.ndarray:
        """Event caps when aliases add events: alias neurons one by one in
        ascending id (a target's buffer already holds earlier events)."""
        plan = self.plan
        uncapped = k.copy()
        np.minimum(k, plan.cap, out=k)
        own = k  # events a neuron emits itself (subtracted from its v)
        buf = own.copy()  # outgoing counts incl. alias events
        buf[:, plan.alias_nodes] = 0
        for i, targets in plan.alias_order:
            k0 = buf[:, i]
            e = np.minimum(uncapped[:, i], MAX_HIDDEN_EVENTS - k0)
            own[:, i] = e
            ki = k0 + e
            buf[:, i] = ki
            for a in targets:
                buf[:, a] = np.minimum(buf[:, a] + ki, MAX_HIDDEN_EVENTS)
        self.v -= own * plan.th
        return buf

    def record(self, t: int) -> None:
        plan, h, isyn = self.plan, self.h, self.isyn
        self.spikes[:, t] = self.counts
        self.spikes_out[:, t] = self.k[:, h:]
        self.vmem[:, t] = self.v[:, :h]
        self.vmem_out[:, t] = self.v[:, h:]
        if self.record_isyn:
            self.isyn_rec[:, t] = isyn[:, plan.idx0[:h]]
            self.isyn_out_rec[:, t] = isyn[:, plan.idx0[h:]]
            if plan.use_syn2:
                self.isyn2_rec[:, t] = isyn[:, plan.idx1[:h]]

    def result(self, output_mode: str) -> XyloResult:
        return XyloResult(
            spikes=self.spikes, spikes_out=self.spikes_out, vmem=self.vmem, vmem_out=self.vmem_out,
            isyn=self.isyn_rec, isyn2=self.isyn2_rec, isyn_out=self.isyn_out_rec,
            output_mode=output_mode, stats=self.stats,
        )


_FORCE_REPLAY: Optional[str] = None  # "source" / "contribution": for tests


def _replay(x0, c_in, c_hid, si, ki, plan, stats) -> np.ndarray:
    """The exact path for the cells (sample ``si[m]``, checked column
    ``ki[m]``, start value ``x0[m]``): xylosim's delivery order, sources
    ascending (inputs, then hidden neurons: the row order of ``plan.W_chk``),
    one saturating add of ``count * w`` per source (= ``count`` saturating
    adds of the same w, as ``deliver_spikes`` does).  Vectorised over the
    cells, by whichever of two equivalent loops does less work: over the
    sources in each column's non-zero range (dense weights), or over each
    cell's non-zero contributions (sparse weights or counts)."""
    c_full = np.concatenate([c_in, c_hid], axis=1)  # (N, P) int8
    dense_work = int(plan.chk_span[ki].sum())
    sparse_work = 5 * int(plan.chk_nnz[ki].sum())  # ~5x the cost per pair
    by_source = dense_work <= sparse_work
    if _FORCE_REPLAY is not None:  # tests: run one loop regardless of cost
        by_source = _FORCE_REPLAY == "source"
    if by_source:
        stats["exact_by_source"] += 1
        return _replay_ranges(x0, c_full, si, ki, plan)
    stats["exact_by_contribution"] += 1
    return _replay_sparse(x0, c_full, si, ki, plan)


def _replay_ranges(x0, c_full, si, ki, plan) -> np.ndarray:
    """Loop over sources p.  A column only receives from the sources between
    its first and last non-zero weight (``plan.chk_lo`` / ``chk_hi``); with
    the cells sorted by that range, the cells that can receive from p lie in
    one slice (cells in it that cannot add 0: harmless).  For a packed
    feed-forward net this skips the other layers' sources."""
    W = plan.W_chk  # (P, Nchk) int32, signed w << shift
    lo, hi = plan.chk_lo[ki], plan.chk_hi[ki]
    order = np.lexsort((hi, lo))
    s, k, lo, hi = si[order], ki[order], lo[order], hi[order]
    x = x0[order].astype(np.int32)
    c_t = c_full.T.astype(np.int32)  # (P, N)
    hmax = np.maximum.accumulate(hi)
    ps = np.arange(W.shape[0])
    first = np.searchsorted(hmax, ps, side="left")  # first cell with hi >= p
    last = np.searchsorted(lo, ps, side="right")  # cells with lo <= p
    for p in ps[first < last]:
        a, b = first[p], last[p]
        d = np.take(c_t[p], s[a:b])
        d *= np.take(W[p], k[a:b])
        xs = x[a:b]
        xs += d
        np.minimum(xs, I16_MAX, out=xs)
        np.maximum(xs, I16_MIN, out=xs)
    out = np.empty_like(x)
    out[order] = x
    return out


def _replay_sparse(x0, c_full, si, ki, plan, max_pairs: int = 1 << 22) -> np.ndarray:
    """Loop over contribution rounds.  Only (cell, source) pairs with a
    non-zero weight (the column's entries in ``plan.chk_csc``, sources
    ascending) and a non-zero count contribute; round r applies every cell's
    r-th contribution at once (cells sorted by their number of contributions,
    so the cells still active in a round are a prefix).  In chunks of at most
    ``max_pairs`` candidate pairs."""
    indptr, src_of, w_of = plan.chk_csc
    P = c_full.shape[1]
    c_flat = c_full.reshape(-1)
    out = x0.astype(np.int32)
    nnz = indptr[ki + 1] - indptr[ki]
    bounds = np.cumsum(nnz)
    a = 0
    while a < len(si):
        # the next chunk: cells a..b-1 with at most max_pairs pairs (>= 1 cell)
        base = bounds[a - 1] if a else 0
        b = max(a + 1, int(np.searchsorted(bounds, base + max_pairs, side="right")))
        n_c = nnz[a:b]
        total = int(n_c.sum())
        if total:
            cell = np.repeat(np.arange(b - a), n_c)
            e = np.repeat(indptr[ki[a:b]] - (np.cumsum(n_c) - n_c), n_c)
            e += np.arange(total)  # positions in the columns' CSC entries
            flat = np.repeat(si[a:b] * P, n_c)
            flat += np.take(src_of, e)
            cnt = np.take(c_flat, flat)
            keep = np.flatnonzero(cnt)
            cell = cell[keep]
            vals = cnt[keep].astype(np.int32)
            vals *= np.take(w_of, e[keep])
            n_e = np.bincount(cell, minlength=b - a)
            start = np.cumsum(n_e) - n_e
            order = np.argsort(-n_e, kind="stable")
            xs, st, ne = out[a:b][order], start[order], n_e[order]
            rounds = int(ne[0]) if len(ne) else 0
            active = np.searchsorted(-ne, -np.arange(rounds), side="left")
            for r in range(rounds):
                n_r = active[r]
                x_r = xs[:n_r]
                x_r += np.take(vals, st[:n_r] + r)
                np.minimum(x_r, I16_MAX, out=x_r)
                np.maximum(x_r, I16_MIN, out=x_r)
            out[a:b][order] = xs
        a = b
    return out
