"""What report.html shows for a Xylo artifact, as plain data (adacal.target's
report types; adacal.report_html renders them): the device in the title, the
readout behind the accuracy curve, the per-layer events (with the input
encoder and the bias units, which cost synaptic operations too), the
calibration on the Xylo arithmetic and the device's resources.
"""
from __future__ import annotations

from adacal.target_report import Energy, LayerActivity, Num, ReportBlock, ReportTable, TargetReport, Value


class XyloReport(TargetReport):
    def page_title(self, summary: dict) -> str:
        return f"adacal report: {summary.get('device', 'Xylo')} artifact"

    def target_line(self, summary: dict) -> str:
        return f"SynSense {summary.get('device', 'Xylo')} (bit-exact Xylo arithmetic)"

    def accuracy_note(self, summary: dict) -> str:
        return ("Xylo: argmax of the output Vmem after input step t (aligned so that t = T is the readout "
                "after the last step).")

    def layer_activity(self, summary: dict, pj_per_synop: float) -> LayerActivity:
        s, layers = summary, list(summary.get("per_layer") or [])
        header = ("layer", "neurons", "float SNN spikes", "Xylo events", "bursts", "synops", "energy")
        rows = [(L["name"], Num(L.get("neurons")), Num(L.get("float_spikes_per_sample")),
                 Num(L.get("events_per_sample")), Num(L.get("bursts_per_sample")), Num(L.get("synops_per_sample")),
                 Energy(L.get("energy_pj_per_sample"))) for L in layers]
        stages = []
        for row, bar, key in (("input encoder (events \u00d7 fan-out)", "input encoder", "input"),
                              ("bias units", "bias units", "bias")):
            pj = pj_per_synop * (s.get(f"{key}_synops_per_sample") or 0)
            rows.append((row, "", "", Num(s.get(f"{key}_events_per_sample")), "",
                         Num(s.get(f"{key}_synops_per_sample")), Energy(pj)))
            stages.append((bar, pj))
        counts = (("float SNN spikes", tuple(L.get("float_spikes_per_sample") for L in layers)),
                  ("Xylo events", tuple(L.get("events_per_sample") for L in layers)))
        return LayerActivity(
            note="Xylo delivers every event separately: events = spikes; a burst is a step with k > 0 events.",
            table=ReportTable(header, tuple(rows), numeric=tuple(range(1, len(header)))), counts=counts,
            energy=tuple(L.get("energy_pj_per_sample") for L in layers), stages=tuple(stages))

    def quantisation_blocks(self, summary: dict) -> tuple[ReportBlock, ...]:
        cal = summary.get("calibration")
        if not cal:
            return ()
        rows = [(name, Num(h[0], 4) if h else "n/a", Num(h[-1], 4) if h else "n/a", Num(len(h) - 1 if h else 0))
                for name, h in (cal.get("layers") or {}).items()]
        ro = cal.get("readout") or []
        if ro:
            rows.append(("readout (relative to G\u00b7T)", Num(ro[0], 4), Num(ro[-1], 4), Num(len(ro))))
        return (ReportBlock(
            heading="Xylo calibration (bias correction on the Xylo arithmetic)",
            tables=(ReportTable(("layer", "mean |\u0394| before", "mean |\u0394| after", "iterations"), tuple(rows),
                                numeric=(1, 2, 3)),),
            notes=("\u0394: the per-neuron mean rate on the calibration set minus its target (the ANN "
                   "activation), in activation units.",)),)

    def resource_blocks(self, summary: dict) -> tuple[ReportBlock, ...]:
        s, r = summary, summary.get("resources") or {}
        lim = r.get("limits") or {}

        def used(key: str) -> tuple:
            return (Num(r.get(key)),) + ((" of ", Num(lim[key])) if key in lim else ())

        totals = ReportTable(("quantity", "value"), (
            ("device", r.get("device", s.get("device", "n/a"))), ("input channels", used("inputs")),
            ("hidden neurons (incl. bias units)", used("hidden_neurons")),
            ("bias units", Num(r.get("bias_units"))), ("outputs", used("outputs")),
            ("non-zero weights", Num(r.get("weights_nonzero"))),
            ("hardware configuration", s.get("hardware_config", "n/a"))))
        layers = ReportTable(("layer", "neurons", "hidden ids"),
                             tuple((L["name"], Num(L.get("neurons")), Value(L.get("hidden_ids")))
                                   for L in r.get("layers") or []), numeric=(1,))
        x = s.get("xylo") or {}
        notes = ()
        if x:
            ro = x.get("readout") or {}
            notes = ((f"neuron: {x.get('neuron')}; ", Num(x.get("timesteps")), " input steps, ", Num(x.get("steps")),
                      " steps run (input delay ", Num(x.get("input_delay")), f"); readout: {ro.get('rule', 'n/a')}."),)
        return (ReportBlock(tables=(totals, layers), notes=notes),)


REPORT = XyloReport("Xylo")
