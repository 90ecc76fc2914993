"""What a run writes as it goes: metrics CSV, TensorBoard scalars, console lines.

The columns and lines are derived from the run's outputs (names of
:data:`~equinnp.train.outputs.OUTPUTS`): for each, its loss weight, its mean
training loss term and its validation metrics.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

from equinnp.train.metrics import metric_names
from equinnp.train.outputs import OUTPUTS

__all__ = ["MetricsLog", "format_epoch_line", "format_metrics", "metrics_columns", "metrics_table"]


def metrics_columns(outputs: Sequence[str]) -> List[str]:
    """The ``metrics.csv`` columns of a run that reports ``outputs``."""
    return (
        ["epoch", "time_s", "lr"]
        + [f"{name}_weight" for name in outputs]
        + ["train_loss"] + [f"train_{name}_loss" for name in outputs]
        + ["val_loss"] + [f"val_{metric}" for name in outputs for metric in metric_names(name)]
    )


class MetricsLog:
    """``metrics.csv`` (one row per epoch) and, when importable, TensorBoard event files.

    Parameters
    ----------
    output_dir : Path
    columns : list of str
        The CSV header (:func:`metrics_columns`); values a row lacks are left empty.
    tensorboard : bool
    """

    def __init__(self, output_dir: Path, columns: Sequence[str], tensorboard: bool = True):
        self.path = Path(output_dir) / "metrics.csv"
        self.columns = list(columns)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(Path(output_dir) / "tensorboard"))
            except ImportError:
                self.writer = None

    def truncate_after(self, epoch: int) -> None:
        """Drop rows of epochs after ``epoch``: rows written after the checkpoint a run
        resumes from, or (``epoch`` 0) a previous run's table in an overwritten folder.
        The kept rows are rewritten under this log's header."""
        if not self.path.is_file():
            return
        if epoch == 0:
            self.path.unlink()
            return
        with open(self.path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["epoch"]) <= epoch]
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict) -> None:
        new = not self.path.is_file()
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerow(row)
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(key, value, row["epoch"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def format_metrics(metrics: Mapping[str, float], prefix: str = "", outputs: Optional[Sequence[str]] = None,
                   kind: str = "mae") -> str:
    """``E 1.23 meV (0.14 meV/atom)  F 12.3 meV/Å`` from the ``<prefix><name>_<kind>`` entries of ``metrics``
    (``kind`` is ``mae`` or ``rmse``), for every output of ``outputs`` (default: all) that has one."""
    parts = []
    for name in outputs if outputs is not None else OUTPUTS:
        spec = OUTPUTS[name]
        value = metrics.get(f"{prefix}{name}_{kind}")
        if value is None or value == "":
            continue
        text = f"{spec.symbol} {value:.2f} {spec.metric_unit}"
        per_atom = metrics.get(f"{prefix}{name}_per_atom_{kind}")
        if per_atom is not None:
            text += f" ({per_atom:.2f} {spec.metric_unit}/atom)"
        parts.append(text)
    return "  ".join(parts)


def format_epoch_line(epoch: int, max_epochs: int, row: dict, elapsed: float, best: Optional[bool] = False,
                      outputs: Optional[Sequence[str]] = None) -> str:
    """One console line per epoch: training loss, validation MAE of every output, learning rate, time."""
    return (
        f"epoch {epoch:>4d}/{max_epochs}  loss {row['train_loss']:.4g}  "
        f"val: {format_metrics(row, 'val_', outputs)}  "
        f"lr {row['lr']:.2e}  {elapsed:.0f} s{'  *' if best else ''}"
    )


def metrics_table(metrics: Mapping[str, float]) -> str:
    """One line per output: ``forces  MAE    12.345 meV/Å   RMSE    15.678 meV/Å`` (and per atom where defined)."""
    lines = []
    for name, spec in OUTPUTS.items():
        if f"{name}_mae" not in metrics:
            continue
        line = (f"{name:<8}MAE {metrics[f'{name}_mae']:9.3f} {spec.metric_unit:<7} "
                f"RMSE {metrics[f'{name}_rmse']:9.3f} {spec.metric_unit}")
        if f"{name}_per_atom_mae" in metrics:
            line += f"    per atom MAE {metrics[f'{name}_per_atom_mae']:.3f} {spec.metric_unit}/atom"
        lines.append(line)
    return "\n".join(lines)
