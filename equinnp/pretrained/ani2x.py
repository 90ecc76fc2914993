"""The published ANI-2x ensemble as an equinnp ``Potential`` (energies in eV, forces in eV/Å).

The NeuroChem files (``equinnp.pretrained.neurochem``) give the AEV constants,
the self-atomic energies (hartree) and the 8 x 7 atomic networks (hartree). They
become an ``ANI2x`` core network with ``num_members = 8``, whose hartree output
is turned into eV by the ``scale_shift`` stage (scale = ``HARTREE_TO_EV`` for
every element, shift 0), and ``reference_energies`` holding the self energies
in eV. The energy is the members' mean,

.. math:: E = \\mathrm{Ha} \\Big(\\frac18 \\sum_m \\sum_i \\mathrm{NN}_{m, Z_i}(G_i) + \\sum_i E^{\\mathrm{self}}_{Z_i}\\Big),

and ``PotentialOutput.energy_std`` is the members' spread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from equinnp.models.ani2x import ANI2x
from equinnp.pretrained.neurochem import read_constants, read_ensemble, read_info, read_self_energies

__all__ = ["HARTREE_TO_EV", "ANI2X_INFO", "build_ani2x", "check_published_constants"]

#: 1 hartree in eV: TorchANI 2.9's ``torchani.units.HARTREE_TO_EV`` (from CODATA 2014), so that
#: energies match TorchANI's converted ones exactly.
HARTREE_TO_EV = 27.211386024367243
#: The file that describes the published ensemble, inside its folder.
ANI2X_INFO = "ani-2x_8x.info"
_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 16: "S", 9: "F", 17: "Cl"}


def check_published_constants(constants: dict, model: ANI2x, source: Path) -> None:
    """Refuse files whose AEV constants are not those of ``model`` (the ANI-2x defaults, float32-rounded)."""
    aev = model.aev
    expected = {
        "Rcr": [aev.radial_cutoff], "Rca": [aev.angular_cutoff], "EtaR": [aev.radial_eta], "EtaA": [aev.angular_eta],
        "Zeta": [aev.zeta], "ShfR": aev.radial_shifts.tolist(), "ShfA": aev.angular_shifts.tolist(),
        "ShfZ": aev.angle_sections.tolist(),
    }
    for name, values in expected.items():
        found = np.atleast_1d(np.asarray(constants[name], dtype=np.float64))
        if found.shape != (len(values),) or not np.allclose(found, values, rtol=1e-6, atol=0.0):
            raise ValueError(f"{source}: {name} = {found.tolist()} is not the ANI-2x value {values}")
    symbols = [_SYMBOLS[z] for z in model.elements]
    if list(constants["Atyp"]) != symbols:
        raise ValueError(f"{source}: species order Atyp = {constants['Atyp']}, expected {symbols}")


def build_ani2x(folder, *, dtype: str = "float32", float32_constants: bool = True, members=None):
    """Read the published ANI-2x from ``folder`` (which holds ``ani-2x_8x.info``) into a ``Potential``.

    Parameters
    ----------
    folder : path
        The model folder.
    dtype : "float32" or "float64"
        Dtype of the network (TorchANI's default is float32).
    float32_constants : bool
        True: AEV constants and self energies rounded to float32, as TorchANI 2.9 holds
        them (its ``ANI2x()`` numbers). False: both exact, as written in the files
        (the self energies move by up to 1.4e-6 hartree per atom).
    members : sequence of int, optional
        Keep only these members of the ensemble (TorchANI's ``model_index``); default: all.
    """
    from equinnp.potential import Potential
    from equinnp.postprocessing import AtomicReferenceEnergies, ElementScaleShift

    folder = Path(folder)
    info = read_info(folder / ANI2X_INFO)
    constants = read_constants(info.constants_file)
    self_energies = read_self_energies(info.self_energies_file)
    members = list(range(info.num_members)) if members is None else [int(m) for m in members]
    if not members or any(not 0 <= m < info.num_members for m in members) or len(set(members)) != len(members):
        raise ValueError(f"members must be distinct indices in 0..{info.num_members - 1}, got {members}")
    model = ANI2x(num_members=len(members), float32_constants=float32_constants)
    check_published_constants(constants, model, info.constants_file)
    symbols = [_SYMBOLS[z] for z in model.elements]
    missing = [s for s in symbols if s not in self_energies]
    if missing:
        raise ValueError(f"{info.self_energies_file}: no self energy for {missing}")
    networks = read_ensemble(info, symbols, members)
    for member, by_symbol in enumerate(networks):
        for network, symbol in zip(model.networks, symbols):
            layers = by_symbol[symbol]
            activations = [layer.activation for layer in layers]
            if activations[-1] != 6 or any(a != 9 for a in activations[:-1]):
                raise ValueError(f"member {member}, {symbol}: activations {activations}, expected CELU (9) then linear (6)")
            network.load_member(member, [torch.from_numpy(layer.weight.astype(np.float64)) for layer in layers],
                                [torch.from_numpy(layer.bias.astype(np.float64)) for layer in layers])
    values = np.array([self_energies[s] for s in symbols], dtype=np.float64)
    if float32_constants:
        values = values.astype(np.float32).astype(np.float64)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    potential = Potential(
        model, architecture="ani2x",
        transforms=[ElementScaleShift(len(symbols), scale=HARTREE_TO_EV, shift=0.0)],
        energy_terms=[AtomicReferenceEnergies(model.elements, (values * HARTREE_TO_EV).tolist())],
    ).to(getattr(torch, dtype))
    potential.fit_info = {"pretrained": "ANI-2x (Devereux et al. 2020), NeuroChem files", "folder": str(folder),
                          "float32_constants": bool(float32_constants), "hartree_to_ev": HARTREE_TO_EV}
    return potential.eval()
