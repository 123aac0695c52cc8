"""The clean-up pipeline every command runs first."""
from adacal import ir
from adacal.passes.drop_identity import drop_identity
from adacal.passes.fold_batchnorm import fold_batchnorm
from adacal.passes.fold_pad import fold_pad
from adacal.passes.fold_scalings import fold_scalings
from adacal.passes.linear_bottleneck import carry_linear_values
from adacal.passes.maxpool_placement import sink_maxpool
from adacal.passes.preactivation import affine_to_synapse
from adacal.passes.recognise_relu import recognise_relu


def cleanup(g: ir.Graph) -> ir.Graph:
    """drop Identity/Dropout -> fold Pad -> fold BatchNorm -> fold constant
    scalings -> recognise ReLU forms -> max pools after their ReLU ->
    pre-activation affines as synapses -> compose or relay linear values.
    Float function preserved."""
    for p in (drop_identity, fold_pad, fold_batchnorm, fold_scalings, recognise_relu, sink_maxpool,
              affine_to_synapse, carry_linear_values):
        g = p(g)
    return g
