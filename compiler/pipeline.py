"""The conversion pipeline (docs/method.md):

fold BN & clean up -> burst neurons at φ_max -> thresholds ->
[burst-cap search -> thresholds again] -> calibration ->
[threshold-ratio search -> calibration again] -> calibration check (and exit
calibration) -> evaluate.

The calibration check runs the finished SNN once on up to CHECK_SAMPLES
samples of the calibration file that calibration did not use (or, when the
file has no more, on the calibration samples themselves) and reports how often
its prediction (all T steps) is the ANN's.  It needs no labels and no --val,
so it is the early warning for a conversion that lost accuracy: below
AGREEMENT_WARNING the summaries carry a warning.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from adacal import ir
from adacal.errors import AdacalError
from adacal.frontends.onnx import load_onnx
from adacal.passes import adaptive_timesteps, ann_statistics, bias_correction, cleanup, conversion_plan, search_trials
from adacal.passes.burst_search import search_max_spikes, threshold_fit, with_max_spikes
from adacal.passes.threshold_ratio_search import RATIOS, scale_thresholds, search_threshold_ratios
from adacal.progress import progress_task
from adacal.passes.thresholds import parse_method
from adacal.passes.maxpool_placement import hoist_maxpool
from adacal.passes.to_spiking import MAXPOOL_CHOICES, NEURON_CHOICES, neuron_names, set_neuron, to_spiking
from adacal.runtime_sim import energy
from adacal.runtime_sim.float_sim import concat_results, simulate
from adacal.summary import ENERGY_CONVENTION, accuracy, accuracy_by_step, has_labels, measure, output_error


@dataclass(frozen=True)
class ConvertOptions:
    timesteps: int = 8
    max_spikes: int = 4
    threshold: str = "mse"
    calibration: str = "light"
    calib_samples: int = 256
    search_spikes: bool = False
    spike_range: tuple[int, int] = (1, 8)
    energy_budget: float = 1.0
    search_thresholds: bool = False
    sensitivity_budget: float = 1.0
    search_cost: str = "spikes"  # energy.SEARCH_COSTS: what the two searches price
    maxpool: str = "hoist"  # to_spiking.MAXPOOL_CHOICES: how max pools over spikes run
    neuron: str = "burst"  # to_spiking.NEURON_CHOICES: "memory" neurons may take spikes back
    adaptive_timesteps: bool = False
    exit_metric: str = "confidence"
    exit_level: float = 0.9
    seed: int = 0
    #: samples per batch; with more calibration samples than this, calibration is streamed.
    #: It does not change the result, so artifacts do not record it (recorded()).
    batch_size: int = 256

    def recorded(self) -> dict:
        """The options as the manifest, report.json and NIR metadata record
        them: all but batch_size, which changes how the work is done, not its
        result."""
        d = asdict(self)
        d.pop("batch_size")
        return d

    def check(self) -> None:
        if self.timesteps < 1:
            raise AdacalError(f"--timesteps must be >= 1, got {self.timesteps}")
        if self.max_spikes < 1:
            raise AdacalError(f"--max-spikes must be >= 1, got {self.max_spikes}")
        if self.calibration not in bias_correction.MODES:
            raise AdacalError(f"--calibration must be one of {', '.join(bias_correction.MODES)}")
        if self.calib_samples < 1:
            raise AdacalError(f"--calib-samples must be >= 1, got {self.calib_samples}")
        if self.exit_metric not in adaptive_timesteps.METRICS:
            raise AdacalError(f"--exit-metric must be one of {', '.join(adaptive_timesteps.METRICS)}")
        lo, hi = self.spike_range
        if not 1 <= lo <= hi:
            raise AdacalError(f"--spike-range {lo}:{hi} must be MIN:MAX with 1 <= MIN <= MAX")
        if self.search_spikes and not lo <= self.max_spikes <= hi:
            raise AdacalError(f"--max-spikes {self.max_spikes} (the energy budget's reference) is outside "
                              f"--spike-range {lo}:{hi}")
        if not (math.isfinite(self.energy_budget) and self.energy_budget > 0):
            raise AdacalError(f"--energy-budget must be a number > 0, got {self.energy_budget}")
        if not (math.isfinite(self.sensitivity_budget) and self.sensitivity_budget >= 0):
            raise AdacalError(f"--sensitivity-budget must be a number >= 0, got {self.sensitivity_budget}")
        if self.search_cost not in energy.SEARCH_COSTS:
            raise AdacalError(f"--search-cost must be one of {', '.join(energy.SEARCH_COSTS)}, "
                              f"got {self.search_cost}")
        if self.maxpool not in MAXPOOL_CHOICES:
            raise AdacalError(f"--maxpool must be one of {', '.join(MAXPOOL_CHOICES)}, got {self.maxpool}")
        if self.neuron not in NEURON_CHOICES:
            raise AdacalError(f"--neuron must be one of {', '.join(NEURON_CHOICES)}, got {self.neuron}")
        if not 0.0 <= self.exit_level <= 1.0:
            raise AdacalError(f"--exit-level must be in [0, 1], got {self.exit_level}")
        if self.seed < 0:
            raise AdacalError(f"--seed must be >= 0, got {self.seed}")
        if self.batch_size < 1:
            raise AdacalError(f"--batch-size must be >= 1, got {self.batch_size}")
        parse_method(self.threshold)


@dataclass
class Conversion:
    """A converted, calibrated float burst SNN and what it took to get there."""
    ann: ir.Graph
    snn: ir.Graph
    options: ConvertOptions
    exit_policy: adaptive_timesteps.ExitPolicy | None = None
    threshold_ratios: dict[str, float] = field(default_factory=dict)
    searches: dict = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    calibration_check: dict | None = None  # agreement, samples, held_out (see convert_graph)
    summary: dict | None = None  # what `adacal convert --json` prints (set by convert)

    def simulate(self, data, y=None, adaptive: bool | None = None) -> dict:
        """The float SNN on data (a .npz path, an array x or a pair (x, y)):
        accuracy, spikes, synops and energy (see evaluate)."""
        from adacal.data import open_data
        samples = open_data(data, self.ann.input_shape, int(np.prod(self.ann.output_shape)), "data",
                            self.ann.output_shape)
        return evaluate(self, samples, samples.y if y is None else y, adaptive)

    def save(self, out_dir, force: bool = False, model_path=None, emit_nir: bool = False):
        """Write what `adacal convert -o DIR` writes: manifest.json,
        report.json, report.html, network.txt (and network.nir)."""
        from adacal.output import write_output_dir
        from adacal.report_html import render
        from pathlib import Path
        man = manifest(self, None if model_path is None else Path(model_path).read_bytes(), "float")
        summary = self.summary or {"options": self.options.recorded(), **conversion_fields(self)}
        files = {"manifest.json": man, "report.json": summary, "network.txt": str(self.snn),
                 "report.html": render(summary, man).encode("utf-8")}
        if emit_nir:
            from adacal.backends.nir.export import nir_writer
            files["network.nir"] = nir_writer(self)
        return write_output_dir(out_dir, files, force=force)


# Below this share of check samples on which the SNN predicts what the ANN
# predicts, the conversion is reported with a warning (how it was chosen:
# docs/method.md, Calibration check).
AGREEMENT_WARNING = 0.97
#: for regression outputs (float targets), the warning is on the relative L2
#: error of the readout instead (docs/method.md, Calibration check)
RELATIVE_L2_WARNING = 0.10
#: the threshold-ratio search's cost table in the summary, by --search-cost
RATIO_COST_KEY = {"spikes": "synops", "events": "graded_synops"}
CHECK_SAMPLES = 256


class _Steps:
    """Times the pipeline's steps and reports them through `log`."""

    def __init__(self, log):
        self.log, self.timings = log, {}

    def run(self, name: str, fn, *args, **kw):
        t0 = time.perf_counter()
        if self.log:
            self.log(f"{name} ...")
        out = fn(*args, **kw)
        self.timings[name] = time.perf_counter() - t0
        if self.log:
            self.log(f"{name}: {self.timings[name]:.1f} s")
        return out

    def counted(self, name: str, total: int, unit: str, fn, *args, **kw):
        """run() with a progress task of `total` steps: fn gets progress=advance
        (a no-op unless log is an adacal.progress.Reporter)."""
        with progress_task(self.log, name, max(int(total), 0), unit) as advance:
            return self.run(name, fn, *args, progress=advance, **kw)


def _table(a: np.ndarray) -> list:
    """A search table for JSON: entries a search left out (inf) become null."""
    return [[float(v) if np.isfinite(v) else None for v in row] for row in np.asarray(a, np.float64)]


def calibration_indices(n: int, count: int, seed: int) -> np.ndarray:
    """Which of n samples calibrate: `count` of them, seeded, sorted."""
    idx = np.random.default_rng(seed).permutation(n)[: min(count, n)]
    idx.sort()
    return idx


def check_indices(n: int, count: int, seed: int) -> np.ndarray:
    """Up to CHECK_SAMPLES of the n samples that calibration_indices(n,
    count, seed) leaves out (the same permutation), sorted."""
    idx = np.random.default_rng(seed).permutation(n)[count: count + CHECK_SAMPLES]
    idx.sort()
    return idx


def pick_calibration(x: np.ndarray, y, n: int, seed: int):
    idx = calibration_indices(len(x), n, seed)
    return x[idx], (None if y is None else y[idx])


def pick_check(x: np.ndarray, n: int, seed: int) -> np.ndarray | None:
    """Up to CHECK_SAMPLES samples of x that pick_calibration(x, y, n, seed)
    leaves out (the same permutation), or None when it takes them all."""
    idx = check_indices(len(x), n, seed)
    return x[idx] if len(idx) else None


def split_calibration(calib, opts: ConvertOptions):
    """calib (adacal.data.Samples, x or (x, y)) -> the calibration samples
    (a Subset, read in batches), their y, and the check samples (an array, or
    None): calibration_indices and check_indices with the options' count and
    seed."""
    from adacal.data import Subset, open_data
    calib = open_data(calib)
    cal = Subset(calib, calibration_indices(len(calib), opts.calib_samples, opts.seed))
    chk = check_indices(len(calib), opts.calib_samples, opts.seed)
    return cal, cal.y, (calib.take(chk) if len(chk) else None)


def convert_graph(ann: ir.Graph, x_cal, y_cal, opts: ConvertOptions, log=None,
                  x_check: np.ndarray | None = None, workers: int = 1, cluster=None) -> Conversion:
    """Convert and calibrate on x_cal (an array, or adacal.data Samples /
    Subset read in batches); the calibration check runs on x_check (samples
    calibration did not see) or, without it, on x_cal.

    With more calibration samples than opts.batch_size, the thresholds, the
    searches and the calibration are streamed: memory stays that of one
    batch (docs/method.md, "Streamed calibration").  workers / cluster: the
    searches' trials sharded over Dask (adacal.distribute)."""
    from adacal.data import open_data

    opts.check()
    T = opts.timesteps
    steps = _Steps(log)
    if opts.maxpool == "hoist":
        ann = hoist_maxpool(ann)
    snn = to_spiking(ann, opts.spike_range[1] if opts.search_spikes else opts.max_spikes, opts.maxpool, opts.neuron)
    names = neuron_names(snn)
    conv = Conversion(ann, snn, opts)
    cal = open_data(x_cal) if isinstance(x_cal, np.ndarray) or not hasattr(x_cal, "batches") else x_cal
    bs = opts.batch_size
    runner = None
    if workers > 1 or cluster is not None:
        from adacal.distribute import trial_runner
        runner = trial_runner(workers, cluster, log)
    snn, ann_out = _calibrate(steps, conv, ann, snn, cal, opts, runner)
    held_out = x_check is not None and len(x_check) > 0
    if held_out:
        x_chk = np.asarray(x_check, np.float32)
        sim, _ = steps.run("calibration check", simulate, snn, x_chk, T)
        chk_ann = ann.run(x_chk)
    else:
        sim = steps.run("calibration check", simulate_batches, snn, cal.batches(bs), T)
        chk_ann = ann_out
    n_chk = sim.outputs.shape[1]
    chk_ref = chk_ann.reshape(n_chk, -1).argmax(axis=1)
    agree = float((sim.mean_output().reshape(n_chk, -1).argmax(axis=1) == chk_ref).mean())
    conv.calibration_check = {"agreement": agree, "output_error": output_error(sim.mean_output(), chk_ann),
                              "regression": y_cal is not None and not has_labels(y_cal),
                              "samples": n_chk, "held_out": held_out}
    if opts.adaptive_timesteps:
        if held_out:
            sim = simulate_batches(snn, cal.batches(bs), T)
        ref = y_cal if has_labels(y_cal) else ann_out.reshape(len(ann_out), -1).argmax(axis=1)
        conv.exit_policy = adaptive_timesteps.calibrate(sim.outputs, ref, opts.exit_metric, opts.exit_level)
    conv.snn = snn
    conv.timings = steps.timings
    return conv


def simulate_batches(snn: ir.Graph, batches, T: int, fanout: dict | None = None):
    """The float SNN's SimResult over an iterable of batches of samples."""
    return concat_results([simulate(snn, xb, T, fanout=fanout, batch_size=len(xb))[0] for xb in batches])


def _calibrate(steps, conv, ann, snn, cal, opts, runner=None):
    """Thresholds, the searches and calibration.  Returns (snn, the ANN's
    outputs on the calibration samples).

    Up to opts.batch_size calibration samples: everything in memory, as one
    batch.  More: streamed, memory one batch — the ANN's statistics instead
    of its activations (passes.ann_statistics), the searches' trials batch
    by batch, the streamed calibration; the same result (docs/method.md,
    "Streamed calibration").  runner: the searches' trial runner for Dask
    (default: in this process)."""
    T, bs = opts.timesteps, opts.batch_size
    names = neuron_names(snn)
    if len(cal) > bs:
        signed = {n: snn.node(n).op.signed for n in names}
        stats, ann_out = steps.run("activation statistics", ann_statistics.gather, ann, lambda: cal.batches(bs),
                                   names, signed, opts.threshold, neuron_means=opts.calibration == "advanced")
        fit = lambda name, phi: stats[name].thresholds(T, phi, opts.threshold)  # noqa: E731
        x_trials, runner = cal, runner or search_trials.batched(bs)

        def calibrate(name, snn):
            return steps.counted(name, len(names), "layers", bias_correction.correct_streamed, snn, stats,
                                 lambda: cal.batches(bs), T, opts.calibration)
    else:
        x_trials = cal.array()
        acts = ann.activations(x_trials, names)
        fit = threshold_fit(acts, T, opts.threshold, snn)
        ann_out = ann.run(x_trials)
        runner = runner or search_trials.local

        def calibrate(name, snn):
            return steps.counted(name, len(names), "layers", bias_correction.correct, snn, acts, x_trials, T,
                                 opts.calibration)

    snn = steps.counted("thresholds", len(names), "layers", _fit_thresholds, snn, fit)
    if opts.search_spikes:
        lo, hi = opts.spike_range
        res = steps.counted("burst-cap search", len(names) * (hi - lo + 1), "layer x cap trials",
                            search_max_spikes, snn, fit, ann_out, x_trials, T,
                            tuple(opts.spike_range), opts.max_spikes, opts.energy_budget, opts.threshold,
                            price=opts.search_cost, runner=runner)
        for name, phi in zip(res.layers, res.chosen):
            snn = with_max_spikes(snn, fit, T, name, phi, opts.threshold)
        # the cost table and budget are named after what they count: spikes, or events
        conv.searches["burst_caps"] = {"candidates": list(res.candidates), "chosen": list(res.chosen),
                                       "cost": res.price, f"budget_{res.price}": res.budget,
                                       "sensitivity": _table(res.sensitivity), res.price: _table(res.cost)}
    snn = calibrate("calibration", snn)
    if opts.search_thresholds:
        fan = energy.fanout_maps(snn)
        trials = len(names) * (len(RATIOS) - 1)  # at most: the search prunes
        res = steps.counted("threshold-ratio search", trials, "layer x ratio trials", search_threshold_ratios,
                            snn, ann_out, x_trials, T, opts.sensitivity_budget, fan, price=opts.search_cost,
                            runner=runner)
        conv.threshold_ratios = dict(zip(res.layers, res.chosen))
        snn = scale_thresholds(snn, conv.threshold_ratios)
        snn = calibrate("calibration after ratios", snn)
        conv.searches["threshold_ratios"] = {"ratios": list(res.ratios), "chosen": list(res.chosen),
                                             "budget_kl": res.budget, "sensitivity": _table(res.sensitivity),
                                             "cost": res.price, RATIO_COST_KEY[res.price]: _table(res.cost)}
    return snn, ann_out


def _fit_thresholds(snn: ir.Graph, fit, progress=None) -> ir.Graph:
    """Every neuron layer's thresholds from fit(name, its burst cap)."""
    for name in neuron_names(snn):
        snn = set_neuron(snn, name, threshold=fit(name, snn.node(name).op.max_spikes))
        if progress:
            progress()
    return snn


def evaluate_part(conv: Conversion, x: np.ndarray, fan: dict) -> tuple:
    """evaluate's per-sample work on x: (the float SNN's SimResult, with
    spike and synop counts, the ANN's outputs (N, classes)); fan:
    energy.fanout_maps(conv.snn), computed once per evaluation.  The Dask
    engine (adacal.distribute.evaluate) runs it on shards of the samples."""
    sim, _ = simulate(conv.snn, x, conv.options.timesteps, fanout=fan, batch_size=len(x))
    return sim, conv.ann.run(x, batch_size=len(x)).reshape(len(x), -1)


def evaluate(conv: Conversion, x, y=None, adaptive: bool | None = None, workers: int = 1, cluster=None,
             log=None) -> dict:
    """Accuracy, spikes, synops and energy of the converted SNN on x (and
    y): an array, or adacal.data Samples read in batches of the options'
    batch_size (memory then holds one batch and the per-sample results).
    workers > 1 or cluster: the samples sharded on Dask (adacal.distribute);
    the same numbers.  The result says how it ran: "engine" ("local" or
    "dask") and "workers"."""
    from adacal.data import open_data
    from adacal.distribute import check_engine

    data = open_data(x)
    if y is None:
        y = data.y
    if check_engine(workers, cluster) > 1 or cluster is not None:
        from adacal import distribute
        parts, engine = distribute.evaluate(conv, data, log, workers, cluster)
    else:
        parts, engine = [], {"engine": "local", "workers": 1}
        fan = energy.fanout_maps(conv.snn)
        with progress_task(log, "float SNN evaluation", len(data), "samples") as advance:
            for xb in data.batches(conv.options.batch_size):
                parts.append(evaluate_part(conv, xb, fan))
                advance(len(xb))
    return {**evaluate_merge(conv, parts, y, adaptive), **engine}


def evaluate_merge(conv: Conversion, parts: list, y=None, adaptive: bool | None = None) -> dict:
    """evaluate's answer from the evaluate_part results of consecutive
    batches or shards, in order."""
    snn, ann, T = conv.snn, conv.ann, conv.options.timesteps
    fan = energy.fanout_maps(snn)
    sim = concat_results([p[0] for p in parts])
    ann_out = np.concatenate([p[1] for p in parts])
    n = len(ann_out)
    policy = conv.exit_policy if adaptive in (None, True) else None
    if adaptive and policy is None:
        raise AdacalError("adaptive timesteps need an exit policy: convert with --adaptive-timesteps")
    if policy is not None:
        exit_step, pred = adaptive_timesteps.decide(sim.outputs, policy)
    else:
        exit_step = np.full(n, T)
        pred = sim.mean_output().reshape(n, -1).argmax(axis=1)
    act = measure(sim, pred, y, exit_step, T, energy.input_macs(snn))
    macs = energy.ann_macs(ann)
    cum = sim.outputs.reshape(T, n, -1).cumsum(axis=0).argmax(axis=2)
    return {
        "samples": n,
        "timesteps": T,
        "ann_accuracy": accuracy(ann_out.argmax(axis=1), y),
        "snn_accuracy": act.accuracy,
        "snn_accuracy_full_T": accuracy(sim.mean_output().reshape(n, -1).argmax(axis=1), y),
        "accuracy_by_timestep": accuracy_by_step(cum, y),
        "agreement_with_ann": float((pred == ann_out.argmax(axis=1)).mean()),
        "output_error": output_error(sim.mean_output(), ann_out),
        "avg_timesteps": act.avg_timesteps,
        "exit_histogram": list(act.exit_histogram),
        "spikes_per_sample": act.spikes_per_sample,
        "events_per_sample": act.events_per_sample,
        "synops_per_sample": act.synops_per_sample,
        "graded_synops_per_sample": act.graded_synops_per_sample,
        "ann_macs_per_sample": macs,
        "input_layer_macs_per_sample": act.input_layer_macs_per_sample,
        "ann_energy_pj_per_sample": energy.E_MAC_PJ * macs,
        "energy_pj_per_sample": act.energy_pj_per_sample,
        "energy_convention": ENERGY_CONVENTION,
        "per_layer": _layer_rows(conv, act, fan),
    }


def _layer_rows(conv: Conversion, act, fan: dict) -> list[dict]:
    """Per neuron layer: size, burst cap, thresholds, fan-out and activity."""
    layers = []
    for name in neuron_names(conv.snn):
        op, a = conv.snn.node(name).op, act.layers[name]
        layers.append({
            "name": name, "neurons": int(np.prod(conv.snn.node(name).shape)), "max_spikes": int(op.max_spikes),
            "threshold_mean": float(np.mean(op.threshold)),
            "threshold_ratio": float(conv.threshold_ratios.get(name, 1.0)),
            "fanout_mean": float(fan[name].mean()),
            "spikes_per_sample": a.spikes, "events_per_sample": a.events,
            "synops_per_sample": a.synops, "graded_synops_per_sample": a.graded_synops,
            "energy_pj_per_sample": energy.E_AC_PJ * a.synops,
        })
    return layers


def load_model(model) -> ir.Graph:
    """An ONNX model (path, bytes, ModelProto) or an IR graph, cleaned up."""
    return cleanup(model if isinstance(model, ir.Graph) else load_onnx(model))


def convert(model, calib, val=None, options: ConvertOptions | None = None, log=None, workers: int = 1, cluster=None,
            **kw) -> tuple[Conversion, dict]:
    """Python API: convert an ONNX model (path, bytes, ModelProto or IR graph)
    with calibration data.

    calib / val: a .npz path, a directory with x.npy (and y.npy), an array
    x, a pair (x, y) or an iterable of (x, y) batches (adacal.data).  Options as ConvertOptions or
    keyword arguments (timesteps=..., max_spikes=..., ...).
    workers / cluster: shard the searches' trials and the evaluation on val
    over Dask (adacal.distribute; the same numbers).
    Returns (conversion, summary dict) — the summary is what `adacal convert
    --json` prints.
    """
    from adacal.data import open_data

    t0 = time.perf_counter()
    opts = options or ConvertOptions(**kw)
    opts.check()
    ann = load_model(model)
    classes = int(np.prod(ann.output_shape))
    calib = open_data(calib, ann.input_shape, classes, "calibration", ann.output_shape)
    xc, yc, x_check = split_calibration(calib, opts)
    conv = convert_graph(ann, xc, yc, opts, log, x_check, workers, cluster)
    summary = {"options": opts.recorded(), "timings": conv.timings, **conversion_fields(conv)}
    if val is not None:
        val = open_data(val, ann.input_shape, classes, "validation", ann.output_shape)
        if log:
            log(f"evaluating on {len(val)} samples ...")
        summary.update(evaluate(conv, val, val.y, workers=workers, cluster=cluster, log=log))
    summary["seconds"] = time.perf_counter() - t0
    conv.summary = summary
    return conv, summary


def conversion_fields(conv: Conversion) -> dict:
    """What convert and the compile commands report about the conversion
    itself: the search tables, the exit policy and the ANN's conversion plan
    (as `adacal inspect --json` lists it)."""
    return {"searches": conv.searches,
            "exit_policy": conv.exit_policy.as_dict() if conv.exit_policy else None,
            "plan": [e.as_dict() for e in conversion_plan(conv.ann)],
            "calibration_check": conv.calibration_check,
            "warnings": conversion_warnings(conv)}


def check_samples(check: dict) -> str:
    """'256 held-out calibration-file samples' or '142 calibration samples':
    what a calibration_check was measured on, for the tables, report.html and
    the warning."""
    which = "held-out calibration-file samples" if check["held_out"] else "calibration samples"
    return f"{check['samples']} {which}"


def conversion_warnings(conv: Conversion) -> list[str]:
    """What a user should know before trusting the conversion (one line each)."""
    out = []
    c = conv.calibration_check
    o = conv.options
    setting = (f"(T={o.timesteps}, max spikes {o.max_spikes}, calibration {o.calibration}): expect "
               f"{{}}; more --timesteps, a larger --max-spikes or --calibration advanced usually help")
    if c is not None and c.get("regression"):
        rel = c["output_error"]["relative_l2"]
        if rel is None or rel > RELATIVE_L2_WARNING:
            shown = "undefined (the ANN's outputs are all 0)" if rel is None else f"{rel:.3f}"
            out.append(f"the SNN's readout is off the ANN's output by a relative L2 error of {shown} on "
                       f"{check_samples(c)} " + setting.format("a large error"))
    elif c is not None and c["agreement"] < AGREEMENT_WARNING:
        out.append(f"the SNN predicts what the ANN predicts on only {100 * c['agreement']:.1f} % of "
                   f"{check_samples(c)} " + setting.format("an accuracy loss"))
    return out


def check_line(check: dict) -> str:
    """The calibration check in one line, for the tables and report.html."""
    if check.get("regression"):
        rel = check["output_error"]["relative_l2"]
        shown = "n/a" if rel is None else f"{rel:.4f}"
        return f"SNN readout vs ANN output: relative L2 error {shown} on {check_samples(check)}"
    return f"SNN = ANN prediction on {100 * check['agreement']:.2f} % of {check_samples(check)}"


def manifest(conv: Conversion, source: bytes | None, target: str) -> dict:
    """What an output directory holds, for people and for loaders (source:
    the ONNX model's bytes, hashed into source_model_sha256)."""
    import hashlib

    from adacal import __version__
    sha = None if source is None else hashlib.sha256(source).hexdigest()
    layers = []
    for name in neuron_names(conv.snn):
        op = conv.snn.node(name).op
        layers.append({"name": name, "max_spikes": int(op.max_spikes), "threshold": op.threshold.tolist(),
                       "bias": op.bias.tolist(), "threshold_ratio": conv.threshold_ratios.get(name, 1.0)})
    return {
        "format": "adacal-" + target, "format_version": 1, "compiler_version": __version__,
        "target": target, "timesteps": conv.options.timesteps,
        "input": {"shape": list(conv.ann.input_shape), "dtype": "float32"},
        "output": {"shape": list(conv.ann.output_shape)},
        "source_model_sha256": sha, "options": conv.options.recorded(),
        "exit_policy": conv.exit_policy.as_dict() if conv.exit_policy else None,
        "neuron_layers": layers,
    }
