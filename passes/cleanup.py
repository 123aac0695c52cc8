"""The clean-up pipeline every command runs first."""
from adacal import ir
from adacal.passes.drop_identity import drop_identity
from adacal.passes.fold_batchnorm import fold_batchnorm
from adacal.passes.fold_pad import fold_pad
from adacal.passes.fold_scalings import fold_scalings
from adacal.passes.recognise_relu import recognise_relu


def cleanup(g: ir.Graph) -> ir.Graph:
    """drop Identity/Dropout -> fold Pad -> fold BatchNorm -> fold constant
    scalings -> recognise ReLU forms.  Float function preserved."""
    for p in (drop_identity, fold_pad, fold_batchnorm, fold_scalings, recognise_relu):
        g = p(g)
    return g
