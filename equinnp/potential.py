"""``Potential``: neighbor list → core network → postprocessing → derivatives.

This module is the only place in equinnp where autograd is called: forces are
:math:`F = -\\partial E / \\partial \\mathbf{r}` and the stress is
:math:`\\sigma = V^{-1}\\, \\partial E / \\partial \\varepsilon` for a symmetric strain
:math:`\\varepsilon` applied to positions and cell (ASE's sign convention).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from equinnp.models.base import AtomisticModel, Graph
from equinnp.neighbors import radius_graph
from equinnp.neighbors.precomputed import is_radius_graph, reusable
from equinnp.neighbors.reverse import reverse_edges
from equinnp.nn.scatter import scatter_sum
from equinnp.postprocessing import AtomicReferenceEnergies, ElementScaleShift
from equinnp.postprocessing.base import AtomicTransform, EnergyTerm
from equinnp.postprocessing.charges import dipole_moment
from equinnp.potential_output import PotentialOutput, detached
from equinnp.validation import check_atomic_numbers, check_cells, check_positions

__all__ = ["Potential", "PotentialOutput", "MIN_DISTANCE"]

MIN_DISTANCE = 0.1  # Å; closer pairs are reported as an input error
FORMAT = "equinnp-potential"
FORMAT_VERSION = 2  # 2: the config names the postprocessing stages


def _ordinary_tensors(data):
    """A copy of ``data`` whose inference-mode tensors are cloned into ordinary ones, which autograd may save."""
    data = copy.copy(data)
    for key, value in data.items():
        if isinstance(value, Tensor) and value.is_inference():
            data[key] = value.clone()
    return data


def _plain_value(value):
    return value.tolist() if isinstance(value, Tensor) else value


class Potential(nn.Module):
    """A core network with its neighbor list, postprocessing and derivatives.

    Parameters
    ----------
    model : AtomisticModel
        The core network (one entry of ``equinnp.ARCHITECTURES``).
    architecture : str
        Its registry name, stored in saved files.
    scale, shift : float or list of float
        Per-element affine map of the network's atomic energy (eV), for the
        default ``scale_shift`` transform.
    reference_energies : list or dict, optional
        Atomic reference energies (eV) of the default ``reference_energies`` term.
    transforms : sequence of AtomicTransform, optional
        Transforms of the per-atom outputs, applied in order (default: ``ElementScaleShift``).
    energy_terms : sequence of EnergyTerm, optional
        Additive energy terms (default: ``AtomicReferenceEnergies``). Each is a
        submodule under its registry name (``pot.reference_energies``).

    The neighbor search runs once, at the largest cutoff of the core network
    and the energy terms (``search_cutoff``); each consumer sees only the pairs
    within its own cutoff.
    """

    def __init__(self, model: AtomisticModel, *, architecture: str, scale=None, shift=None, reference_energies=None,
                 transforms: Optional[Sequence[AtomicTransform]] = None, energy_terms: Optional[Sequence[EnergyTerm]] = None):
        super().__init__()
        self.model = model
        self.architecture = architecture
        self.cutoff = model.cutoff
        self.elements = list(model.elements)
        if transforms is None:
            transforms = [ElementScaleShift(len(self.elements))]
        if energy_terms is None:
            energy_terms = [AtomicReferenceEnergies(self.elements)]
        self.transform_names: List[str] = []
        self.energy_term_names: List[str] = []
        for stage, names, kind in [(t, self.transform_names, AtomicTransform) for t in transforms] + [
            (t, self.energy_term_names, EnergyTerm) for t in energy_terms
        ]:
            if not isinstance(stage, kind) or not stage.name:
                raise ValueError(f"{type(stage).__name__} is not a registered {kind.__name__} (it needs a name)")
            if hasattr(self, stage.name):
                raise ValueError(f"two postprocessing stages named {stage.name!r}, or a name that Potential uses itself")
            self.add_module(stage.name, stage)
            names.append(stage.name)
        for value, stage, what in ((scale, "scale_shift", "scale"), (shift, "scale_shift", "shift"),
                                   (reference_energies, "reference_energies", "reference_energies")):
            if value is not None:
                if stage not in self.transform_names + self.energy_term_names:
                    raise ValueError(f"{what} given but this potential has no {stage!r} stage")
                getattr(self, stage).set(value) if stage == "reference_energies" else getattr(self, stage).set(**{what: value})
        term_cutoffs = [t.cutoff for t in self.energy_terms if t.cutoff is not None]
        self.search_cutoff = max([self.cutoff] + term_cutoffs)
        species_of_z = torch.full((119,), -1, dtype=torch.long)
        species_of_z[torch.tensor(self.elements)] = torch.arange(len(self.elements))
        self.register_buffer("species_of_z", species_of_z, persistent=False)
        #: How the data-dependent constants were obtained (``fit``), saved in the file's metadata.
        self.fit_info: dict = {}

    @property
    def transforms(self) -> List[AtomicTransform]:
        return [getattr(self, name) for name in self.transform_names]

    @property
    def energy_terms(self) -> List[EnergyTerm]:
        return [getattr(self, name) for name in self.energy_term_names]

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ input
    def _species(self, z: Tensor) -> Tensor:
        check_atomic_numbers(z)
        species = self.species_of_z[z]
        if (species < 0).any():
            from ase.data import chemical_symbols

            unknown = sorted(set(z[species < 0].tolist()))
            names = ", ".join(f"{chemical_symbols[u]} (Z={u})" for u in unknown)
            raise ValueError(
                f"element {names} is not one this {self.architecture} model was built for: "
                f"elements={self.elements}"
            )
        return species

    def _read_input(self, data):
        z, pos = data.z, data.pos
        dtype = self.dtype  # once per call: it iterates the parameters
        check_positions(pos, z.shape[0])
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros_like(z)
            num_graphs = 1
        else:
            num_graphs = int(data.num_graphs)
        cell = getattr(data, "cell", None)
        pbc = getattr(data, "pbc", None)
        if cell is not None:
            cell = cell.to(dtype).reshape(-1, 3, 3)
            pbc = torch.ones(cell.shape[0], 3, dtype=torch.bool, device=cell.device) if pbc is None else pbc.reshape(-1, 3)
            if cell.shape[0] != num_graphs or pbc.shape[0] != num_graphs:
                raise ValueError(f"cell has shape {tuple(cell.shape)} and pbc {tuple(pbc.shape)} for {num_graphs} systems: expected [B, 3, 3] and [B, 3]")
            check_cells(cell, pbc)
            if not pbc.any():
                cell = pbc = None
        return z, pos.to(dtype), batch, num_graphs, cell, pbc

    def _edges(self, data, pos: Tensor, batch: Tensor, num_graphs: int, cell: Optional[Tensor], pbc: Optional[Tensor]):
        """``(edge_index, cell_shifts, precomputed)`` at ``search_cutoff``: the precomputed edges
        while they are complete (``equinnp.neighbors.precomputed.reusable``), else a fresh search
        (one system is searched without its batch vector: an open molecule then takes the dense search)."""
        if is_radius_graph(data) and reusable(data, self.search_cutoff, cell):
            return data.edge_index, data.cell_shifts, True
        neighbors = radius_graph(pos.detach(), self.search_cutoff, batch=batch if num_graphs > 1 else None, cell=cell, pbc=pbc)
        return neighbors.edge_index, neighbors.cell_shifts, False

    def _total(self, data, name: str, default: float, num_graphs: int, device, dtype: torch.dtype) -> Tensor:
        """``data.charge`` or ``data.spin`` as [B], the default where absent (refused if the model requires it)."""
        value = getattr(data, name, None)
        if value is None:
            if getattr(self.model, f"requires_{name}"):
                raise ValueError(
                    f"this {self.architecture} model needs the total {name} of every system: set data.{name} "
                    f"([B]; e.g. equinnp.data.from_ase reads atoms.info['{name}'])"
                )
            return torch.full((num_graphs,), default, dtype=dtype, device=device)
        value = value.reshape(-1).to(dtype)
        if value.shape[0] != num_graphs:
            raise ValueError(f"data.{name} has {value.shape[0]} values for {num_graphs} systems")
        return value

    # ---------------------------------------------------------------- forward
    def forward(self, data, compute_forces: bool = True, compute_stress: Optional[bool] = None) -> PotentialOutput:
        """Energy, forces and (periodic systems) stress of a ``Data`` or ``Batch``.

        Parameters
        ----------
        data : Data or Batch
            ``z`` [N], ``pos`` [N, 3], optional ``batch`` [N], ``cell`` [B, 3, 3],
            ``pbc`` [B, 3], ``charge``/``spin`` [B], and optionally precomputed
            ``edge_index`` [2, E] with ``cell_shifts`` [E, 3] (``RadiusGraph``).
        compute_forces : bool
            Return forces.
        compute_stress : bool, optional
            Return the stress; defaults to True when any system is periodic.

        Forces and stress are computed under ``torch.no_grad()`` and
        ``torch.inference_mode()`` too (gradients are enabled inside this call
        only); the outputs are then detached.
        """
        if torch.is_inference_mode_enabled():
            with torch.inference_mode(False):
                out = self._forward(_ordinary_tensors(data), compute_forces, compute_stress)
            return detached(out)
        if torch.is_grad_enabled():
            return self._forward(data, compute_forces, compute_stress)
        with torch.enable_grad():
            out = self._forward(data, compute_forces, compute_stress)
        return detached(out)

    def _forward(self, data, compute_forces: bool, compute_stress: Optional[bool]) -> PotentialOutput:
        z, pos, batch, num_graphs, cell, pbc = self._read_input(data)
        species = self._species(z)
        if compute_stress is None:
            compute_stress = cell is not None
        if compute_stress and cell is None:
            raise ValueError("stress needs a periodic cell (data.cell and data.pbc)")

        if (compute_forces or compute_stress) and not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        strain = None
        if compute_stress:
            strain = torch.zeros(num_graphs, 3, 3, dtype=pos.dtype, device=pos.device, requires_grad=True)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))  # [B, 3, 3]
            pos = pos + torch.einsum("nk,nkl->nl", pos, symmetric[batch])  # [N, 3]
            cell = cell + torch.bmm(cell, symmetric)  # [B, 3, 3]

        edge_index, cell_shifts, precomputed = self._edges(data, pos, batch, num_graphs, cell, pbc)
        cell_shifts = cell_shifts.to(pos.dtype)  # [E, 3]
        j, i = edge_index[0], edge_index[1]
        edge_vec = pos[j] - pos[i]  # [E, 3]
        if cell is not None:
            edge_vec = edge_vec + torch.einsum("ek,ekl->el", cell_shifts, cell[batch[i]])  # [E, 3]
        edge_length = torch.linalg.vector_norm(edge_vec, dim=-1)  # [E]
        if precomputed:  # searched with a possibly larger radius
            keep = edge_length <= self.search_cutoff
            if not bool(keep.all()):
                edge_index, edge_vec, edge_length, cell_shifts = edge_index[:, keep], edge_vec[keep], edge_length[keep], cell_shifts[keep]
        if edge_length.numel() and bool(edge_length.min() < MIN_DISTANCE):
            shortest = int(torch.argmin(edge_length))
            a, b = int(edge_index[1, shortest]), int(edge_index[0, shortest])
            raise ValueError(
                f"atoms {a} and {b} are {edge_length[shortest].item():.3g} Å apart "
                f"(less than {MIN_DISTANCE} Å): two atoms on top of each other"
            )

        reverse = None
        if self.model.needs_reverse_edges:
            reverse = reverse_edges(edge_index, cell_shifts, z.shape[0])
        graph = Graph(
            species=species,
            z=z,
            pos=pos,
            edge_index=edge_index,
            edge_vec=edge_vec,
            edge_length=edge_length,
            batch=batch,
            num_graphs=num_graphs,
            charge=self._total(data, "charge", 0.0, num_graphs, pos.device, pos.dtype),
            spin=self._total(data, "spin", 1.0, num_graphs, pos.device, pos.dtype),
            cell_shifts=cell_shifts,
            cell=cell,
            pbc=pbc,
            reverse_edge=reverse,
        )
        atomic = self.model(graph if self.search_cutoff == self.cutoff else graph.within(self.cutoff))
        for transform in self.transforms:
            atomic = transform(atomic, graph)
        atomic_energies = atomic.energy.double()  # [N]
        energy_terms = {}
        for name, term in zip(self.energy_term_names, self.energy_terms):
            view = graph if term.cutoff is None or term.cutoff == self.search_cutoff else graph.within(term.cutoff)
            term_energies = term(view, atomic)  # [N] float64
            energy_terms[name] = scatter_sum(term_energies, batch, num_graphs)  # [B]
            atomic_energies = atomic_energies + term_energies
        energy = scatter_sum(atomic_energies, batch, num_graphs)  # [B] float64
        member_energies = energy_std = None
        if atomic.member_energies is not None:  # ensembles: every member gets the same energy terms
            terms = sum(energy_terms.values(), torch.zeros_like(energy))  # [B]
            member_energies = scatter_sum(atomic.member_energies.double(), batch, num_graphs) + terms.unsqueeze(-1)  # [B, M]
            energy_std = member_energies.std(dim=-1)  # [B], M - 1 in the denominator

        forces = stress = None
        if compute_forces or compute_stress:
            inputs = [pos] if strain is None else [pos, strain]
            if compute_stress and not compute_forces:
                inputs = [strain]
            grads = torch.autograd.grad(
                energy.sum(), inputs, create_graph=self.training, allow_unused=True
            )
            if compute_forces:
                forces = -grads[0] if grads[0] is not None else torch.zeros_like(pos)
            if compute_stress:
                d_strain = grads[-1] if grads[-1] is not None else torch.zeros_like(strain)
                volume = torch.linalg.det(cell).abs()  # [B]
                periodic = pbc.any(dim=1)
                # a slab or wire whose open rows of the cell are zero has no volume: its stress is undefined (NaN)
                per_volume = torch.where((volume > 0).view(-1, 1, 1), d_strain / volume.clamp(min=1e-300).view(-1, 1, 1),
                                         torch.full_like(d_strain, float("nan")))  # [B, 3, 3]
                stress = torch.where(periodic.view(-1, 1, 1), per_volume, torch.zeros_like(d_strain))
        dipole = None
        if atomic.charges is not None:
            dipole = dipole_moment(atomic.charges, pos, z, batch, num_graphs, pbc)  # [B, 3]; NaN rows: periodic
        return PotentialOutput(energy=energy, forces=forces, atomic_energies=atomic_energies, stress=stress,
                               charges=atomic.charges, energy_terms=energy_terms, dipole=dipole,
                               member_energies=member_energies, energy_std=energy_std)

    def tabulate_radial(self, enabled: bool = True, *, spacing: Optional[float] = None, tolerance: float = 1e-7,
                        degree: int = 5) -> "Potential":
        """Evaluate the core network's radial network by a table in eval mode (``equinnp.nn.tabulation``).

        An inference option of SchNet, PaiNN, MACE and TensorNet (``AtomisticModel.tabulate_radial``):
        the table is built on the first evaluation, rebuilt whenever the weights
        change, never used in training mode and never saved. Returns ``self``.
        """
        self.model.tabulate_radial(enabled, spacing=spacing, tolerance=tolerance, degree=degree)
        return self

    def hessian(self, data, chunk_size: Optional[int] = None) -> Tensor:
        """Hessian [3N, 3N] of the energy in the positions (eV/Å²), by autograd: :func:`equinnp.hessian.hessian`."""
        from equinnp.hessian import hessian

        return hessian(self, data, chunk_size=chunk_size)

    # ---------------------------------------------------------------- fitting
    def fit(self, dataset, *, reference_energies="fit", scale="rms_forces", shift=None, **options) -> dict:
        """Fit the potential's data-dependent constants (not its weights) from structures.

        Each postprocessing stage and the core network fit their own constants
        (``fit`` hooks): first the energy terms (atomic reference energies by
        least squares, :func:`equinnp.postprocessing.reference_energy_fit`), then
        the transforms (the scale and shift of the network's atomic energy), then
        the core network (``AtomisticModel.fit``: MACE's average number of
        neighbors). The trainer calls this before training; call it yourself
        to use a potential built with ``build_potential`` outside the trainer.

        Parameters
        ----------
        dataset : list of Data, dataset or DatasetStatistics
            Structures with ``z``, ``pos`` and labels (``energy``; ``forces`` for ``rms_forces``).
        reference_energies : "fit", dict, list or None
            ``"fit"``: least squares (warns when the compositions do not determine
            every element, and records it in ``fit_info``); a dict/list: set these;
            None: keep the current ones.
        scale : "rms_forces", "energy_std", float or None
            ``"rms_forces"``: RMS of the force components (as MACE);
            ``"energy_std"``: std of the per-atom energy residuals after the
            reference energies (for data without forces); a number; None: keep.
        shift : float, list or None
            Per-element shift of the atomic energy; None keeps the current one.
        **options
            Options of other stages, by the names in their ``fit_options``.

        Returns
        -------
        dict
            What was set: ``reference_energies`` {Z: eV}, ``scale``, ``shift``, and the model's constants.
        """
        from equinnp.data.statistics import DatasetStatistics

        options.update(reference_energies=reference_energies, scale=scale, shift=shift)
        stages = self.energy_terms + self.transforms
        known = {name for stage in stages for name in stage.fit_options}
        unknown = sorted(set(options) - known - {"reference_energies", "scale", "shift"})
        if unknown:
            raise ValueError(f"unknown fit option(s) {unknown}; the stages of this potential take {sorted(known)}")
        stats = dataset if isinstance(dataset, DatasetStatistics) else DatasetStatistics(dataset)
        fitted, info = {}, {"num_structures": len(stats)}
        for stage in stages:
            fitted.update(stage.fit(stats, dict(fitted), **{k: options[k] for k in stage.fit_options if k in options}))
            if getattr(stage, "fit_info", None):
                info[stage.name] = dict(stage.fit_info)
        if "scale" in fitted:
            info["scale"] = scale if isinstance(scale, str) else "given"
        model_constants = self.model.fit(stats)
        fitted.update(model_constants)
        if model_constants:
            info["model"] = {k: _plain_value(v) for k, v in model_constants.items()}
        self.fit_info = info
        return fitted

    # -------------------------------------------------------------- save/load
    @property
    def config(self) -> dict:
        """Everything ``build_potential`` needs to rebuild this potential (weights excluded)."""
        return {
            "architecture": self.architecture,
            "hyperparameters": dict(self.model.hyperparameters),
            "dtype": str(self.dtype).replace("torch.", ""),
            "postprocessing": {
                "transforms": [{"name": t.name, **t.config()} for t in self.transforms],
                "energy_terms": [{"name": t.name, **t.config()} for t in self.energy_terms],
            },
        }

    def metadata(self) -> dict:
        from equinnp.version import __version__

        return {
            "cutoff": self.cutoff,
            "elements": self.elements,
            "units": {"energy": "eV", "length": "Å", "forces": "eV/Å", "stress": "eV/Å³"},
            "reference_energies": self.reference_energies.as_dict(),
            "scale": self.scale_shift.scale.tolist(),
            "shift": self.scale_shift.shift.tolist(),
            "fit": dict(self.fit_info),
            "equinnp_version": __version__,
        }

    def save(self, path) -> None:
        """Write config, weights and metadata to ``path`` (atomically: temporary file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "config": self.config,
            "metadata": self.metadata(),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
        }
        tmp = path.with_name(path.name + ".tmp")
        torch.save(payload, tmp)
        os.replace(tmp, path)

    def extra_repr(self) -> str:
        return f"architecture={self.architecture!r}, cutoff={self.cutoff:g}, elements={self.elements}"
