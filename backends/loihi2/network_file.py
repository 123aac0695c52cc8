"""network.h5: the Loihi 2 integer network in lava-dl netx's HDF5 layout,
extended where netx cannot express it (burst neurons, fan-in, delays).
The layout: docs/loihi2.md, "network.h5".
"""
from __future__ import annotations

import numpy as np

from adacal import int_ir, ir
from adacal.backends.loihi2.lower import Loihi2Lowering

FORMAT = "adacal-loihi2-netx"
VERSION = 1


def _type_of(op) -> str:
    return {int_ir.GradedInput: "input", int_ir.IntDense: "dense", int_ir.IntConv: "conv",
            int_ir.IntBurstNeuron: "burst_if", ir.Add: "add", int_ir.Delay: "delay", ir.Flatten: "flatten",
            ir.Reshape: "reshape", ir.Concat: "concat", int_ir.IntMaxPool: "max_pool"}[type(op)]


def write_network(low: Loihi2Lowering, path) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs.update({"format": FORMAT, "format_version": VERSION, "timesteps": low.timesteps,
                        "readout": low.graph.output, "readout_scale": low.readout_scale,
                        "depth": low.depth})
        f.create_dataset("readout_bias", data=np.asarray(low.readout_bias, np.int64), track_times=False)
        layers = f.create_group("layer")
        for i, n in enumerate(low.graph.nodes):
            grp = layers.create_group(str(i))
            op = n.op
            grp.create_dataset("type", data=np.bytes_(_type_of(op)), dtype="S10", track_times=False)
            grp.create_dataset("name", data=np.bytes_(n.name), track_times=False)
            grp.create_dataset("inputs", data=np.array([s.encode() for s in n.inputs], dtype="S") if n.inputs
                               else np.zeros(0, "S1"), track_times=False)
            grp.create_dataset("shape", data=np.asarray(n.shape, np.int64), track_times=False)
            if isinstance(op, int_ir.GradedInput):
                grp.attrs.update({"scale": op.scale, "lo": op.lo, "hi": op.hi})
            elif isinstance(op, int_ir.IntDense):
                grp.create_dataset("weight", data=np.asarray(op.weight, np.int64), track_times=False)
                grp.attrs.update({"weight_exp": op.weight_exp, "num_weight_bits": op.num_weight_bits,
                                  "num_message_bits": op.num_message_bits, "depth": op.depth})
            elif isinstance(op, int_ir.IntConv):
                grp.create_dataset("weight", data=np.asarray(op.weight, np.int64), track_times=False)
                t, l, b, r = op.padding
                grp.create_dataset("stride", data=np.asarray(op.stride, np.int64), track_times=False)
                grp.create_dataset("padding", data=np.asarray((t, l), np.int64), track_times=False)
                grp.create_dataset("padding_tlbr", data=np.asarray(op.padding, np.int64), track_times=False)
                grp.create_dataset("dilation", data=np.asarray(op.dilation, np.int64), track_times=False)
                grp.create_dataset("groups", data=np.int64(op.groups), track_times=False)
                grp.attrs.update({"num_message_bits": op.num_message_bits, "depth": op.depth})
            elif isinstance(op, int_ir.IntBurstNeuron):
                nrn = grp.create_group("neuron")
                nrn.create_dataset("type", data=np.bytes_("BURST_IF"), track_times=False)
                nrn.create_dataset("threshold", data=np.asarray(op.threshold, np.int64), track_times=False)
                nrn.create_dataset("bias", data=np.asarray(op.bias, np.int64), track_times=False)
                nrn.create_dataset("v_init", data=np.asarray(op.v_init, np.int64), track_times=False)
                nrn.attrs.update({"max_spikes": op.max_spikes})
                if op.signed:  # written only when set: files of unsigned networks stay as they were
                    nrn.attrs["signed"] = True
                if op.memory:  # likewise
                    nrn.attrs["memory"] = True
                grp.attrs["depth"] = op.depth
            elif isinstance(op, int_ir.IntMaxPool):
                for key, v in (("kernel", op.kernel), ("stride", op.stride), ("padding_tlbr", op.padding),
                               ("dilation", op.dilation)):
                    grp.create_dataset(key, data=np.asarray(v, np.int64), track_times=False)
                grp.attrs.update({"ceil_mode": bool(op.ceil_mode), "how": op.how, "depth": op.depth})
            elif isinstance(op, int_ir.Delay):
                grp.attrs["steps"] = op.steps
            elif isinstance(op, ir.Concat):
                grp.attrs["axis"] = op.axis
            elif isinstance(op, ir.Reshape):
                grp.create_dataset("target", data=np.asarray(op.shape, np.int64), track_times=False)


def _s(ds) -> str:
    v = ds[()]
    return v.decode() if isinstance(v, bytes) else str(v)


def read_network(path) -> Loihi2Lowering:
    """The integer network from network.h5 alone."""
    import h5py

    from adacal.errors import AdacalError

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise AdacalError(f"{path}: not a readable network.h5 ({e})") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise AdacalError(f"{path}: not an adacal Loihi 2 network (format {f.attrs.get('format')!r})")
        nodes = []
        for i in range(len(f["layer"])):
            grp = f["layer"][str(i)]
            kind, name = _s(grp["type"]), _s(grp["name"])
            inputs = tuple(s.decode() for s in grp["inputs"][()])
            shape = tuple(int(v) for v in grp["shape"][()])
            a = grp.attrs
            if kind == "input":
                op = int_ir.GradedInput(float(a["scale"]), int(a["lo"]), int(a["hi"]))
            elif kind == "dense":
                op = int_ir.IntDense(grp["weight"][()], int(a["weight_exp"]), int(a["num_weight_bits"]),
                                     int(a["num_message_bits"]), int(a["depth"]))
            elif kind == "conv":
                op = int_ir.IntConv(grp["weight"][()], tuple(int(v) for v in grp["stride"][()]),
                                    tuple(int(v) for v in grp["padding_tlbr"][()]),
                                    tuple(int(v) for v in grp["dilation"][()]), int(grp["groups"][()]),
                                    int(a["num_message_bits"]), int(a["depth"]))
            elif kind == "burst_if":
                nrn = grp["neuron"]
                op = int_ir.IntBurstNeuron(nrn["threshold"][()], nrn["bias"][()], nrn["v_init"][()],
                                           int(nrn.attrs["max_spikes"]), int(a["depth"]),
                                           bool(nrn.attrs.get("signed", False)),
                                           bool(nrn.attrs.get("memory", False)))
            elif kind == "max_pool":
                pair = (lambda key: tuple(int(v) for v in grp[key][()]))
                op = int_ir.IntMaxPool(pair("kernel"), pair("stride"), pair("padding_tlbr"), pair("dilation"),
                                       bool(a["ceil_mode"]), str(a["how"]), int(a["depth"]))
            elif kind == "add":
                op = ir.Add()
            elif kind == "delay":
                op = int_ir.Delay(int(a["steps"]))
            elif kind == "flatten":
                op = ir.Flatten()
            elif kind == "reshape":
                op = ir.Reshape(tuple(int(v) for v in grp["target"][()]))
            elif kind == "concat":
                op = ir.Concat(int(a["axis"]))
            else:
                raise AdacalError(f"{path}: layer {i} has unknown type '{kind}'")
            nodes.append(ir.Node(name, op, inputs, shape))
        g = ir.Graph(tuple(nodes), str(f.attrs["readout"]))
        return Loihi2Lowering(g, {}, {}, float(f.attrs["readout_scale"]), f["readout_bias"][()],
                              int(f.attrs["timesteps"]), int(f.attrs["depth"]))
