"""Simulation-engine interfaces: ASE (``EquinnpCalculator``) and TorchSim (``EquinnpTorchSimModel``,
imported on first use: it needs the optional ``torch-sim-atomistic`` package, ``pip install "equinnp[torchsim]"``)."""

from equinnp.calculators.ase_calculator import EquinnpCalculator

__all__ = ["EquinnpCalculator"]  # EquinnpTorchSimModel stays out: ``import *`` must work without TorchSim


def __getattr__(name):
    if name == "EquinnpTorchSimModel":
        from equinnp.calculators.torchsim_model import EquinnpTorchSimModel

        return EquinnpTorchSimModel
    raise AttributeError(f"module 'equinnp.calculators' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | {"EquinnpTorchSimModel"})
