"""The training loop: a plain PyTorch loop over PyG ``DataLoader`` batches.

Each step evaluates the potential in training mode (forces by autograd with
``create_graph=True``, so that the force loss can be differentiated), computes
the weighted loss (:mod:`equinnp.train.losses`), averages gradients over
processes under ``torchrun``, clips them, takes an AdamW step and updates the
EMA weights. After every epoch the EMA model is validated, the schedule and
early stopping are advanced, and ``last.pt`` (plus ``best.pt`` and the potential
file ``model.pt`` when the validation loss improved) are written by rank 0.
Before every epoch :func:`equinnp.train.stopping.stop_reason` decides whether
the run has ended (max_epochs, early stopping, the max_time budget); a finished
run that is resumed is left as it is.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence, Union

import numpy as np
import torch

from equinnp.build import build_potential
from equinnp.train.checkpoint import atomic_torch_save, load_checkpoint, restore_trainer_state, trainer_state
from equinnp.train.config import dump_config, load_config
from equinnp.train.data import load_run_data, make_loader, prepare_records
from equinnp.train.distributed import setup_distributed
from equinnp.train.ema import ExponentialMovingAverage
from equinnp.train.fitting import describe_fit, fit_postprocessing
from equinnp.train.losses import MODEL_PENALTIES, WeightedLoss, add_model_penalties, loss_weights_at
from equinnp.train.metrics import evaluate_potential
from equinnp.train.outputs import forward_flags, run_outputs
from equinnp.train.reporting import MetricsLog, format_epoch_line, format_metrics, metrics_columns
from equinnp.train.schedules import LearningRateSchedule
from equinnp.train.stopping import finished_run, stop_reason
from equinnp.train.test_set import evaluate_test_set

__all__ = ["Trainer", "TrainingDivergedError", "train"]


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Trainer:
    """Train a potential as one config describes.

    Parameters
    ----------
    config : dict, str or Path
        A run config (see :mod:`equinnp.train.config`), a YAML path or a bundled config name.
    overrides : iterable of str
        ``"dotted.key=value"`` overrides applied before validation.
    resume : bool
        Continue from ``<output_dir>/last.pt``.
    overwrite : bool
        Allow starting a new run in an ``output_dir`` that already holds one.
    callbacks : sequence
        Objects with optional ``on_step_end(trainer, epoch, step, terms)`` and
        ``on_epoch_end(trainer, epoch, row)`` methods.
    """

    def __init__(self, config: Union[dict, str, Path], overrides: Iterable[str] = (), *, resume: bool = False,
                 overwrite: bool = False, callbacks: Sequence = ()):
        self.config_notes: list = []  # deprecated keys read in their new form, printed at setup
        self.config = load_config(config, overrides, notes=self.config_notes)
        self.resume = resume
        self.overwrite = overwrite
        self.callbacks = list(callbacks)
        self.output_dir = Path(self.config["output_dir"])
        self.training = self.config["training"]

    # ------------------------------------------------------------------ setup
    def _say(self, message: str) -> None:
        if self.ctx.is_main:
            from tqdm import tqdm

            tqdm.write(message)

    def _finished_run(self) -> Optional[dict]:
        """With ``resume``: the summary of a run that has ended and still would (nothing is written then).

        Reads ``last.pt``; a run that may go on keeps the checkpoint for ``_setup``. A
        run that has ended but whose final evaluation did not complete (no matching
        ``summary.json``) returns None too: its ``_fit`` goes straight to ``_finish``.
        """
        if not self.resume:
            if (self.output_dir / "last.pt").exists() and not self.overwrite:
                raise ValueError(
                    f"{self.output_dir} already holds a run (last.pt): resume it with --resume, "
                    "or choose another output_dir (--set output_dir=...) or pass --overwrite"
                )
            return None
        self.resume_state = state = load_checkpoint(self.output_dir / "last.pt")
        finished = finished_run(self.training, self.output_dir, state)
        if finished is None:
            return None
        reason, summary = finished
        self._say(f"{self.output_dir} is finished: stopped by {reason.kind} after epoch {state['epoch']} ({reason.detail}); "
                  f"nothing to do, no file changed. To train on, raise {reason.setting} (--set {reason.setting}=...) with --resume")
        return {**summary, "rank": self.ctx.rank, "already_finished": True}

    def _setup(self) -> None:
        training, data_config = self.training, self.config["data"]
        if training["num_threads"] is not None:
            torch.set_num_threads(training["num_threads"])
        for note in self.config_notes:
            self._say(note)
        seed = training["seed"]
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

        self.data = load_run_data(data_config)
        self.outputs = run_outputs(training["loss"], self.data.train, data_config["train"])
        model_config = dict(self.config["model"])
        if "elements" not in model_config:
            model_config["elements"] = self.data.elements()
        self.potential = build_potential(model_config)
        self.fitted = fit_postprocessing(self.potential, self.data.train, training, self.config["model"])
        self.potential.to(self.ctx.device)
        self.ctx.broadcast_module(self.potential)
        dtype, cutoff = self.potential.dtype, self.potential.cutoff
        self.train_records = prepare_records(self.data.train, cutoff, dtype)
        self.val_records = prepare_records(self.data.val, cutoff, dtype)
        rank, world = self.ctx.rank, self.ctx.world_size
        self.train_loader = make_loader(self.train_records, data_config["batch_size"], shuffle=True, seed=seed,
                                        rank=rank, world_size=world, num_workers=data_config["num_workers"])
        self.val_loader = make_loader(self.val_records, data_config["val_batch_size"], shuffle=False, rank=rank, world_size=world)

        self.optimizer = torch.optim.AdamW(self.potential.parameters(), lr=training["lr"],
                                           weight_decay=training["weight_decay"], amsgrad=training["amsgrad"])
        self.schedule = LearningRateSchedule(
            self.optimizer, training["lr"], training["scheduler"], training["warmup_steps"], training["max_epochs"],
            training["plateau_factor"], training["plateau_patience"], training["min_lr"],
        )
        self.ema = ExponentialMovingAverage(self.potential, training["ema_decay"]) if training["ema_decay"] is not None else None
        self.loss_fn = WeightedLoss(training["loss"]["type"], training["loss"]["huber_delta"])
        self.penalty_weights = {name: float(training["loss"][name]) for name in MODEL_PENALTIES if training["loss"][name] > 0}
        for name, weight in self.penalty_weights.items():
            if not hasattr(self.potential.model, name):
                raise ValueError(f"training.loss.{name} = {weight:g} but model.architecture = "
                                 f"{self.config['model']['architecture']} does not compute it ({MODEL_PENALTIES[name]}): set it to 0")

        self.run_id = uuid.uuid4().hex  # names this run in its checkpoints and summary (not from the seeded RNGs)
        self.epoch = 0  # completed epochs
        self.elapsed = 0.0  # training seconds of earlier sessions of this run
        self.epoch_time = 0.0  # seconds of the last completed epoch (training, validation, checkpoint)
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_metrics: Optional[dict] = None
        self.best_state: Optional[dict] = None
        self.bad_epochs = 0
        self.stage = 0  # number of loss stages in effect
        self.last_metrics: Optional[dict] = None
        if self.ctx.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            dump_config(self.config, self.output_dir / "config.yaml")
        if self.resume:
            restore_trainer_state(self, self.resume_state)
            self.resume_state = None
        columns = metrics_columns(self.outputs) + [f"train_{name}_loss" for name in self.penalty_weights]
        self.log = MetricsLog(self.output_dir, columns, training["tensorboard"]) if self.ctx.is_main else None
        if self.log is not None:
            self.log.truncate_after(self.epoch)  # a fresh run (--overwrite) starts an empty table

    @property
    def evaluated_model(self):
        """The model that is validated and saved: the EMA copy when enabled."""
        return self.ema.module if self.ema is not None else self.potential

    # ------------------------------------------------------------ checkpoints
    def _save(self, improved: bool) -> None:
        state = trainer_state(self)  # collective (gathers RNG states): every rank calls it
        if not self.ctx.is_main:
            return
        atomic_torch_save(state, self.output_dir / "last.pt")
        if improved:
            atomic_torch_save(state, self.output_dir / "best.pt")
            self.evaluated_model.save(self.output_dir / "model.pt")

    # ------------------------------------------------------------------- loop
    def _diverged(self, what: str, epoch: int, step: int) -> None:
        kept = self.output_dir / "last.pt"
        kept_text = f"{kept} (after epoch {self.epoch})" if self.epoch > 0 else "none (it diverged in the first epoch)"
        raise TrainingDivergedError(
            f"{what} at epoch {epoch + 1}, step {step + 1}; training stopped. Last good checkpoint: {kept_text}. "
            "Try a lower training.lr or training.clip_grad_norm, or check the data for bad labels."
        )

    def _time_left(self, start: float) -> str:
        """The max_time countdown for the progress bar (its own ETA counts to max_epochs)."""
        if self.training["max_time"] is None:
            return ""
        left = max(self.training["max_time"] - self.elapsed - (time.monotonic() - start), 0.0)
        return f", max_time in {int(left) // 60}:{int(left) % 60:02d}"

    def _train_epoch(self, epoch: int, weights: dict, start: float, bar) -> tuple:
        """One pass over the training batches; returns ({"loss": mean, <output>: mean term}, steps).

        When ``max_time`` is reached during the epoch (and an earlier epoch completed), the
        epoch stops at that step and (None, steps taken) is returned: it is discarded.
        """
        self.potential.train()
        self.train_loader.sampler.set_epoch(epoch)
        weighted = [name for name, weight in weights.items() if weight > 0]
        sums, counts = {}, {}
        total_sum, count = 0.0, 0
        for step, batch in enumerate(self.train_loader):
            batch = batch.to(self.ctx.device)
            self.optimizer.zero_grad(set_to_none=True)
            output = self.potential(batch, **forward_flags(weighted, batch))
            terms = self.loss_fn(output, batch, weights)
            if self.penalty_weights:
                terms = add_model_penalties(terms, self.potential.model, self.penalty_weights)
            finite = bool(torch.isfinite(terms.total))
            max_time = self.training["max_time"]
            over_time = max_time is not None and self.elapsed + (time.monotonic() - start) >= max_time
            if self.ctx.enabled:
                finite = not self.ctx.any_flag(not finite)
                over_time = self.ctx.any_flag(over_time)
            if not finite:
                parts = ", ".join(f"{name} term {float(term):.4g}" for name, term in terms.parts.items())
                self._diverged(f"the loss became {float(terms.total.detach())} ({parts})", epoch, step)
            terms.total.backward()
            self.ctx.average_gradients(self.potential.parameters())
            clip = self.training["clip_grad_norm"]
            grad_norm = torch.nn.utils.clip_grad_norm_(self.potential.parameters(), clip if clip is not None else math.inf)
            if not bool(torch.isfinite(grad_norm)):
                self._diverged(f"the gradient norm became {float(grad_norm)} (loss {float(terms.total.detach()):.4g})", epoch, step)
            self.optimizer.step()
            self.schedule.step_batch()
            if self.ema is not None:
                self.ema.update(self.potential)
            total_sum += float(terms.total.detach())
            count += 1
            for name, term in terms.parts.items():
                sums[name] = sums.get(name, 0.0) + float(term)
                counts[name] = counts.get(name, 0) + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f"loss {float(terms.total.detach()):.4g}{self._time_left(start)}", refresh=False)
            for callback in self.callbacks:
                if hasattr(callback, "on_step_end"):
                    callback.on_step_end(self, epoch, step, terms)
            if over_time and self.epoch > 0:
                return None, step + 1  # discarded: the run ends with the epoch before (see equinnp.train.stopping)
        means = {"loss": total_sum / max(count, 1), **{name: sums[name] / counts[name] for name in sums}}
        return means, count

    def fit(self) -> dict:
        """Train; return a summary (best and final validation metrics, test metrics, file paths).

        With ``resume``, a run that has finished (:mod:`equinnp.train.stopping`) is left
        as it is: its saved summary is returned, with ``already_finished`` set.
        """
        self.ctx = setup_distributed(str(self.training["device"]))
        self.log = None
        try:
            finished = self._finished_run()
            if finished is not None:
                return finished
            self._setup()
            return self._fit()
        finally:
            if self.log is not None:
                self.log.close()
            self.ctx.close()

    def _fit(self) -> dict:
        training = self.training
        max_epochs = training["max_epochs"]
        n_params = sum(p.numel() for p in self.potential.parameters())
        self._say(
            f"{self.potential.architecture}: {n_params} parameters, elements {self.potential.elements}, "
            f"{len(self.train_records)} train / {len(self.val_records)} val structures"
            + (f" / {len(self.data.test)} test" if self.data.test is not None else "")
            + f", {self.ctx.world_size} process(es) on {self.ctx.device}"
        )
        if self.fitted and not self.resume:
            for line in describe_fit(self.potential, self.fitted):
                self._say(line)
        if self.resume:
            self._say(f"resuming {self.output_dir} after epoch {self.epoch}")
        bar = None
        steps = len(self.train_loader)
        if self.ctx.is_main and training["progress_bar"] and sys.stderr.isatty():  # a redirected log gets the epoch lines only
            from tqdm import tqdm

            bar = tqdm(total=steps * max_epochs, initial=steps * self.epoch, unit="step", dynamic_ncols=True, leave=False)
        reason, discarded = None, None
        mark = time.monotonic()  # the training clock runs from here, over every epoch and its checkpoint
        try:
            while True:
                reason = stop_reason(training, self.epoch, self.elapsed, self.epoch_time, self.bad_epochs)
                if reason is not None:
                    break
                epoch = self.epoch
                loss_stage = loss_weights_at(training["loss"], epoch)
                weights = loss_stage.weights
                stage = sum(1 for entry in training["loss"]["stages"] if entry["epoch"] <= epoch)
                if stage != self.stage:
                    # A new loss: validation losses are compared within a stage only.
                    self.stage = stage
                    self.best_loss, self.bad_epochs = math.inf, 0
                    self.schedule.reset_plateau()
                    if loss_stage.lr is not None:
                        self.schedule.set_base_lr(loss_stage.lr)
                means, steps = self._train_epoch(epoch, weights, mark, bar)
                if means is None:
                    discarded = (epoch + 1, steps, time.monotonic() - mark)
                    break
                metrics = evaluate_potential(self.evaluated_model, self.val_loader, self.ctx.device, self.loss_fn,
                                             weights, distributed=self.ctx.enabled)
                self.schedule.step_epoch(epoch, metrics["loss"])
                self.epoch = epoch + 1
                improved = metrics["loss"] < self.best_loss
                if improved:
                    self.best_loss, self.best_epoch, self.bad_epochs = metrics["loss"], self.epoch, 0
                    self.best_metrics = metrics
                    self.best_state = {k: v.detach().cpu().clone() for k, v in self.evaluated_model.state_dict().items()}
                else:
                    self.bad_epochs += 1
                self.last_metrics = metrics
                now = time.monotonic()
                # The slowest process's clock, so that every process takes the same decisions.
                self.epoch_time = self.ctx.maximum(now - mark)
                self.elapsed += self.epoch_time
                mark = now
                row = {"epoch": self.epoch, "time_s": round(self.elapsed, 3), "lr": self.optimizer.param_groups[0]["lr"],
                       **{f"{name}_weight": weights.get(name, 0.0) for name in self.outputs},
                       "train_loss": means["loss"], **{f"train_{name}_loss": means[name] for name in self.outputs if name in means},
                       **{f"train_{name}_loss": means[name] for name in self.penalty_weights if name in means},
                       **{f"val_{k}": v for k, v in metrics.items() if k != "n_structures"}}
                if self.log is not None:  # the row first: a resumed run drops rows after its checkpoint
                    self.log.write(row)
                self._save(improved)
                if self.log is not None:
                    if self.epoch % training["log_every"] == 0 or self.epoch == max_epochs:
                        self._say(format_epoch_line(self.epoch, max_epochs, row, self.elapsed, improved, self.outputs))
                if bar is not None:
                    bar.set_postfix_str(f"loss {means['loss']:.4g} val {format_metrics(row, 'val_', self.outputs)}"
                                        f"{self._time_left(mark)}", refresh=True)
                for callback in self.callbacks:
                    if hasattr(callback, "on_epoch_end"):
                        callback.on_epoch_end(self, epoch, row)
        finally:
            if bar is not None:
                bar.close()
        if discarded is not None:
            stopped_by = "max_time"
            number, steps, seconds = discarded
            self._say(f"training.max_time = {training['max_time']:g} s reached in epoch {number} after {steps} steps "
                      f"({seconds:.0f} s): that epoch is discarded (not validated, logged or saved); "
                      f"the run ends with epoch {self.epoch} ({self.elapsed:.0f} s of training)")
        else:
            stopped_by = reason.kind
            if stopped_by != "max_epochs":
                self._say(f"stopped by {stopped_by} after epoch {self.epoch} ({reason.detail})")
        return self._finish(stopped_by)

    def _finish(self, stopped_by: str) -> dict:
        """Load the best weights, evaluate the test set, write model.pt and test results."""
        if self.best_state is not None:
            self.evaluated_model.load_state_dict(self.best_state)
        model_path = self.output_dir / "model.pt"
        if self.ctx.is_main:
            self.evaluated_model.save(model_path)
        summary = {
            "output_dir": str(self.output_dir),
            "model": str(model_path),
            "epochs": self.epoch,
            "stopped_by": stopped_by,
            "run_id": self.run_id,
            "training_time_s": self.elapsed,
            "best_epoch": self.best_epoch,
            "best_val": self.best_metrics,
            "last_val": self.last_metrics,
            "test": None,
            "rank": self.ctx.rank,
        }
        if self.data.test is not None:
            summary.update(evaluate_test_set(self.evaluated_model, self.data.test, self.config["data"]["val_batch_size"],
                                             self.ctx, self.output_dir, self._say))
        if self.ctx.is_main:
            with open(self.output_dir / "summary.json", "w") as handle:
                json.dump(summary, handle, indent=2)
            self._say(f"model: {model_path}")
        return summary


def train(config: Union[Mapping, str, Path], overrides: Iterable[str] = (), *, resume: bool = False,
          overwrite: bool = False, callbacks: Sequence = ()) -> dict:
    """Train as ``config`` describes (dict, YAML path or bundled config name); see :class:`Trainer`."""
    return Trainer(config, overrides, resume=resume, overwrite=overwrite, callbacks=callbacks).fit()
