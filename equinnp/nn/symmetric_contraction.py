r"""Symmetric tensor powers of an equivariant feature, contracted to chosen irreps.

This is the product basis of the atomic cluster expansion (Drautz 2019, "Atomic
cluster expansion for accurate and transferable interatomic potentials",
Phys. Rev. B 99, 014104) as used by MACE (Batatia et al. 2022, "MACE: Higher
Order Equivariant Message Passing Neural Networks for Fast and Accurate Force
Fields", eq. 10-11). Per atom i and channel c, with :math:`A_{i,c}` the vector
of all irreps of one channel (dimension D):

.. math::
    m_{i,cLM} = \sum_{\nu=1}^{\nu_{max}} \sum_{p} w^{(\nu)}_{z_i p c}\,
        \sum_{m_1 \dots m_\nu} \mathcal{U}^{(\nu, L)}_{M, m_1 \dots m_\nu, p}
        \prod_{t=1}^{\nu} A_{i,c m_t}

The generalized Clebsch-Gordan coefficients :math:`\mathcal{U}` are built here
from e3nn's ``o3.wigner_3j`` by coupling the ν factors left to right,
:math:`((A_{l_1} \otimes A_{l_2})_{L_2} \otimes A_{l_3})_{L_3} \dots`, over
sorted index tuples :math:`l_1 \le l_2 \le \dots` (the product is symmetric,
so other orders add nothing). Coupling paths whose symmetrized tensors are
linearly dependent are dropped (Gram-Schmidt on the symmetrized tensors), so
the weights :math:`w` multiply a basis of the symmetric equivariant maps of
degree ν, each scaled to unit norm. The contraction is evaluated path by path
on the node features (sparse Clebsch-Gordan blocks, intermediates shared by
the paths that start alike), never as a dense ``D^ν`` tensor.

mace-torch stacks every (unsorted) coupling path, so its U has more columns,
linearly dependent once symmetrized; both span the same space and weights map
exactly from one basis to the other (``dense_basis`` gives this module's U).
"""

from __future__ import annotations

import itertools
import math
from typing import Dict, List, Tuple

import torch
from e3nn import o3
from torch import Tensor, nn

from equinnp.nn.irreps import to_components, uniform_multiplicity

__all__ = ["SymmetricContraction"]

Key = Tuple[Tuple[int, ...], Tuple[o3.Irrep, ...]]  # (indices of the factors, irreps after each coupling)


def _candidate_paths(coupling: List[o3.Irrep], target: o3.Irrep, nu: int) -> List[Key]:
    """All left-to-right coupling paths of ν factors (sorted indices) ending in ``target``."""
    lmax = max(ir.l for ir in coupling)
    paths = []
    for idx in itertools.combinations_with_replacement(range(len(coupling)), nu):
        chains = [(coupling[idx[0]],)]
        for k in range(1, nu):
            remaining = nu - 1 - k
            chains = [
                chain + (ir,)
                for chain in chains
                for ir in chain[-1] * coupling[idx[k]]
                if ir.l <= target.l + remaining * lmax  # must still be able to reach the target
            ]
        paths += [(idx, chain) for chain in chains if chain[-1] == target]
    return paths


def _dense(key: Key, coupling: List[o3.Irrep], offsets: List[int], dtype) -> Tensor:
    """The path as a dense tensor ``[D]*ν + [2L+1]`` (unsymmetrized)."""
    idx, chain = key
    D = offsets[-1]

    def select(i):  # [D, 2l+1]: picks block i out of the D components of a channel
        E = torch.zeros(D, coupling[i].dim, dtype=dtype)
        E[offsets[i] : offsets[i + 1]] = torch.eye(coupling[i].dim, dtype=dtype)
        return E

    T = select(idx[0])
    for k in range(1, len(idx)):
        cg = o3.wigner_3j(chain[k - 1].l, coupling[idx[k]].l, chain[k].l, dtype=dtype)  # [a, b, c]
        T = torch.einsum("...a,db,abc->...dc", T, select(idx[k]), cg)
    return T


def _symmetrize(T: Tensor, nu: int) -> Tensor:
    return sum(T.permute(*p, nu) for p in itertools.permutations(range(nu))) / math.factorial(nu)


class SymmetricContraction(nn.Module):
    r"""Element-dependent symmetric contraction (MACE eq. 10-11; see the module docstring).

    Parameters
    ----------
    irreps_in : o3.Irreps
        ``C x l_1 + C x l_2 + ...``: one multiplicity C (the channels).
    irreps_out : o3.Irreps
        ``C x L_1 + C x L_2 + ...``: the same C.
    correlation : int
        Highest power ν_max (body order ν_max + 1).
    num_elements : int
        Number of weight sets, chosen per atom by its element index.

    Shapes: ``x`` [N, irreps_in.dim] (e3nn layout), ``species`` [N] long →
    [N, irreps_out.dim] (e3nn layout).
    """

    def __init__(self, irreps_in, irreps_out, correlation: int, num_elements: int):
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.channels = uniform_multiplicity(self.irreps_in)
        if uniform_multiplicity(self.irreps_out) != self.channels:
            raise ValueError(f"irreps_out {self.irreps_out} must have the multiplicity of irreps_in {self.irreps_in}")
        if correlation < 1:
            raise ValueError(f"correlation must be >= 1, got {correlation}")
        self.correlation, self.num_elements = int(correlation), int(num_elements)
        self.coupling = [ir for _, ir in self.irreps_in]
        self.offsets = [0] + list(itertools.accumulate(ir.dim for ir in self.coupling))

        # Choose, per output irrep and power ν, independent coupling paths.
        self.paths: List[List[Key]] = []  # per output irrep
        self.path_orders: List[List[int]] = []
        scales = []
        for _, target in self.irreps_out:
            kept, orders, norms = [], [], []
            for nu in range(1, self.correlation + 1):
                basis = []  # orthonormal symmetrized tensors kept so far (flattened)
                for key in _candidate_paths(self.coupling, target, nu):
                    v = _symmetrize(_dense(key, self.coupling, self.offsets, torch.float64), nu).flatten()
                    norm = v.norm()
                    r = v - sum((b @ v) * b for b in basis) if basis else v
                    if norm > 1e-10 and r.norm() > 1e-7 * norm:
                        basis.append(r / r.norm())
                        kept.append(key)
                        orders.append(nu)
                        norms.append(norm.item())
            self.paths.append(kept)
            self.path_orders.append(orders)
            scales.append(torch.tensor([1.0 / n for n in norms], dtype=torch.float64))

        # Coupling steps: every intermediate needed, grouped by (left operand, right factor).
        needed = {}
        for kept in self.paths:
            for idx, chain in kept:
                for k in range(1, len(idx)):
                    needed[(idx[: k + 1], chain[: k + 1])] = None
        groups: Dict[tuple, list] = {}
        for idx, chain in needed:
            groups.setdefault((idx[:-1], chain[:-1], idx[-1]), []).append((idx, chain))
        self._exact: Dict[str, Tensor] = {}  # float64 values of the constant buffers
        self._steps = []  # (left key, factor index, [out keys], buffer name, [output dims])
        for n, ((left_idx, left_chain, i), outs) in enumerate(sorted(groups.items(), key=lambda g: len(g[0][0]))):
            a, b = left_chain[-1].dim, self.coupling[i].dim
            cgs = [o3.wigner_3j(left_chain[-1].l, self.coupling[i].l, chain[-1].l, dtype=torch.float64) for _, chain in outs]
            self._exact[f"cg_{n}"] = torch.cat(cgs, dim=-1).reshape(a * b, -1)  # [a*b, Σ c], float64
            self._steps.append(((left_idx, left_chain), i, outs, f"cg_{n}", [chain[-1].dim for _, chain in outs]))

        # The same plan on integer ids (leaves 0..len(coupling)-1, then each step's outputs), so
        # that the forward pass holds no e3nn Irrep (torch.compile cannot guard on one).
        ids = {((i,), (ir,)): i for i, ir in enumerate(self.coupling)}
        self._plan = []  # (left id, factor id, [out ids], buffer name, [output dims])
        for left, i, outs, cg_name, dims in self._steps:
            out_ids = list(range(len(ids), len(ids) + len(outs)))  # appended to the values in this order
            ids.update(zip(outs, out_ids))
            self._plan.append((ids[left], i, out_ids, cg_name, dims))
        self._kept_ids = [[ids[key] for key in kept] for kept in self.paths]
        self._leaf_dims = [ir.dim for ir in self.coupling]
        self._out_dims = [ir.dim for _, ir in self.irreps_out]

        self.weights = nn.ParameterList()
        for t, kept in enumerate(self.paths):
            self._exact[f"scale_{t}"] = scales[t]
            self.weights.append(nn.Parameter(torch.empty(self.num_elements, len(kept), self.channels)))
        for name, value in self._exact.items():
            self.register_buffer(name, value.to(torch.get_default_dtype()), persistent=False)  # derived from the irreps
        self.reset_parameters()

    def _apply(self, fn, *args, **kwargs):
        # Constants go through a dtype change from their float64 values, not from
        # the rounded ones (a float32 module cast to float64 stays exact).
        super()._apply(fn, *args, **kwargs)
        with torch.no_grad():
            for name, value in self._exact.items():
                getattr(self, name).copy_(value)
        return self

    def reset_parameters(self) -> None:
        for t, weight in enumerate(self.weights):
            orders = torch.tensor(self.path_orders[t], dtype=torch.long)
            with torch.no_grad():
                weight.normal_()
                for nu in orders.unique().tolist():  # 1/(number of paths of that power), as in mace-torch
                    weight[:, orders == nu] /= int((orders == nu).sum())

    def num_paths(self) -> List[int]:
        """Number of weights per element and channel, per output irrep."""
        return [len(p) for p in self.paths]

    def dense_basis(self, target: int, nu: int) -> Tensor:
        r"""This module's :math:`\mathcal{U}^{(\nu,L)}` for output irrep number ``target``.

        Returns ``[2L+1] + [D]*ν + [P_ν]`` (float64), scaled as in ``forward``: the
        output is :math:`\sum_p w_p \sum_m U_{M m_1..m_ν p} A_{m_1} \cdots A_{m_ν}`.
        """
        scale = getattr(self, f"scale_{target}").double()
        cols = [
            _dense(key, self.coupling, self.offsets, torch.float64) * scale[p]
            for p, (key, order) in enumerate(zip(self.paths[target], self.path_orders[target]))
            if order == nu
        ]
        L = self.irreps_out[target].ir.dim
        if not cols:
            return torch.zeros([L] + [self.offsets[-1]] * nu + [0], dtype=torch.float64)
        return torch.stack(cols, dim=-1).movedim(nu, 0)  # [2L+1, D, ..., D, P_ν]

    def forward(self, x: Tensor, species: Tensor) -> Tensor:
        """``x`` [N, irreps_in.dim] (e3nn layout) → [N, irreps_out.dim]."""
        return self.contract(to_components(x, (self.channels, tuple(self._leaf_dims))), species)

    def contract(self, x: Tensor, species: Tensor) -> Tensor:
        """``x`` [D, N, C] (component-major, ``equinnp.nn.irreps.to_components``) → [N, irreps_out.dim]."""
        _, N, C = x.shape
        values = list(torch.split(x, self._leaf_dims, dim=0))  # [2l+1, N, C] per leaf, then per coupled key
        for left, i, outs, cg_name, dims in self._plan:
            a, factor = values[left], values[i]
            cg = getattr(self, cg_name)  # [a*b, K], K = Σ(2L+1)
            da, db, K = a.shape[0], factor.shape[0], cg.shape[1]
            if K < db:  # few outputs: contract the factor first, never form the outer product
                partial = cg.view(da, db, K).transpose(1, 2).reshape(da * K, db) @ factor.reshape(db, N * C)  # [a*K, N*C]
                coupled = (partial.view(da, K, N * C) * a.reshape(da, 1, N * C)).sum(dim=0)  # [K, N*C]
            else:
                outer = (a.unsqueeze(1) * factor.unsqueeze(0)).reshape(da * db, N * C)  # [a*b, N*C]
                coupled = cg.t() @ outer  # [K, N*C]
            values.extend(c.view(-1, N, C) for c in torch.split(coupled, dims, dim=0))  # [2L+1, N, C] each

        out = []
        for t, (weight, kept, L) in enumerate(zip(self.weights, self._kept_ids, self._out_dims)):
            if not kept:
                out.append(x.new_zeros(N, C * L))
                continue
            w = weight.transpose(0, 1)[:, species] * getattr(self, f"scale_{t}").view(-1, 1, 1)  # [P, N, C]
            features = torch.stack([values[k] for k in kept], dim=0)  # [P, 2L+1, N, C]
            summed = (features * w.unsqueeze(1)).sum(dim=0)  # [2L+1, N, C]
            out.append(summed.permute(1, 2, 0).reshape(N, C * L))  # [N, C*(2L+1)]
        return torch.cat(out, dim=-1)  # [N, irreps_out.dim]

    def extra_repr(self) -> str:
        return f"{self.irreps_in} -> {self.irreps_out}, correlation={self.correlation}, paths={self.num_paths()}"
