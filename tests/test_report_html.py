"""report.html (issue 7): every output directory holds a self-contained report.

Three small runs through the CLI, started together (process start-up dominates):
compile-loihi2 of a tiny CNN with both searches (priced in events, as Loihi 2's
graded spikes cost) and adaptive timesteps,
compile-xylo of a tiny MLP, and convert -o of the CNN.  Then

* the page parses (html.parser): every section id and heading, no scripts,
  no external src / href / url(...), the charts have one point per timestep
  and one bar per exit step, layer names are escaped (a node is called
  `relu<1>&"x"`), and rendering report.json again gives the same bytes;
* headless Chromium renders it: exit 0, a non-trivial screenshot, the dumped
  DOM holds the headings, no console messages.

Chromium must be installed (`make test` installs it): a missing browser fails
the test, it is not skipped.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from adacal import report_html

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
ODD_NAME = 'relu<1>&"x"'  # must come out escaped
T_LOIHI, T_XYLO, T_CONVERT = 6, 8, 5


# ----------------------------------------------------------------------
# models and data
# ----------------------------------------------------------------------
def _model(nodes, inits, in_shape, n_out, name):
    graph = helper.make_graph(nodes, name,
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *in_shape])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", n_out])],
                              initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def tiny_cnn(rng):
    """(1, 8, 8) -> conv 4 -> relu -> conv 8 /2 -> relu -> avgpool 2 -> flatten -> dense 5."""
    inits = {"w1": rng.normal(0, 0.5, (4, 1, 3, 3)), "b1": rng.normal(0, 0.1, 4),
             "w2": rng.normal(0, 0.3, (8, 4, 3, 3)), "b2": rng.normal(0, 0.1, 8),
             "w3": rng.normal(0, 0.5, (5, 32)), "b3": rng.normal(0, 0.1, 5)}
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name=ODD_NAME),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("AveragePool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w3", "b3"], ["output"], name="readout", transB=1)]
    return _model(nodes, inits, (1, 8, 8), 5, "tiny_cnn")


def tiny_mlp(rng):
    """12 -> dense 24 -> relu -> dense 4 (fits every Xylo device)."""
    inits = {"w1": rng.normal(0, 0.4, (24, 12)), "b1": rng.normal(0, 0.1, 24),
             "w2": rng.normal(0, 0.4, (4, 24)), "b2": rng.normal(0, 0.1, 4)}
    nodes = [helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], name="fc1", transB=1),
             helper.make_node("Relu", ["h"], ["r"], name="relu1"),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["output"], name="readout", transB=1)]
    return _model(nodes, inits, (12,), 4, "tiny_mlp")


def _write(root: Path, name: str, model, x_shape, rng, n=96):
    """The model and calibration / validation files; labels are the ANN's own
    predictions (so the ANN scores 100 % and the SNN curves are meaningful)."""
    import onnxruntime as ort

    path = root / f"{name}.onnx"
    onnx.save(model, str(path))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    files = []
    for split in ("calib", "val"):
        x = rng.uniform(0, 1, (n, *x_shape)).astype(np.float32)
        y = sess.run(None, {"input": x})[0].reshape(n, -1).argmax(axis=1)
        np.savez(root / f"{name}_{split}.npz", x=x, y=y)
        files.append(root / f"{name}_{split}.npz")
    return path, *files


def adacal_cli(*args):
    return subprocess.run([sys.executable, "-m", "adacal", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_html")
    rng = np.random.default_rng(7)
    cnn, cnn_cal, cnn_val = _write(root, "cnn", tiny_cnn(rng), (1, 8, 8), rng)
    mlp, mlp_cal, mlp_val = _write(root, "mlp", tiny_mlp(rng), (12,), rng)
    runs = {
        "loihi2": ("compile-loihi2", cnn, "--calib", cnn_cal, "--val", cnn_val, "-T", T_LOIHI, "--max-spikes", 3,
                   "--search-spikes", "--spike-range", "1:3", "--search-thresholds", "--search-cost", "events",
                   "--adaptive-timesteps", "--calib-samples", 64, "-o", root / "loihi2", "--json"),
        "xylo": ("compile-xylo", mlp, "--calib", mlp_cal, "--val", mlp_val, "--device", "xylo-audio3",
                 "-T", T_XYLO, "--calib-samples", 64, "-o", root / "xylo", "--json"),
        "convert": ("convert", cnn, "--calib", cnn_cal, "--val", cnn_val, "-T", T_CONVERT, "--calib-samples", 64,
                    "-o", root / "convert", "--json"),
    }
    with ThreadPoolExecutor(3) as pool:
        done = dict(zip(runs, pool.map(lambda a: adacal_cli(*a), runs.values())))
    out = {}
    for k, r in done.items():
        assert r.returncode == 0, f"{k}: exit {r.returncode}\n{r.stderr}"
        out[k] = (root / k, json.loads(r.stdout))
    return out


KINDS = ("loihi2", "xylo", "convert")
T_OF = {"loihi2": T_LOIHI, "xylo": T_XYLO, "convert": T_CONVERT}


# ----------------------------------------------------------------------
# the page, parsed
# ----------------------------------------------------------------------
class Page(HTMLParser):
    """Ids, tags, attributes with URLs, texts, and the elements inside each
    chart <svg id=...> (circles per series, bars)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.tags, self.urls, self.headings, self.texts = set(), [], [], [], []
        self.points, self.bars = {}, {}
        self._svg = self._series = self._heading = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.add(a["id"])
        for k in ("src", "href", "xlink:href", "action", "data", "poster"):
            if a.get(k):
                self.urls.append(a[k])
        if tag == "svg":
            self._svg = a.get("id")
        elif tag == "g" and "series" in (a.get("class") or ""):
            self._series = a.get("data-name")
        elif tag == "circle" and a.get("class") == "pt" and self._svg:
            self.points.setdefault(self._svg, {}).setdefault(self._series, 0)
            self.points[self._svg][self._series] += 1
        elif tag == "rect" and a.get("class") == "bar" and self._svg:
            self.bars[self._svg] = self.bars.get(self._svg, 0) + 1
        elif tag in ("h1", "h2", "h3"):
            self._heading = []

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg = None
        elif tag == "g":
            self._series = None
        elif tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append("".join(self._heading))
            self._heading = None

    def handle_data(self, data):
        self.texts.append(data)
        if self._heading is not None:
            self._heading.append(data)


def parse(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    p = Page()
    p.feed(text)
    p.close()
    return text, p


@pytest.mark.parametrize("kind", KINDS)
def test_report_is_complete_and_self_contained(outputs, kind):
    out, summary = outputs[kind]
    text, page = parse(out / "report.html")
    for sid, heading in report_html.SECTIONS:
        assert sid in page.ids, f"section {sid} missing"
        assert heading in page.headings
    assert "contents" in page.ids  # the table of contents
    assert all(u.startswith("#") for u in page.urls), page.urls  # only in-page links
    assert "script" not in page.tags and "link" not in page.tags and "iframe" not in page.tags
    low = text.lower()
    assert "http://" not in low and "https://" not in low and "url(" not in low and "@import" not in low
    # escaping: the odd layer name appears as text, never as markup
    if kind != "xylo":
        assert ODD_NAME in "".join(page.texts)
        assert ODD_NAME not in text and "relu&lt;1&gt;&amp;&quot;x&quot;" in text
    # the same summary renders to the same bytes
    man = json.loads((out / "manifest.json").read_text())
    assert report_html.render(json.loads((out / "report.json").read_text()), man) == text
    assert report_html.E_AC_PJ == 0.9 and report_html.E_MAC_PJ == 4.6  # = adacal.runtime_sim.energy


@pytest.mark.parametrize("kind", KINDS)
def test_charts_have_a_point_per_timestep(outputs, kind):
    out, summary = outputs[kind]
    _, page = parse(out / "report.html")
    T = T_OF[kind]
    pts = page.points["chart-accuracy"]
    if kind == "convert":
        assert pts == {"float SNN": T}
    else:
        assert pts == {"float SNN": T, f"bit-accurate SNN ({kind})": T}
    layers = len(summary["per_layer"])
    assert page.bars["chart-spikes"] == layers * (3 if kind == "loihi2" else 2)
    assert page.bars["chart-energy"] == layers + (2 if kind == "xylo" else 1)
    assert page.bars["chart-phi"] == page.bars["chart-ratio"] == layers
    if kind == "loihi2":  # adaptive timesteps: one bar per exit step
        assert page.bars["chart-exit"] == T
        assert sum(summary["adaptive_exit"]["exit_histogram"]) == summary["samples"]
    else:
        assert "chart-exit" not in page.ids
        assert "adaptive timesteps off" in (out / "report.html").read_text()
    if kind == "convert":
        assert "chart-quantisation" not in page.ids
    else:
        assert page.bars["chart-quantisation"] == layers


def test_summary_fields_for_the_report(outputs):
    for kind in ("loihi2", "xylo"):
        _, s = outputs[kind]
        T = T_OF[kind]
        assert len(s["float_snn_accuracy_by_timestep"]) == len(s["snn_accuracy_by_timestep"]) == T
        assert s["snn_accuracy_by_timestep"][-1] == pytest.approx(s["snn_accuracy"])  # t = T is the readout
        assert [L["name"] for L in s["quantisation_error"]["layers"]] == [L["name"] for L in s["per_layer"]]
        assert all(0 <= L["relative_error"] < 0.5 for L in s["quantisation_error"]["layers"])
        assert [e["role"] for e in s["plan"]][0] == "input"
        assert all(L["float_int_relative_error"] is not None for L in s["per_layer"])
    s = outputs["loihi2"][1]
    assert set(s["searches"]) == {"burst_caps", "threshold_ratios"} and s["exit_policy"]["metric"] == "confidence"
    assert s["searches"]["burst_caps"]["cost"] == s["searches"]["threshold_ratios"]["cost"] == "events"
    page = (outputs["loihi2"][0] / "report.html").read_text()
    assert "events per sample per candidate cap" in page and "graded synops (events" in page
    assert s["adaptive_exit"]["avg_timesteps"] <= T_LOIHI and len(s["adaptive_exit"]["exit_histogram"]) == T_LOIHI
    assert all("bit_accurate_synops_per_sample" in L for L in s["per_layer"])
    s = outputs["xylo"][1]
    assert s["resources"]["limits"]["hidden_neurons"] == 992 and all("max_spikes" in L for L in s["per_layer"])
    s = outputs["convert"][1]
    assert s["plan"][1]["name"] == "conv1" and len(s["accuracy_by_timestep"]) == T_CONVERT


# ----------------------------------------------------------------------
# rendered in headless Chromium
# ----------------------------------------------------------------------
def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed: `make test` installs it (apt-get install chromium)")


def run_chromium(page: Path, profile: Path, *mode: str) -> subprocess.CompletedProcess:
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-extensions", "--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}",
           "--window-size=1280,2000", *mode, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


@pytest.mark.parametrize("kind", KINDS)
def test_chromium_renders_the_report(outputs, kind, tmp_path):
    from PIL import Image

    out, _ = outputs[kind]
    html = out / "report.html"
    png = tmp_path / "report.png"
    shot = run_chromium(html, tmp_path / "profile1", f"--screenshot={png}")
    assert shot.returncode == 0, shot.stderr[-3000:]
    assert png.exists() and png.stat().st_size > 10_000
    with Image.open(png) as im:
        assert im.size == (1280, 2000)
        lo, hi = im.convert("L").getextrema()
        assert hi - lo > 100  # text on a background, not one colour
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 50
    assert not console_errors(shot.stderr), console_errors(shot.stderr)
    dom = run_chromium(html, tmp_path / "profile2", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-3000:]
    for _, heading in report_html.SECTIONS:
        assert f">{report_html.esc(heading)}</h2>" in dom.stdout
    assert dom.stdout.count("<svg") >= 3 and "<section id=\"resources\">" in dom.stdout
    assert not console_errors(dom.stderr), console_errors(dom.stderr)


def test_report_without_validation_data_or_manifest(outputs):
    """Compiled without --val (and rendered without a manifest): every section
    is still there and says why it is empty."""
    _, s = outputs["loihi2"]
    keep = ("target", "resources", "timings", "options", "seconds", "plan", "searches", "exit_policy")
    text = report_html.render({k: s[k] for k in keep})
    page = Page()
    page.feed(text)
    assert all(sid in page.ids for sid, _ in report_html.SECTIONS)
    assert "No --val data" in text and "chart-accuracy" not in page.ids and "chart-phi" not in page.ids
    assert "chart-exit" not in page.ids and "adaptive timesteps on, but" in text
    assert f"adacal {report_html.version(None)}" in text
