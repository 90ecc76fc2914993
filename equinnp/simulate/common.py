"""What the simulation commands share: the calculator options, reading a structure, a graceful Ctrl-C."""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Iterator

__all__ = ["add_calculator_arguments", "calculator_from_args", "read_atoms", "StopRequest", "graceful_interrupt"]


def add_calculator_arguments(parser) -> None:
    """The model and the ``EquinnpCalculator`` options, for every simulation command."""
    parser.add_argument("model", help="saved potential (model.pt) or training checkpoint (last.pt, best.pt)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", choices=["float32", "float64"], help="cast the network (default: as saved)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: chosen by system size; 1 for small systems)")
    parser.add_argument("--skin", type=float, default=1.0, help="Verlet skin of the neighbor list, Å (default 1.0; 0: search every step)")
    parser.add_argument("--compile", action="store_true", help="run the network through torch.compile")


def calculator_from_args(args):
    from equinnp.calculators import EquinnpCalculator

    return EquinnpCalculator(args.model, device=args.device, dtype=args.dtype, skin=args.skin, threads=args.threads,
                             compile=args.compile)


def read_atoms(path, index: str = "-1"):
    """One structure of a file ASE reads (``index``: ASE's syntax; default the last frame)."""
    import ase.io

    if path is None:
        raise ValueError("--atoms is required: a structure file ASE can read (xyz, extxyz, traj, cif, POSCAR, ...)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"no structure file at {path}")
    atoms = ase.io.read(path, index=index)
    if isinstance(atoms, list):
        raise ValueError(f"--index {index} selects {len(atoms)} frames of {path}; give one frame")
    return atoms


class StopRequest:
    """Set by the first Ctrl-C (SIGINT): the run stops after the current step, its output complete."""

    def __init__(self):
        self.requested = False


@contextlib.contextmanager
def graceful_interrupt() -> Iterator[StopRequest]:
    """The first Ctrl-C asks the loop to stop at the next step boundary; a second one interrupts at once."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
