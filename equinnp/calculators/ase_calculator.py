"""ASE calculator around a ``Potential``, with a Verlet skin on the neighbor list.

The neighbor list is the one mechanism of ``equinnp.neighbors``: the
calculator attaches edges found by ``RadiusGraph(search_cutoff, skin)`` and
keeps them while they are complete (``equinnp.neighbors.precomputed.reusable``:
same cell, no atom moved by more than ``skin / 2`` since the search); the
potential then keeps the pairs within its cutoff, in the order a fresh search
returns them, so that energies and forces equal a fresh search's.
"""

from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from equinnp.data import from_ase
from equinnp.neighbors import RadiusGraph
from equinnp.neighbors.precomputed import NEIGHBOR_KEYS, reusable
from equinnp.threads import check_threads, using_threads

__all__ = ["EquinnpCalculator", "CHARGE_KEY", "SPIN_KEY"]

#: ``atoms.info`` keys read for the total charge (e) and the spin multiplicity 2S+1.
CHARGE_KEY = "charge"
SPIN_KEY = "spin"
DTYPES = {"float32": torch.float32, "float64": torch.float64, torch.float32: torch.float32, torch.float64: torch.float64}


def _same(a, b, atol: float) -> bool:
    """``ase.calculators.calculator.equal(a, b, atol=atol)`` for arrays: equal shapes and
    ``|a - b| <= atol`` elementwise (equal infinities count as equal, NaN never), exact first."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if np.array_equal(a, b):
        return True
    if a.dtype.kind not in "fc" or b.dtype.kind not in "fc":  # bool, int: no subtraction of booleans
        a, b = a.astype(np.float64), b.astype(np.float64)
    with np.errstate(invalid="ignore"):
        return bool(np.all((a == b) | (np.abs(a - b) <= atol)))


def system_changes(old, new, tol: float = 1e-15, excluded=()) -> list:
    """The names of ASE's ``all_changes`` in which ``new`` differs from ``old`` (None: all of them).

    The same answer as ASE's ``compare_atoms`` (tested against it), without its
    per-array ``np.allclose``: an MD step changes only the positions, and this
    check runs at every property request.
    """
    if old is None:
        return list(all_changes)
    excluded = set(excluded)
    wanted = [name for name in all_changes if name not in excluded]
    changes = [name for name in ("cell", "pbc") if name in wanted and not _same(getattr(old, name), getattr(new, name), tol)]
    arrays_old, arrays_new = old.arrays, new.arrays
    changes += [name for name in wanted if name not in ("cell", "pbc") and ((name in arrays_old) != (name in arrays_new))]
    changes += [name for name in wanted if name in arrays_old and name in arrays_new
                and not _same(arrays_old[name], arrays_new[name], tol)]
    return changes


def _load(model):
    """The potential given, as it is, or the one saved in the file ``model`` with its weights frozen:
    loaded here, nothing else trains it, and autograd then records nothing for the weights
    (an MD step of a molecule 5 % faster)."""
    if isinstance(model, torch.nn.Module):
        return model
    from equinnp.train.checkpoint import load_model_file

    return load_model_file(model)[0].requires_grad_(False)


class EquinnpCalculator(Calculator):
    """Energy, forces, stress, per-atom energies (and charges, dipole) from an equinnp ``Potential``.

    Results: ``energy`` and ``free_energy`` (eV), ``energies`` [N] (eV),
    ``forces`` [N, 3] (eV/Å), for periodic cells ``stress`` (eV/Å³, Voigt
    order xx yy zz yz xz xy, positive under tension), and ``charges`` [N] (e)
    and ``dipole`` [3] (e·Å) when the model predicts them, ``energy_std`` (eV) for
    ensembles (ANI-2x: the spread of the members). The total charge
    and the spin multiplicity are read from ``atoms.info["charge"]`` and
    ``atoms.info["spin"]`` (2S+1; defaults 0 and 1 unless the model requires them).

    Parameters
    ----------
    model : Potential or path
        A potential, or a file: a saved potential (``model.pt``) or a training
        checkpoint (``last.pt``, ``best.pt``: its EMA weights). The weights of a
        potential loaded from a file are frozen (``requires_grad`` False, so
        that autograd records nothing for them); a potential given is used as it is.
    device : str
        Where to evaluate (``"cpu"``, ``"cuda"``).
    dtype : "float32", "float64" or torch.dtype, optional
        Cast the network to this dtype (default: as saved).
    skin : float
        Verlet skin (Å): the neighbor list is searched within ``cutoff + skin``
        and reused until an atom has moved by more than ``skin / 2`` or the cell
        changed. 0 searches at every call.
    threads : int, optional
        Torch CPU threads per call (default: ``equinnp.threads.default_threads``
        of the system size, one thread for small systems).
    compile : bool or str
        Run the core network through ``torch.compile`` (dynamic shapes; see
        ``equinnp.compiled``); a string names the backend (default ``"inductor"``).
    tabulate : bool
        Evaluate the radial network by a table (``Potential.tabulate_radial``:
        SchNet, PaiNN, MACE, TensorNet; force error against the network below 1e-6 relative).
        It switches the option on the potential given.
    reuse_memory : bool
        Keep freed memory in the process for the next call (glibc ``malloc``
        options, ``equinnp.memory.reuse_freed_memory``): no page faults for the
        same tensors at every step. It applies to the whole process, for good.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress", "charges", "dipole", "energy_std"]

    def __init__(self, model, device: str = "cpu", dtype=None, skin: float = 1.0, threads: Optional[int] = None,
                 compile=False, tabulate: bool = False, reuse_memory: bool = True, **kwargs):
        super().__init__(**kwargs)
        potential = _load(model)
        if dtype is not None:
            if dtype not in DTYPES:
                raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
            potential = potential.to(DTYPES[dtype])
        self.potential = potential.to(device).eval()
        if tabulate:
            self.potential.tabulate_radial()
        if reuse_memory:
            from equinnp.memory import reuse_freed_memory

            reuse_freed_memory()
        self.device = device
        self.threads = check_threads(threads)
        self.neighbors = RadiusGraph(self.potential.search_cutoff, skin)  # checks the skin
        self.skin = self.neighbors.skin
        if compile:
            from equinnp.compiled import compile_potential

            compile_potential(self.potential, **({"backend": compile} if isinstance(compile, str) else {}))
        self._last = None  # the Data of the last calculation, with its neighbor list
        #: Number of neighbor searches so far (the skin's effect can be read off it).
        self.neighbor_searches = 0

    # ------------------------------------------------------------- state
    def check_state(self, atoms, tol=1e-15):
        """ASE's changes, plus ``info`` when the total charge or spin changed."""
        changes = system_changes(self.atoms, atoms, tol, self.ignored_changes)
        if self.atoms is not None and not changes:
            for key in (CHARGE_KEY, SPIN_KEY):
                if self.atoms.info.get(key) != atoms.info.get(key):
                    changes.append("info")
                    break
        return changes

    def _check_elements(self, atoms) -> None:
        numbers = set(atoms.get_atomic_numbers().tolist())
        unknown = sorted(numbers - set(self.potential.elements))
        if unknown:
            from ase.data import chemical_symbols

            names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in unknown)
            known = " ".join(chemical_symbols[z] for z in self.potential.elements)
            raise ValueError(f"{atoms.get_chemical_formula()} contains {names}, which this {self.potential.architecture} "
                             f"model was not trained on (it knows {known})")

    def _data(self, atoms, system_changes):
        """A ``Data`` of ``atoms`` with the neighbor list: the previous one while it is complete, else a new search.

        When only the positions changed since the last calculation (an MD or
        optimizer step), the last ``Data`` is reused with the new positions.
        """
        last = self._last
        cutoff = self.potential.search_cutoff
        if last is not None and set(system_changes) <= {"positions"}:
            data = copy.copy(last)
            data.pos = torch.as_tensor(atoms.positions, dtype=last.pos.dtype).to(self.device)
            if reusable(data, cutoff, getattr(data, "cell", None)):
                self._last = data
                return data
        else:
            self._check_elements(atoms)
            data = from_ase(atoms, charge=atoms.info.get(CHARGE_KEY), spin=atoms.info.get(SPIN_KEY),
                            dtype=self.potential.dtype).to(self.device)
            structural = {"numbers", "pbc"} & set(system_changes)
            if last is not None and not structural and last.pos.shape == data.pos.shape:
                for key in NEIGHBOR_KEYS:
                    if key in last:
                        data[key] = last[key]
                cell = getattr(data, "cell", None)
                if reusable(data, cutoff, None if cell is None else cell.reshape(-1, 3, 3)):
                    self._last = data
                    return data
        for key in NEIGHBOR_KEYS:
            if key in data:
                del data[key]
        data = self.neighbors(data)
        self.neighbor_searches += 1
        self._last = data
        return data

    # ------------------------------------------------------------ compute
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        periodic = bool(atoms.pbc.any())
        stress = periodic and "stress" in properties
        try:
            with using_threads(self.threads, len(atoms)), torch.no_grad():  # the potential enables gradients itself
                data = self._data(atoms, system_changes)
                out = self.potential(data, compute_forces=True, compute_stress=stress)
        except BaseException:
            self._last = None  # the next call starts afresh (ASE may report no change for the same atoms)
            raise
        self.results = {
            "energy": float(out.energy[0]),
            "energies": out.atomic_energies.detach().cpu().double().numpy(),
            "forces": out.forces.detach().cpu().double().numpy(),
        }
        self.results["free_energy"] = self.results["energy"]
        if stress:
            s = out.stress[0].detach().cpu().double().numpy()
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
        if getattr(out, "charges", None) is not None:
            self.results["charges"] = out.charges.detach().cpu().double().numpy()
        if getattr(out, "dipole", None) is not None:
            self.results["dipole"] = out.dipole[0].detach().cpu().double().numpy()
        if getattr(out, "energy_std", None) is not None:  # ensembles (ANI-2x): spread of the members, eV
            self.results["energy_std"] = float(out.energy_std[0])

    def get_hessian(self, atoms=None) -> np.ndarray:
        """Hessian [3N, 3N] (eV/Å², atom by atom, x y z) of ``atoms`` (default: the last ones), by ``Potential.hessian``."""
        atoms = self.atoms if atoms is None else atoms
        if atoms is None:
            raise ValueError("get_hessian needs atoms: none given and none calculated yet")
        self._check_elements(atoms)
        atoms = atoms.copy()  # without a calculator: from_ase would read its results as labels
        data = from_ase(atoms, charge=atoms.info.get(CHARGE_KEY), spin=atoms.info.get(SPIN_KEY), dtype=self.potential.dtype)
        with using_threads(self.threads, len(atoms)):
            hessian = self.potential.hessian(data.to(self.device))
        return hessian.detach().cpu().double().numpy()
