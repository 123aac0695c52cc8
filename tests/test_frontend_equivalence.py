"""The ONNX frontend and the float passes must not change what a model computes.

For each model (torchvision resnet18 / mobilenet_v2 / vgg11_bn exported with
and without constant folding, an MLP with BatchNorm1d, a hand-written ONNX
graph and a dynamo-exported CNN) we compare onnxruntime's output with
`adacal.load_onnx(path).run(x)`, before and after the passes, on a seeded
batch of 8 inputs:   max|y - y_ort| <= 1e-4 * max|y_ort|.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest

import onnx_fixtures as models

import adacal
import adacal.errors
import adacal.passes

RTOL = 1e-4
BATCH = 8

KEYS = [
    "resnet18@cf", "resnet18@nocf",
    "mobilenet_v2@cf", "mobilenet_v2@nocf",
    "vgg11_bn@cf", "vgg11_bn@nocf",
    "mlp@cf", "mlp@nocf",  # same bytes: torch only folds BN into Conv, so BN1d stays
    "handmade",
    "small_cnn@dynamo",
    # torch >= 2.9's default exporter; needs ReduceMean (global pooling) and
    # the Shape -> Reshape(allowzero=1) flatten spelling
    "small_cnn@dynamo_noopt",
    "resnet18@dynamo", "mobilenet_v2@dynamo",
]
# Skip the redundant single-pass run (cleanup covers it) for big models and
# for optimised dynamo exports (their BatchNorm is already folded by onnxscript).
SKIP_FOLD = {"vgg11_bn@cf", "vgg11_bn@nocf", "resnet18@dynamo", "mobilenet_v2@dynamo"}

PASSES = [None, "cleanup", "fold_batchnorm"]


def op_names(g) -> list[str]:
    return [type(n.op).__name__ for n in g.nodes]


def assert_close(y, y_ref, what):
    y = np.asarray(y)
    assert y.shape == y_ref.shape, f"{what}: shape {y.shape} != onnxruntime's {y_ref.shape}"
    assert np.all(np.isfinite(y)), f"{what}: non-finite output"
    scale = float(np.abs(y_ref).max())
    err = float(np.abs(y.astype(np.float64) - y_ref.astype(np.float64)).max())
    assert err <= RTOL * scale, f"{what}: max|dy| = {err:.3g} > {RTOL:g} * max|y_ort| = {RTOL * scale:.3g}"


@pytest.fixture(scope="module")
def reference(onnx_model):
    """`reference(key) -> (path, x, y_ort)`, computed once per module."""
    cache = {}

    def get(key):
        if key not in cache:
            path = onnx_model(key)
            x = models.random_input(key, batch=BATCH, seed=0)
            cache[key] = (path, x, models.ort_run(path, x))
        return cache[key]

    return get


def _cases():
    for key in KEYS:
        for p in PASSES:
            if key in SKIP_FOLD and p == "fold_batchnorm":
                continue
            yield pytest.param(key, p, id=f"{key}-{p or 'raw'}")


@pytest.mark.parametrize("key,pass_name", list(_cases()))
def test_matches_onnxruntime(key, pass_name, reference):
    path, x, y_ref = reference(key)
    g = adacal.load_onnx(path)
    if pass_name is not None:
        g = getattr(adacal.passes, pass_name)(g)
    assert_close(g.run(x), y_ref, f"{key} after {pass_name or 'load_onnx'}")
    if pass_name in ("cleanup", "fold_batchnorm"):
        left = [n.name for n in g.nodes if type(n.op).__name__ == "BatchNorm"]
        assert not left, f"{key}: BatchNorm left after {pass_name}: {left}"


def test_bn_models_have_batchnorm_before_folding(reference):
    """Sanity check that the BN-folding tests above really exercise folding."""
    for key in ("resnet18@nocf", "mobilenet_v2@nocf", "mlp@nocf"):
        path, _, _ = reference(key)
        g = adacal.load_onnx(path)
        assert "BatchNorm" in op_names(g), f"{key}: no BatchNorm in {sorted(set(op_names(g)))}"


@pytest.mark.parametrize("pass_name", ["drop_identity", "fold_scalings", "recognise_relu", "fold_batchnorm", "cleanup"])
def test_each_pass_on_handmade(pass_name, reference):
    path, x, y_ref = reference("handmade")
    g = getattr(adacal.passes, pass_name)(adacal.load_onnx(path))
    assert_close(g.run(x), y_ref, f"handmade after {pass_name}")


@pytest.mark.parametrize("key", ["handmade", "mlp@nocf", "small_cnn@dynamo"])
def test_passes_compose_in_any_order(key, reference):
    path, x, y_ref = reference(key)
    g = adacal.load_onnx(path)
    for name in ["recognise_relu", "fold_scalings", "drop_identity", "fold_batchnorm", "cleanup", "cleanup"]:
        g = getattr(adacal.passes, name)(g)
        assert_close(g.run(x), y_ref, f"{key} after ... {name}")


def test_cleanup_removes_identity_and_dropout(reference):
    path, _, _ = reference("handmade")
    g = adacal.passes.cleanup(adacal.load_onnx(path))
    left = [n.name for n in g.nodes if type(n.op).__name__ in ("Identity", "Dropout")]
    assert not left, f"Identity/Dropout left after cleanup: {left}\n{g}"


def test_load_from_bytes_and_modelproto(reference):
    path, x, y_ref = reference("handmade")
    data = path.read_bytes()
    assert_close(adacal.load_onnx(data).run(x), y_ref, "load_onnx(bytes)")
    assert_close(adacal.load_onnx(onnx.load_from_string(data)).run(x), y_ref, "load_onnx(ModelProto)")
    assert_close(adacal.load_onnx(str(path)).run(x), y_ref, "load_onnx(str)")


def test_handmade_reference_matches_onnxruntime(reference):
    """Guards the fixture itself: an independent numpy evaluation agrees with onnxruntime."""
    path, x, y_ref = reference("handmade")
    assert_close(models.handmade_reference(x), y_ref, "numpy reference of handmade")


@pytest.mark.parametrize("key", ["handmade", "mlp@nocf", "mobilenet_v2@nocf"])
def test_batch_size_independent(key, reference):
    """The batch axis is dynamic: one sample at a time gives the same rows."""
    path, x, y_ref = reference(key)
    g = adacal.passes.cleanup(adacal.load_onnx(path))
    rows = np.concatenate([np.asarray(g.run(x[i:i + 1])) for i in range(3)])
    assert_close(rows, y_ref[:3], f"{key} run one sample at a time")


def test_str_names_nodes(reference):
    path, _, _ = reference("handmade")
    g = adacal.load_onnx(path)
    text = str(g)
    assert isinstance(text, str) and text
    for n in g.nodes:
        assert n.name in text, f"node {n.name!r} not in str(g):\n{text}"


@pytest.mark.parametrize("variant", sorted(models.HANDMADE_VARIANTS))
def test_handmade_variants_exact_or_refused(variant, reference):
    """Each spelling variant either converts exactly or is refused with an AdacalError.

    Anything else (a silent change of the function, or a non-adacal exception)
    is a bug.  Variants that are plainly convertible must convert.
    """
    path, x, y_ref = reference(f"handmade@{variant}")
    must_convert = variant in ("flat_minus1", "no_pad_value", "asym_pad", "clip_min_only", "clip_0_1")
    try:
        g = adacal.load_onnx(path)
        y_raw = g.run(x)
        g = adacal.passes.cleanup(g)
        y_clean = g.run(x)
    except adacal.errors.AdacalError as e:
        if must_convert:
            raise AssertionError(f"handmade@{variant} refused: {e}") from e
        assert "Traceback" not in str(e) and str(e).strip(), e
        return
    assert_close(y_raw, y_ref, f"handmade@{variant} after load_onnx")
    assert_close(y_clean, y_ref, f"handmade@{variant} after cleanup")


@pytest.mark.parametrize("key", ["handmade", "mlp@nocf", "resnet18@nocf"])
def test_passes_leave_their_input_graph_alone(key, reference):
    """Passes are Graph -> Graph: the graph passed in still computes the same thing."""
    path, x, y_ref = reference(key)
    g = adacal.load_onnx(path)
    before = [(n.name, type(n.op).__name__, tuple(n.inputs), tuple(n.shape)) for n in g.nodes]
    adacal.passes.cleanup(g)
    after = [(n.name, type(n.op).__name__, tuple(n.inputs), tuple(n.shape)) for n in g.nodes]
    assert before == after, f"{key}: cleanup changed its input graph's nodes"
    y = g.run(x)
    assert np.asarray(y).dtype == np.float32, f"Graph.run returned {np.asarray(y).dtype}, expected float32"
    assert_close(y, y_ref, f"{key}: input graph after cleanup(g)")


def test_batch_size_as_a_value_is_exact_or_refused(reference):
    """Shape -> Gather -> Cast -> Mul: the dynamic batch size used as a number."""
    path, x, y_ref = reference("batch_scaled")
    try:
        g = adacal.load_onnx(path)
        y = g.run(x)
    except adacal.errors.AdacalError:
        return
    assert_close(y, y_ref, "batch_scaled (output multiplied by the batch size)")
