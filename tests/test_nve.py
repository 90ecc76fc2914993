"""A short NVE run conserves the total energy (the long run is ``benchmarks/md_stability.py``).

Velocity Verlet, 0.5 fs, 100 fs of ethanol at 300 K through the calculator
with its skin. A tiny random SchNet keeps |E_tot - E_tot(0)| below 1e-5
eV/atom in float64 and float32 (measured: 4e-6 and 5e-6); forces that miss
part of the energy's gradient (``broken_layers.DetachedDistanceSchNet``)
break the bound by four orders of magnitude (0.4 eV/atom).
"""

import numpy as np
import pytest
import torch
from ase import units
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.md.verlet import VelocityVerlet

import equinnp
from broken_layers import DetachedDistanceSchNet, broken_potential
from equinnp.calculators import EquinnpCalculator
from equinnp.data.bundled import ethanol_atoms

BOUND = 1e-5  # eV/atom


def max_excursion(potential, steps=200, timestep=0.5):
    """max |E_tot(t) - E_tot(0)| per atom (eV), sampled every 5 steps."""
    atoms = ethanol_atoms()
    atoms.calc = EquinnpCalculator(potential, skin=0.5)
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0), force_temp=True)  # noqa
    Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep * units.fs)
    start, worst = atoms.get_total_energy(), 0.0
    for _ in range(steps // 5):
        dynamics.run(5)
        worst = max(worst, abs(atoms.get_total_energy() - start))
    assert atoms.calc.neighbor_searches > 1  # the skin was used and renewed
    return worst / len(atoms)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_short_nve_run_conserves_energy(dtype):
    torch.manual_seed(0)
    potential = equinnp.build_potential("schnet", cutoff=4.0, elements=[1, 6, 8], dtype=dtype, scale=0.3,
                                        **equinnp.ARCHITECTURES["schnet"].tiny).eval()
    assert max_excursion(potential) < BOUND


def test_forces_inconsistent_with_the_energy_break_the_bound():
    assert max_excursion(broken_potential(DetachedDistanceSchNet)) > 100 * BOUND
