"""Geometry optimization through ASE (BFGS or FIRE), with the cell for periodic systems (``FrechetCellFilter``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["OPTIMIZERS", "optimize"]

OPTIMIZERS = ("bfgs", "fire")


def optimize(atoms, calculator, *, fmax: float = 0.01, optimizer: str = "bfgs", cell: bool = False, max_steps: int = 1000,
             trajectory=None, log=None, progress: bool = True, stop=None) -> dict:
    """Relax ``atoms`` (a copy) until every force is below ``fmax`` eV/Å (with ``cell``, the stress times the volume too).

    Every step is written as it is taken: the ASE log (``log``, default none)
    and the trajectory (``trajectory``, optional). Returns ``atoms`` (the
    relaxed copy), ``converged``, ``steps``, ``energy`` (eV), ``fmax`` (eV/Å)
    and ``interrupted``.
    """
    import numpy as np

    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if not fmax > 0:
        raise ValueError(f"fmax must be positive (eV/Å), got {fmax!r}")
    atoms = atoms.copy()
    atoms.calc = calculator
    target = atoms
    if cell:
        if not all(atoms.pbc):
            raise ValueError(f"--cell relaxes a cell periodic in all three directions, got pbc={atoms.pbc.tolist()}")
        from ase.filters import FrechetCellFilter

        target = FrechetCellFilter(atoms)
    if optimizer == "bfgs":
        from ase.optimize import BFGS as Optimizer
    else:
        from ase.optimize import FIRE as Optimizer
    logfile = str(log) if log is not None else None
    dynamics = Optimizer(target, logfile=logfile, trajectory=None if trajectory is None else str(Path(trajectory)))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max_steps, unit="step", dynamic_ncols=True)
    converged, steps, interrupted = False, 0, False
    try:
        for converged in dynamics.irun(fmax=fmax, steps=max_steps):
            current = float(np.sqrt((target.get_forces() ** 2).sum(axis=1).max()))
            if bar is not None:
                bar.set_postfix(E=f"{atoms.get_potential_energy():.5f} eV", fmax=f"{current:.4f}")
                bar.update(1)
            if converged:
                break
            steps += 1
            if stop is not None and stop.requested:
                interrupted = True
                break
    finally:
        if bar is not None:
            bar.close()
        if dynamics.trajectory is not None and hasattr(dynamics.trajectory, "close"):
            dynamics.trajectory.close()
    forces = target.get_forces()
    return {"atoms": atoms, "converged": bool(converged), "steps": steps, "interrupted": interrupted,
            "energy": float(atoms.get_potential_energy()), "fmax": float(np.sqrt((forces**2).sum(axis=1).max()))}
