"""The inference workloads of the SchNet and PaiNN benchmarks: ``harness.workloads`` and one ethanol.

A single ethanol (rMD17 frame 0, 9 atoms) is the size of a molecular-dynamics
step; one evaluation takes milliseconds, so each timed call evaluates it
``MD_CALLS`` times (the count is the number of evaluations per call).
"""

from __future__ import annotations

from typing import List

from harness import workloads

MD_CALLS = 20


def ethanol_batch():
    from torch_geometric.data import Batch

    from equinnp.data import from_ase
    from equinnp.data.bundled import ethanol_atoms

    return Batch.from_data_list([from_ase(ethanol_atoms())])


def inference_workloads() -> List[tuple]:
    """``[(label, unit, count, batch, calls)]``: each timed call evaluates ``batch`` ``calls`` times
    and counts ``count`` units (molecules or atoms) in all."""
    standard = [(label, unit, count, batch, 1) for label, unit, count, batch in workloads()]
    return standard + [("ethanol (9 atoms, MD size)", "evaluations/s", MD_CALLS, ethanol_batch(), MD_CALLS)]
