"""What a compile target provides: one `Target` object per `backends/<target>/`
package, and the `Lowering` it produces.

The split follows Lava's Process / ProcessModel: the Target says what the
target is (its name, its options, its design rules, how its files load and
how they are checked against the vendor's model); a Lowering is one network
realised for it, which evaluates, simulates and saves itself.

compiler/ drives targets only through this interface (see adacal.targets for
the registry); a backend imports this module, never the compiler's pipeline.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

#: per-layer float-vs-integer errors are measured on at most this many samples
ERROR_SAMPLES = 128

#: what a Lowering saves: file name -> bytes, a JSON-able dict, or a callable
#: that writes the file at the path it is given
FileContent = Any


@dataclass(frozen=True)
class TargetOption:
    """A command-line option a target adds to its compile command (and the
    keyword argument of the same `dest` that adacal.compile accepts)."""
    flag: str
    dest: str
    help: str
    choices: tuple[str, ...] | None = None
    required: bool = False


@dataclass(frozen=True)
class Saved:
    """What a Lowering contributes to an artifact directory: its files, the
    target's fields of manifest.json, and of report.json."""
    files: Mapping[str, FileContent]
    manifest: Mapping[str, Any]
    summary: Mapping[str, Any]


class Lowering(ABC):
    """One network realised for a target, in the target's integer arithmetic."""

    timesteps: int

    @abstractmethod
    def evaluate(self, conv, x: np.ndarray, y, float_eval: dict, log=None, parts: list | None = None) -> dict:
        """The compile report's bit-accurate fields on validation data x (y):
        accuracy, activity, energy, per-layer figures.  float_eval is the
        float SNN's evaluation on the same data (adacal.pipeline.evaluate).
        parts: evaluate_part's results on consecutive shards of x, computed
        elsewhere (adacal.distribute), instead of running x here."""

    def evaluate_part(self, conv, x: np.ndarray) -> Any:
        """evaluate's per-sample work (the bit-accurate run) on x, as one
        picklable result; the default keeps it all for evaluate (the part is
        x itself, which evaluate then ignores)."""
        return None

    @abstractmethod
    def simulate(self, x: np.ndarray, y, adaptive: bool, manifest: dict) -> dict:
        """Run bit-accurately on x: the `simulate --json` fields plus
        'predictions' and 'outputs' (N, ...): the readout in the ANN's units
        (docs/method.md, "Output error")."""

    @abstractmethod
    def save(self, conv, log=None) -> Saved:
        """The target's files, manifest and report fields for conversion conv."""

    # -- sharded simulation (adacal.distribute) ----------------------------
    def simulate_part(self, x: np.ndarray) -> Any:
        """simulate's per-sample work on x, as one picklable result.  The
        Dask engine (adacal.distribute) runs it in worker processes on
        contiguous shards of the samples and hands the results, in sample
        order, to simulate_merge, whose answer must equal simulate's on all
        the samples.  The default keeps all the work for simulate_merge (the
        part is x itself); a target overrides both to do the work here."""
        return np.asarray(x)

    def simulate_merge(self, parts: list, y, adaptive: bool, manifest: dict) -> dict:
        """simulate's answer from the simulate_part results of consecutive
        shards, in order (y, adaptive, manifest: simulate's, for all samples)."""
        return self.simulate(np.concatenate(parts), y, adaptive, manifest)


class Target(ABC):
    """A hardware target: one object in its backend package, named in the
    registry (adacal.targets)."""

    name: str = ""
    #: the name people use ("Loihi 2")
    title: str = ""
    #: one line for `adacal --help`, and the compile command's description
    help: str = ""
    description: str = ""
    #: options the target adds to its compile command
    options: tuple[TargetOption, ...] = ()
    #: whether a burst travels as one graded message (the searches may then
    #: price events: --search-cost)
    graded_spikes: bool = False
    #: whether an artifact can stop each sample early (--adaptive-timesteps)
    adaptive_timesteps: bool = True
    #: the module whose REPORT (a TargetReport) says what report.html shows for
    #: the target ("": the target-neutral TargetReport)
    report_module: str = ""

    @property
    def command(self) -> str:
        return f"compile-{self.name}"

    def report(self):
        """What report.html shows for this target: an
        adacal.target_report.TargetReport (adacal.report_html renders it)."""
        from adacal.target_report import TargetReport
        if not self.report_module:
            return TargetReport(self.title or self.name)
        import importlib
        return importlib.import_module(self.report_module).REPORT

    def configure(self, conv_options, **target_options) -> dict:
        """Check the target's own options (and how the conversion options suit
        the target) before anything runs; return them normalised.  Raises
        AdacalError with one line naming the problem."""
        unknown = set(target_options) - {o.dest for o in self.options}
        if unknown:
            from adacal.errors import AdacalError
            raise AdacalError(f"target '{self.name}' has no option {', '.join(sorted(unknown))}")
        return dict(target_options)

    def check(self, conv, x_cal: np.ndarray, target_options: dict) -> list[str]:
        """Design rules: the problems that keep conv off this target (empty
        when it fits)."""
        return []

    def problems_message(self, problems: list[str], target_options: dict) -> str:
        """The one-line error for design-rule problems."""
        n = len(problems)
        return (f"the network does not fit {self.title or self.name} ({n} design-rule "
                f"violation{'s' if n > 1 else ''}): " + "; ".join(problems))

    @abstractmethod
    def lower(self, conv, x_cal: np.ndarray, target_options: dict, log=None) -> Lowering:
        """Lower a converted, calibrated float SNN to the target's integers."""

    @abstractmethod
    def load(self, path: Path, manifest: dict) -> Lowering:
        """The Lowering stored in artifact directory path."""

    @abstractmethod
    def verify(self, lowering: Lowering, x: np.ndarray, log=None) -> dict:
        """Run x through adacal's simulator and the vendor's own bit-accurate
        model and compare: the `verify --json` fields."""

    def verify_merge(self, lowering: Lowering, parts: list[tuple[int, dict]]) -> dict:
        """One verdict from verify's results on contiguous shards of the
        samples, given as (index of the shard's first sample, result) in
        order (adacal.distribute).  The default: merge_verify_results, the
        first mismatch being the lowest sample's; a target whose verify
        orders mismatches otherwise overrides this to give verify's own."""
        return merge_verify_results(parts)


def merge_verify_results(parts: list[tuple[int, dict]], key=None) -> dict:
    """Merge verify results of consecutive sample shards [(offset, result),
    ...]: `samples` and `mismatched_samples` summed, `adacal_seconds` and
    `reference_seconds` summed (time spent, over all workers), the other
    fields the first shard's; `first_mismatch` the smallest of the shards'
    first mismatches (their `sample` made global by adding the offset) under
    key(mismatch) (default: the sample index, then the step)."""
    if not parts:
        raise ValueError("merge_verify_results: no results")
    out = dict(parts[0][1])
    for name in ("samples", "mismatched_samples"):
        out[name] = int(sum(r[name] for _, r in parts))
    for name in ("adacal_seconds", "reference_seconds"):
        if all(name in r for _, r in parts):
            out[name] = float(sum(r[name] for _, r in parts))
    found = [{**r["first_mismatch"], "sample": int(r["first_mismatch"]["sample"]) + int(off)}
             for off, r in parts if r.get("first_mismatch") is not None]
    out["first_mismatch"] = min(found, key=key or (lambda m: (m["sample"], m["step"]))) if found else None
    return out
