"""Molecular dynamics through ASE: NVE, Langevin, Nosé-Hoover chain (NVT) and MTK barostat (NPT).

``run_md`` integrates ``steps`` steps in total, writing every ``interval``-th
step to an ASE trajectory (positions, momenta, cell, energy, forces, and the
step number in ``atoms.info["md_step"]``) and a line to a text log, both as
the run goes. A run stopped by Ctrl-C finishes its current step and keeps
every frame written; ``resume=True`` continues from the trajectory's last
frame (positions, momenta and cell; a thermostat's own variables restart) up
to the same total.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

__all__ = ["ENSEMBLES", "make_dynamics", "run_md", "MDResult"]

ENSEMBLES = ("nve", "langevin", "nose-hoover", "npt")
LOG_HEADER = "# step  time[fs]  Epot[eV]  Ekin[eV]  Etot[eV]  T[K]  steps/s"


def make_dynamics(atoms, ensemble: str, temperature: float, timestep: float, *, friction: float = 0.01,
                  tdamp: Optional[float] = None, pressure: float = 1.01325, pdamp: Optional[float] = None, seed: int = 0):
    """An ASE integrator for ``ensemble`` (``timestep``, ``tdamp``, ``pdamp`` in fs; ``friction`` in 1/fs;
    ``pressure`` in bar). Nosé-Hoover and NPT damping times default to 100 and 1000 steps."""
    import numpy as np
    from ase import units

    if ensemble not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r}; choose one of {', '.join(ENSEMBLES)}")
    if not timestep > 0:
        raise ValueError(f"timestep must be positive (fs), got {timestep!r}")
    if ensemble != "nve" and not temperature > 0:
        raise ValueError(f"the {ensemble} ensemble needs a temperature above 0 K, got {temperature!r}")
    dt = timestep * units.fs
    if ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, dt)
    if ensemble == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(atoms, dt, temperature_K=temperature, friction=friction / units.fs, rng=np.random.default_rng(seed))
    tdamp = (100 * timestep if tdamp is None else tdamp) * units.fs
    if ensemble == "nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, dt, temperature_K=temperature, tdamp=tdamp)
    if not all(atoms.pbc):
        raise ValueError(f"the npt ensemble needs a cell periodic in all three directions, got pbc={atoms.pbc.tolist()}")
    from ase.md.nose_hoover_chain import IsotropicMTKNPT

    pdamp = (1000 * timestep if pdamp is None else pdamp) * units.fs
    return IsotropicMTKNPT(atoms, dt, temperature_K=temperature, pressure_au=pressure * units.bar, tdamp=tdamp, pdamp=pdamp)


class MDResult(dict):
    """``steps_done`` (total, resumed ones included), ``steps_run`` (this call), ``interrupted``, ``steps_per_second``."""


def _initial_velocities(atoms, temperature: float, seed: int) -> None:
    import numpy as np
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    if temperature > 0:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(seed), force_temp=True)
        Stationary(atoms)
        if not any(atoms.pbc):
            ZeroRotation(atoms)


def _log_line(atoms, step: int, timestep: float, rate: float) -> str:
    epot, ekin = atoms.get_potential_energy(), atoms.get_kinetic_energy()
    return (f"{step:8d}  {step * timestep:10.2f}  {epot:.6f}  {ekin:.6f}  {epot + ekin:.6f}  "
            f"{atoms.get_temperature():8.2f}  {rate:8.2f}")


def run_md(atoms, calculator, *, ensemble: str = "nve", temperature: float = 300.0, timestep: float = 0.5,
           steps: int = 1000, trajectory, log=None, interval: int = 10, resume: bool = False, seed: int = 0,
           progress: bool = True, stop=None, on_step: Optional[Callable] = None, **ensemble_options) -> MDResult:
    """Integrate up to ``steps`` steps in total, writing frames and log lines every ``interval`` steps.

    Parameters
    ----------
    atoms : ase.Atoms or None
        Start structure (velocities drawn at ``temperature`` unless it has
        momenta); ignored with ``resume`` (the trajectory's last frame is used).
    calculator : ase Calculator
    trajectory : path
        ASE ``.traj`` file, appended frame by frame.
    log : path, optional
        Text log (default: the trajectory's path with ``.log``).
    stop : StopRequest, optional
        The run ends cleanly after the step during which ``stop.requested`` became true.
    on_step : callable, optional
        Called as ``on_step(step)`` after every step (tests use it to interrupt).
    """
    import ase.io
    from ase.io.trajectory import Trajectory

    if not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if not isinstance(interval, int) or interval < 1:
        raise ValueError(f"interval must be a positive integer, got {interval!r}")
    trajectory = Path(trajectory)
    log = trajectory.with_suffix(".log") if log is None else Path(log)
    if resume:
        if not trajectory.is_file():
            raise FileNotFoundError(f"--resume: no trajectory at {trajectory} to continue")
        atoms = ase.io.read(trajectory, index=-1)
        done = int(atoms.info.get("md_step", 0))
    else:
        if trajectory.exists():
            raise ValueError(f"{trajectory} exists: continue it with --resume, or write to another path")
        if atoms is None:
            raise ValueError("give a start structure (--atoms)")
        atoms = atoms.copy()
        if not atoms.get_momenta().any():
            _initial_velocities(atoms, temperature, seed)
        done = 0
    atoms.calc = calculator
    dynamics = make_dynamics(atoms, ensemble, temperature, timestep, seed=seed + done, **ensemble_options)
    writer = Trajectory(str(trajectory), "a" if resume else "w")
    new_log = not (resume and log.is_file())
    log_file = open(log, "a" if resume else "w", buffering=1)  # line-buffered: every line reaches the disk at once
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=done, unit="step", dynamic_ncols=True)
    started = time.perf_counter()
    window_start, window_steps = started, 0
    result = MDResult(steps_done=done, steps_run=0, interrupted=False, steps_per_second=0.0)
    try:
        if new_log:
            log_file.write(LOG_HEADER + "\n")
        if not resume:
            atoms.info["md_step"] = 0
            writer.write(atoms)
            log_file.write(_log_line(atoms, 0, timestep, 0.0) + "\n")
        step = done
        while step < steps:
            dynamics.run(1)
            step += 1
            window_steps += 1
            result["steps_done"], result["steps_run"] = step, step - done
            if on_step is not None:
                on_step(step)
            last = step == steps or (stop is not None and stop.requested)
            if step % interval == 0 or last:
                now = time.perf_counter()
                rate = window_steps / max(now - window_start, 1e-12)
                window_start, window_steps = now, 0
                atoms.info["md_step"] = step
                writer.write(atoms)
                log_file.write(_log_line(atoms, step, timestep, rate) + "\n")
                if bar is not None:
                    bar.set_postfix(steps_s=f"{rate:.1f}", E=f"{atoms.get_total_energy():.4f} eV", T=f"{atoms.get_temperature():.0f} K")
            if bar is not None:
                bar.update(1)
            if stop is not None and stop.requested:
                result["interrupted"] = True
                break
    finally:
        writer.close()
        log_file.close()
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - started
    result["steps_per_second"] = result["steps_run"] / elapsed if elapsed > 0 else 0.0
    return result
