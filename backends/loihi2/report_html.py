"""What report.html shows for a Loihi 2 artifact, as plain data (adacal.target's
report types; adacal.report_html renders them): the title, the target line,
the per-layer activity (float and bit-accurate columns side by side) and the
resource estimate of backends/loihi2/resources.py.
"""
from __future__ import annotations

from adacal.target_report import Energy, LayerActivity, Num, ReportBlock, ReportTable, TargetReport


class Loihi2Report(TargetReport):
    def page_title(self, summary: dict) -> str:
        return "adacal report: Loihi 2 artifact"

    def target_line(self, summary: dict) -> str:
        return "Intel Loihi 2 (graded spikes, bit-accurate integer network)"

    def layer_activity(self, summary: dict, pj_per_synop: float) -> LayerActivity:
        layers = list(summary.get("per_layer") or [])
        header = ("layer", "neurons", "float spikes", "bit-accurate spikes", "bit-accurate events",
                  "bit-accurate synops", "bit-accurate energy", "float synops", "float energy")
        rows = tuple((L["name"], Num(L.get("neurons")), Num(L.get("spikes_per_sample")),
                      Num(L.get("bit_accurate_spikes_per_sample")), Num(L.get("bit_accurate_events_per_sample")),
                      Num(L.get("bit_accurate_synops_per_sample")), Energy(L.get("bit_accurate_energy_pj_per_sample")),
                      Num(L.get("synops_per_sample")), Energy(L.get("energy_pj_per_sample"))) for L in layers)
        counts = (("float spikes", tuple(L.get("spikes_per_sample") for L in layers)),
                  ("bit-accurate spikes", tuple(L.get("bit_accurate_spikes_per_sample") for L in layers)),
                  ("bit-accurate events", tuple(L.get("bit_accurate_events_per_sample") for L in layers)))
        return LayerActivity(
            note="Float columns: the float burst SNN; bit-accurate columns: the integer Loihi 2 network.",
            table=ReportTable(header, rows, numeric=tuple(range(1, len(header)))), counts=counts,
            energy=tuple(L.get("bit_accurate_energy_pj_per_sample", L.get("energy_pj_per_sample")) for L in layers),
            stages=(("input layer (MACs)", self.input_layer_energy(summary, pj_per_synop)),))

    def resource_blocks(self, summary: dict) -> tuple[ReportBlock, ...]:
        r = summary.get("resources") or {}
        lim = r.get("limits") or {}
        totals = ReportTable(("quantity", "value"), (
            ("neurons", Num(r.get("neurons"))), ("weights stored", Num(r.get("weights_stored"))),
            ("connections", Num(r.get("connections"))),
            ("synaptic memory (bytes)", Num(r.get("synaptic_memory_bytes"))),
            ("cores", (Num(r.get("cores")), " of ", Num(lim.get("cores_per_chip")), " per chip")),
            ("chips", Num(r.get("chips")))))
        layers = ReportTable(("layer", "neurons", "weights stored", "connections", "synaptic memory (B)", "cores"),
                             tuple((L["name"], Num(L.get("neurons")), Num(L.get("weights_stored")),
                                    Num(L.get("connections")), Num(L.get("synaptic_memory_bytes")),
                                    Num(L.get("cores"))) for L in r.get("layers") or []),
                             numeric=(1, 2, 3, 4, 5))
        return (ReportBlock(tables=(totals, layers), notes=(_limits(lim),) if lim else ()),)


def _limits(lim: dict) -> tuple:
    """'Limits: cores per chip 120, ... . Source: ...' as a report text."""
    parts: list = ["Limits: "]
    for i, (k, v) in enumerate((k, v) for k, v in lim.items() if k != "source"):
        parts += [", " if i else "", f"{k.replace('_', ' ')} ", Num(v)]
    if lim.get("source"):
        parts.append(f". Source: {lim['source']}")
    return tuple(parts)


REPORT = Loihi2Report("Loihi 2")
