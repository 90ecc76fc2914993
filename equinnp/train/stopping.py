"""When a run stops: ``max_epochs``, early stopping and the ``max_time`` budget, checked between epochs.

Every logged epoch is a full pass over the training data. Before each epoch
the trainer asks :func:`stop_reason` whether the run has ended:

- ``max_epochs``: ``max_epochs`` epochs are done;
- ``early_stopping``: ``early_stopping_patience`` epochs in a row without a
  better validation loss (counted within a loss stage);
- ``max_time``: the training time so far plus the duration of the last epoch
  (the estimate of the next one) would pass ``max_time`` seconds. The first
  epoch of a run always runs, so that a run has a model to test.

An epoch that reaches ``max_time`` anyway (it ran slower than the last one)
is stopped at that step and discarded: it is not validated, logged or
saved, and the run ends with the state of the epoch before, which is what
``last.pt`` holds. The same check runs when a run is resumed: a run whose
reason to stop still holds under the resumed config is finished, and
``--resume`` leaves it as it is; raising the limit that stopped it
(``--set training.max_epochs=...``) continues it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Optional, Tuple

__all__ = ["StopReason", "finished_run", "stop_reason"]


class StopReason(NamedTuple):
    """Why a run stops: ``kind`` (max_epochs, early_stopping or max_time), a sentence, and the setting to raise."""

    kind: str
    detail: str
    setting: str


def stop_reason(training: dict, epoch: int, elapsed: float, epoch_time: float, bad_epochs: int) -> Optional[StopReason]:
    """The reason a run stops before its next epoch, or None to train on.

    Parameters
    ----------
    training : dict
        The ``training`` section of the run config.
    epoch : int
        Completed epochs.
    elapsed : float
        Seconds of training so far (all sessions of the run).
    epoch_time : float
        Seconds the last epoch took (0 when unknown).
    bad_epochs : int
        Epochs in a row without a better validation loss.
    """
    max_epochs = training["max_epochs"]
    if epoch >= max_epochs:
        return StopReason("max_epochs", f"{epoch} epochs of training.max_epochs = {max_epochs}", "training.max_epochs")
    patience = training["early_stopping_patience"]
    if patience is not None and bad_epochs >= patience:
        return StopReason("early_stopping", f"{bad_epochs} epochs without a better validation loss, "
                          f"training.early_stopping_patience = {patience}", "training.early_stopping_patience")
    max_time = training["max_time"]
    if max_time is not None and epoch >= 1 and (elapsed >= max_time or elapsed + epoch_time > max_time):
        return StopReason("max_time", f"{elapsed:.0f} s of training, another epoch of ~{epoch_time:.0f} s would pass "
                          f"training.max_time = {max_time:g} s", "training.max_time")
    return None


def finished_run(training: dict, output_dir: Path, state: dict) -> Optional[Tuple[StopReason, dict]]:
    """(why it stopped, its saved summary) for a run whose checkpoint ``state`` says it has ended, else None.

    A run that has ended but whose final evaluation did not complete (no
    ``summary.json`` of the same run and epoch) returns None: it is finished by
    resuming it, which goes straight to the final evaluation.
    """
    reason = stop_reason(training, state["epoch"], state["elapsed"], state.get("epoch_time", 0.0), state["bad_epochs"])
    summary_path = Path(output_dir) / "summary.json"
    if reason is None or not summary_path.is_file():
        return None
    with open(summary_path) as handle:
        summary = json.load(handle)
    if summary.get("epochs") != state["epoch"] or summary.get("run_id") != state.get("run_id"):
        return None
    return reason, summary
