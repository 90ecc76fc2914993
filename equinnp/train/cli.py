"""``equinnp train`` and ``equinnp evaluate``.

::

    equinnp train CONFIG [--set key=value ...] [--resume] [--overwrite]
    equinnp train --demo                 # the demo config: PaiNN on the bundled rMD17 ethanol
    equinnp evaluate MODEL --data FILE [--json] [--plot PATH]

CONFIG is a YAML path or the name of a config shipped in ``equinnp/configs``
(``schnet``, ``painn``, ``mace``, ``tensornet``, ``demo``; a clone's ``configs/``
holds copies). Under ``torchrun --nproc_per_node K -m equinnp.cli train ...``
the run is data-parallel over K processes.
"""

from __future__ import annotations

import json
import sys

__all__ = ["register_commands", "cmd_train", "cmd_evaluate", "evaluate_file"]


def register_commands(subparsers) -> None:
    """Add ``train`` and ``evaluate`` to the ``equinnp`` argument parser."""
    p = subparsers.add_parser("train", help="train a potential from a YAML config")
    p.add_argument("config", nargs="?", help="config YAML, or the name of a bundled config (schnet, painn, demo, ...)")
    p.add_argument("--demo", action="store_true", help="the demo run: the bundled demo config (PaiNN on rMD17 ethanol, under 10 min on 2 CPU cores)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set training.lr=5e-4 (dotted key, YAML value); repeatable")
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir from last.pt")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an output_dir that already holds a run")
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("evaluate", help="MAE/RMSE of a saved model on a labelled dataset")
    p.add_argument("model", help="saved potential (model.pt) or training checkpoint (last.pt, best.pt: its EMA weights)")
    p.add_argument("--data", required=True, help="dataset file (rMD17 .npz, extxyz, ...) or bundled:<file>")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    p.add_argument("--plot", metavar="PATH", help="write a parity plot PNG here")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--energy-key", help="energy label key (ASE, HDF5 files; default: the format's)")
    p.add_argument("--forces-key", help="forces label key (ASE, HDF5 files; default: the format's)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: chosen by batch size, equinnp.threads)")
    p.set_defaults(func=cmd_evaluate)


def cmd_train(args) -> int:
    from equinnp.train.trainer import TrainingDivergedError, train

    if args.demo == (args.config is not None):
        raise ValueError("give either a CONFIG or --demo")
    config = "demo" if args.demo else args.config
    try:
        summary = train(config, args.overrides, resume=args.resume, overwrite=args.overwrite)
    except TrainingDivergedError as error:
        print(f"equinnp train: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nequinnp train: interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    test = summary.get("test")
    if test is not None and summary["rank"] == 0:
        from equinnp.train.reporting import format_metrics

        print(f"test MAE: {format_metrics(test)} ({test['n_structures']} structures)")
    return 0


def evaluate_file(model_path, data_path, *, batch_size: int = 64, energy_key=None,
                  forces_key=None, device: str = "auto", plot=None, describe=None, threads=None) -> dict:
    """Metrics (meV, meV/Å) of a saved potential or training checkpoint on a dataset file; optionally a parity plot.

    ``describe`` is called with a sentence saying what a checkpoint file is
    (``"a training checkpoint (epoch 12 of runs/demo); evaluating its EMA weights"``).
    """
    import torch

    from equinnp.train.checkpoint import load_model_file
    from equinnp.train.data import load_records, make_loader, prepare_records
    from equinnp.train.metrics import evaluate_potential

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    potential, description = load_model_file(model_path)
    if description is not None and describe is not None:
        describe(f"{model_path}: {description}")
    potential = potential.to(device)
    records = prepare_records(load_records(data_path, energy_key, forces_key, key="--data"), potential.cutoff, potential.dtype)
    loader = make_loader(records, batch_size, shuffle=False)
    from equinnp.threads import using_threads

    atoms_per_batch = batch_size * max((r.num_nodes for r in records), default=1)
    with using_threads(threads, atoms_per_batch):
        metrics, arrays = evaluate_potential(potential, loader, torch.device(device), collect=True)
    if plot is not None:
        from equinnp.train.plots import parity_plot

        parity_plot(arrays, plot, title=f"{potential.architecture} on {data_path}")
    return metrics


def cmd_evaluate(args) -> int:
    # With --json, stdout holds the JSON object only: what the file is goes to stderr.
    describe = (lambda line: print(line, file=sys.stderr)) if args.json else print
    metrics = evaluate_file(args.model, args.data, batch_size=args.batch_size, energy_key=args.energy_key,
                            forces_key=args.forces_key, device=args.device, plot=args.plot, describe=describe,
                            threads=args.threads)
    if args.json:
        print(json.dumps(metrics))
        return 0
    from equinnp.train.reporting import metrics_table

    print(f"{args.model} on {args.data}: {metrics['n_structures']} structures")
    print(metrics_table(metrics))
    if args.plot:
        print(f"parity plot: {args.plot}")
    return 0
