"""Simulation-engine interfaces: ASE (``EquinnpCalculator``) and TorchSim (``EquinnpTorchSimModel``,
imported on first use: it needs the optional ``torch-sim-atomistic`` package)."""

from equinnp.calculators.ase_calculator import EquinnpCalculator

__all__ = ["EquinnpCalculator", "EquinnpTorchSimModel"]


def __getattr__(name):
    if name == "EquinnpTorchSimModel":
        from equinnp.calculators.torchsim_model import EquinnpTorchSimModel

        return EquinnpTorchSimModel
    raise AttributeError(f"module 'equinnp.calculators' has no attribute {name!r}")
