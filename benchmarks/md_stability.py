"""NVE stability: total-energy drift of ethanol at 300 K with the model ``equinnp train --demo`` trains.

Velocity Verlet, 0.5 fs steps, 10 ps (20,000 steps) by default, from rMD17
ethanol frame 0 with Maxwell-Boltzmann velocities at 300 K (seed 0, no net
momentum or rotation), through ``EquinnpCalculator`` (1 Å skin, one thread),
once with the network in float64 and once in float32. Every ``--interval``
steps the total energy is recorded; the drift is the slope of a least-squares
line through E_tot(t), per atom and ps, and the fluctuation the standard
deviation of E_tot about that line.

    python benchmarks/md_stability.py MODEL --dtype float64 --json /tmp/nve64.json   # one run
    python benchmarks/md_stability.py --table /tmp/nve64.json /tmp/nve32.json        # the results file
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import RESULTS, machine, write_table  # noqa: E402


def drift_and_fluctuation(times_ps: np.ndarray, total: np.ndarray, num_atoms: int):
    """(slope meV/atom/ps, std about the fit meV/atom, max |E - E0| meV/atom) of a total-energy series in eV."""
    slope, intercept = np.polyfit(times_ps, total, 1)
    residual = total - (slope * times_ps + intercept)
    return 1e3 * slope / num_atoms, 1e3 * residual.std() / num_atoms, 1e3 * np.abs(total - total[0]).max() / num_atoms


def run(model: str, dtype: str, picoseconds: float, timestep: float, interval: int, temperature: float, output: str) -> dict:
    from ase import units
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation
    from ase.md.verlet import VelocityVerlet

    from equinnp.calculators import EquinnpCalculator
    from equinnp.data.bundled import ethanol_atoms

    atoms = ethanol_atoms()
    atoms.calc = EquinnpCalculator(model, dtype=dtype, skin=1.0, threads=1)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=np.random.default_rng(0), force_temp=True)
    Stationary(atoms)
    ZeroRotation(atoms)
    dynamics = VelocityVerlet(atoms, timestep * units.fs)
    steps = int(round(picoseconds * 1000 / timestep))
    times, totals, temperatures = [0.0], [atoms.get_total_energy()], [atoms.get_temperature()]
    start = time.perf_counter()
    for block in range(steps // interval):
        dynamics.run(interval)
        times.append((block + 1) * interval * timestep / 1000)
        totals.append(atoms.get_total_energy())
        temperatures.append(atoms.get_temperature())
        if (block + 1) % 100 == 0:  # partial results on disk as the run goes
            _dump(output, model, dtype, timestep, temperature, times, totals, temperatures, len(atoms), time.perf_counter() - start,
                  atoms.calc.neighbor_searches)
    return _dump(output, model, dtype, timestep, temperature, times, totals, temperatures, len(atoms),
                 time.perf_counter() - start, atoms.calc.neighbor_searches)


def _dump(output, model, dtype, timestep, temperature, times, totals, temperatures, num_atoms, seconds, searches) -> dict:
    times, totals = np.array(times), np.array(totals)
    drift, fluctuation, excursion = drift_and_fluctuation(times, totals, num_atoms)
    result = {"model": model, "dtype": dtype, "timestep_fs": timestep, "temperature_K": temperature, "atoms": num_atoms,
              "picoseconds": float(times[-1]), "drift_meV_per_atom_ps": drift, "fluctuation_meV_per_atom": fluctuation,
              "max_excursion_meV_per_atom": excursion, "mean_temperature_K": float(np.mean(temperatures)),
              "steps_per_second": (len(times) - 1) * (times[1] - times[0]) * 1000 / timestep / max(seconds, 1e-9) if len(times) > 1 else 0.0,
              "neighbor_searches": searches, "machine": machine(1), "total_energy_eV": totals.tolist(), "time_ps": times.tolist()}
    Path(output).write_text(json.dumps(result))
    return result


def table(paths, output: Path) -> str:
    rows, notes = [], []
    for path in paths:
        r = json.loads(Path(path).read_text())
        rows.append([r["dtype"], f"{r['picoseconds']:.2f}", f"{r['drift_meV_per_atom_ps']:+.4f}", f"{r['fluctuation_meV_per_atom']:.4f}",
                     f"{r['max_excursion_meV_per_atom']:.4f}", f"{r['mean_temperature_K']:.0f}", f"{r['steps_per_second']:.1f}",
                     r["neighbor_searches"]])
        notes = [f"Model: `{r['model']}` (the demo's PaiNN, trained by `equinnp train --demo`); ethanol, 9 atoms, "
                 f"velocity Verlet, {r['timestep_fs']} fs, velocities at {r['temperature_K']:.0f} K; 1 Å skin, one thread.",
                 f"Machine: {r['machine']}.",
                 "Drift: slope of a least-squares line through the total energy; fluctuation: its standard deviation about the line.",
                 "Command: `python benchmarks/md_stability.py MODEL --dtype float64|float32 --json F`, then `--table F64 F32`."]
    return write_table(output, "NVE energy conservation (ethanol, demo model)", notes,
                       ["network dtype", "ps", "drift (meV/atom/ps)", "fluctuation (meV/atom)", "max abs(E - E0) (meV/atom)",
                        "mean T (K)", "steps/s", "neighbor searches"], rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--picoseconds", type=float, default=10.0)
    parser.add_argument("--timestep", type=float, default=0.5)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=300.0)
    parser.add_argument("--json", help="write this run's results here")
    parser.add_argument("--table", nargs="+", metavar="JSON", help="combine runs into benchmarks/results/md_stability.md")
    args = parser.parse_args(argv)
    if args.table:
        print(table(args.table, RESULTS / "md_stability.md"))
        return 0
    if not args.model or not args.json:
        parser.error("give MODEL and --json (or --table)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    result = run(args.model, args.dtype, args.picoseconds, args.timestep, args.interval, args.temperature, args.json)
    print({k: v for k, v in result.items() if k not in ("total_energy_eV", "time_ps")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
