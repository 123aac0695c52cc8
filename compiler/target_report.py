"""What a target shows in report.html, as plain data: adacal.report_html
formats and renders it, so a backend needs no HTML and no compiler internals.
A report text is a str, a Num / Energy / Value, or a tuple of these (joined);
any other value shows as str(value)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Num:
    """A number, readably: integers with thousands separators, others with
    `digits` significant digits; None -> n/a, booleans -> yes / no."""
    value: Any
    digits: int = 3


@dataclass(frozen=True)
class Energy:
    """An energy in pJ, in the unit that reads best (None -> n/a)."""
    pj: Any


@dataclass(frozen=True)
class Value:
    """Any JSON value, compactly (lists as [a, b], numbers as Num)."""
    value: Any


@dataclass(frozen=True)
class ReportTable:
    """A table: its column names and rows of report texts ('' shows as a
    dash); numeric: the indices of the right-aligned columns."""
    header: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    numeric: tuple[int, ...] = ()


@dataclass(frozen=True)
class ReportBlock:
    """A piece of a report section: an optional sub-heading, then tables, then
    notes (report texts)."""
    heading: str = ""
    tables: tuple[ReportTable, ...] = ()
    notes: tuple[Any, ...] = ()


@dataclass(frozen=True)
class LayerActivity:
    """The per-layer activity of a target's report: a note on the columns;
    the table (a row per summary['per_layer'] entry, then the target's input
    stages); the series of the spikes-and-events chart (name, a value per
    layer); the energy per layer (pJ) and the energy bars after the layers
    (label, pJ; None: no bar)."""
    note: str
    table: ReportTable
    counts: tuple[tuple[str, tuple], ...]
    energy: tuple
    stages: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class TargetReport:
    """What report.html shows for a target's artifact (report.json = the
    summary).  The defaults are target-neutral; a backend subclasses this in
    backends/<target>/report_html.py and names that module in
    Target.report_module."""
    #: the name people use ("Loihi 2")
    title: str

    def page_title(self, summary: dict) -> str:
        """The page's title and heading."""
        return f"adacal report: {self.title} artifact"

    def target_line(self, summary: dict) -> str:
        """The overview's 'target' entry: what the network runs on."""
        return f"{self.title} (bit-accurate integer network)"

    def accuracy_note(self, summary: dict) -> str:
        """What the bit-accurate accuracy-per-timestep curve means on the
        target, when that needs saying ('' otherwise)."""
        return ""

    def layer_activity(self, summary: dict, pj_per_synop: float) -> LayerActivity | None:
        """The per-layer activity table and charts (pj_per_synop: the energy
        convention's pJ per synaptic operation); None: the float summary's
        layout (spikes, events, synops, graded synops, energy, fan-out)."""
        return None

    def quantisation_blocks(self, summary: dict) -> tuple[ReportBlock, ...]:
        """What the quantisation-error section shows after the per-layer error
        (the target's own calibration, say)."""
        return ()

    def resource_blocks(self, summary: dict) -> tuple[ReportBlock, ...]:
        """The hardware-resources section, for a summary with resources."""
        r = summary.get("resources") or {}
        pairs = tuple((k.replace("_", " "), Value(v)) for k, v in r.items() if not isinstance(v, (dict, list)))
        return (ReportBlock(tables=(ReportTable(("quantity", "value"), pairs),)),)

    @staticmethod
    def input_layer_energy(summary: dict, pj_per_synop: float) -> float | None:
        """The energy of the layers reading the analog input (MACs): the SNN's
        energy per sample less its synaptic operations'."""
        if summary.get("energy_pj_per_sample") is None:
            return None
        syn = summary.get("synops_per_sample") or 0.0
        return max(float(summary["energy_pj_per_sample"]) - pj_per_synop * float(syn), 0.0)
