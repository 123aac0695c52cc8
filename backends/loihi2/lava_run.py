"""Build and run the Lava process graph of an integer network (adacal.int_ir)
on Lava's bit-accurate CPU models.

``run_lava(g, x, T)`` plans the process graph (lava_plan.plan_lava), builds
it, runs every sample of x through it back to back in one run under
``Loihi2SimCfg(select_tag='fixed_pt')`` and returns the payloads of every
neuron layer and the readout currents in lock-step time (see int_ir).  Vendor
imports stay inside functions.  Timing, layouts and what Lava cannot express
are described in docs/loihi2.md ("Running on Lava").
"""
from __future__ import annotations

import time
import types
from dataclasses import dataclass, field

import numpy as np

from adacal import ir
from adacal.backends.loihi2 import lava_arith as la
from adacal.backends.loihi2.lava_plan import I32, READOUT, LavaPlan, as_int, plan_lava

__all__ = ["run_lava", "PROGRESS_CHUNKS"]

#: run_lava with a progress callback: at most this many Lava runs
PROGRESS_CHUNKS = 20
#: seconds between two looks at a running Lava network (_run_steps)
POLL_SECONDS = 0.02
#: a failed Lava run: at most this long to wait for the failed model's traceback (_abort)
REPORT_GRACE_SECONDS = 10.0


def _lava() -> types.SimpleNamespace:
    """Lava's processes and run helpers, imported after the import fix."""
    from adacal.backends.loihi2.compat import ensure_lava, lava_fixed_pt_run_config
    ensure_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import DelayDense, Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from adacal.backends.loihi2.burst_if.process import BurstIF
    from adacal.backends.loihi2.conv_model import conv_run_config_map
    from adacal.backends.loihi2.max_pool.process import MaxPool

    def run_config():
        # Lava's Conv runs PyConvModelFixed's arithmetic with int32 parameters:
        # its int8 ones overflow under numpy 2 from 128 channels on (conv_model.py)
        return lava_fixed_pt_run_config(exception_proc_model_map=conv_run_config_map())

    return types.SimpleNamespace(RunSteps=RunSteps, Conv=Conv, DelayDense=DelayDense, Dense=Dense, Sink=Sink,
                                 Source=Source, BurstIF=BurstIF, MaxPool=MaxPool, run_config=run_config)


def _sign_mode_enum(mode: str):
    from lava.utils.weightutils import SignMode
    return {la.MIXED: SignMode.MIXED, la.EXCITATORY: SignMode.EXCITATORY,
            la.INHIBITORY: SignMode.INHIBITORY}[mode]


def _per_channel(a, shape, what, name) -> np.ndarray:
    a = np.asarray(a)
    if a.size == 1:
        return np.full(shape, int(a.ravel()[0]), np.int64)
    if a.shape == tuple(shape):
        return a.astype(np.int64)
    if a.ndim == 1 and a.shape[0] == shape[0]:
        return np.broadcast_to(a.astype(np.int64).reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
    raise ValueError(f"{name}: {what} of shape {a.shape} is neither per channel nor per neuron for {shape}")


# ---------------------------------------------------------------------------
# building the process graph
# ---------------------------------------------------------------------------
@dataclass
class _Build:
    """The Lava processes of one plan, created in order (source, neurons,
    max pools, relays, readout sink, synapses, recording sinks)."""
    plan: LavaPlan
    lv: types.SimpleNamespace
    period: int  # Lava steps per sample
    steps: int  # Lava steps of the whole run
    procs: dict = field(default_factory=dict)
    relay_out: dict = field(default_factory=dict)  # (population, stage) -> relay OutPort
    sinks: dict = field(default_factory=dict)  # neuron -> recording sink
    sink_out: object = None  # the readout sink
    n_procs: int = 0

    def source(self, name: str, payload_in: np.ndarray, T: int) -> None:
        """The input RingBuffer: sample i at Lava steps i·P + 1 .. i·P + T (the
        source sends data[..., t - 1] at step t, lava/proc/io/source.py)."""
        pin, P = self.plan.pops[name], self.period
        if np.abs(payload_in).max(initial=0) >= I32:
            raise ValueError("input payload exceeds int32")
        data = np.zeros(pin.lava_shape + (self.steps,), np.int64)
        lav = pin.to_lava(payload_in)  # (N, *lava_shape)
        for i in range(payload_in.shape[0]):
            data[..., i * P:i * P + T] = lav[i][..., None]
        self.procs[pin.name] = self.lv.Source(data=data.astype(np.int32))
        self.n_procs += 1

    def neurons(self, nodes: dict) -> None:
        for name in self.plan.neurons:
            pop, op = self.plan.pops[name], nodes[name].op
            th = _per_channel(as_int(op.threshold, "threshold", name), pop.shape, "threshold", name)
            bias = _per_channel(as_int(op.bias, "bias", name), pop.shape, "bias", name)
            v0 = np.zeros(pop.shape, np.int64) if op.v_init is None else \
                _per_channel(as_int(op.v_init, "v_init", name), pop.shape, "v_init", name)
            self.procs[name] = self.lv.BurstIF(shape=pop.lava_shape, threshold=pop.to_lava(th),
                                               bias=pop.to_lava(bias), v_init=pop.to_lava(v0),
                                               max_spikes=int(op.max_spikes), hold=pop.latency,
                                               period=self.period, signed=bool(op.signed),
                                               memory=bool(op.memory), name=name)
            self.n_procs += 1

    def _max_pool(self, op, name: str, in_shape: tuple, hold: int):
        """A MaxPool process on a (W, H, C) input; like a neuron it is held
        for its first `hold` steps of every period (docs/loihi2.md, "Max pooling")."""
        self.n_procs += 1
        return self.lv.MaxPool(shape=in_shape, kernel=op.kernel, stride=op.stride, padding=op.padding,
                               dilation=op.dilation, ceil_mode=bool(op.ceil_mode), how=op.how, hold=hold,
                               period=self.period, name=name)

    def pools(self, nodes: dict) -> None:
        """Max pools over payloads (each reads one population), then max pools
        over currents (connected to their neurons; their Convs connect in
        synapses())."""
        for name in self.plan.pools:
            pop = self.plan.pops[name]
            src = self.plan.pops[pop.pool_src]
            self.procs[name] = self._max_pool(nodes[pop.pool_node].op, name, src.lava_shape, pop.latency)
            if self.procs[name].out_shape != pop.lava_shape:  # cannot happen: plan and process share PoolGeometry
                raise ValueError(f"{name}: MaxPool gives {self.procs[name].out_shape}, plan says {pop.lava_shape}")
        for name in self.plan.pools:
            self.procs[self.plan.pops[name].pool_src].s_out.connect(self.procs[name].s_in)
        for name, cp in self.plan.current_pools.items():
            self.procs[name] = self._max_pool(cp.node.op, name, cp.in_pop.lava_shape, cp.latency)
            for tgt in cp.targets:
                self.procs[name].s_out.connect(self.procs[tgt].a_in)

    def relays(self) -> None:
        """Identity relay chains (payload delay for Conv readers): depthwise
        1x1 Conv, weight 1, one step each."""
        for pname, stages in self.plan.relays.items():
            pop = self.plan.pops[pname]
            if len(pop.lava_shape) != 3:
                raise ValueError(f"relay for {pname}: not a feature map")  # cannot happen: Conv readers
            c = pop.lava_shape[2]
            prev = self.procs[pname].s_out
            for k in range(1, stages + 1):
                rel = self.lv.Conv(weight=np.ones((c, 1, 1, 1), np.int32), input_shape=pop.lava_shape, groups=c,
                                   num_message_bits=8, name=f"{pname}/relay{k}")
                self.n_procs += 1
                prev.connect(rel.s_in)
                prev = rel.a_out
                self.relay_out[(pname, k)] = prev

    def readout_sink(self) -> None:
        self.sink_out = self.lv.Sink(shape=self.plan.readout_pop.lava_shape, buffer=self.steps)
        self.n_procs += 1

    def out_port(self, pop_name, flat: bool):
        port = self.procs[pop_name].s_out
        return port.flatten() if flat and len(self.plan.pops[pop_name].lava_shape) != 1 else port

    def dense_part(self, sname: str, syn, part):
        pr = part.params
        out_shape, out_index = syn.out_layout
        w = np.zeros_like(part.weight)
        w[out_index.ravel(), :] = part.weight
        kw = dict(weights=w.astype(np.int32), weight_exp=pr["weight_exp"],
                  num_weight_bits=pr["num_weight_bits"], num_message_bits=pr["num_message_bits"],
                  sign_mode=_sign_mode_enum(pr["sign_mode"]), name=f"{sname}/{part.src}")
        proc = self.lv.DelayDense(delays=int(part.delay), **kw) if part.delay > 0 else self.lv.Dense(**kw)
        self.out_port(part.src, flat=True).connect(proc.s_in)
        return proc.a_out if len(out_shape) == 1 else proc.a_out.reshape(out_shape)

    def conv_part(self, sname: str, part):
        pr = part.params
        lw = la.conv_weight_to_lava(part.weight).astype(np.int32)
        proc = self.lv.Conv(weight=lw, input_shape=self.plan.pops[part.src].lava_shape, padding=pr["padding"],
                            stride=pr["stride"], dilation=pr["dilation"], groups=pr["groups"],
                            num_message_bits=pr["num_message_bits"], name=f"{sname}/{part.src}")
        src_port = self.procs[part.src].s_out if part.delay == 0 else self.relay_out[(part.src, part.delay)]
        src_port.connect(proc.s_in)
        return proc.a_out

    def synapses(self) -> None:
        """One Lava Dense / DelayDense / Conv per synapse part, every part
        connected to every target (an InPort sums what arrives)."""
        for sname, syn in self.plan.synapses.items():
            if not syn.targets:
                continue  # feeds nothing (dead branch): not built
            lava_parts = []
            for part in syn.parts:
                lava_parts.append(self.dense_part(sname, syn, part) if part.kind == "dense"
                                  else self.conv_part(sname, part))
                self.n_procs += 1
            for tgt in syn.targets:
                port = (self.sink_out.a_in if tgt == READOUT else self.procs[tgt].s_in
                        if tgt in self.plan.current_pools else self.procs[tgt].a_in)
                for a_out in lava_parts:
                    a_out.connect(port)

    def recording_sinks(self) -> None:
        for name in self.plan.neurons + self.plan.pools:
            self.sinks[name] = self.lv.Sink(shape=self.plan.pops[name].lava_shape, buffer=self.steps)
            self.procs[name].s_out.connect(self.sinks[name].a_in)
            self.n_procs += 1


# ---------------------------------------------------------------------------
# running and reading back
# ---------------------------------------------------------------------------
class _ModelDied(RuntimeError):
    """A Lava process model ended during a run (it raised)."""


def _run_steps(proc, lv, steps: int, cfg) -> None:
    """``proc.run(RunSteps(steps))``, watching the model processes.

    Lava's blocking run waits for the runtime services' answers without a
    timeout (lava/magma/runtime/runtime.py, _get_resp_for_run, lines
    368-407), and a runtime service collects one answer from every process
    model in turn (lava/magma/runtime/runtime_services/runtime_service.py,
    _get_pm_resp, lines 221-229).  When a model raises in a step it reports
    ERROR and ends; but a model still blocked in a receive from it never
    answers, so neither the service nor the runtime ever learns of it: the
    run waits forever at 0 % CPU.  So the run is started non-blocking and
    polled: it ends when every service has answered DONE (then Lava's own
    wait() collects the answers without blocking), and raises _ModelDied as
    soon as a model process has ended or a service answers anything else."""
    from lava.magma.runtime.mgmt_token_enums import MGMT_RESPONSE, enum_equal

    proc.run(condition=lv.RunSteps(num_steps=steps, blocking=False), run_cfg=cfg)
    rt = proc.runtime
    ports, actors = rt.service_to_runtime, rt._messaging_infrastructure.actors
    while True:
        if any(not a._is_done and not a.is_alive() for a in actors):
            raise _ModelDied("a Lava process model ended during the run")
        if all(p.probe() for p in ports):
            if not all(enum_equal(p.peek(), MGMT_RESPONSE.DONE) for p in ports):
                raise _ModelDied("a Lava runtime service reported a failure")
            rt.wait()  # every answer is there: Lava's own bookkeeping, does not block
            return
        time.sleep(POLL_SECONDS)


def _abort(proc, wait_for_report: bool = True) -> list[str]:
    """End a Lava run that raised, without letting Lava hang; return the
    tracebacks of the process models that failed.

    Lava 0.10 cannot stop a runtime after a process model failed
    (lava/magma/runtime/runtime.py).  A model raising while it is built makes
    `initialize` (lines 158-174) re-raise while every other model already
    waits for its first command, and stop() (lines 485-507) of a runtime that
    never started joins them (message_infrastructure/multiprocessing.py,
    stop, lines 127-132): forever.  A model raising in a step makes
    `_get_resp_for_run` (lines 390-401) join the models and raise with
    `_is_started` still set, and stop() then sends STOP to runtime services
    that have ended and waits for their answers: forever.  The tracebacks
    only go to Lava's INFO log.  AbstractProcess.__del__ calls stop() too
    (lava/magma/core/process/process.py, lines 221-225).

    So: terminate the model processes of this run that are still alive (the
    children Lava forked for it), mark the runtime as stopped and let stop()
    join them and release the shared memory.  docs/loihi2.md, "Lava quirks"."""
    rt = getattr(proc, "_runtime", None)
    infra = getattr(rt, "_messaging_infrastructure", None)
    if rt is None or infra is None:
        return []
    actors = list(infra.actors)

    def report(a):
        """(exception, traceback) a failed model sent through its pipe (SystemProcess,
        lava/magma/runtime/message_infrastructure/multiprocessing.py, lines 57-92);
        _is_done: Lava joined (and closed) the process already."""
        return a._exception if a._is_done else a.exception

    # the failed model may still be on its way out (Lava's error path ends
    # the runtime service first): give it a moment to send its traceback
    deadline = time.monotonic() + (REPORT_GRACE_SECONDS if wait_for_report else 0.0)
    while not any(report(a) for a in actors) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    for actor in actors:
        if not actor._is_done and actor.is_alive():
            actor.terminate()
    rt._is_running = rt._is_started = False
    try:
        rt.stop()  # not started: joins the actors, shuts the shared memory and watchdog managers down
    except Exception:  # noqa: BLE001  (best effort; the run's own error is what matters)
        pass
    return [a._exception[1] for a in actors if isinstance(a._exception, tuple) and len(a._exception) == 2]


def _execute(b: _Build, n_samples: int, progress) -> tuple[dict, float]:
    """Run all steps (in chunks of whole samples with a progress callback),
    read every sink, stop Lava.  Returns the raw sink data and the time the
    run ended.  A failing run raises (RuntimeError with the failing process
    model's traceback) instead of hanging (_abort)."""
    got = {}
    sink_out, P = b.sink_out, b.period
    try:
        cfg = b.lv.run_config()
        if progress is None:
            _run_steps(sink_out, b.lv, b.steps, cfg)
        else:
            per = -(-n_samples // PROGRESS_CHUNKS)
            for s0 in range(0, n_samples, per):
                k = min(per, n_samples - s0)
                _run_steps(sink_out, b.lv, k * P, cfg)
                progress(k)
    except BaseException as exc:
        failed = _abort(sink_out, wait_for_report=isinstance(exc, Exception))
        if failed and isinstance(exc, Exception):
            raise RuntimeError(f"Lava run failed: {len(failed)} process model(s) raised; the first:\n"
                               + failed[0].rstrip()) from exc
        raise
    try:
        t_ran = time.perf_counter()
        got[READOUT] = sink_out.data.get()
        for name, s in b.sinks.items():
            got[name] = s.data.get()
    finally:
        sink_out.stop()
    return got, t_ran


def _lockstep(raw, pop, n_samples: int, P: int, T: int) -> np.ndarray:
    """Sink data (*lava_shape, steps) -> (T, N, *shape): Lava step latency + t -> lock-step t."""
    # Var.get returns float64 (exact ints; lava/magma/core/model/py/model.py _get_var)
    raw = np.rint(np.asarray(raw)).astype(np.int64)
    raw = np.moveaxis(raw, -1, 0).reshape((n_samples, P) + pop.lava_shape)
    cols = raw[:, pop.latency:pop.latency + T]  # Lava step latency + t -> column latency + t - 1
    return np.swapaxes(pop.from_lava(cols), 0, 1)  # (T, N, *shape)


def _build(g: ir.Graph, plan: LavaPlan, payload_in: np.ndarray, T: int, P: int, steps: int,
           record: bool) -> _Build:
    b = _Build(plan, _lava(), P, steps)
    nodes = {n.name: n for n in g.nodes}
    b.source(g.nodes[0].name, payload_in, T)
    b.neurons(nodes)
    b.pools(nodes)
    b.relays()
    b.readout_sink()
    b.synapses()
    if record:
        b.recording_sinks()
    return b


def run_lava(g: ir.Graph, x: np.ndarray, T: int, *, record: bool = True,
             check_depth: bool = True, strict: bool = True, progress=None) -> dict:
    """Run the integer graph g on Lava (Loihi2SimCfg(select_tag='fixed_pt')).

    x: float array (N, *input_shape), quantised with nodes[0]'s GradedInput;
    the payload is presented at lock-step steps 1..T.  Returns
    ``{"payloads": {neuron or max pool over payloads: int64 (T, N, *shape)}, "readout": int64
    (T, N, *out_shape), "seconds": total wall time, "timing": {...},
    "latency": {node: Lava latency}, "period": Lava steps per sample,
    "lava_steps": total steps, "processes": number of Lava processes}``,
    all in lock-step time (Lava step t + latency -> step t).
    record=False skips the per-neuron (and per-pool) sinks (payloads is then empty; reading
    a sink costs one Lava message per element and step, the dominant cost
    for feature maps).  check_depth: each neuron's ``depth`` must equal its
    Lava latency.  strict: refuse (ValueError) a Dense split over Concat
    parts with weight_exp < 0 instead of warning (see docs/loihi2.md).
    progress: optional callable ``progress(n)``; given, the run is split into
    at most PROGRESS_CHUNKS consecutive runs of whole samples (the same steps,
    so the same results) and progress(k) is called after each with its k
    samples.
    Raises ValueError, naming the node, for what Lava cannot express
    (asymmetric Conv padding, unbalanced paths, a Conv reading anything but
    whole populations concatenated along channels, ...).
    """
    t_start = time.perf_counter()
    T = int(T)
    if T < 1:
        raise ValueError("T must be >= 1")
    plan = plan_lava(g, check_depth=check_depth, strict=strict)
    x = np.asarray(x)
    in_shape = tuple(g.nodes[0].shape)
    if x.shape[1:] != in_shape:
        raise ValueError(f"x has per-sample shape {x.shape[1:]}, the graph input is {in_shape}")
    n_samples = x.shape[0]
    payload_in = g.nodes[0].op.quantise(x)
    P = T + plan.max_latency
    steps = n_samples * P
    b = _build(g, plan, payload_in, T, P, steps, record)
    t_built = time.perf_counter()
    got, t_ran = _execute(b, n_samples, progress)
    t_read = time.perf_counter()
    payloads = {name: _lockstep(got[name], plan.pops[name], n_samples, P, T) for name in b.sinks}
    for name, parts in plan.pool_parts.items():  # a max pool over a channel Concat: one population per part
        if parts != [name] and all(p in payloads for p in parts):
            payloads[name] = np.concatenate([payloads.pop(p) for p in parts], axis=2)
    readout = _lockstep(got[READOUT], plan.readout_pop, n_samples, P, T)
    t_end = time.perf_counter()
    return {
        "payloads": payloads,
        "readout": readout,
        "seconds": t_end - t_start,
        "timing": {"plan_build": t_built - t_start, "run": t_ran - t_built,
                   "read": t_read - t_ran, "total": t_end - t_start},
        "latency": plan.latency | {READOUT: plan.readout_pop.latency},
        "period": P,
        "lava_steps": steps,
        "processes": b.n_procs,
    }
