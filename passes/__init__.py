"""Passes: plain functions Graph -> Graph (plus the conversion plan)."""
from adacal.passes.cleanup import cleanup
from adacal.passes.drop_identity import drop_identity
from adacal.passes.fold_batchnorm import fold_batchnorm
from adacal.passes.fold_pad import fold_pad
from adacal.passes.fold_scalings import fold_scalings
from adacal.passes.recognise_relu import recognise_relu

__all__ = ["cleanup", "drop_identity", "fold_batchnorm", "fold_pad", "fold_scalings", "recognise_relu"]
from adacal.passes.plan import PlanEntry, conversion_plan  # noqa: E402

__all__ += ["PlanEntry", "conversion_plan"]
