"""adacal's max pool over graded payloads (or synaptic currents) as a Lava
Process (process.py) with a bit-accurate 'fixed_pt' CPU model (models.py).

Kept free of imports and side effects on purpose, like burst_if/: Lava finds
process models by executing every .py file in this folder (lava/magma/
compiler/compiler_graphs.py, ProcGroupDiGraphs._find_proc_models, lines
795-902).  Import ``.process`` (MaxPool) explicitly.
"""
