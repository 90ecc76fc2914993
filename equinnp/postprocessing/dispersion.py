r"""DFT-D3 dispersion with Becke-Johnson (rational) damping: the ``d3`` energy term.

Grimme, Antony, Ehrlich, Krieg, J. Chem. Phys. 132, 154104 (2010); BJ damping:
Grimme, Ehrlich, Goerigk, J. Comput. Chem. 32, 1456 (2011). In atomic units
(bohr, hartree), on the pairs of the neighbor list (periodic images included):

.. math::
    \mathrm{CN}_i = \sum_{j} \frac{1}{1 + e^{-16\,(R^\mathrm{cov}_i + R^\mathrm{cov}_j)/r_{ij} + 16}},
    \qquad
    W_{iA} = \frac{e^{-4(\mathrm{CN}_i - \mathrm{CN}^\mathrm{ref}_{Z_i A})^2}}{\sum_{A'} e^{-4(\mathrm{CN}_i - \mathrm{CN}^\mathrm{ref}_{Z_i A'})^2}}

.. math::
    C_6^{ij} = \sum_{A,B} W_{iA} W_{jB}\, C_6^\mathrm{ref}(Z_i A, Z_j B), \qquad
    C_8^{ij} = 3\, C_6^{ij}\, \sqrt{Q_i Q_j}, \qquad
    R_0^{ij} = a_1 \sqrt{3\sqrt{Q_i Q_j}} + a_2

.. math::
    E = -\frac12 \sum_{i \ne j} \Big( s_6 \frac{C_6^{ij}}{r_{ij}^6 + (R_0^{ij})^6}
        + s_8 \frac{C_8^{ij}}{r_{ij}^8 + (R_0^{ij})^8} \Big)

with :math:`\sqrt{Q}` the ``r4r2`` values and :math:`R^\mathrm{cov}` the D3 covalent
radii (4/3 × Pyykkö's). Where every reference weight underflows, the reference
of the largest reference CN gets weight 1 (as the reference codes do). The
coordination numbers use the pairs within ``cn_cutoff``, the energy those
within ``cutoff`` (defaults: 40 and 60 bohr, those of simple-dftd3 and
tad-dftd3). The reference codes truncate both sharply, so that energy and
forces jump when a pair crosses a cutoff; here each pair's CN count and
energy are multiplied by :math:`1 - s\big((r - (1 - f) r_c)/(f r_c)\big)`
(PhysNet's C² smootherstep s) over the last fraction f = ``smoothing`` of
each cutoff (default 0.1; aimnet switches its 15 Å D3 over the last 20 %).
``smoothing=0`` truncates sharply, as the reference codes do, and gives
their numbers (``tests/test_dispersion.py``).

The three-body (Axilrod-Teller-Muto) term is added when ``s9`` > 0
(``equinnp.postprocessing.dispersion_atm``: zero damping with exponent ``alp`` + 2
= 16 and 4/3 of the pairwise D3 radii, C9 from the geometric mean of the pair C6,
as simple-dftd3) over the triangles whose three sides are within
``atm_cutoff`` (default 40 bohr, simple-dftd3's), each side switched off
smoothly as the pairs are. The default ``s9 = 0`` is two-body only; note that
simple-dftd3's ``RationalDampingParam`` defaults to s9 = 1. The number of
edge pairs (candidate triangles) grows as (density × ``atm_cutoff``³)² / 2 per
atom; they are evaluated ``atm_chunk_size`` (default 2¹⁶) at a time with
recomputation in backward, so the memory stays bounded at any cutoff and the
time grows with the number of pairs: for a dense periodic cell, a smaller
``atm_cutoff`` (15-20 bohr) keeps the time bounded.

Data: the reference C6 values, reference CNs, r4r2 and D3 covalent radii are
read from the installed ``tad-dftd3`` / ``tad-mctc`` packages (Apache-2.0; the
tables originate from Grimme's dftd3 program), for the model's elements only.
Install them with ``pip install "equinnp[d3]"``. The damping parameters of a
functional come from tad-dftd3's copy of simple-dftd3's ``parameters.toml``.

Training: with ``during_training=False`` the term is zero while the potential
is in training mode and added in evaluation mode (inference, validation runs
in ``eval()``): train the network on labels without dispersion (or with D3
subtracted) and add D3 back at inference, as AIMNet2's models with post-hoc
D3. With the default (True) and labels that include D3, the network learns the
labels minus D3, which is the same as training on D3-subtracted labels.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from equinnp.nn.scatter import scatter_sum
from equinnp.postprocessing.base import EnergyTerm
from equinnp.postprocessing.coulomb_kernels import smootherstep
from equinnp.postprocessing.dispersion_atm import (EdgePairPlan, atm_energy, chunks_of_edge_pairs, edge_pairs_in_chunk,
                                                   plan_edge_pairs)
from equinnp.postprocessing.float64 import keep_float64

__all__ = ["D3Dispersion", "BOHR", "HARTREE", "d3_parameters"]

BOHR = 0.52917721067  # Å (CODATA 2014, as tad-mctc)
HARTREE = 27.211386019495706  # eV (tad-mctc's AU2EV)
#: Default edge pairs per chunk of the three-body term (about 2 kB of intermediates per pair in backward).
ATM_CHUNK_SIZE = 2**16


def _tables():
    try:
        from tad_dftd3.data import R4R2
        from tad_dftd3.reference import Reference
        from tad_mctc.data.radii import COV_D3
    except ImportError as error:
        raise ImportError(
            f"the d3 energy term reads the D3 reference tables from the tad-dftd3 package, which is not importable ({error}): "
            'pip install "equinnp[d3]" (tad-dftd3==0.7.0, pure Python)'
        ) from None
    reference = Reference(dtype=torch.float64, device=torch.device("cpu"))
    from tad_mctc.data.radii import VDW_PAIRWISE

    return (reference.cn, reference.c6, R4R2(dtype=torch.float64), COV_D3(dtype=torch.float64),
            VDW_PAIRWISE(dtype=torch.float64))


def d3_parameters(functional: str) -> dict:
    """BJ damping parameters ``{s6, s8, a1, a2}`` of a functional from simple-dftd3's table (via tad-dftd3)."""
    _tables()
    from tad_dftd3.param.functional import get_functional_params

    try:
        params = get_functional_params(functional, damping="bj", dtype=torch.float64)
    except (KeyError, ValueError) as error:
        raise ValueError(f"d3: no D3(BJ) parameters for functional {functional!r} ({error})") from None
    return {k: float(params[k]) for k in ("s6", "s8", "a1", "a2")}


class D3Dispersion(EnergyTerm):
    """DFT-D3(BJ) two-body dispersion (module docstring for the equations).

    Parameters
    ----------
    elements : sequence of int
        The model's elements (1..103).
    functional : str, optional
        Take ``s6, s8, a1, a2`` from simple-dftd3's table for this functional
        (``"wb97m"``, ``"pbe"``, ``"b3lyp"``, ...); explicit values below override them.
    s6, s8, a1, a2 : float, optional
        BJ parameters (a2 in bohr). Either a functional or all of s8, a1, a2 (s6 defaults to 1).
    s9 : float
        Scaling of the three-body (ATM) term: 0 (default) two-body only, 1 the
        published "D3(BJ)-ATM"; finite and >= 0.
    alp : float
        simple-dftd3's damping parameter of the three-body term (default 14; the
        zero-damping exponent on the geometric means is ``alp`` + 2 = 16).
    cutoff, cn_cutoff, atm_cutoff : float
        Cutoffs (Å) of the pair energy, the coordination numbers and the sides of the
        three-body triangles (defaults: 60, 40 and 40 bohr).
    atm_chunk_size : int
        Edge pairs (candidate triangles) evaluated at a time by the three-body term
        (default 2¹⁶ = 65,536); bounds its memory, does not change the result beyond round-off.
    smoothing : float
        Fraction of each cutoff over which pairs are switched off smoothly; 0: sharp, as the reference codes.
    during_training : bool
        False: zero in training mode, added in evaluation mode (see the module docstring).

    Shapes: ``forward(graph, atomic)`` → [N] float64 (eV).
    """

    name = "d3"
    _apply = keep_float64

    def __init__(self, elements: Sequence[int], functional: Optional[str] = None, s6: Optional[float] = None,
                 s8: Optional[float] = None, a1: Optional[float] = None, a2: Optional[float] = None, s9: float = 0.0,
                 cutoff: float = 60.0 * BOHR, cn_cutoff: float = 40.0 * BOHR, smoothing: float = 0.1,
                 during_training: bool = True, alp: float = 14.0, atm_cutoff: float = 40.0 * BOHR,
                 atm_chunk_size: int = ATM_CHUNK_SIZE):
        super().__init__()
        if isinstance(s9, bool) or not isinstance(s9, (int, float)) or not math.isfinite(s9) or s9 < 0:
            raise ValueError(f"d3: s9 (the three-body scaling) must be a finite number >= 0 (0: two-body only, "
                             f"1: D3(BJ)-ATM), got s9={s9!r}")
        if isinstance(alp, bool) or not isinstance(alp, (int, float)) or not math.isfinite(alp) or not alp > 0:
            raise ValueError(f"d3: alp (the three-body damping exponent) must be a positive number, got alp={alp!r}")
        if not atm_cutoff > 0:
            raise ValueError(f"d3: atm_cutoff must be positive, got atm_cutoff={atm_cutoff}")
        if isinstance(atm_chunk_size, bool) or not isinstance(atm_chunk_size, int) or atm_chunk_size < 1:
            raise ValueError(f"d3: atm_chunk_size (edge pairs per chunk of the three-body term) must be an integer >= 1, "
                             f"got atm_chunk_size={atm_chunk_size!r}")
        given = {"s6": s6, "s8": s8, "a1": a1, "a2": a2}
        params = d3_parameters(functional) if functional is not None else {"s6": 1.0}
        params.update({k: float(v) for k, v in given.items() if v is not None})
        missing = [k for k in ("s6", "s8", "a1", "a2") if k not in params]
        if missing:
            raise ValueError(f"d3: give functional= or the BJ parameters {missing}")
        self.elements = [int(e) for e in elements]
        if any(not 1 <= z <= 103 for z in self.elements):
            raise ValueError(f"d3: D3 has reference data for elements 1..103, got {self.elements}")
        if not cutoff > 0 or not cn_cutoff > 0:
            raise ValueError(f"d3: cutoffs must be positive, got cutoff={cutoff}, cn_cutoff={cn_cutoff}")
        if not 0 <= smoothing < 1:
            raise ValueError(f"d3: smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = float(smoothing)
        self.functional = functional
        self.params = params
        self.d3_cutoff = float(cutoff)
        self.cn_cutoff = float(cn_cutoff)
        self.s9, self.alp, self.atm_cutoff = float(s9), float(alp), float(atm_cutoff)
        self.atm_chunk_size = int(atm_chunk_size)
        self.cutoff = max(self.d3_cutoff, self.cn_cutoff, self.atm_cutoff if self.s9 > 0 else 0.0)
        self.during_training = bool(during_training)
        ref_cn, ref_c6, r4r2, rcov, rvdw = _tables()
        z = torch.tensor(self.elements)
        self.register_buffer("ref_cn", ref_cn[z], persistent=False)  # [K, R] (-1: no reference)
        self.register_buffer("ref_c6", ref_c6[z][:, z], persistent=False)  # [K, K, R, R] hartree bohr^6
        self.register_buffer("r4r2", r4r2[z], persistent=False)  # [K]
        self.register_buffer("rcov", rcov[z], persistent=False)  # [K] bohr
        self.register_buffer("rvdw", rvdw[z][:, z], persistent=False)  # [K, K] bohr, pairwise radii of the ATM damping

    def config(self) -> dict:
        return {"functional": self.functional, **self.params, "s9": self.s9, "alp": self.alp, "cutoff": self.d3_cutoff,
                "cn_cutoff": self.cn_cutoff, "atm_cutoff": self.atm_cutoff,
                "atm_chunk_size": self.atm_chunk_size, "smoothing": self.smoothing,
                "during_training": self.during_training}

    def switch(self, r: Tensor, cutoff: float) -> Tensor:
        """Weight [P] of pairs at ``r`` [P] bohr for a cutoff in bohr: 1 inside, smoothly 0 at the cutoff."""
        if self.smoothing == 0.0:
            return (r <= cutoff).to(r.dtype)
        start = (1.0 - self.smoothing) * cutoff
        return 1.0 - smootherstep((r - start) / (cutoff - start))

    def coordination_numbers(self, species: Tensor, i: Tensor, j: Tensor, r: Tensor, n_atoms: int) -> Tensor:
        """D3 coordination numbers [N] from directed pairs (centre ``i``, neighbour ``j``, distance ``r`` [P] in bohr)."""
        rc = self.rcov[species[i]] + self.rcov[species[j]]  # [P]
        count = torch.sigmoid(16.0 * (rc / r - 1.0)) * self.switch(r, self.cn_cutoff / BOHR)  # [P], sigmoid = 1/(1 + exp(-16 (rc/r - 1)))
        return scatter_sum(count, i, n_atoms)  # [N]

    def reference_weights(self, species: Tensor, cn: Tensor) -> Tensor:
        """Gaussian weights [N, R] of each atom's reference systems."""
        ref = self.ref_cn[species]  # [N, R]
        valid = ref >= 0
        gauss = torch.where(valid, torch.exp(-4.0 * (cn.unsqueeze(-1) - ref).square()), torch.zeros_like(ref))  # [N, R]
        norm = gauss.sum(-1, keepdim=True)  # [N, 1]
        largest = (ref == ref.max(dim=-1, keepdim=True).values) & valid  # [N, R]
        fallback = largest.to(gauss.dtype)
        underflow = norm == 0
        return torch.where(underflow, fallback, gauss / torch.where(underflow, torch.ones_like(norm), norm))

    def forward(self, graph, atomic) -> Tensor:
        n_atoms = graph.z.shape[0]
        if self.training and not self.during_training:
            return graph.pos.new_zeros(n_atoms, dtype=torch.float64)
        species = graph.species
        j, i = graph.edge_index[0], graph.edge_index[1]
        vec = graph.edge_vec.double() / BOHR  # [E, 3] bohr
        r = torch.linalg.vector_norm(vec, dim=-1)  # [E] bohr
        in_cn = r <= self.cn_cutoff / BOHR
        cn = self.coordination_numbers(species, i[in_cn], j[in_cn], r[in_cn], n_atoms)  # [N]
        weights = self.reference_weights(species, cn)  # [N, R]
        keep = r <= self.d3_cutoff / BOHR
        i, j, r = i[keep], j[keep], r[keep]
        # C6_ij = sum_ab W_ia C6ref(Z_i a, Z_j b) W_jb, through each atom's contraction with every partner element
        partial = torch.einsum("na,nkab->nkb", weights, self.ref_c6[species])  # [N, K, R]
        three_body = self.three_body(species, i, j, vec, r, partial, weights, n_atoms) if self.s9 > 0 else None  # [N]
        c6 = (partial[i, species[j]] * weights[j]).sum(-1)  # [P]
        qq = 3.0 * self.r4r2[species[i]] * self.r4r2[species[j]]  # [P] = C8 / C6
        radius = self.params["a1"] * torch.sqrt(qq) + self.params["a2"]  # [P] bohr
        pair = self.params["s6"] * c6 / (r**6 + radius**6) + self.params["s8"] * c6 * qq / (r**8 + radius**8)  # [P]
        pair = pair * self.switch(r, self.d3_cutoff / BOHR)
        energy = -0.5 * HARTREE * scatter_sum(pair, i, n_atoms)  # [N] eV, each pair counted from both ends
        return energy if three_body is None else energy + three_body

    def three_body(self, species: Tensor, i: Tensor, j: Tensor, vec: Tensor, r: Tensor, partial: Tensor, weights: Tensor,
                   n_atoms: int) -> Tensor:
        """ATM energy per atom [N] (eV) from the edges (centre ``i``, neighbour ``j``, ``vec`` [E, 3], ``r`` [E] bohr)
        within ``atm_cutoff``; ``partial`` [N, K, R] and ``weights`` [N, R] give the pair C6 as in the two-body term.

        The triangles are evaluated in chunks of about ``atm_chunk_size`` edge pairs, each
        checkpointed where gradients are needed and there is more than one chunk
        (``dispersion_atm`` module docstring)."""
        cutoff = self.atm_cutoff / BOHR
        edges = torch.nonzero(r <= cutoff).squeeze(-1)  # [E3]
        i, j, vec = i[edges], j[edges], vec[edges]
        plan = plan_edge_pairs(i, n_atoms)
        c6_edge = (partial[i, species[j]] * weights[j]).sum(-1)  # [E3] pair C6 of each edge, as in the two-body term
        switch_edge = self.switch(r[edges], cutoff)  # [E3]
        tensors = (species, i, j, vec, c6_edge, switch_edge, partial, weights)
        chunks = chunks_of_edge_pairs(plan, self.atm_chunk_size)
        # one chunk fits anyway: recomputing it in backward would only cost time
        recompute = len(chunks) > 1 and torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        energy = vec.new_zeros(n_atoms)  # [N]
        for start, stop in chunks:  # the chunk's pairs are built inside, so that the checkpoint keeps no [T] tensor
            if recompute:
                energy = energy + checkpoint(self._triangles, plan, start, stop, *tensors, n_atoms, use_reentrant=False)
            else:
                energy = energy + self._triangles(plan, start, stop, *tensors, n_atoms)
        return energy

    def _triangles(self, plan: EdgePairPlan, start: int, stop: int, species: Tensor, i: Tensor, j: Tensor, vec: Tensor,
                   c6_edge: Tensor, switch_edge: Tensor, partial: Tensor, weights: Tensor, n_atoms: int) -> Tensor:
        """ATM energy per atom [N] (eV) of the triangles of the edge pairs whose first edge is at the sorted
        positions ``[start, stop)`` of ``plan`` (edges ``first`` [T] = j → i, ``second`` [T] = k → i); the
        edges' pair C6 ``c6_edge`` [E] and switches ``switch_edge`` [E] are gathered, only those of j-k computed."""
        cutoff = self.atm_cutoff / BOHR
        first, second = edge_pairs_in_chunk(plan, start, stop)  # [T]
        with torch.no_grad():  # triangles whose side j-k is beyond the cutoff have a switch of exactly 0: dropped
            inside = torch.linalg.vector_norm(vec[second] - vec[first], dim=-1) <= cutoff  # [T]
        first, second = first[inside], second[inside]  # [T']
        centre, a, b = i[first], j[first], j[second]  # [T'] atoms i, j, k
        v_ij, v_ik = vec[first], vec[second]  # [T', 3]
        switch = switch_edge[first] * switch_edge[second] * self.switch(torch.linalg.vector_norm(v_ik - v_ij, dim=-1),
                                                                        cutoff)  # [T']
        c6_jk = (partial[a, species[b]] * weights[b]).sum(-1)  # [T']
        triangle = atm_energy(v_ij, v_ik, c6_edge[first], c6_edge[second], c6_jk, self.rvdw[species[centre], species[a]],
                              self.rvdw[species[centre], species[b]], self.rvdw[species[a], species[b]], self.s9, self.alp)
        return HARTREE / 3.0 * scatter_sum(triangle * switch, centre, n_atoms)  # [N] eV, each triangle seen from each vertex

    def extra_repr(self) -> str:
        atm = f", s9={self.s9:g}, atm_cutoff={self.atm_cutoff:.3g}" if self.s9 > 0 else ""
        return (f"functional={self.functional!r}, params={self.params}, cutoff={self.d3_cutoff:.3g}, "
                f"cn_cutoff={self.cn_cutoff:.3g}{atm}")
