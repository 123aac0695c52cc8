"""`adacal` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 a verification found a mismatch, 2 bad usage or bad
input (one message naming the problem, no traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from adacal import targets
from adacal.errors import AdacalError

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2
DATA_HELP = "a .npz with x (and y), or a directory with x.npy (and y.npy), read in batches"


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own convention too)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"adacal: error: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="adacal", description="ONNX -> calibrated burst-spiking networks "
                "(Adaptive Calibration) for Loihi 2 and Xylo.",
                epilog="Progress (messages, and bars on a terminal) goes to stderr only; --quiet and --json "
                "turn it off, and stdout holds only the result. Not on a terminal: plain occasional lines. "
                "ADACAL_PROGRESS=auto|rich|plain|off overrides the detection.")
    from adacal import __version__
    p.add_argument("--version", action="version", version=f"adacal {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    ins = sub.add_parser("inspect", help="show the conversion plan of an ONNX model",
                         description="Load an ONNX model and print the layer table: output shape, "
                         "parameters, MACs and what each layer becomes in the spiking network.")
    ins.add_argument("model", metavar="MODEL.onnx")
    ins.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    cv = sub.add_parser("convert", help="convert and calibrate the float burst SNN and report accuracy/energy",
                        description="Convert an ONNX model into a calibrated burst-spiking network (float "
                        "simulation, no hardware target) and report accuracy, spikes, synops and energy.")
    cv.add_argument("model", metavar="MODEL.onnx")
    cv.add_argument("--calib", required=True, metavar="CAL", help="calibration data (training samples): " + DATA_HELP)
    cv.add_argument("--val", metavar="VAL", help="validation data with labels y (for accuracy): " + DATA_HELP)
    cv.add_argument("-o", "--out", metavar="DIR", help="write report.json (and the converted graph) into DIR")
    cv.add_argument("--force", action="store_true", help="replace DIR if it is an existing adacal output")
    cv.add_argument("--emit-nir", action="store_true", help="also write the float burst SNN as a NIR graph, "
                    "DIR/network.nir (needs -o)")
    add_conversion_options(cv)
    add_engine_options(cv)
    cv.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    cv.add_argument("--quiet", action="store_true", help="no progress messages")
    for name in targets.names():
        add_compile_command(sub, targets.get(name))
    sm = sub.add_parser("simulate", help="run a compiled artifact with the bit-accurate simulator")
    sm.add_argument("artifact", metavar="OUTDIR")
    sm.add_argument("--data", required=True, metavar="DATA", help=DATA_HELP)
    sm.add_argument("--adaptive-timesteps", action="store_true", help="use the stored exit policy")
    add_run_options(sm, calibration=False)
    add_engine_options(sm)
    sm.add_argument("--json", action="store_true")
    sm.add_argument("--quiet", action="store_true", help="no progress messages")
    vf = sub.add_parser("verify", help="check a compiled artifact against the vendor's bit-accurate model")
    vf.add_argument("artifact", metavar="OUTDIR")
    vf.add_argument("--data", required=True, metavar="DATA", help=DATA_HELP)
    vf.add_argument("--samples", type=int, default=10, help="samples to compare (default 10)")
    add_engine_options(vf)
    vf.add_argument("--json", action="store_true")
    vf.add_argument("--quiet", action="store_true", help="no progress messages")
    return p


def add_engine_options(p: argparse.ArgumentParser) -> None:
    """--workers / --cluster: shard the samples over Dask workers (adacal.distribute)."""
    g = p.add_argument_group("workers (samples sharded on Dask; the same result as in one process)")
    g.add_argument("--workers", type=int, default=1, metavar="N",
                   help="worker processes of a local Dask cluster (default 1: no Dask, in this process)")
    g.add_argument("--cluster", metavar="ADDRESS",
                   help="use the running Dask scheduler at ADDRESS (tcp://host:8786) and its workers instead")


def add_compile_command(sub, target) -> None:
    """compile-<target>: the shared options, the conversion options and the
    target's own (Xylo's --device)."""
    c = sub.add_parser(target.command, help=target.help, description=target.description)
    c.add_argument("model", metavar="MODEL.onnx")
    c.add_argument("--calib", required=True, metavar="CAL", help=DATA_HELP)
    c.add_argument("-o", "--out", required=True, metavar="OUTDIR")
    for o in target.options:
        c.add_argument(o.flag, dest=o.dest, required=o.required, choices=o.choices, help=o.help)
    c.add_argument("--val", metavar="VAL", help="validation data: accuracy of ANN, float and bit-accurate SNN; "
                   + DATA_HELP)
    c.add_argument("--force", action="store_true", help="replace OUTDIR if it is an existing adacal output")
    c.add_argument("--emit-nir", action="store_true", help="also write the float burst SNN as a NIR graph, "
                   "OUTDIR/network.nir")
    add_conversion_options(c, graded=target.graded_spikes,
                           device_taken=any(o.flag == "--device" for o in target.options))
    add_engine_options(c)
    c.add_argument("--json", action="store_true")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(target=target.name)


def _spike_range(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(v) for v in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX, got '{text}'") from None
    return lo, hi


def add_conversion_options(p: argparse.ArgumentParser, graded: bool = True, device_taken: bool = False) -> None:
    """The conversion options shared by convert and the compile commands
    (--search-cost only where bursts can be graded messages: not on Xylo,
    which delivers a burst of k as k spikes)."""
    g = p.add_argument_group("conversion")
    g.add_argument("--timesteps", "-T", type=int, default=8, help="timesteps T (default 8)")
    g.add_argument("--max-spikes", type=int, default=4, help="burst cap φ: max spikes per neuron per step (default 4)")
    g.add_argument("--threshold", default="mse", help="mse (default), max or percentile:P")
    g.add_argument("--calibration", default="light", choices=("none", "light", "advanced"),
                   help="bias (light) or bias + potential (advanced) correction (default light)")
    g.add_argument("--calib-samples", type=int, default=256, help="calibration samples used (default 256)")
    g.add_argument("--search-spikes", action="store_true", help="search the burst cap per layer under a spike budget")
    g.add_argument("--spike-range", type=_spike_range, default=(1, 8), metavar="MIN:MAX",
                   help="burst caps the search may choose (default 1:8)")
    g.add_argument("--energy-budget", type=float, default=1.0, metavar="R",
                   help="spike budget relative to uniform --max-spikes (default 1.0)")
    g.add_argument("--search-thresholds", action="store_true",
                   help="raise thresholds per layer where the output is insensitive (fewer synops)")
    g.add_argument("--sensitivity-budget", type=float, default=1.0, metavar="L",
                   help="allowed output divergence relative to unscaled thresholds (default 1.0)")
    if graded:
        g.add_argument("--search-cost", default="spikes", choices=("spikes", "events"),
                       help="what the searches price: spikes (a burst of k counts k; the paper, Xylo; default) "
                            "or events (a burst is one graded message: Loihi 2)")
        g.add_argument("--neuron", default="burst", choices=("burst", "memory"),
                       help="burst (the method's neurons; default) or memory: a neuron may send negative bursts "
                            "to take back spikes it sent earlier, never more than it sent (signed graded spikes: "
                            "not on Xylo); removes the error of inputs that arrive unevenly over the timesteps")
    g.add_argument("--maxpool", default="hoist", choices=("step", "gated", "running", "hoist"),
                   help="how a max pool over spikes runs: step (max of each step's payloads), gated (the input "
                        "with the largest count so far passes), running (the running max of the counts), hoist "
                        "(running, and max pools over neurons fed by the analog input move before them; default)")
    g.add_argument("--adaptive-timesteps", action="store_true", help="stop each sample once confident")
    g.add_argument("--exit-metric", default="confidence", choices=("confidence", "entropy"))
    g.add_argument("--exit-level", type=float, default=0.9, metavar="A",
                   help="0..1: higher waits longer (more accurate), 1 never exits early (default 0.9)")
    g.add_argument("--seed", type=int, default=0, help="seed for the choice of calibration samples")
    add_run_options(g, device_taken=device_taken)


def add_run_options(g, calibration: bool = True, device_taken: bool = False) -> None:
    """--batch-size and the torch device of the float stages: --device (also
    --compute-device), or only --compute-device where --device is taken (Xylo's
    chip)."""
    more = (": with more calibration samples than this, calibration is streamed and memory stays that of one "
            "batch" if calibration else "")
    g.add_argument("--batch-size", type=int, default=256, metavar="N",
                   help=f"samples read and simulated at a time (default 256){more}")
    flags = ["--compute-device"] if device_taken else ["--device", "--compute-device"]
    g.add_argument(*flags, dest="compute_device", default="cpu", metavar="DEV",
                   help="torch device of the float stages and the integer simulator's sums: cpu (default), cuda, "
                        "cuda:N or mps")


def conversion_options(args):
    from adacal.pipeline import ConvertOptions
    return ConvertOptions(
        timesteps=args.timesteps, max_spikes=args.max_spikes, threshold=args.threshold,
        calibration=args.calibration, calib_samples=args.calib_samples, search_spikes=args.search_spikes,
        spike_range=tuple(args.spike_range), energy_budget=args.energy_budget,
        search_thresholds=args.search_thresholds, sensitivity_budget=args.sensitivity_budget,
        search_cost=getattr(args, "search_cost", "spikes"), maxpool=args.maxpool,
        neuron=getattr(args, "neuron", "burst"),
        adaptive_timesteps=args.adaptive_timesteps, exit_metric=args.exit_metric, exit_level=args.exit_level,
        seed=args.seed, batch_size=args.batch_size)


def _log(args):
    """The command's progress reporter (adacal.progress.Reporter: messages and
    progress bars on stderr), or None with --quiet or --json: stdout holds the
    result alone, and with --json/--quiet stderr holds errors alone."""
    if getattr(args, "quiet", False) or getattr(args, "json", False):
        return None
    rep = getattr(args, "_reporter", None)
    if rep is None:
        from adacal.progress import Reporter
        rep = args._reporter = Reporter.from_env(sys.stderr)
    return rep


def _close_log(args) -> None:
    """Stop the progress display (before the result or an error is printed)."""
    rep = getattr(args, "_reporter", None)
    if rep is not None:
        rep.close()


def cmd_convert(args) -> int:
    from adacal.pipeline import convert
    from adacal.report import format_summary

    opts = conversion_options(args)
    opts.check()
    _check_engine(args)
    if args.emit_nir and not args.out:
        raise AdacalError("--emit-nir needs an output directory for network.nir: add -o DIR")
    g, calib, val = _load_model_and_data(args)
    if args.out:
        from adacal.output import check_output_dir
        check_output_dir(args.out, args.force)
    conv, summary = convert(g, calib, val, options=opts, log=_log(args), workers=args.workers, cluster=args.cluster)
    if args.out:
        conv.save(args.out, force=args.force, model_path=args.model, emit_nir=args.emit_nir)
    _close_log(args)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return EXIT_OK


def _load_model_and_data(args):
    from adacal.data import open_data
    from adacal.frontends.onnx import load_onnx
    from adacal.passes import cleanup

    g = cleanup(load_onnx(args.model))
    classes = int(np.prod(g.output_shape))
    calib = open_data(args.calib, g.input_shape, classes, "calibration", g.output_shape)
    val = open_data(args.val, g.input_shape, classes, "validation", g.output_shape) if args.val else None
    return g, calib, val


def cmd_compile(args) -> int:
    from adacal.artifact import compile_model
    from adacal.output import check_output_dir
    from adacal.report import format_compile_summary

    target = targets.get(args.target)
    opts = conversion_options(args)
    opts.check()
    _check_engine(args)
    topts = target.configure(opts, **{o.dest: getattr(args, o.dest) for o in target.options})
    check_output_dir(args.out, args.force)
    g, calib, val = _load_model_and_data(args)
    _, summary = compile_model(g, target.name, calib, args.out, val=val, options=opts, force=args.force,
                               log=_log(args), model_path=args.model, emit_nir=args.emit_nir,
                               workers=args.workers, cluster=args.cluster, **topts)
    _close_log(args)
    print(json.dumps(summary, indent=2) if args.json else format_compile_summary(summary, args.out))
    return EXIT_OK


def _check_engine(args) -> None:
    """--workers / --cluster checked before anything loads."""
    from adacal.distribute import check_engine
    check_engine(args.workers, args.cluster)


def cmd_simulate(args) -> int:
    from adacal.artifact import load_artifact

    _check_engine(args)
    art = load_artifact(args.artifact)
    if args.batch_size < 1:
        raise AdacalError(f"--batch-size must be >= 1, got {args.batch_size}")
    res = art.simulate(args.data, adaptive=args.adaptive_timesteps, log=_log(args), workers=args.workers,
                       cluster=args.cluster, batch_size=args.batch_size)
    res.pop("predictions")
    res.pop("outputs")
    _close_log(args)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        from adacal.report import output_error_text
        acc = "n/a (no labels)" if res["accuracy"] is None else f"{100 * res['accuracy']:.2f} %"
        print(f"{res['samples']} samples on {art.target} (bit-accurate): accuracy {acc}, "
              f"avg timesteps {res['avg_timesteps']:.2f}, spikes/sample {res['spikes_per_sample']:,.0f}, "
              f"synops/sample {res['synops_per_sample']:,.0f}, energy {res['energy_pj_per_sample'] / 1e6:.3f} uJ, "
              f"output error vs ANN: {output_error_text(res['output_error'])}")
    return EXIT_OK


def cmd_verify(args) -> int:
    from adacal.artifact import load_artifact

    if args.samples < 1:
        raise AdacalError(f"--samples must be >= 1, got {args.samples}")
    _check_engine(args)
    art = load_artifact(args.artifact)
    res = art.verify(args.data, args.samples, log=_log(args), workers=args.workers, cluster=args.cluster)
    _close_log(args)
    if args.json:
        print(json.dumps(res, indent=2))
    elif res["first_mismatch"] is None:
        print(f"verify: {res['samples']} samples bit-exact against {res['reference']} "
              f"({res['layers_compared']} layers, every step); adacal {res['adacal_seconds']:.2f} s, "
              f"reference {res['reference_seconds']:.2f} s")
    else:
        m = res["first_mismatch"]
        print(f"verify: MISMATCH in {res['mismatched_samples']} of {res['samples']} samples; first at layer "
              f"'{m['layer']}', step {m['step']}, sample {m['sample']}, neuron {m['neuron']}: "
              f"adacal {m['adacal']} vs {res['reference']} {m['reference']}")
    return EXIT_OK if res["first_mismatch"] is None else EXIT_MISMATCH


def cmd_inspect(args) -> int:
    from adacal.report import inspect_model, format_plan
    info = inspect_model(args.model)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_plan(info))
    return EXIT_OK


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "compute_device", None) is None:
            return _dispatch(args)  # torch is not imported here for a command that has no torch device
        from adacal.device import using
        with using(args.compute_device):
            return _dispatch(args)
    except AdacalError as e:
        _close_log(args)  # clear the progress bars before the message
        sys.stderr.write(f"adacal: error: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _close_log(args)
        sys.stderr.write("adacal: interrupted\n")
        return 130
    except BrokenPipeError:
        # stdout was closed early (`adacal ... --json | head`): no traceback, and
        # none at exit either (the Python docs' recipe for SIGPIPE)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    finally:
        _close_log(args)


def _dispatch(args) -> int:
    if args.command == "inspect":
        return cmd_inspect(args)
    if args.command == "convert":
        return cmd_convert(args)
    if getattr(args, "target", None):
        return cmd_compile(args)
    if args.command == "simulate":
        return cmd_simulate(args)
    return cmd_verify(args)  # argparse admits no other command


if __name__ == "__main__":
    sys.exit(main())
