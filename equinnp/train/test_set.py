"""The final evaluation of a run on its test set: metrics, ``test_metrics.json`` and the parity plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from torch_geometric.data import Data

from equinnp.train.data import make_loader, prepare_records
from equinnp.train.metrics import evaluate_potential
from equinnp.train.reporting import format_metrics

__all__ = ["evaluate_test_set"]


def evaluate_test_set(potential, records: Sequence[Data], batch_size: int, ctx, output_dir: Path,
                      say: Callable[[str], None]) -> dict:
    """Evaluate ``potential`` on the test ``records``; rank 0 writes ``test_metrics.json`` and ``parity.png``.

    Returns the summary entries: ``test`` (the metrics) and, when the plot was
    drawn, ``parity_plot`` (its path). In a distributed run every process
    evaluates its share and the metrics are reduced; no plot is drawn then.
    """
    output_dir = Path(output_dir)
    test_records = prepare_records(records, potential.cutoff, potential.dtype)
    loader = make_loader(test_records, batch_size, shuffle=False, rank=ctx.rank, world_size=ctx.world_size)
    result = evaluate_potential(potential, loader, ctx.device, collect=not ctx.enabled, distributed=ctx.enabled)
    metrics, arrays = result if isinstance(result, tuple) else (result, None)
    entries = {"test": metrics}
    if ctx.is_main:
        with open(output_dir / "test_metrics.json", "w") as handle:
            json.dump(metrics, handle, indent=2)
        if arrays is not None:
            from equinnp.train.plots import parity_plot

            parity_plot(arrays, output_dir / "parity.png", title=f"{potential.architecture}: test set")
            entries["parity_plot"] = str(output_dir / "parity.png")
        say(f"test ({metrics['n_structures']} structures): MAE {format_metrics(metrics)}; "
            f"RMSE {format_metrics(metrics, kind='rmse')}")
    return entries
