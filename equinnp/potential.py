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
from typing import NamedTuple, Optional

import torch
from torch import Tensor, nn

from equinnp.models.base import AtomisticModel, Graph
from equinnp.neighbors import radius_graph
from equinnp.nn.scatter import scatter_sum
from equinnp.postprocessing import AtomicReferenceEnergies, ElementScaleShift

__all__ = ["Potential", "PotentialOutput", "MIN_DISTANCE"]

MIN_DISTANCE = 0.1  # Å; closer pairs are reported as an input error
FORMAT = "equinnp-potential"
FORMAT_VERSION = 1


class PotentialOutput(NamedTuple):
    """What ``Potential.forward`` returns.

    Attributes
    ----------
    energy : Tensor, [B] float64
        Total energy per system (eV).
    forces : Tensor, [N, 3], optional
        :math:`-\\partial E / \\partial \\mathbf{r}` (eV/Å); None when not requested.
    atomic_energies : Tensor, [N] float64
        Per-atom energies after scale, shift and reference energies (eV); they sum to ``energy``.
    stress : Tensor, [B, 3, 3], optional
        Stress (eV/Å³) of periodic systems; zero for open systems in a mixed batch.
    charges : Tensor, [N], optional
        Partial charges (e) for models that predict them.
    """

    energy: Tensor
    forces: Optional[Tensor]
    atomic_energies: Tensor
    stress: Optional[Tensor] = None
    charges: Optional[Tensor] = None


def _ordinary_tensors(data):
    """A copy of ``data`` whose inference-mode tensors are cloned into ordinary ones, which autograd may save."""
    data = copy.copy(data)
    for key, value in data.items():
        if isinstance(value, Tensor) and value.is_inference():
            data[key] = value.clone()
    return data


def _plain_value(value):
    return value.tolist() if isinstance(value, Tensor) else value


def _detached(out: PotentialOutput) -> PotentialOutput:
    return PotentialOutput(*(None if v is None else v.detach() for v in out))


class Potential(nn.Module):
    """A core network with its neighbor list, postprocessing and derivatives.

    Parameters
    ----------
    model : AtomisticModel
        The core network (one entry of ``equinnp.ARCHITECTURES``).
    architecture : str
        Its registry name, stored in saved files.
    scale, shift : float or list of float
        Per-element affine map of the network's atomic energy (eV).
    reference_energies : list or dict, optional
        Atomic reference energies (eV) added per atom.
    """

    def __init__(self, model: AtomisticModel, *, architecture: str, scale=1.0, shift=0.0, reference_energies=None):
        super().__init__()
        self.model = model
        self.architecture = architecture
        self.cutoff = model.cutoff
        self.elements = list(model.elements)
        self.scale_shift = ElementScaleShift(len(self.elements), scale, shift)
        self.reference_energies = AtomicReferenceEnergies(self.elements, reference_energies)
        species_of_z = torch.full((119,), -1, dtype=torch.long)
        species_of_z[torch.tensor(self.elements)] = torch.arange(len(self.elements))
        self.register_buffer("species_of_z", species_of_z, persistent=False)
        #: How the data-dependent constants were obtained (``fit``), saved in the file's metadata.
        self.fit_info: dict = {}

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ input
    def _species(self, z: Tensor) -> Tensor:
        if z.dim() != 1:
            raise ValueError(f"z must have shape [N], got {tuple(z.shape)}")
        if z.numel() and (int(z.min()) < 1 or int(z.max()) > 118):
            raise ValueError(f"atomic numbers must be in 1..118, got {z[(z < 1) | (z > 118)][0].item()}")
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
        if pos.dim() != 2 or pos.shape[-1] != 3:
            raise ValueError(f"pos must have shape [N, 3], got {tuple(pos.shape)}")
        if pos.shape[0] != z.shape[0]:
            raise ValueError(f"{z.shape[0]} atomic numbers but {pos.shape[0]} positions")
        if not torch.isfinite(pos).all():
            atom = int((~torch.isfinite(pos)).any(dim=1).nonzero()[0])
            raise ValueError(f"position of atom {atom} is not finite: {pos[atom].tolist()}")
        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros_like(z)
            num_graphs = 1
        else:
            num_graphs = int(data.num_graphs)
        cell = getattr(data, "cell", None)
        pbc = getattr(data, "pbc", None)
        if cell is not None:
            cell = cell.to(self.dtype).reshape(-1, 3, 3)
            pbc = torch.ones(cell.shape[0], 3, dtype=torch.bool, device=cell.device) if pbc is None else pbc.reshape(-1, 3)
            if cell.shape[0] != num_graphs or pbc.shape[0] != num_graphs:
                raise ValueError(f"cell has shape {tuple(cell.shape)} and pbc {tuple(pbc.shape)} for {num_graphs} systems: expected [B, 3, 3] and [B, 3]")
            periodic = pbc.any(dim=1)
            if not torch.isfinite(cell[periodic]).all():
                raise ValueError(f"cell is not finite: {cell[periodic].tolist()}")
            volume = torch.linalg.det(cell).abs()
            bad = periodic & (volume < 1e-6)
            if bad.any():
                k = int(bad.nonzero()[0])
                raise ValueError(f"cell of system {k} has zero volume: {cell[k].tolist()}")
            if not periodic.any():
                cell = pbc = None
        return z, pos.to(self.dtype), batch, num_graphs, cell, pbc

    @staticmethod
    def _precomputed(data) -> bool:
        """Edges from ``equinnp.neighbors.RadiusGraph`` come with ``cell_shifts``; an
        ``edge_index`` alone (a bond graph, as in PyG's QM9) is not a radius graph."""
        return getattr(data, "edge_index", None) is not None and getattr(data, "cell_shifts", None) is not None

    def _precomputed_edges_valid(self, data, cell: Optional[Tensor]) -> bool:
        """Whether precomputed edges hold every pair within this model's cutoff at ``data.pos``.

        ``RadiusGraph`` records the radius R it searched (``neighbor_cutoff``, [B])
        and the positions and cells it searched (``neighbor_pos`` [N, 3],
        ``neighbor_cell`` [B, 3, 3]). A pair within the cutoff c now was within
        c + 2d then, d being the largest displacement of an atom, so the edges
        are complete while 2d <= R - c (the skin) and the cells are unchanged.
        Edges without these records, or searched with R < c, are refused.
        """
        built_with = getattr(data, "neighbor_cutoff", None)
        built_at = getattr(data, "neighbor_pos", None)
        if built_with is None or built_at is None:
            missing = "cutoff" if built_with is None else "positions"
            raise ValueError(
                f"precomputed edges (edge_index with cell_shifts) carry no record of the {missing} they were "
                f"built for, so they cannot be checked against this model's {self.cutoff:g} Å cutoff: attach "
                f"them with equinnp.neighbors.RadiusGraph({self.cutoff:g}), or delete data.edge_index and "
                "data.cell_shifts to let the potential search"
            )
        radius = float(built_with.min())
        if radius < self.cutoff:
            raise ValueError(
                f"edges were precomputed with a cutoff of {radius:g} Å, shorter than "
                f"this model's {self.cutoff:g} Å: use RadiusGraph({self.cutoff:g}) or larger"
            )
        if built_at.shape != data.pos.shape:
            raise ValueError(f"data.neighbor_pos has shape {tuple(built_at.shape)} but data.pos {tuple(data.pos.shape)}")
        if cell is not None:
            built_cell = getattr(data, "neighbor_cell", None)
            if built_cell is None or not torch.equal(built_cell.reshape(-1, 3, 3).to(cell.dtype), cell):
                return False
        if built_at.numel() == 0:
            return True
        moved = torch.linalg.vector_norm(data.pos.detach().double() - built_at.double(), dim=-1).max()
        return bool(2.0 * moved <= radius - self.cutoff)

    def _edges(self, data, pos: Tensor, batch: Tensor, cell: Optional[Tensor], pbc: Optional[Tensor]):
        """``(edge_index, cell_shifts, precomputed)``: the precomputed edges when they are still
        complete, else a fresh search at this model's cutoff."""
        if self._precomputed(data) and self._precomputed_edges_valid(data, cell):
            return data.edge_index, data.cell_shifts, True
        neighbors = radius_graph(pos.detach(), self.cutoff, batch=batch, cell=cell, pbc=pbc)
        return neighbors.edge_index, neighbors.cell_shifts, False

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
            return _detached(out)
        if torch.is_grad_enabled():
            return self._forward(data, compute_forces, compute_stress)
        with torch.enable_grad():
            out = self._forward(data, compute_forces, compute_stress)
        return _detached(out)

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

        edge_index, cell_shifts, precomputed = self._edges(data, pos, batch, cell, pbc)
        j, i = edge_index[0], edge_index[1]
        edge_vec = pos[j] - pos[i]  # [E, 3]
        if cell is not None and cell_shifts is not None:
            edge_vec = edge_vec + torch.einsum("ek,ekl->el", cell_shifts.to(pos.dtype), cell[batch[i]])  # [E, 3]
        edge_length = torch.linalg.vector_norm(edge_vec, dim=-1)  # [E]
        if precomputed:  # searched with a possibly larger cutoff
            keep = edge_length <= self.cutoff
            edge_index, edge_vec, edge_length = edge_index[:, keep], edge_vec[keep], edge_length[keep]
        if edge_length.numel():
            shortest = int(torch.argmin(edge_length))
            if edge_length[shortest] < MIN_DISTANCE:
                a, b = int(edge_index[1, shortest]), int(edge_index[0, shortest])
                raise ValueError(
                    f"atoms {a} and {b} are {edge_length[shortest].item():.3g} Å apart "
                    f"(less than {MIN_DISTANCE} Å): two atoms on top of each other"
                )

        graph = Graph(
            species=species,
            z=z,
            pos=pos,
            edge_index=edge_index,
            edge_vec=edge_vec,
            edge_length=edge_length,
            batch=batch,
            num_graphs=num_graphs,
            charge=getattr(data, "charge", None),
            spin=getattr(data, "spin", None),
        )
        atomic = self.model(graph)
        atomic_energies = self.scale_shift(atomic.energy, species) + self.reference_energies(species)  # [N] float64
        energy = scatter_sum(atomic_energies, batch, num_graphs)  # [B] float64

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
                stress = torch.where(
                    periodic.view(-1, 1, 1), d_strain / volume.clamp(min=1e-12).view(-1, 1, 1), torch.zeros_like(d_strain)
                )
        return PotentialOutput(energy=energy, forces=forces, atomic_energies=atomic_energies, stress=stress, charges=atomic.charges)

    # ---------------------------------------------------------------- fitting
    def fit(self, dataset, *, reference_energies="fit", scale="rms_forces", shift=None) -> dict:
        """Fit the potential's data-dependent constants (not its weights) from structures.

        Sets, in this order: the atomic reference energies (least squares,
        :func:`equinnp.postprocessing.reference_energy_fit`), the scale of the
        network's atomic energy, the shift, and the core network's own
        constants (``AtomisticModel.fit``: MACE's average number of
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

        Returns
        -------
        dict
            What was set: ``reference_energies`` {Z: eV}, ``scale``, ``shift``, and the model's constants.
        """
        from equinnp.data.statistics import DatasetStatistics
        from equinnp.postprocessing import reference_energy_fit

        stats = dataset if isinstance(dataset, DatasetStatistics) else DatasetStatistics(dataset)
        fitted, info = {}, {"num_structures": len(stats)}
        if isinstance(reference_energies, str):
            if reference_energies != "fit":
                raise ValueError(f"reference_energies must be 'fit', a dict, a list or None, got {reference_energies!r}")
            result = reference_energy_fit(stats, self.elements)
            self.reference_energies.set(result.energies)
            fitted["reference_energies"] = result.energies
            info["reference_energies"] = result.info()
        elif reference_energies is not None:
            self.reference_energies.set(reference_energies)
            fitted["reference_energies"] = self.reference_energies.as_dict()
            info["reference_energies"] = {"method": "given"}
        if scale is not None:
            if scale == "rms_forces":
                value = stats.rms_forces()
            elif scale == "energy_std":
                value = stats.energy_residual_std(self.reference_energies.as_dict())
            elif isinstance(scale, str):
                raise ValueError(f"scale must be 'rms_forces', 'energy_std', a number or None, got {scale!r}")
            else:
                value = scale
            if not all(v > 0 for v in torch.as_tensor(value, dtype=torch.float64).reshape(-1).tolist()):
                raise ValueError(f"scale {value} is not positive (constant training labels?)")
            self.scale_shift.set(scale=value)
            fitted["scale"] = value
            info["scale"] = scale if isinstance(scale, str) else "given"
        if shift is not None:
            self.scale_shift.set(shift=shift)
            fitted["shift"] = shift
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
        }

    def metadata(self) -> dict:
        from equinnp import __version__

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
