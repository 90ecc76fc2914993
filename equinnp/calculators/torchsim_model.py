"""TorchSim model interface around a ``Potential``: many systems in one batched call.

TorchSim (``torch-sim-atomistic``, ``import torch_sim``) integrates, relaxes and
samples many systems at once: a ``SimState`` holds all their atoms, and the
model returns every system's energy, forces and stress from one call. This
module turns an equinnp ``Potential`` into such a model
(``torch_sim.models.interface.ModelInterface``).

Conventions of TorchSim (0.3), and what is done with them:

- ``state.positions`` [N, 3] (Å) of all systems, ``state.system_idx`` [N]
  (consecutive system numbers), ``state.atomic_numbers`` [N] (int32);
- ``state.cell`` [B, 3, 3] holds the cell vectors as *columns*
  (``state.row_vector_cell``, its transpose, is ASE's and equinnp's layout:
  one cell vector per row, ``shift = cell_shift @ cell``);
- ``state.pbc``: one bool for all systems (a tensor of three, or [B, 3], is
  accepted too);
- the model returns ``energy`` [B] (eV), ``forces`` [N, 3] (eV/Å) and
  ``stress`` [B, 3, 3] (eV/Å³), the stress with ASE's sign (positive under
  tension, :math:`\\sigma = V^{-1} \\partial E / \\partial \\varepsilon`), as
  TorchSim's own models and its barostats use it.

One neighbor search covers all systems (``RadiusGraph`` on the batch, periodic
cells included), and, as the ASE calculator does, it is kept while it is
complete: searched within ``cutoff + skin``, reused until an atom moved by
more than ``skin / 2`` or a cell changed; the potential keeps the pairs within
its cutoff in the order of a fresh search, so that results equal a fresh
search's.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor
from torch_geometric.data import Data

try:
    from torch_sim.models.interface import ModelInterface
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "equinnp.calculators.torchsim_model needs TorchSim: pip install 'equinnp[torchsim]' "
        "(the torch-sim-atomistic package)"
    ) from error

from equinnp.calculators.ase_calculator import DTYPES, _load
from equinnp.neighbors import RadiusGraph
from equinnp.neighbors.precomputed import NEIGHBOR_KEYS, reusable
from equinnp.threads import check_threads, using_threads

__all__ = ["EquinnpTorchSimModel"]

Totals = Union[None, float, Sequence[float], Tensor]


def _totals_argument(value: Totals, name: str) -> Optional[Tensor]:
    """A constructor's ``charge``/``spin``: None, one number for every system, or one per system ([B])."""
    if value is None:
        return None
    tensor = torch.as_tensor(value, dtype=torch.float64)
    if tensor.ndim > 1 or not torch.isfinite(tensor).all():
        raise ValueError(f"{name} must be a number or a list of numbers (one per system), got {value!r}")
    return tensor


def _unwrapped(pos: Tensor, searched_at: Tensor, cell: Tensor, pbc: Tensor, batch: Tensor) -> Tensor:
    """``pos`` [N, 3] moved by whole cell vectors to lie next to ``searched_at`` [N, 3].

    TorchSim wraps periodic positions into the cell after every step; an atom
    that crossed a face jumped by a cell vector, which would look like a move
    far beyond the skin. Moving it back by :math:`\\mathbf{n}_i \\mathbf{C}`,
    :math:`\\mathbf{n}_i = \\operatorname{round}((\\mathbf{r}_i - \\mathbf{r}^0_i)\\mathbf{C}^{-1})`
    along the periodic directions, gives the same periodic system (energy,
    forces and stress are unchanged) and lets the last search stand.
    """
    inverse = torch.linalg.inv(cell)[batch]  # [N, 3, 3]
    jumps = torch.round(torch.einsum("nk,nkl->nl", pos - searched_at.to(pos.dtype), inverse)) * pbc[batch]  # [N, 3]
    return pos - torch.einsum("nk,nkl->nl", jumps, cell[batch])  # [N, 3]


class EquinnpTorchSimModel(ModelInterface):
    """An equinnp ``Potential`` as a TorchSim model: energies, forces and stress of a batched ``SimState``.

    Parameters
    ----------
    model : Potential or path
        A potential, or a file: a saved potential (``model.pt``) or a training
        checkpoint (``last.pt``, ``best.pt``: its EMA weights).
    device : str or torch.device, optional
        Where to evaluate (default: ``"cuda"`` when available, else ``"cpu"``, as TorchSim's models).
    dtype : "float32", "float64" or torch.dtype, optional
        Cast the network to this dtype (default: as saved). TorchSim creates its
        states in ``model.dtype``; outputs come back in the state's dtype.
    compute_forces, compute_stress : bool
        Return ``forces`` [N, 3] and ``stress`` [B, 3, 3]. The stress of a state
        without periodic boundaries is zero (``PotentialOutput``'s convention for
        open systems), so that TorchSim's runners, which read it whenever
        ``compute_stress`` is set, also run molecules.
    skin : float
        Verlet skin of the neighbor list (Å); 0 searches at every call.
    charge, spin : number or sequence of numbers, optional
        Total charge (e) and spin multiplicity 2S+1 of every system: one value
        for all, or one per system (then the state must hold that many systems).
        When not given, a state's own ``charge``/``spin`` attributes ([B]) are
        read if it has them; else the potential's defaults (0 and 1), or an
        error for a model that needs them (``requires_charge``/``requires_spin``).
    threads : int, optional
        Torch CPU threads per call (default: ``equinnp.threads.default_threads``
        of the total number of atoms).

    Shapes
    ------
    ``forward(state)`` returns ``{"energy": [B], "forces": [N, 3], "stress": [B, 3, 3]}``.
    """

    def __init__(self, model, *, device=None, dtype=None, compute_forces: bool = True, compute_stress: bool = True,
                 skin: float = 1.0, charge: Totals = None, spin: Totals = None, threads: Optional[int] = None):
        super().__init__()
        potential = _load(model)
        if dtype is not None:
            if dtype not in DTYPES:
                raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
            potential = potential.to(DTYPES[dtype])
        device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.potential = potential.to(device).eval()
        self._device = device
        self._dtype = self.potential.dtype
        self._compute_forces = bool(compute_forces)
        self._compute_stress = bool(compute_stress)
        self._memory_scales_with = "n_atoms_x_density"  # a radial cutoff: neighbors grow with density
        self.neighbors = RadiusGraph(self.potential.search_cutoff, skin)  # checks the skin
        self.skin = self.neighbors.skin
        self.charge = _totals_argument(charge, "charge")
        self.spin = _totals_argument(spin, "spin")
        self.threads = check_threads(threads)
        self._edges = None  # the last search: the Data that holds it
        #: Number of neighbor searches so far (the skin's effect can be read off it).
        self.neighbor_searches = 0

    # TorchSim's runners switch these on and off (``validate_model_outputs`` does).
    @property
    def compute_forces(self) -> bool:
        return self._compute_forces

    @compute_forces.setter
    def compute_forces(self, value: bool) -> None:
        self._compute_forces = bool(value)

    @property
    def compute_stress(self) -> bool:
        return self._compute_stress

    @compute_stress.setter
    def compute_stress(self, value: bool) -> None:
        self._compute_stress = bool(value)

    # ------------------------------------------------------------- input
    def _check_elements(self, z: Tensor, system_idx: Tensor) -> None:
        known = torch.zeros(119, dtype=torch.bool, device=z.device)
        known[torch.tensor(self.potential.elements, device=z.device)] = True
        if z.numel() and (z.min() < 1 or z.max() > 118):
            raise ValueError(f"atomic numbers must be 1..118, got {sorted(set(z.tolist()) - set(range(1, 119)))}")
        unknown = ~known[z]
        if unknown.any():
            from ase.data import chemical_symbols

            names = ", ".join(f"{chemical_symbols[u]} (Z={u})" for u in sorted(set(z[unknown].tolist())))
            systems = sorted(set(system_idx[unknown].tolist()))
            knows = " ".join(chemical_symbols[e] for e in self.potential.elements)
            raise ValueError(f"system(s) {systems} of the state contain {names}, which this "
                             f"{self.potential.architecture} model was not trained on (it knows {knows})")

    @staticmethod
    def _pbc(pbc, num_systems: int, device) -> Tensor:
        """TorchSim's ``pbc`` (one bool, three, or [B, 3]) as [B, 3]."""
        pbc = torch.as_tensor(pbc, dtype=torch.bool, device=device)
        if pbc.numel() == 1:
            return pbc.reshape(1, 1).expand(num_systems, 3)
        if pbc.shape == (3,):
            return pbc.reshape(1, 3).expand(num_systems, 3)
        if pbc.shape == (num_systems, 3):
            return pbc
        raise ValueError(f"state.pbc has shape {tuple(pbc.shape)} for {num_systems} systems: expected a bool, [3] or [B, 3]")

    def _totals(self, state, name: str, num_systems: int, device) -> Optional[Tensor]:
        """``charge`` or ``spin`` as [B]: the constructor's, else the state's, else None."""
        value = getattr(self, name)
        where = f"EquinnpTorchSimModel({name}=...)"
        if value is None:
            value = getattr(state, name, None)
            where = f"state.{name}"
        if value is None:
            if getattr(self.potential.model, f"requires_{name}"):
                raise ValueError(
                    f"this {self.potential.architecture} model needs the total {name} of every system: pass "
                    f"EquinnpTorchSimModel(..., {name}=...) (one number, or one per system) or a state with a "
                    f"'{name}' attribute ([n_systems])"
                )
            return None
        value = torch.as_tensor(value, dtype=self.dtype, device=device).reshape(-1)
        if value.numel() == 1:
            return value.expand(num_systems)
        if value.numel() != num_systems:
            raise ValueError(f"{where} has {value.numel()} values for a state of {num_systems} systems")
        return value

    def _data(self, state) -> Data:
        """equinnp's batched ``Data`` of ``state``, with the neighbor list: the previous one while complete."""
        device = self.device
        pos = state.positions.detach().to(device=device, dtype=self.dtype)  # [N, 3]
        z = state.atomic_numbers.to(device=device, dtype=torch.long)  # [N]
        batch = state.system_idx.to(device=device, dtype=torch.long)  # [N]
        num_systems = int(state.cell.shape[0])
        self._check_elements(z, batch)
        data = Data(z=z, pos=pos, batch=batch, num_graphs=num_systems)
        pbc = self._pbc(state.pbc, num_systems, device)  # [B, 3]
        if pbc.any():
            data.cell = state.cell.detach().to(device=device, dtype=self.dtype).transpose(1, 2)  # [B, 3, 3]: rows
            data.pbc = pbc
        for name in ("charge", "spin"):
            value = self._totals(state, name, num_systems, device)
            if value is not None:
                data[name] = value  # [B]

        previous = self._edges
        if (previous is not None and previous.pos.shape == pos.shape and torch.equal(previous.z, z)
                and torch.equal(previous.batch, batch) and previous.num_graphs == num_systems
                and torch.equal(getattr(previous, "pbc", pbc), pbc)):
            for key in NEIGHBOR_KEYS:
                if key in previous:
                    data[key] = previous[key]
            if "neighbor_cell" in previous and torch.equal(previous.neighbor_cell, data.cell):
                data.pos = _unwrapped(pos, previous.neighbor_pos, data.cell, data.pbc, batch)
            if reusable(data, self.potential.search_cutoff, getattr(data, "cell", None)):
                return data
            data.pos = pos
            for key in NEIGHBOR_KEYS:
                if key in data:
                    del data[key]
        data = self.neighbors(data)
        self.neighbor_searches += 1
        self._edges = data
        return data

    # ------------------------------------------------------------ compute
    def forward(self, state, **kwargs) -> dict:
        """Energy [B], forces [N, 3] and stress [B, 3, 3] of every system of ``state``.

        ``state`` is a ``torch_sim.SimState`` (or a subclass: MD and optimizer
        states) or a dict with its fields (``positions``, ``cell``, ``pbc``,
        ``atomic_numbers``, ``system_idx``). The state is not modified.
        """
        if isinstance(state, dict):
            from torch_sim.state import SimState

            fields = dict(state)
            fields.setdefault("masses", torch.ones_like(fields["positions"][:, 0]))
            state = SimState(**fields)
        data = self._data(state)
        periodic = getattr(data, "pbc", None) is not None
        with using_threads(self.threads, data.pos.shape[0]), torch.no_grad():  # the potential enables gradients itself
            out = self.potential(data, compute_forces=self.compute_forces, compute_stress=self.compute_stress and periodic)
        dtype = state.positions.dtype
        results = {"energy": out.energy.to(dtype)}  # [B]
        if self.compute_forces:
            results["forces"] = out.forces.to(dtype)  # [N, 3]
        if self.compute_stress:
            results["stress"] = (out.stress.to(dtype) if periodic  # [B, 3, 3]
                                 else torch.zeros(data.num_graphs, 3, 3, dtype=dtype, device=data.pos.device))
        return results

    def extra_repr(self) -> str:
        return (f"device={str(self.device)!r}, dtype={self.dtype}, compute_forces={self.compute_forces}, "
                f"compute_stress={self.compute_stress}, skin={self.skin:g}")
