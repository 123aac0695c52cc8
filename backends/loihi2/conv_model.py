"""Lava's fixed-point Conv model with its small integer parameters held as
int32 instead of int8: the model run_lava selects for every
``lava.proc.conv.process.Conv`` (``conv_run_config_map``).

Why.  lava-nc 0.10.0's PyConvModelFixed (lava/proc/conv/models.py, lines
25-32) declares kernel_size, stride, padding, dilation, groups,
num_message_bits and num_weight_bits as int8 Vars, and its step
(lava/proc/conv/utils.py: conv_scipy lines 252-286, output_shape lines
122-133) mixes them with Python ints taken from the array shapes:
``input_.shape[-1] % groups``, ``output.shape[2] // groups``,
``input_shape[0] + 2 * padding[0]``.  Under numpy >= 2 (NEP 50) a Python int
meeting an int8 scalar is cast to int8 and raises OverflowError when it does
not fit, so a Conv with 128 or more input or output channels, or with a
padded input 128 or more wide, raises at its first step, and one with
groups >= 128 already when its Var is built.  (The project needs numpy 2,
requirements/constraints.txt.)  Lava by itself then never returns
(``lava_run._run_steps`` and ``_abort`` make such a run raise instead);
docs/loihi2.md, "Lava quirks".

What.  The subclass changes nothing but those seven storage types: run_spk,
utils.conv and the 24-bit clamp are Lava's own, inherited unchanged, so
wherever Lava's int8 arithmetic does not overflow they compute exactly what
PyConvModelFixed computes (tests/test_loihi2_lava.py runs its 60 random
networks through it; tests/test_loihi2_structures.py the wide ones).  Lava imports happen at import
time: import this module only from a function, after ``ensure_lava()``
(lava_run._lava does).
"""
from __future__ import annotations

import numpy as np

from adacal.backends.loihi2.compat import ensure_lava as _ensure_lava

_ensure_lava()

from lava.magma.core.model.py.type import LavaPyType  # noqa: E402
from lava.proc.conv.models import PyConvModelFixed  # noqa: E402
from lava.proc.conv.process import Conv  # noqa: E402

__all__ = ["PyConvModelFixedInt32", "conv_run_config_map"]


class PyConvModelFixedInt32(PyConvModelFixed):
    """PyConvModelFixed (implements Conv, LoihiProtocol, CPU, tag 'fixed_pt',
    all inherited) with int32 parameter Vars; same precisions as Lava's."""

    kernel_size: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    stride: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    padding: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    dilation: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    groups: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)
    num_weight_bits: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=5)


def conv_run_config_map() -> dict:
    """``exception_proc_model_map`` for Loihi2SimCfg: Lava's Conv process ->
    PyConvModelFixedInt32."""
    return {Conv: PyConvModelFixedInt32}
