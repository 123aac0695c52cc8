"""report.html: one self-contained page per output directory (issue 7).

    html = render(summary, manifest)

`summary` is what report.json holds (the `convert` summary, or the
compile-loihi2 / compile-xylo summary); `manifest` (optional) is manifest.json.
The page is plain HTML with inline CSS and inline SVG charts: no scripts, no
fonts, no network.  Every text is escaped; the same summary always gives the
same bytes (the only times shown are those in the summary).

One function per section (`section_*`, each returning the section's inner
HTML), a few table / number helpers and two chart helpers (`line_chart`,
`bar_chart`).  Sections always appear, with a sentence saying why they are
empty when the data is not there (no --val, no hardware target, ...).

Nothing here depends on which target compiled the artifact: a summary with a
"target" is shown through that Target's TargetReport (adacal.target; each
backend's report_html.py), which gives the target's titles, explanations and
tables as plain data; this module formats and renders them.  The float
`convert` summary has no target and keeps the layout below.
"""
from __future__ import annotations

import math
from html import escape

from adacal.target import Target
from adacal.target_report import Energy, LayerActivity, Num, ReportBlock, ReportTable, TargetReport, Value

#: (id, heading) of every section, in page order
SECTIONS = (
    ("overview", "Overview"),
    ("plan", "Conversion plan"),
    ("accuracy", "Accuracy"),
    ("activity", "Spikes, events, synops and energy per layer"),
    ("neurons", "Burst caps \u03c6 and threshold ratios"),
    ("quantisation", "Quantisation error"),
    ("exit", "Adaptive timesteps"),
    ("resources", "Hardware resources"),
    ("options", "Options"),
    ("timings", "Timings"),
    ("conventions", "Energy convention"),
)

#: pJ per synaptic operation: adacal.runtime_sim.energy.E_AC_PJ (not imported here: that module needs torch)
E_AC_PJ = 0.9
E_MAC_PJ = 4.6

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b")

CSS = """
body{margin:0;background:#fff;color:#1f2328;font:14px/1.45 "DejaVu Sans",Arial,Helvetica,sans-serif}
main{max-width:1180px;margin:0 auto;padding:20px 32px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:19px;margin:34px 0 10px;padding-bottom:4px;border-bottom:2px solid #d0d7de}
h3{font-size:15px;margin:18px 0 6px}
.sub{color:#57606a;margin:0 0 14px}
nav.toc{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px 16px;margin:12px 0 8px}
nav.toc ol{margin:4px 0;padding-left:22px;columns:3}
nav.toc a{color:#0969da;text-decoration:none}
table{border-collapse:collapse;margin:6px 0 10px;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d0d7de;padding:3px 9px;vertical-align:top}
th{background:#f6f8fa;text-align:left;font-weight:600}
td.n{text-align:right;white-space:nowrap}
tr.total td{font-weight:600;background:#fbfbfb}
td.role-unsupported{color:#cf222e;font-weight:600}
td.role-spiking,td.role-neuron,td.role-residual{color:#1a7f37}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.card{border:1px solid #d0d7de;border-radius:6px;padding:6px 12px;min-width:150px}
.card .k{color:#57606a;font-size:12px}
.card .v{font-size:19px;font-weight:600}
.note{color:#57606a;margin:4px 0 8px}
.warn{color:#7d4e00;background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:6px 10px;margin:6px 0}
.empty{color:#57606a;font-style:italic}
code,.mono{font-family:"DejaVu Sans Mono",monospace;font-size:12.5px}
.scroll{overflow-x:auto;max-width:100%}
.charts{display:flex;flex-wrap:wrap;gap:10px 36px;align-items:flex-start}
figure{margin:6px 0 12px}
figcaption{font-weight:600;font-size:14px;margin:0 0 2px}
svg.chart{display:block;background:#fff}
svg.chart text{font-family:"DejaVu Sans",Arial,sans-serif;font-size:12px;fill:#1f2328}
svg.chart .axis{stroke:#57606a;stroke-width:1}
svg.chart .grid{stroke:#e6e8eb;stroke-width:1}
footer{margin-top:40px;color:#57606a;font-size:12px;border-top:1px solid #d0d7de;padding-top:8px}
"""


# ----------------------------------------------------------------------
# numbers and tables
# ----------------------------------------------------------------------
def esc(v) -> str:
    return escape(str(v), quote=True)


def num(v, digits: int = 3) -> str:
    """A readable number: integers with thousands separators, others with
    `digits` significant digits; None -> n/a."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def pct(v) -> str:
    return "n/a" if v is None else f"{100 * float(v):.2f} %"


def energy(pj) -> str:
    """Energy in pJ shown in the unit that reads best."""
    if pj is None:
        return "n/a"
    pj = float(pj)
    for unit, scale in (("mJ", 1e9), ("\u00b5J", 1e6), ("nJ", 1e3)):
        if abs(pj) >= scale:
            return f"{pj / scale:.3f} {unit}"
    return f"{pj:.1f} pJ"


def shape(s) -> str:
    return "\u00d7".join(str(d) for d in s) if s else "scalar"


def value(v) -> str:
    """Any JSON value, compactly (lists / tuples alike)."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, str):
        return v
    return num(v)


def table(header, rows, numeric=(), total=None, cls: dict | None = None) -> str:
    """header: column names; rows: lists of already formatted strings;
    numeric: indices of right-aligned columns; total: an optional last row;
    cls: {column index: function(cell text) -> css class}."""
    out = ["<div class='scroll'><table><thead><tr>", "".join(f"<th>{esc(h)}</th>" for h in header),
           "</tr></thead><tbody>"]
    for r, row in enumerate(list(rows) + ([total] if total else [])):
        tr = "<tr class='total'>" if total and r == len(rows) else "<tr>"
        cells = []
        for i, c in enumerate(row):
            klass = ["n"] if i in numeric else []
            if cls and i in cls and cls[i](c):
                klass.append(cls[i](c))
            attr = f" class='{' '.join(klass)}'" if klass else ""
            if c == "" and not (total and r == len(rows)):
                c = "\u2014"
            cells.append(f"<td{attr}>{esc(c)}</td>")
        out.append(tr + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def kv_table(pairs) -> str:
    return table(("quantity", "value"), [(k, v) for k, v in pairs], numeric=())


def cards(pairs) -> str:
    return "<div class='cards'>" + "".join(
        f"<div class='card'><div class='k'>{esc(k)}</div><div class='v'>{esc(v)}</div></div>"
        for k, v in pairs) + "</div>"


def figures(*figs) -> str:
    """Charts side by side (wrapping): figs are (caption, svg) pairs."""
    return "<div class='charts'>" + "".join(
        f"<figure><figcaption>{esc(c)}</figcaption>{svg}</figure>" for c, svg in figs) + "</div>"


def note(text: str) -> str:
    return f"<p class='note'>{esc(text)}</p>"


def empty(text: str) -> str:
    return f"<p class='empty'>{esc(text)}</p>"


def report_text(t) -> str:
    """A target's report text (adacal.target): a str, a Num / Energy / Value,
    or a tuple of these (joined); anything else as str()."""
    if isinstance(t, str):
        return t
    if isinstance(t, Num):
        return num(t.value, t.digits)
    if isinstance(t, Energy):
        return energy(t.pj)
    if isinstance(t, Value):
        return value(t.value)
    if isinstance(t, tuple):
        return "".join(report_text(p) for p in t)
    return str(t)


def report_table(t: ReportTable) -> str:
    return table(t.header, [[report_text(c) for c in row] for row in t.rows], numeric=t.numeric)


def blocks(bs: tuple[ReportBlock, ...]) -> str:
    """ReportBlocks: each one's sub-heading, tables and notes."""
    out = []
    for b in bs:
        out.append(f"<h3>{esc(b.heading)}</h3>" if b.heading else "")
        out += [report_table(t) for t in b.tables] + [note(report_text(n)) for n in b.notes]
    return "".join(out)


# ----------------------------------------------------------------------
# charts (inline SVG)
# ----------------------------------------------------------------------
def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks, t = [], first
    while t <= hi + step * 1e-6:
        ticks.append(round(t, 10))
        t += step
    if ticks[-1] < hi - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_label(v: float) -> str:
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:.3g}"


def _legend(names, x0: float, y: float, styles=None) -> str:
    """One swatch + name per series; styles[i]: 'box' (bars), 'line' or 'dash'."""
    out, x = [], x0
    for i, name in enumerate(names):
        c = COLOURS[i % len(COLOURS)]
        st = styles[i] if styles else "box"
        if st == "box":
            out.append(f"<rect x='{x:.1f}' y='{y - 9:.1f}' width='12' height='12' fill='{c}'/>")
            w = 16
        else:
            dash = " stroke-dasharray='5 3'" if st == "dash" else ""
            out.append(f"<line x1='{x:.1f}' x2='{x + 22:.1f}' y1='{y - 3:.1f}' y2='{y - 3:.1f}' stroke='{c}' "
                       f"stroke-width='2'{dash}/>")
            w = 26
        out.append(f"<text x='{x + w:.1f}' y='{y + 1:.1f}'>{esc(name)}</text>")
        x += w + 14 + 7.2 * len(name)
    return "".join(out)


def line_chart(chart_id: str, xs, series, x_label: str, y_label: str, y_range=None, hlines=(),
               width: int = 720, height: int = 320, y_format=_tick_label) -> str:
    """series: [(name, values aligned with xs)] drawn as lines with a circle
    (class 'pt') per point; hlines: [(name, y)] dashed reference lines."""
    L, R, Tp, B = 64, 20, 34, 48
    pw, ph = width - L - R, height - Tp - B
    vals = [v for _, ys in series for v in ys if v is not None] + [y for _, y in hlines if y is not None]
    lo, hi = y_range if y_range else (min(vals, default=0.0), max(vals, default=1.0))
    ticks = nice_ticks(lo, hi)
    lo, hi = ticks[0], ticks[-1]
    x0, x1 = min(xs), max(xs)

    def px(x):
        return L + (pw / 2 if x1 == x0 else (x - x0) / (x1 - x0) * pw)

    def py(y):
        return Tp + ph - (y - lo) / (hi - lo) * ph

    out = [f"<svg class='chart' id='{esc(chart_id)}' width='{width}' "
           f"height='{height}' viewBox='0 0 {width} {height}' role='img' "
           f"aria-label='{esc(y_label)} vs {esc(x_label)}'>"]
    for t in ticks:
        out.append(f"<line class='grid' x1='{L}' x2='{L + pw}' y1='{py(t):.1f}' y2='{py(t):.1f}'/>"
                   f"<text x='{L - 6}' y='{py(t) + 4:.1f}' text-anchor='end'>{esc(y_format(t))}</text>")
    step = max(1, math.ceil(len(xs) / 16))
    for i, x in enumerate(xs):
        if i % step == 0 or i == len(xs) - 1:
            out.append(f"<line class='axis' x1='{px(x):.1f}' x2='{px(x):.1f}' y1='{Tp + ph}' y2='{Tp + ph + 4}'/>"
                       f"<text x='{px(x):.1f}' y='{Tp + ph + 17}' text-anchor='middle'>{esc(x)}</text>")
    out.append(f"<line class='axis' x1='{L}' x2='{L}' y1='{Tp}' y2='{Tp + ph}'/>"
               f"<line class='axis' x1='{L}' x2='{L + pw}' y1='{Tp + ph}' y2='{Tp + ph}'/>")
    out.append(f"<text x='{L + pw / 2:.1f}' y='{height - 8}' text-anchor='middle'>{esc(x_label)}</text>"
               f"<text transform='translate(16 {Tp + ph / 2:.1f}) rotate(-90)' text-anchor='middle'>"
               f"{esc(y_label)}</text>")
    names = [n for n, _ in series] + [n for n, _ in hlines]
    for k, (name, y) in enumerate(hlines):
        if y is None:
            continue
        c = COLOURS[(len(series) + k) % len(COLOURS)]
        out.append(f"<line class='ref' x1='{L}' x2='{L + pw}' y1='{py(y):.1f}' y2='{py(y):.1f}' stroke='{c}' "
                   f"stroke-width='1.5' stroke-dasharray='6 4'><title>{esc(name)}: {esc(y_format(y))}</title></line>")
    for k, (name, ys) in enumerate(series):
        c = COLOURS[k % len(COLOURS)]
        pts = [(px(x), py(y), x, y) for x, y in zip(xs, ys) if y is not None]
        out.append(f"<g class='series' data-name='{esc(name)}'>")
        # later series dashed with hollow markers: coinciding curves stay visible
        dash = "" if k == 0 else " stroke-dasharray='7 4'"
        marker = f"r='3.5' fill='{c}'" if k == 0 else f"r='5' fill='none' stroke='{c}' stroke-width='1.5'"
        out.append(f"<polyline fill='none' stroke='{c}' stroke-width='2'{dash} points='"
                   + " ".join(f"{a:.1f},{b:.1f}" for a, b, _, _ in pts) + "'/>")
        for a, b, x, y in pts:
            out.append(f"<circle class='pt' cx='{a:.1f}' cy='{b:.1f}' {marker}>"
                       f"<title>{esc(name)}, {esc(x_label)} {esc(x)}: {esc(y_format(y))}</title></circle>")
        out.append("</g>")
    out.append(_legend(names, L + 4, 16, ["line"] + ["dash"] * (len(names) - 1)))
    out.append("</svg>")
    return "".join(out)


def bar_chart(chart_id: str, labels, series, y_label: str, x_label: str = "", width: int | None = None,
              height: int = 300, y_format=_tick_label) -> str:
    """Grouped bars: labels (categories) x series [(name, values)]; one
    <rect class='bar'> per (category, series) value."""
    n_cat, n_ser = len(labels), max(1, len(series))
    longest = min(18, max((len(str(s)) for s in labels), default=0))  # labels are cut to 18 characters
    rotate = n_cat > 8 or longest * n_cat > 90
    group = max(18, min(90, 14 * n_ser + 14))
    # rotated labels hang below and to the left of their bar: room for them, the plot keeps its height
    drop = int(4 * longest) + 10 if rotate else 0  # 12 px text at -35 degrees: ~4 px down, ~5.6 px left a character
    L, R, Tp = max(72, int(5.6 * longest) - group // 2 + 16 if rotate else 0), 20, 34
    B = (28 if rotate else 40) + drop + (16 if x_label else 0)
    height += drop
    legend = 8 + sum(30 + 7.2 * len(n) for n, _ in series) if len(series) > 1 else 0
    width = width or int(max(420, legend + L + R, min(1100, L + R + n_cat * (group + 10))))
    pw, ph = width - L - R, height - Tp - B
    vals = [v for _, vs in series for v in vs if v is not None]
    ticks = nice_ticks(0.0, max(vals, default=1.0) or 1.0)
    hi = ticks[-1]
    slot = pw / max(n_cat, 1)
    bw = min(40.0, (slot * 0.8) / n_ser)

    def py(y):
        return Tp + ph - y / hi * ph

    out = [f"<svg class='chart' id='{esc(chart_id)}' width='{width}' "
           f"height='{height}' viewBox='0 0 {width} {height}' role='img' aria-label='{esc(y_label)}'>"]
    for t in ticks:
        out.append(f"<line class='grid' x1='{L}' x2='{L + pw}' y1='{py(t):.1f}' y2='{py(t):.1f}'/>"
                   f"<text x='{L - 6}' y='{py(t) + 4:.1f}' text-anchor='end'>{esc(y_format(t))}</text>")
    step = max(1, math.ceil(n_cat / 40))
    for i, lab in enumerate(labels):
        cx = L + slot * (i + 0.5)
        for k, (name, vs) in enumerate(series):
            v = vs[i]
            if v is None:
                continue
            x = cx - bw * n_ser / 2 + k * bw
            out.append(f"<rect class='bar' x='{x:.1f}' y='{py(v):.1f}' width='{max(bw - 1, 1):.1f}' "
                       f"height='{max(Tp + ph - py(v), 0):.1f}' fill='{COLOURS[k % len(COLOURS)]}'>"
                       f"<title>{esc(lab)}, {esc(name)}: {esc(y_format(v))}</title></rect>")
        if i % step == 0:
            short = str(lab) if len(str(lab)) <= 18 else "\u2026" + str(lab)[-17:]
            if rotate:
                out.append(f"<text transform='translate({cx:.1f} {Tp + ph + 12}) rotate(-35)' text-anchor='end'>"
                           f"<title>{esc(lab)}</title>{esc(short)}</text>")
            else:
                out.append(f"<text x='{cx:.1f}' y='{Tp + ph + 17}' text-anchor='middle'><title>{esc(lab)}</title>"
                           f"{esc(short)}</text>")
    out.append(f"<line class='axis' x1='{L}' x2='{L}' y1='{Tp}' y2='{Tp + ph}'/>"
               f"<line class='axis' x1='{L}' x2='{L + pw}' y1='{Tp + ph}' y2='{Tp + ph}'/>")
    out.append(f"<text transform='translate(16 {Tp + ph / 2:.1f}) rotate(-90)' text-anchor='middle'>"
               f"{esc(y_label)}</text>")
    if x_label:
        out.append(f"<text x='{L + pw / 2:.1f}' y='{height - 8}' text-anchor='middle'>{esc(x_label)}</text>")
    if len(series) > 1:
        out.append(_legend([n for n, _ in series], L + 4, 16))
    out.append("</svg>")
    return "".join(out)


# ----------------------------------------------------------------------
# what kind of summary this is
# ----------------------------------------------------------------------
def target(s: dict) -> str:
    """The target's name ('loihi2', 'xylo', ...) or 'float' (the convert summary)."""
    return s.get("target") or "float"


def hardware(s: dict) -> Target | None:
    """The summary's Target (adacal.targets), None for the float convert summary."""
    if target(s) == "float":
        return None
    from adacal import targets
    return targets.get(target(s))


def shown(s: dict) -> TargetReport | None:
    """What the summary's target shows in the report, None for the float convert summary."""
    h = hardware(s)
    return h.report() if h else None


def evaluated(s: dict) -> bool:
    return "snn_accuracy" in s


NO_VAL = "No --val data was given: nothing was evaluated."


def _layers(s: dict) -> list[dict]:
    return list(s.get("per_layer") or [])


def _neuron_layers(s: dict, m: dict | None) -> list[dict]:
    """Per neuron layer: name, φ, threshold ratio, threshold mean (from the
    summary's per_layer, else the manifest)."""
    by = {L["name"]: L for L in _layers(s)}
    out = []
    for L in (m or {}).get("neuron_layers") or []:
        th = L.get("threshold") or []
        e = {"name": L["name"], "max_spikes": L.get("max_spikes"), "threshold_ratio": L.get("threshold_ratio", 1.0),
             "threshold_mean": sum(th) / len(th) if th else None}
        e.update({k: by[L["name"]][k] for k in ("max_spikes", "threshold_ratio", "threshold_mean")
                  if L["name"] in by and by[L["name"]].get(k) is not None})
        out.append(e)
    if not out:
        out = [{k: L.get(k) for k in ("name", "max_spikes", "threshold_ratio", "threshold_mean")}
               for L in _layers(s)]
    return out


# ----------------------------------------------------------------------
# sections
# ----------------------------------------------------------------------
def section_overview(s: dict, m: dict | None) -> str:
    t = target(s)
    what = shown(s).target_line(s) if t != "float" else \
        "no hardware target: float burst-spiking network (adacal convert)"
    m = m or {}
    o = s.get("options") or {}
    pairs = [("target", what), ("compiler", f"adacal {version(m)}"),
             ("format", m.get("format", "n/a")),
             ("timesteps T", num(o.get("timesteps", m.get("timesteps")))),
             ("input", shape((m.get("input") or {}).get("shape"))),
             ("output", shape((m.get("output") or {}).get("shape"))),
             ("source model sha256", m.get("source_model_sha256") or "n/a"),
             ("total time", f"{s['seconds']:.2f} s" if isinstance(s.get("seconds"), (int, float)) else "n/a")]
    c = s.get("calibration_check")
    if c:
        from adacal.pipeline import check_line
        pairs.append(("calibration check", check_line(c)))
    out = [kv_table(pairs)] + [f"<p class='warn'>warning: {esc(w)}</p>" for w in s.get("warnings") or []]
    if not evaluated(s):
        out.append(empty(NO_VAL))
        return "".join(out)
    acc = [("ANN accuracy", pct(s.get("ann_accuracy")))]
    if t == "float":
        acc.append(("SNN accuracy (float)", pct(s.get("snn_accuracy"))))
    else:
        acc += [("float SNN accuracy", pct(s.get("float_snn_accuracy"))),
                ("bit-accurate SNN accuracy", pct(s.get("snn_accuracy")))]
    acc += [("avg timesteps", num(s.get("avg_timesteps"))),
            ("SNN energy / sample", energy(s.get("energy_pj_per_sample"))),
            ("ANN energy / sample", energy(s.get("ann_energy_pj_per_sample"))),
            ("spikes / sample", num(s.get("spikes_per_sample"))),
            ("synops / sample", num(s.get("synops_per_sample")))]
    err = s.get("output_error")
    if err:
        acc += [("output error (relative L2)", _err(err.get("relative_l2"))),
                ("output cosine similarity", _err(err.get("cosine")))]
    if s.get("samples") is not None:
        acc.insert(0, ("validation samples", num(s["samples"])))
    out.append(cards(acc))
    return "".join(out)


def version(m: dict | None) -> str:
    v = (m or {}).get("compiler_version")
    if v:
        return str(v)
    from adacal import __version__
    return __version__


def section_plan(s: dict) -> str:
    plan = s.get("plan")
    if not plan:
        return empty("No conversion plan in this summary.")
    rows = [(e["name"], e["op"], shape(e["shape"]), num(e["params"]), num(e["macs"]),
             e["role"], e.get("detail", "")) for e in plan]
    total = ("total", "", "", num(sum(e["params"] for e in plan)), num(sum(e["macs"] for e in plan)), "", "")
    bad = [e for e in plan if e["role"] == "unsupported"]
    k = sum(e["role"] == "spiking" for e in plan)
    head = note(f"{len(plan)} nodes in the cleaned-up ANN, {k} spiking layer{'s' if k != 1 else ''}; "
                f"MACs are per sample. "
                + ("Convertible." if not bad else f"NOT convertible: {len(bad)} unsupported node(s)."))
    return head + table(("layer", "op", "output shape", "params", "MACs", "becomes", "detail"), rows,
                        numeric=(3, 4), total=total, cls={5: lambda c: f"role-{c}"})


def _accuracy_curves(s: dict):
    """(float SNN per step, bit-accurate per step) accuracy lists, or None."""
    if target(s) == "float":
        return s.get("accuracy_by_timestep"), None
    return s.get("float_snn_accuracy_by_timestep"), s.get("snn_accuracy_by_timestep")


def section_accuracy(s: dict) -> str:
    if not evaluated(s):
        return empty(NO_VAL)
    t = target(s)
    rows = [("ANN", pct(s.get("ann_accuracy")), "\u2014", energy(s.get("ann_energy_pj_per_sample")),
             f"{num(s.get('ann_macs_per_sample'))} MACs")]
    if t == "float":
        rows.append(("SNN (float)", pct(s.get("snn_accuracy")), num(s.get("avg_timesteps")),
                     energy(s.get("energy_pj_per_sample")), f"{num(s.get('synops_per_sample'))} synops"))
        if (s.get("options") or {}).get("adaptive_timesteps"):
            rows.append(("SNN (float), all T steps", pct(s.get("snn_accuracy_full_T")),
                         num((s.get("options") or {}).get("timesteps")), "", ""))
    else:
        rows.append(("float SNN", pct(s.get("float_snn_accuracy")), num((s.get("options") or {}).get("timesteps")),
                     "", f"{num(s.get('float_snn_spikes_per_sample'))} spikes"
                     if s.get("float_snn_spikes_per_sample") is not None else ""))
        rows.append((f"bit-accurate SNN ({t})", pct(s.get("snn_accuracy")), num(s.get("avg_timesteps")),
                     energy(s.get("energy_pj_per_sample")), f"{num(s.get('synops_per_sample'))} synops"))
        ad = s.get("adaptive_exit")
        if ad:
            rows.append(("bit-accurate SNN, adaptive exit", pct(ad.get("accuracy")), num(ad.get("avg_timesteps")),
                         energy(ad.get("energy_pj_per_sample")), ""))
    out = [table(("network", "accuracy", "timesteps", "energy / sample", "work / sample"), rows, numeric=(1, 2, 3))]
    out.append(_output_error_table(s))
    if s.get("agreement_with_ann") is not None:
        out.append(note(f"SNN predictions agree with the ANN on {pct(s['agreement_with_ann'])} of the samples."))
    flt, bit = _accuracy_curves(s)
    if not flt and not bit:
        out.append("<h3>Accuracy vs timesteps</h3>" + empty("No per-timestep accuracy (the validation data has "
                                                              "no labels)."))
        return "".join(out)
    T = len(flt or bit)
    series = ([("float SNN", [100 * v for v in flt])] if flt else []) + \
             ([(f"bit-accurate SNN ({t})", [100 * v for v in bit])] if bit else [])
    hl = [("ANN", 100 * s["ann_accuracy"])] if s.get("ann_accuracy") is not None else []
    lo = min([v for _, ys in series for v in ys] + [y for _, y in hl])
    out.append(figures(("Accuracy vs timesteps", line_chart(
        "chart-accuracy", list(range(1, T + 1)), series, "timestep t", "accuracy (%)",
        y_range=(max(0.0, lo - 2), 100.0), hlines=hl))))
    expl = ("Accuracy of the readout accumulated over steps 1..t (the prediction if the run stopped after t "
            "steps); dashed: the ANN.")
    extra = shown(s).accuracy_note(s) if t != "float" else ""
    if extra:
        expl += " " + extra
    out.append(note(expl))
    return "".join(out)


def _err(v) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _output_error_table(s: dict) -> str:
    """The SNN readouts against the ANN's output (docs/method.md, "Output error")."""
    t = target(s)
    nets = ([("SNN (float)", s.get("output_error"))] if t == "float" else
            [("float SNN", s.get("float_snn_output_error")), (f"bit-accurate SNN ({t})", s.get("output_error"))])
    rows = [(name, _err(e.get("relative_l2")), _err(e.get("cosine")), f"{e['max_abs']:.4g}")
            for name, e in nets if e]
    if not rows:
        return ""
    return ("<h3>Output error against the ANN</h3>"
            + table(("network", "relative L2", "cosine", "max |SNN - ANN|"), rows, numeric=(1, 2, 3))
            + note("The SNN's readout in the ANN's units against the ANN's output on the validation samples: "
                   "relative L2 = ||SNN - ANN|| / ||ANN|| over the set, cosine = mean per-sample cosine "
                   "similarity, max |SNN - ANN| over every output value. For regression outputs, accuracy "
                   "is n/a and these are the figures that matter."))


def _float_activity(s: dict) -> LayerActivity:
    """The float convert summary's per-layer activity (the float burst SNN)."""
    layers = _layers(s)
    header = ("layer", "neurons", "spikes", "events", "synops", "graded synops", "energy", "mean fan-out")
    rows = tuple((L["name"], Num(L.get("neurons")), Num(L.get("spikes_per_sample")), Num(L.get("events_per_sample")),
                  Num(L.get("synops_per_sample")), Num(L.get("graded_synops_per_sample")),
                  Energy(L.get("energy_pj_per_sample")), Num(L.get("fanout_mean"))) for L in layers)
    counts = (("spikes", tuple(L.get("spikes_per_sample") for L in layers)),
              ("events", tuple(L.get("events_per_sample") for L in layers)))
    return LayerActivity(
        note="Events: (neuron, step) pairs with k > 0 (one graded message each); synops: spikes \u00d7 fan-out.",
        table=ReportTable(header, rows, numeric=tuple(range(1, len(header)))), counts=counts,
        energy=tuple(L.get("energy_pj_per_sample") for L in layers),
        stages=(("input layer (MACs)", TargetReport.input_layer_energy(s, E_AC_PJ)),))


def _activity(s: dict) -> LayerActivity:
    """The per-layer activity: the target's layout, or the float summary's."""
    r = shown(s)
    return (r.layer_activity(s, E_AC_PJ) if r else None) or _float_activity(s)


def section_activity(s: dict) -> str:
    if not evaluated(s) or not _layers(s):
        return empty(NO_VAL)
    act = _activity(s)
    names = [L["name"] for L in _layers(s)]
    stages = [(k, v) for k, v in act.stages if v is not None]
    en_labels, en_vals = names + [k for k, _ in stages], list(act.energy) + [v for _, v in stages]
    out = [note("Per sample, summed over the timesteps run. " + act.note), report_table(act.table)]
    out.append(f"<p class='note'>totals: spikes {esc(num(s.get('spikes_per_sample')))}, events "
               f"{esc(num(s.get('events_per_sample')))}, synops {esc(num(s.get('synops_per_sample')))}, "
               f"energy {esc(energy(s.get('energy_pj_per_sample')))} per sample</p>")
    out.append(figures(
        ("Spikes and events per layer", bar_chart("chart-spikes", names, act.counts, "per sample", "layer")),
        ("Energy per layer", bar_chart("chart-energy", en_labels,
                                       [("energy", [None if v is None else v / 1e3 for v in en_vals])],
                                       "energy per sample (nJ)", "layer or input stage"))))
    return "".join(out)


def section_neurons(s: dict, m: dict | None) -> str:
    layers = _neuron_layers(s, m)
    out = []
    if layers:
        out.append(table(("layer", "burst cap \u03c6 (max spikes per step)", "threshold ratio", "mean threshold"),
                         [(L["name"], num(L.get("max_spikes")), num(L.get("threshold_ratio")),
                           num(L.get("threshold_mean"))) for L in layers], numeric=(1, 2, 3)))
        names = [L["name"] for L in layers]
        out.append(figures(
            ("Burst cap \u03c6 per layer", bar_chart("chart-phi", names,
                                                 [("\u03c6", [L.get("max_spikes") for L in layers])],
                                                 "\u03c6 (spikes per step)", "layer")),
            ("Threshold ratio per layer", bar_chart("chart-ratio", names, [("threshold ratio", [
                L.get("threshold_ratio") for L in layers])], "threshold ratio (\u00d7 calibrated)", "layer"))))
    else:
        out.append(empty("No neuron layers in this summary."))
    out.append(section_searches(s, [L["name"] for L in layers]))
    return "".join(out)


def _search_tables(title: str, cols, names, a, b, chosen, a_name: str, b_name: str) -> str:
    """A search's two tables (layers x candidates); candidates no layer tried are left out."""
    keep = [j for j in range(len(cols)) if any(j < len(r) and r[j] is not None for r in a)]
    out = [f"<h3>{esc(title)}</h3>"]
    for label, rows_, digits in ((a_name, a, 3), (b_name, b, 4)):
        rows = []
        for i, r in enumerate(rows_):
            name = names[i] if i < len(names) else f"layer {i}"
            rows.append([name] + ["\u2014" if r[j] is None else num(r[j], digits) for j in keep]
                        + [num(chosen[i]) if i < len(chosen) else ""])
        out.append(f"<p class='note'>{esc(label)}</p>")
        out.append(table(["layer"] + [cols[j] for j in keep] + ["chosen"], rows,
                         numeric=tuple(range(1, len(keep) + 2))))
    return "".join(out)


def section_searches(s: dict, names) -> str:
    se = s.get("searches") or {}
    o = s.get("options") or {}
    out = []
    b = se.get("burst_caps")
    if b:
        unit = b.get("cost", "spikes")  # spikes, or events (--search-cost events)
        out.append(_search_tables("Burst-cap search (--search-spikes)", [f"\u03c6={c}" for c in b["candidates"]],
                                  b.get("layers") or names, b["sensitivity"], b[unit], b["chosen"],
                                  "output sensitivity (divergence from the ANN) per candidate cap",
                                  f"{unit} per sample per candidate cap"))
        out.append(note(f"Budget {num(b.get('budget_' + unit))} {unit} per sample (energy budget "
                        f"{num(o.get('energy_budget'))} \u00d7 uniform \u03c6 = {num(o.get('max_spikes'))}); "
                        "\u2014: not tried."))
    else:
        out.append(note("Burst-cap search: not run (uniform \u03c6 = --max-spikes; enable with --search-spikes)."))
    r = se.get("threshold_ratios")
    if r:
        from adacal.pipeline import RATIO_COST_KEY
        key = RATIO_COST_KEY[r.get("cost", "spikes")]
        label = {"synops": "synops (spikes \u00d7 fan-out)",
                 "graded_synops": "graded synops (events \u00d7 fan-out)"}[key]
        out.append(_search_tables("Threshold-ratio search (--search-thresholds)",
                                  [f"\u00d7{num(c)}" for c in r["ratios"]], r.get("layers") or names,
                                  r["sensitivity"], r[key], r["chosen"],
                                  "output sensitivity (divergence from the ANN) per threshold ratio",
                                  f"{label} per sample per threshold ratio"))
        out.append(note(f"Sensitivity budget {num(r.get('budget_kl'))} (--sensitivity-budget "
                        f"{num(o.get('sensitivity_budget'))}); \u2014: not tried (the search stops raising a "
                        "layer's ratio once it exceeds the budget)."))
    else:
        out.append(note("Threshold-ratio search: not run (all ratios 1; enable with --search-thresholds)."))
    return "".join(out)


def section_quantisation(s: dict) -> str:
    t = target(s)
    if t == "float":
        return empty("Float conversion: no integer network, hence no quantisation error "
                     "(compile with compile-loihi2 or compile-xylo).")
    q = s.get("quantisation_error") or {}
    layers = q.get("layers") or [{"name": L["name"], "relative_error": L.get("float_int_relative_error")}
                                 for L in _layers(s) if "float_int_relative_error" in L]
    out = []
    if layers:
        if q.get("metric"):
            out.append(note(q["metric"]))
        out.append(table(("layer", "relative error", "samples"),
                         [(L["name"], num(L.get("relative_error"), 4), num(q.get("samples"))) for L in layers],
                         numeric=(1, 2)))
        out.append(figures(("Relative error per layer", bar_chart(
            "chart-quantisation", [L["name"] for L in layers],
            [("relative error", [None if L.get("relative_error") is None else 100 * L["relative_error"]
                                 for L in layers])], "relative error (%)", "layer"))))
    else:
        out.append(empty(NO_VAL))
    out.append(blocks(shown(s).quantisation_blocks(s)))
    return "".join(out)


def _exit_data(s: dict):
    """(histogram, avg timesteps, policy) of the adaptive exit, or None."""
    if target(s) == "float":
        if s.get("exit_policy") and s.get("exit_histogram"):
            return s["exit_histogram"], s.get("avg_timesteps"), s["exit_policy"]
        return None
    ad = s.get("adaptive_exit")
    return (ad["exit_histogram"], ad.get("avg_timesteps"), ad) if ad else None


def section_exit(s: dict) -> str:
    o = s.get("options") or {}
    if not o.get("adaptive_timesteps"):
        return empty(f"adaptive timesteps off: every sample runs all T = {num(o.get('timesteps'))} steps "
                     "(enable with --adaptive-timesteps).")
    d = _exit_data(s)
    if d is None:
        h = hardware(s)
        return empty("adaptive timesteps on, but " + ("the target has no adaptive exit." if h and not
                                                      h.adaptive_timesteps else NO_VAL.lower()))
    hist, avg, pol = d
    T = len(hist)
    out = [kv_table([("exit metric", pol.get("metric", o.get("exit_metric"))),
                     ("exit level", num(pol.get("level", o.get("exit_level")))),
                     ("average timesteps", num(avg)), ("samples", num(sum(hist)))])]
    if pol.get("thresholds"):
        out.append(note("per-step exit thresholds: " + ", ".join(num(v) for v in pol["thresholds"])))
    out.append(figures(("Exit-step histogram", bar_chart("chart-exit", list(range(1, T + 1)), [("samples", hist)],
                                                         "samples", "exit step (timesteps run)"))))
    return "".join(out)


def section_resources(s: dict) -> str:
    t, r = target(s), s.get("resources") or {}
    if t == "float":
        return empty("No hardware target (float conversion): compile with compile-loihi2 or compile-xylo for a "
                     "resource estimate.")
    if not r:
        return empty("No resource estimate in this summary.")
    return blocks(shown(s).resource_blocks(s))


def section_options(s: dict) -> str:
    o = s.get("options")
    if not o:
        return empty("No options recorded.")
    return table(("option", "value"), [(k.replace("_", "-"), value(v)) for k, v in o.items()])


def section_timings(s: dict) -> str:
    tm = s.get("timings") or {}
    rows = [(k, f"{float(v):.3f} s") for k, v in tm.items() if isinstance(v, (int, float))]
    total = ("total (wall clock)", f"{float(s['seconds']):.3f} s") if isinstance(s.get("seconds"), (int, float)) \
        else None
    if not rows and not total:
        return empty("No timings recorded.")
    return table(("step", "time"), rows, numeric=(1,), total=total)


def section_conventions(s: dict) -> str:
    conv = s.get("energy_convention")
    out = [note(f"How energy is counted (the 45 nm figures used by the paper): {E_MAC_PJ} pJ per MAC, "
                f"{E_AC_PJ} pJ per synaptic operation (accumulate).")]
    out.append(f"<p class='mono'>{esc(conv)}</p>" if conv else empty(NO_VAL))
    return "".join(out)


def render(summary: dict, manifest: dict | None = None) -> str:
    """The whole page for one summary (and its manifest, if there is one)."""
    s, m = summary, manifest
    t = target(s)
    title = shown(s).page_title(s) if t != "float" else "adacal report: float conversion"
    body = {
        "overview": section_overview(s, m), "plan": section_plan(s), "accuracy": section_accuracy(s),
        "activity": section_activity(s), "neurons": section_neurons(s, m),
        "quantisation": section_quantisation(s), "exit": section_exit(s), "resources": section_resources(s),
        "options": section_options(s), "timings": section_timings(s), "conventions": section_conventions(s),
    }
    toc = "".join(f"<li><a href='#{sid}'>{esc(h)}</a></li>" for sid, h in SECTIONS)
    parts = ["<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>",
             f"<h1>{esc(title)}</h1>",
             f"<p class='sub'>adacal {esc(version(m))} \u00b7 Adaptive Calibration burst-spiking network"
             + (f" \u00b7 model sha256 <span class='mono'>{esc(str(m['source_model_sha256'])[:16])}\u2026</span>"
                if m and m.get("source_model_sha256") else "") + "</p>",
             f"<nav class='toc' id='contents'><strong>Contents</strong><ol>{toc}</ol></nav>"]
    for sid, heading in SECTIONS:
        parts.append(f"<section id='{sid}'><h2>{esc(heading)}</h2>{body[sid]}</section>")
    parts.append(f"<footer>Generated by adacal {esc(version(m))} from report.json "
                 f"({esc(t)}). Self-contained: no scripts, fonts or network resources.</footer>")
    parts.append("</main></body></html>\n")
    return "".join(parts)
