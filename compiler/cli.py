"""`adacal` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 a verification found a mismatch, 2 bad usage or bad
input (one message naming the problem, no traceback).
"""
from __future__ import annotations

import argparse
import json
import sys

from adacal.errors import AdacalError

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2

# commands of architecture.md that later issues build; they exist so --help
# lists the whole interface, and say plainly that they are not built yet.
PLANNED = {
    "convert": "convert and calibrate the float burst SNN and report accuracy/energy",
    "compile-loihi2": "compile for Intel Loihi 2 (Lava, graded spikes) into an artifact directory",
    "compile-xylo": "compile for SynSense Xylo (Rockpool/xylosim) into an artifact directory",
    "simulate": "run a compiled artifact with the bit-accurate simulator",
    "verify": "check a compiled artifact against the vendor's bit-accurate model",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse's own convention too)
        self.print_usage(sys.stderr)
        sys.stderr.write(f"adacal: error: {message}\n")
        sys.exit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="adacal", description="ONNX -> calibrated burst-spiking networks "
                "(Adaptive Calibration) for Loihi 2 and Xylo.")
    from adacal import __version__
    p.add_argument("--version", action="version", version=f"adacal {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    ins = sub.add_parser("inspect", help="show the conversion plan of an ONNX model",
                         description="Load an ONNX model and print the layer table: output shape, "
                         "parameters, MACs and what each layer becomes in the spiking network.")
    ins.add_argument("model", metavar="MODEL.onnx")
    ins.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    for name, text in PLANNED.items():
        sp = sub.add_parser(name, help=f"{text} (not built yet)", description=f"{text}. Not built yet.")
        sp.add_argument("args", nargs=argparse.REMAINDER)
    return p


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
        if args.command == "inspect":
            return cmd_inspect(args)
        sys.stderr.write(f"adacal: error: '{args.command}' is not built yet in adacal "
                         f"{__import__('adacal').__version__}\n")
        return EXIT_USAGE
    except AdacalError as e:
        sys.stderr.write(f"adacal: error: {e}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("adacal: interrupted\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
