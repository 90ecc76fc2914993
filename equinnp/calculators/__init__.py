"""Simulation-engine interfaces.

- ``EquinnpCalculator`` (``ase_calculator``): the ASE calculator;
- ``EquinnpTorchSimModel`` (``torchsim_model``): a TorchSim model, imported on first use
  (needs the ``torchsim`` extra, ``pip install "equinnp[torchsim]"``);
- ``openmm_force.openmm_force``: an OpenMM ``PythonForce`` (needs the ``openmm`` extra);
- ``openmm_ml``: the ``"equinnp"`` entry of openmm-ml's ``MLPotential`` registry;
- ``openmm_topology.openmm_topology``: an OpenMM ``Topology`` and positions from ``ase.Atoms``;
- ``openmm_units``: the nm/kJ/mol ↔ Å/eV factors.
"""

from equinnp.calculators.ase_calculator import EquinnpCalculator

__all__ = ["EquinnpCalculator"]  # EquinnpTorchSimModel stays out: ``import *`` must work without TorchSim


def __getattr__(name):
    if name == "EquinnpTorchSimModel":
        from equinnp.calculators.torchsim_model import EquinnpTorchSimModel

        return EquinnpTorchSimModel
    raise AttributeError(f"module 'equinnp.calculators' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"EquinnpTorchSimModel"})
