"""adacal: ONNX -> calibrated burst-spiking networks for Loihi 2 and Xylo.

    g = adacal.load_onnx("model.onnx")            # IR graph; g.run(x) is the float reference
    conv = adacal.convert("model.onnx", calib, val, timesteps=4)
    conv.summary, conv.simulate(data), conv.save("out/")
    art = adacal.compile("model.onnx", "xylo", calib, "build/", device="xylo-audio2")
    art = adacal.load_artifact("build/")
    art.simulate(data), art.verify(data, samples=5)

calib, val and data: a .npz path, a directory with x.npy (and y.npy), an
array x, a pair (x, y), or an iterable of (x, y) batches such as a torch
DataLoader (adacal.data); batch_size=N (default 256) says how many samples are
read and simulated at a time.  compute_device="cuda" (or "cuda:N", "mps")
runs the float stages on that torch device (adacal.device); workers=N or
cluster="tcp://host:8786" shard the evaluation over Dask (adacal.distribute).
Every problem
with the input raises AdacalError with the CLI's one-line message.
"""
from adacal.errors import AdacalError
from adacal.ir import Graph, Node

__version__ = "0.1.0"


def load_onnx(model) -> Graph:
    """Load an ONNX model (path, bytes or ModelProto) into an adacal IR graph."""
    from adacal.frontends.onnx import load_onnx as _load
    return _load(model)


def _on(compute_device):
    """The device context for compute_device (None: whatever is current)."""
    import contextlib
    from adacal.device import using
    return contextlib.nullcontext() if compute_device is None else using(compute_device)


def convert(model, calib, val=None, *, log=None, compute_device=None, workers=1, cluster=None, **options):
    """Convert an ONNX model (path, bytes, ModelProto or IR graph) into a
    calibrated float burst SNN.

    options: the conversion options by name (timesteps=8, max_spikes=4,
    threshold="mse", calibration="light", search_spikes=False, ...; see
    adacal.pipeline.ConvertOptions).  Returns the Conversion: .summary is what
    `adacal convert --json` prints (with val: accuracy, spikes, energy),
    .simulate(data) runs the float SNN, .save(dir) writes what `convert -o` does.
    """
    from adacal.pipeline import ConvertOptions
    from adacal.pipeline import convert as _convert
    with _on(compute_device):
        conv, _ = _convert(model, calib, val, options=_options(ConvertOptions, options), log=log, workers=workers,
                           cluster=cluster)
    return conv


def compile(model, target, calib, out_dir, val=None, device=None, *, force=False, log=None,  # noqa: A001
            emit_nir=False, compute_device=None, workers=1, cluster=None, **options):
    """Convert and compile for target ('loihi2' or 'xylo', which needs a
    device: 'xylo-audio2', 'xylo-audio3' or 'xylo-imu') into out_dir.

    Returns the Artifact: .summary (what `adacal compile-* --json` prints),
    .simulate(data), .verify(data, samples=N)."""
    from adacal.artifact import compile_model
    from adacal.pipeline import ConvertOptions
    with _on(compute_device):
        art, summary = compile_model(model, target, calib, out_dir, val=val,
                                     options=_options(ConvertOptions, options), force=force, log=log,
                                     emit_nir=emit_nir, device=device, workers=workers, cluster=cluster)
    art.summary = summary
    return art


def load_artifact(path):
    """The compiled artifact in directory path: .simulate(data), .verify(data, samples=N)."""
    from adacal.artifact import load_artifact as _load
    return _load(path)


def _options(cls, options: dict):
    """ConvertOptions from keyword arguments; an unknown name is an AdacalError."""
    import dataclasses
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - names)
    if unknown:
        raise AdacalError(f"unknown option {', '.join(unknown)} (options: {', '.join(sorted(names))})")
    if "spike_range" in options:
        options = {**options, "spike_range": tuple(options["spike_range"])}
    return cls(**options)


__all__ = ["AdacalError", "Graph", "Node", "compile", "convert", "load_artifact", "load_onnx", "__version__"]
