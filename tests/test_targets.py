"""The target registry (adacal.targets) and the Target interface: every
registered target is a Target with a compile command, and registering one
more target adds `adacal compile-<name>` with its own options."""
import pytest

from adacal import cli, targets
from adacal.errors import AdacalError
from adacal.target import Target, TargetOption


def test_registered_targets():
    assert targets.names() == ("loihi2", "xylo")
    for name in targets.names():
        t = targets.get(name)
        assert isinstance(t, Target) and t.name == name and t.command == f"compile-{name}"
    assert targets.get("xylo").graded_spikes is False and targets.get("loihi2").graded_spikes is True


def test_unknown_target_names_the_choices():
    with pytest.raises(AdacalError, match=r"unknown target 'tpu' \(available: loihi2, xylo\)"):
        targets.get("tpu")


class _Toy(Target):
    name, title = "toy", "Toy chip"
    help = description = "a toy target"
    options = (TargetOption("--cores", "cores", "cores to use", ("1", "2"), required=True),)

    def lower(self, conv, x_cal, target_options, log=None):
        raise NotImplementedError

    def load(self, path, manifest):
        raise NotImplementedError

    def verify(self, lowering, x, log=None):
        raise NotImplementedError


def test_one_registry_line_adds_a_compile_command(monkeypatch, tmp_path):
    import sys
    import types
    mod = types.ModuleType("toy_target")
    mod.TARGET = _Toy()
    monkeypatch.setitem(sys.modules, "toy_target", mod)
    monkeypatch.setitem(targets.REGISTRY, "toy", "toy_target")
    args = cli.build_parser().parse_args(["compile-toy", "m.onnx", "--calib", "c.npz", "-o", str(tmp_path),
                                          "--cores", "2"])
    assert args.target == "toy" and args.cores == "2"
    assert not hasattr(args, "search_cost")  # --search-cost only where bursts are graded messages
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["compile-toy", "m.onnx", "--calib", "c.npz", "-o", str(tmp_path)])


def test_configure_refuses_options_a_target_does_not_have():
    from adacal.pipeline import ConvertOptions
    with pytest.raises(AdacalError, match="target 'toy' has no option device"):
        _Toy().configure(ConvertOptions(), device="x")
    assert _Toy().configure(ConvertOptions(), cores="1") == {"cores": "1"}
