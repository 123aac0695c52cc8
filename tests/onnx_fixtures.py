"""Deterministic model builders shared by the test-suite.

Everything here is plain functions: no pytest, no network, no pretrained
weights.  Models are built with seeded random weights; every builder gives
the same model (and, through the classic exporter, the same ONNX bytes) for
the same seed.

`build(key, directory)` writes (once) and returns the path of one of the
models named in `MODEL_KEYS`; tests/conftest.py wraps it in a session-scoped
cache so each ONNX file is exported at most once per test session.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# torch / torchvision are imported lazily inside the builders so that
# importing this module (e.g. from the CLI tests) stays cheap.

# ---------------------------------------------------------------------------
# torchvision models
# ---------------------------------------------------------------------------

#: input shape (C, H, W) per torchvision model.  vgg11_bn needs 224x224: its
#: AdaptiveAvgPool2d((7, 7)) only exports when the feature map is already 7x7.
TORCHVISION_INPUT = {
    "resnet18": (3, 64, 64),
    "mobilenet_v2": (3, 64, 64),
    "vgg11_bn": (3, 224, 224),
}


def randomise_batchnorm(model, seed: int) -> None:
    """Give every BatchNorm layer random running stats and affine params.

    A freshly initialised BatchNorm (mean 0, var 1, weight 1, bias 0) is an
    identity in eval mode, which would let a broken BN-folding pass go
    unnoticed.  Ranges are chosen so activations stay O(1) through deep nets.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                c = mod.num_features
                mod.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                mod.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                if mod.affine:
                    mod.weight.copy_(0.5 + torch.rand(c, generator=gen))
                    mod.bias.copy_(0.2 * torch.randn(c, generator=gen))


def torchvision_model(name: str, seed: int = 0):
    """A torchvision classifier with seeded random weights, eval mode."""
    import torch
    import torchvision

    if name not in TORCHVISION_INPUT:
        raise ValueError(f"unknown torchvision model {name!r}; known: {sorted(TORCHVISION_INPUT)}")
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None)
    randomise_batchnorm(model, seed + 1)
    model.eval()
    return model


# ---------------------------------------------------------------------------
# exporters
# ---------------------------------------------------------------------------

def export_onnx(model, example_input, path, do_constant_folding: bool, opset: int = 17,
                dynamic_batch: bool = True) -> Path:
    """Export with torch's classic (TorchScript) exporter; returns the path.

    Input is named "input", output "output"; with `dynamic_batch` axis 0 of
    both is the symbolic dim "N".  `do_constant_folding=False` keeps the
    BatchNormalization nodes of an eval-mode model in the graph.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dynamic_axes = {"input": {0: "N"}, "output": {0: "N"}} if dynamic_batch else None
    with warnings.catch_warnings():
        # "You are using the legacy TorchScript-based ONNX export" etc.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                model,
                (example_input,),
                str(path),
                dynamo=False,
                export_params=True,
                opset_version=opset,
                do_constant_folding=do_constant_folding,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=dynamic_axes,
            )
    return path


def export_onnx_dynamo(model, example_input, path, opset: int = 18, optimize: bool = True,
                       dynamic_batch: bool = True) -> Path:
    """Export with torch's torch.export-based ("dynamo") exporter.

    Works offline here (torch 2.14.1 + onnxscript 0.7.2).  Notes:
    * it implements opset 18; asking for 17 triggers a down-conversion
      warning, so the default is 18;
    * with `optimize=True` (default) onnxscript's optimiser folds eval-mode
      BatchNorm into Conv and turns flatten into a constant-shape Reshape;
      with `optimize=False` the graph keeps BatchNormalization but computes
      the Reshape target at run time (Shape/Squeeze/Concat), which adacal
      does not aim to support.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamic_shapes = ({0: torch.export.Dim("N")},) if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            program = torch.onnx.export(
                model.eval(),
                (example_input,),
                dynamo=True,
                opset_version=opset,
                optimize=optimize,
                dynamic_shapes=dynamic_shapes,
                input_names=["input"],
                output_names=["output"],
                verbose=False,
            )
    program.save(str(path))
    return path


def count_ops(path_or_model, op_type: str) -> int:
    """Number of nodes of `op_type` in an ONNX file or ModelProto."""
    mp = path_or_model if isinstance(path_or_model, onnx.ModelProto) else onnx.load(str(path_or_model))
    return sum(1 for n in mp.graph.node if n.op_type == op_type)


# ---------------------------------------------------------------------------
# small torch models
# ---------------------------------------------------------------------------

def mlp_model(seed: int = 0):
    """20-32-16-5 MLP with BatchNorm1d after each hidden Linear, eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(20, 32), nn.BatchNorm1d(32), nn.ReLU(),
        nn.Linear(32, 16), nn.BatchNorm1d(16), nn.ReLU(),
        nn.Linear(16, 5),
    )
    randomise_batchnorm(model, seed + 1)
    return model.eval()


MLP_INPUT = (20,)


def small_cnn(seed: int = 0):
    """A tiny CNN on (1, 8, 8) inputs, used for the dynamo exporter."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 2 * 2, 10),
    )
    randomise_batchnorm(model, seed + 1)
    return model.eval()


SMALL_CNN_INPUT = (1, 8, 8)


def pointnet_1d(seed: int = 0, maxpool: bool = True, keepdim: bool = False):
    """A PointNet-style net on (3, 32) point clouds: shared MLPs as Conv1d(k=1)
    + BatchNorm1d + ReLU (one Conv1d k=3 + MaxPool1d), a global max over the
    points (torch.max(x, dim=2) -> ReduceMax keepdims=0, or amax(keepdim=True)
    + flatten -> ReduceMax keepdims=1 + Flatten), Linear."""
    import torch
    from torch import nn

    class PointNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv1d(3, 16, 1), nn.BatchNorm1d(16), nn.ReLU(),
                nn.Conv1d(16, 32, 3, padding=1), nn.BatchNorm1d(32), nn.ReLU(),
                nn.MaxPool1d(2) if maxpool else nn.Identity(),
                nn.Conv1d(32, 64, 1), nn.BatchNorm1d(64), nn.ReLU())
            self.head = nn.Linear(64, 5)

        def forward(self, x):
            x = self.features(x)
            x = torch.flatten(x.amax(dim=2, keepdim=True), 1) if keepdim else torch.max(x, dim=2)[0]
            return self.head(x)

    torch.manual_seed(seed)
    model = PointNet()
    randomise_batchnorm(model, seed + 1)
    return model.eval()


POINTNET_INPUT = (3, 32)


def temporal_cnn(seed: int = 0):
    """A temporal CNN on (2, 40) sequences: Conv1d + BN1d + ReLU + AvgPool1d +
    Conv1d + ReLU + AdaptiveAvgPool1d(1) + Flatten + Linear."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv1d(2, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(), nn.AvgPool1d(2),
        nn.Conv1d(8, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(16, 4))
    randomise_batchnorm(model, seed + 1)
    return model.eval()


TEMPORAL_INPUT = (2, 40)


# ---------------------------------------------------------------------------
# hand-made ONNX graph
# ---------------------------------------------------------------------------

HANDMADE_INPUT = (1, 8, 8)
HANDMADE_OPSET = 17


def handmade_model(seed: int = 0, *, reshape_shape=(0, -1), pad_value: float | None = 0.0,
                   pad_mode: str = "constant", clip=(0.0, 6.0), pads=(0, 0, 1, 1, 0, 0, 1, 1)) -> onnx.ModelProto:
    """A graph written with onnx.helper exercising the exporter-free spellings.

    input (N,1,8,8)
      -> Pad (pads as an input tensor, constant mode)     (N,1,10,10)
      -> Conv 1->4 3x3, no pads attribute                  (N,4,8,8)
      -> Clip(min, max given as inputs 0 and 6) = ReLU6
      -> Mul by an initializer scalar 0.5
      -> Reshape, shape initializer [0, -1]                (N,256)
      -> MatMul with an initializer weight (256,16)
      -> Add bias initializer (16,)
      -> Div by a Constant-node scalar 2.0
      -> Identity -> Relu -> Dropout (inference: identity)
      -> Gemm transB=0, alpha=0.5, beta=2.0, B (16,5), C (5,)   (N,5) output

    The keyword arguments make variants (the defaults are the graph above):
    `reshape_shape` e.g. (-1, 256); `pad_value` None omits the optional input;
    `pad_mode` "reflect"/"edge"; `clip` (min, max) with None omitting that
    input; `pads` the 8 pad amounts (must keep the 10x10 padded size).
    """
    rng = np.random.default_rng(seed)
    f32 = np.float32

    def init(name, arr):
        return numpy_helper.from_array(np.asarray(arr), name)

    assert sum(pads[2::4]) == 2 and sum(pads[3::4]) == 2, "padded image must stay 10x10"
    initializers = [
        init("pads", np.array(pads, dtype=np.int64)),
        init("conv_w", rng.standard_normal((4, 1, 3, 3)).astype(f32)),
        init("conv_b", (0.5 * rng.standard_normal(4)).astype(f32)),
        init("mul_k", np.array(0.5, dtype=f32)),
        init("flat_shape", np.array(reshape_shape, dtype=np.int64)),
        init("fc1_w", (rng.standard_normal((256, 16)) / 8.0).astype(f32)),
        init("fc1_b", (0.3 * rng.standard_normal(16)).astype(f32)),
        init("fc2_w", (rng.standard_normal((16, 5)) / 4.0).astype(f32)),
        init("fc2_b", (0.3 * rng.standard_normal(5)).astype(f32)),
    ]
    pad_inputs = ["input", "pads"]
    if pad_value is not None:
        initializers.append(init("pad_value", np.array(pad_value, dtype=f32)))
        pad_inputs.append("pad_value")
    clip_inputs = ["conv"]
    for name, bound in zip(("clip_min", "clip_max"), clip):
        if bound is None:
            clip_inputs.append("")  # omitted optional input
        else:
            initializers.append(init(name, np.array(bound, dtype=f32)))
            clip_inputs.append(name)
    while clip_inputs[-1] == "":
        clip_inputs.pop()
    nodes = [
        helper.make_node("Pad", pad_inputs, ["padded"], name="pad", mode=pad_mode),
        helper.make_node("Conv", ["padded", "conv_w", "conv_b"], ["conv"], name="conv",
                         kernel_shape=[3, 3], strides=[1, 1]),
        helper.make_node("Clip", clip_inputs, ["relu6"], name="relu6"),
        helper.make_node("Mul", ["relu6", "mul_k"], ["scaled"], name="mul_const"),
        helper.make_node("Reshape", ["scaled", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "fc1_w"], ["fc1"], name="fc1_matmul"),
        helper.make_node("Add", ["fc1", "fc1_b"], ["fc1_biased"], name="fc1_bias"),
        helper.make_node("Constant", [], ["div_k"], name="div_const_value",
                         value=numpy_helper.from_array(np.array(2.0, dtype=f32), "div_k_value")),
        helper.make_node("Div", ["fc1_biased", "div_k"], ["halved"], name="div_const"),
        helper.make_node("Identity", ["halved"], ["ident"], name="identity"),
        helper.make_node("Relu", ["ident"], ["act"], name="relu"),
        helper.make_node("Dropout", ["act"], ["dropped"], name="dropout"),
        helper.make_node("Gemm", ["dropped", "fc2_w", "fc2_b"], ["output"], name="fc2",
                         transA=0, transB=0, alpha=0.5, beta=2.0),
    ]
    graph = helper.make_graph(
        nodes,
        "handmade",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *HANDMADE_INPUT])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 5])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", HANDMADE_OPSET)],
                              producer_name="adacal-tests")
    model.ir_version = 8  # loadable by any onnxruntime supporting opset 17
    onnx.checker.check_model(model, full_check=True)
    return model


def handmade_reference(x: np.ndarray, model: onnx.ModelProto | None = None) -> np.ndarray:
    """numpy evaluation of `handmade_model` (independent of onnxruntime)."""
    model = model or handmade_model()
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    n = x.shape[0]
    # only zero constant padding is modelled here
    assert w.get("pad_value", 0.0) == 0.0
    assert [n for n in model.graph.node if n.op_type == "Pad"][0].attribute[0].s == b"constant"
    p = w["pads"]
    xp = np.pad(x, ((0, 0), (0, 0), (p[2], p[6]), (p[3], p[7])))
    out = np.zeros((n, 4, 8, 8), dtype=np.float64)
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, i:i + 8, j:j + 8]  # (N,1,8,8)
            out += np.einsum("nchw,oc->nohw", patch, w["conv_w"][:, :, i, j])
    out += w["conv_b"][None, :, None, None]
    lo = w["clip_min"] if "clip_min" in w else -np.inf
    hi = w["clip_max"] if "clip_max" in w else np.inf
    h = np.clip(out, lo, hi) * 0.5
    h = h.reshape(n, -1) @ w["fc1_w"] + w["fc1_b"]
    h = np.maximum(h / 2.0, 0.0)
    return (0.5 * (h @ w["fc2_w"]) + 2.0 * w["fc2_b"]).astype(np.float32)


# ---------------------------------------------------------------------------
# hand-made graphs for error paths
# ---------------------------------------------------------------------------

def unsupported_op_model(op_type: str = "Sin", node_name: str = "weird_node") -> onnx.ModelProto:
    """(N,4) -> Gemm -> <op_type> named `node_name` -> Gemm -> (N,3)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((6, 4)).astype(np.float32), "w1"),
        numpy_helper.from_array(np.zeros(6, np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((3, 6)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.zeros(3, np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node(op_type, ["h"], ["h2"], name=node_name),
        helper.make_node("Gemm", ["h2", "w2", "b2"], ["output"], name="fc2", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "unsupported",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def dynamic_spatial_model() -> onnx.ModelProto:
    """A Conv model whose input is ['N', 3, 'H', 'W'] (non-batch dims dynamic)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(np.zeros(4, np.float32), "b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["output"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "dynamic_spatial",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4, "H", "W"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def batch_scaled_model() -> onnx.ModelProto:
    """(N,4) -> Gemm -> Mul by float(batch size) read through Shape/Gather/Cast -> (N,3).

    Contrived, but legal ONNX: the batch size is used as a *value*.  A frontend
    that stands in a placeholder for the dynamic batch must refuse this rather
    than compute with the placeholder.
    """
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((3, 4)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b1"),
        numpy_helper.from_array(np.array(0, dtype=np.int64), "zero"),
    ]
    nodes = [
        helper.make_node("Gemm", ["input", "w1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Shape", ["input"], ["shape"], name="shape"),
        helper.make_node("Gather", ["shape", "zero"], ["n_int"], name="batch_size", axis=0),
        helper.make_node("Cast", ["n_int"], ["n"], name="batch_size_float", to=TensorProto.FLOAT),
        helper.make_node("Mul", ["h", "n"], ["output"], name="times_batch"),
    ]
    graph = helper.make_graph(
        nodes, "batch_scaled",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------------------
# registry used by the session cache
# ---------------------------------------------------------------------------

def _example(shape, batch=2):
    import torch

    return torch.zeros((batch, *shape), dtype=torch.float32)


def input_shape(key: str) -> tuple[int, ...]:
    """Per-sample input shape (without batch) of the model `key`."""
    base = key.split("@")[0]
    if base in TORCHVISION_INPUT:
        return TORCHVISION_INPUT[base]
    if base.startswith("handmade"):
        return HANDMADE_INPUT
    return {"mlp": MLP_INPUT, "small_cnn": SMALL_CNN_INPUT, "batch_scaled": (4,)}[base]


#: "<model>@<variant>": cf = classic exporter with constant folding,
#: nocf = classic exporter without (BatchNormalization kept), dynamo = new
#: exporter (optimised: BN folded), dynamo_noopt = new exporter, optimize=False
#: (BN kept, flatten computed through Shape/Squeeze/Concat + Reshape allowzero=1).
MODEL_KEYS = (
    "resnet18@cf", "resnet18@nocf",
    "mobilenet_v2@cf", "mobilenet_v2@nocf",
    "vgg11_bn@cf", "vgg11_bn@nocf",
    "mlp@cf", "mlp@nocf",
    "handmade",
    "small_cnn@dynamo", "small_cnn@dynamo_noopt",
    "resnet18@dynamo", "mobilenet_v2@dynamo",
    "batch_scaled",
)

#: variants of handmade_model(); adacal must either convert them exactly or
#: refuse them with an AdacalError (never silently change the function).
HANDMADE_VARIANTS = {
    "flat_minus1": dict(reshape_shape=(-1, 256)),          # [-1, K] spelling
    "no_pad_value": dict(pad_value=None),                  # optional input omitted
    "asym_pad": dict(pads=(0, 0, 2, 0, 0, 0, 0, 2)),       # asymmetric zero padding
    "pad_value_1": dict(pad_value=1.0),                    # not a zero pad
    "pad_reflect": dict(pad_mode="reflect", pad_value=None),
    "pad_edge": dict(pad_mode="edge", pad_value=None),
    "clip_min_only": dict(clip=(0.0, None)),               # = Relu
    "clip_max_only": dict(clip=(None, 6.0)),               # not a ReLU
    "clip_neg_min": dict(clip=(-1.0, 6.0)),                # not a ReLU
    "clip_min_1": dict(clip=(1.0, 6.0)),                   # not a ReLU
    "clip_0_1": dict(clip=(0.0, 1.0)),                     # ReLU1
}
MODEL_KEYS += tuple(f"handmade@{v}" for v in HANDMADE_VARIANTS)


def build(key: str, directory, seed: int = 0) -> Path:
    """Write the ONNX file for `key` into `directory` (if missing) and return its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (key.replace("@", "_") + ".onnx")
    if path.exists():
        return path
    tmp = path.with_suffix(".onnx.part")
    base, _, variant = key.partition("@")
    if base == "handmade":
        onnx.save(handmade_model(seed, **HANDMADE_VARIANTS.get(variant, {})), str(tmp))
    elif base == "batch_scaled":
        onnx.save(batch_scaled_model(), str(tmp))
    elif variant in ("dynamo", "dynamo_noopt"):
        model = small_cnn(seed) if base == "small_cnn" else torchvision_model(base, seed)
        export_onnx_dynamo(model, _example(input_shape(key)), tmp, optimize=(variant == "dynamo"))
    else:
        if variant not in ("cf", "nocf"):
            raise ValueError(f"unknown model key {key!r}")
        model = mlp_model(seed) if base == "mlp" else torchvision_model(base, seed)
        export_onnx(model, _example(input_shape(key)), tmp, do_constant_folding=(variant == "cf"))
        n_bn = count_ops(tmp, "BatchNormalization")
        if variant == "nocf" and n_bn == 0:
            raise AssertionError(f"{key}: export without constant folding lost its BatchNormalization nodes")
        # torch's constant folding fuses eval BatchNorm into a preceding Conv
        # only; BatchNorm1d after Linear (the MLP) survives either way.
        if variant == "cf" and n_bn != 0 and base in TORCHVISION_INPUT:
            raise AssertionError(f"{key}: constant-folded export still has {n_bn} BatchNormalization nodes")
    os.replace(tmp, path)
    return path


def random_input(key: str, batch: int = 8, seed: int = 0) -> np.ndarray:
    """Seeded standard-normal batch for model `key`, float32 (batch, *input_shape)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, *input_shape(key))).astype(np.float32)


def ort_run(path, x: np.ndarray) -> np.ndarray:
    """Run an ONNX file with onnxruntime on CPU (single output)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: x})[0]
