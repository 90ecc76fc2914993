"""Input validation and backend dispatch for radius graphs."""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor

from equinnp.neighbors import brute_force, cell_list, dense, torch_cluster_backend, vesin_backend
from equinnp.neighbors.common import NeighborList, Systems
from equinnp.validation import check_cells, check_positions



# ``auto`` choice. Measured on the 2-core development machine (AMD EPYC,
# torch 2.13 CPU, one thread, float64, cutoff 5 A, 0.1 atoms/A^3, CPU time
# per call in ms; "vesin" is equinnp's vesin backend including its exact
# re-check and sorting):
#
#   system                        brute   cell   vesin
#   open, 150 atoms                1.3     2.3    1.5
#   open, 200 atoms                4.7     5.2    3.3
#   open, 300 atoms                7.1     4.2    4.1
#   open, 1,000 / 3,000 atoms      30    12 / 49  10 / 34
#   open, 10,000 / 30,000 atoms     -    89 / 339 105 / 542
#   periodic, 10 atoms             1.7     2.7    1.4
#   periodic, 100 atoms            6.9    10.8    4.4
#   periodic, 1,000 / 3,000 atoms  70    24 / 68  17 / 46
#   periodic, 10,000 / 30,000       -   150 / 619 162 / 862
#   64 molecules x 20 atoms        2.0     5.7   12.0
#   16 molecules x 100 atoms       7.1     8.4   11.1
#   32 crystals x 8 atoms          5.9    12.1   11.5
#   16 crystals x 64 atoms        54      68     32
#
# So: the brute force while every atom has at most ~150 same-system
# partners and ~3000 (partner, image) candidates; vesin (one call per system,
# about 0.3 ms each) for systems of up to ~5000 atoms unless they are many
# small ones; the cell list beyond, where it is fastest (vesin's own search
# is faster, but the common exact re-check and sort of its output cost more
# than the whole cell list). On other devices than the CPU vesin is not used
# (not measured).
_BRUTE_MAX_PARTNERS = 150
# More periodic images per atom than this means a cell far smaller than the cutoff (wrong units?).
_MAX_IMAGES = 1_000_000
BACKENDS = ("auto", "cell_list", "brute_force", "vesin", "torch_cluster", "dense")  # the entries of _BACKENDS, and "auto"
_BRUTE_MAX_CANDIDATES = 3000
_VESIN_MAX_ATOMS = 5000
_VESIN_MIN_MEAN_ATOMS_PERIODIC = 20
_VESIN_MIN_MEAN_ATOMS_OPEN = 200


def _as_cutoff(cutoff) -> float:
    if isinstance(cutoff, Tensor):
        if cutoff.numel() != 1:
            raise ValueError(f"cutoff must be a single number, got a tensor of shape "
                             f"{tuple(cutoff.shape)}")
        cutoff = cutoff.item()
    try:
        value = float(cutoff)
    except (TypeError, ValueError):
        raise ValueError(f"cutoff must be a positive number, got {cutoff!r}") from None
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"cutoff must be a positive finite number, got {cutoff!r}")
    return value


def _complete_cell(cell64: Tensor, pbc: Tensor) -> Tensor:
    """Replace non-periodic rows by an orthonormal basis of the complement.

    Parameters
    ----------
    cell64 : Tensor
        ``[B, 3, 3]`` float64 with the non-periodic rows already zeroed.
    pbc : Tensor
        ``[B, 3]`` bool.

    Returns
    -------
    Tensor
        ``[B, 3, 3]`` float64 ``cell_eff`` (see :class:`Systems`).
    """
    num_systems = cell64.shape[0]
    eye = torch.eye(3, dtype=torch.float64, device=cell64.device).expand(num_systems, 3, 3)
    n_periodic = pbc.sum(dim=1)  # [B]
    mixed = (n_periodic > 0) & (n_periodic < 3)  # [B]
    cell_eff = torch.where(pbc.unsqueeze(-1), cell64, eye)  # [B, 3, 3]
    if bool(mixed.any()):
        # Right singular vectors of the zero singular values span the
        # orthogonal complement of the periodic rows; singular values come
        # sorted in decreasing order, so those are the last 3 - n_periodic.
        vh = torch.linalg.svd(cell64[mixed]).Vh  # [M, 3, 3]
        open_dirs = ~pbc[mixed]  # [M, 3]
        rank_among_open = torch.cumsum(open_dirs.long(), dim=1) - 1  # [M, 3]
        row = (n_periodic[mixed].unsqueeze(1) + rank_among_open).clamp(0, 2)  # [M, 3]
        complement = vh.gather(1, row.unsqueeze(-1).expand(-1, 3, 3))  # [M, 3, 3]
        cell_eff[mixed] = torch.where(open_dirs.unsqueeze(-1), complement, cell64[mixed])
    return cell_eff


def _reduce_cell(cell_eff: Tensor, pbc: Tensor, max_rounds: int = 200) -> Tensor:
    """Integer basis change that makes the periodic lattice vectors short.

    Pairwise (Lagrange) reduction of the periodic rows: while some row
    ``a_q`` has a projection of more than half a period on another row
    ``a_p``, replace ``a_q`` by ``a_q - round(t) a_p`` (``t = a_q.a_p /
    a_p.a_p``). Every step strictly shortens a lattice vector, so the loop
    ends; the result spans the same lattice but is far less skewed, which
    keeps the number of periodic images to search small.

    Parameters
    ----------
    cell_eff : Tensor
        ``[B, 3, 3]`` float64 completed cell (see :func:`_complete_cell`).
    pbc : Tensor
        ``[B, 3]`` bool; only periodic rows are combined, and only with each
        other (the completed open rows are already orthogonal to them).

    Returns
    -------
    Tensor
        ``[B, 3, 3]`` long unimodular ``U`` with ``reduced = U @ cell_eff``.
    """
    num_systems = cell_eff.shape[0]
    device = cell_eff.device
    identity = torch.eye(3, dtype=torch.long, device=device).repeat(num_systems, 1, 1)
    both = pbc.unsqueeze(2) & pbc.unsqueeze(1)  # [B, 3, 3]
    both &= ~torch.eye(3, dtype=torch.bool, device=device)
    gram = torch.bmm(cell_eff, cell_eff.transpose(1, 2))  # [B, 3, 3]
    ratio = gram / torch.diagonal(gram, dim1=1, dim2=2).clamp_min(1e-300).unsqueeze(2)
    todo = (both & (ratio.abs() > 0.5 + 1e-9)).any(dim=2).any(dim=1)  # [B]
    if not bool(todo.any()):
        return identity

    # Only a few 3x3 matrices: plain Python numbers are much faster here
    # than a loop of tiny tensor operations.
    for b in torch.nonzero(todo).flatten().tolist():
        identity[b] = torch.tensor(
            _reduce_rows(cell_eff[b].tolist(), pbc[b].tolist(), max_rounds), device=device
        )
    return identity


def _reduce_rows(rows: list, periodic: list, max_rounds: int) -> list:
    """Pairwise reduction of one cell; returns the integer basis change ``U``."""
    basis = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    pairs = [(p, q) for p in range(3) for q in range(3) if p != q and periodic[p] and periodic[q]]
    for _ in range(max_rounds):
        changed = False
        for p, q in pairs:
            norm2 = sum(x * x for x in rows[p])
            if norm2 <= 0.0:
                continue
            t = sum(x * y for x, y in zip(rows[q], rows[p])) / norm2
            if abs(t) > 0.5 + 1e-9:
                mu = round(t)
                rows[q] = [x - mu * y for x, y in zip(rows[q], rows[p])]
                basis[q] = [x - mu * y for x, y in zip(basis[q], basis[p])]
                changed = True
        if not changed:
            break
    return basis


def _lattice_geometry(cell64: Tensor, pbc: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Binning cell, basis change, inverse and widths (see :class:`Systems`).

    The cell was checked by ``equinnp.validation.check_cells``.
    """
    num_systems = cell64.shape[0]
    if not bool(pbc.any()):  # all open: plain Cartesian boxes
        eye = torch.eye(3, dtype=torch.float64, device=cell64.device).repeat(num_systems, 1, 1)
        basis = torch.eye(3, dtype=torch.long, device=cell64.device).repeat(num_systems, 1, 1)
        widths = torch.ones(num_systems, 3, dtype=torch.float64, device=cell64.device)
        return eye, basis, eye, widths

    cell_eff = _complete_cell(cell64, pbc)  # [B, 3, 3] (checked by equinnp.validation.check_cells)
    basis = _reduce_cell(cell_eff, pbc)  # [B, 3, 3]
    # Recompute the reduced rows from the exact integer combination.
    cell_eff = torch.bmm(basis.to(torch.float64), cell_eff)  # [B, 3, 3]
    inv_eff = torch.linalg.inv(cell_eff)  # [B, 3, 3]
    # The reciprocal vectors are the columns of the inverse; the distance
    # between lattice planes is one over their length.
    widths = 1.0 / torch.linalg.norm(inv_eff, dim=1)  # [B, 3]
    return cell_eff, basis, inv_eff, widths


def _check_pos(pos) -> None:
    if not isinstance(pos, Tensor):
        raise ValueError(f"pos must be a torch.Tensor of shape [N, 3], got {type(pos).__name__}")
    if pos.dim() != 2 or pos.shape[1] != 3:
        raise ValueError(f"pos must have shape [N, 3], got {list(pos.shape)}")
    if not pos.is_floating_point():
        raise ValueError(f"pos must have a floating point dtype, got {pos.dtype}")
    check_positions(pos)


def prepare_systems(
    pos: Tensor,
    cutoff: float,
    batch: Tensor | None = None,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
) -> Systems:
    """Validate user arguments and build the canonical :class:`Systems`.

    See :func:`radius_graph` for the arguments. Raises ``ValueError`` with a
    message naming the offending value for every invalid input.
    """
    cutoff = _as_cutoff(cutoff)
    _check_pos(pos)
    device = pos.device
    num_atoms = pos.shape[0]

    # batch ---------------------------------------------------------------
    if batch is None:
        batch = torch.zeros(num_atoms, dtype=torch.long, device=device)
    else:
        if not isinstance(batch, Tensor):
            batch = torch.as_tensor(batch)
        if batch.dim() != 1 or batch.shape[0] != num_atoms:
            raise ValueError(
                f"batch must have shape [N] = [{num_atoms}] like pos, got {list(batch.shape)}"
            )
        if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
            raise ValueError(f"batch must hold integer system indices, got dtype {batch.dtype}")
        batch = batch.to(device=device, dtype=torch.long)
        if num_atoms > 0 and int(batch.min()) < 0:
            raise ValueError(f"batch must be non-negative, got minimum {int(batch.min())}")
    systems_in_batch = int(batch.max()) + 1 if num_atoms > 0 else 1

    # cell ----------------------------------------------------------------
    if cell is None:
        num_systems = systems_in_batch
        cell64 = torch.zeros(num_systems, 3, 3, dtype=torch.float64, device=device)
        if pbc is not None and bool(torch.as_tensor(pbc).bool().any()):
            raise ValueError(
                f"pbc={torch.as_tensor(pbc).tolist()} has a periodic direction but no cell was given"
            )
        pbc = torch.zeros(num_systems, 3, dtype=torch.bool, device=device)
    else:
        if not isinstance(cell, Tensor):
            cell = torch.as_tensor(cell)
        if cell.dim() == 2 and cell.shape == (3, 3):
            cell = cell.unsqueeze(0).expand(systems_in_batch, 3, 3)  # [B, 3, 3]
        if cell.dim() != 3 or cell.shape[1:] != (3, 3):
            raise ValueError(f"cell must have shape [B, 3, 3] (or [3, 3]), got {list(cell.shape)}")
        num_systems = cell.shape[0]
        if systems_in_batch > num_systems:
            raise ValueError(
                f"cell has shape {list(cell.shape)} (B={num_systems} systems) but batch refers "
                f"to system index {systems_in_batch - 1}"
            )
        cell64 = cell.to(device=device, dtype=torch.float64)
        if pbc is None:
            pbc = torch.ones(num_systems, 3, dtype=torch.bool, device=device)

    # pbc -----------------------------------------------------------------
    if not isinstance(pbc, Tensor):
        pbc = torch.as_tensor(pbc)
    pbc = pbc.to(device=device)
    if pbc.dtype != torch.bool:
        if pbc.is_floating_point():
            raise ValueError(f"pbc must be boolean, got dtype {pbc.dtype}")
        pbc = pbc != 0
    if pbc.shape == (3,):
        pbc = pbc.unsqueeze(0).expand(num_systems, 3)  # [B, 3]
    if pbc.shape != (num_systems, 3):
        raise ValueError(f"pbc must have shape [B, 3] = [{num_systems}, 3] (or [3]), "
                         f"got {list(pbc.shape)}")
    pbc = pbc.contiguous()

    # cell geometry -------------------------------------------------------
    check_cells(cell64, pbc)
    cell64 = torch.where(pbc.unsqueeze(-1), cell64, torch.zeros_like(cell64))  # [B, 3, 3]
    cell_eff, basis, inv_eff, widths = _lattice_geometry(cell64, pbc)
    if bool(pbc.any()):
        reach = torch.where(pbc, torch.ceil(cutoff / widths), torch.zeros_like(widths))  # [B, 3] images per side
        images = (2 * reach + 1).prod(dim=1)  # [B]
        if bool((images > _MAX_IMAGES).any()):
            b = int(torch.argmax(images))
            raise ValueError(
                f"cell of system {b} is only {widths[b][pbc[b]].min().item():.3g} Å wide between lattice planes: "
                f"a {cutoff:g} Å cutoff would need {images[b].item():.3g} periodic images of every atom. "
                "Is the cell in Å (not nm or fractional units)?"
            )

    pos64 = pos.detach().to(torch.float64)
    return Systems(
        pos=pos,
        pos64=pos64,
        pos_t=pos64.t().contiguous(),
        batch=batch,
        num_systems=num_systems,
        pbc=pbc,
        cell64=cell64,
        cell_t=cell64.reshape(num_systems, 9).t().contiguous(),
        cell_eff=cell_eff,
        basis=basis,
        inv_eff=inv_eff,
        widths=widths,
        cutoff=cutoff,
    )


def _auto_backend(systems: Systems) -> str:
    """Pick the fastest available backend for these systems (numbers above)."""
    num_atoms = max(systems.num_atoms, 1)
    counts = torch.bincount(systems.batch, minlength=systems.num_systems)  # [B]
    occupied = int((counts > 0).sum())
    mean_atoms = num_atoms / max(occupied, 1)
    periodic = systems.any_periodic
    if (vesin_backend.is_available() and systems.pos.device.type == "cpu"
            and int(counts.max()) <= _VESIN_MAX_ATOMS
            and mean_atoms >= (_VESIN_MIN_MEAN_ATOMS_PERIODIC if periodic
                               else _VESIN_MIN_MEAN_ATOMS_OPEN)):
        return "vesin"
    pairs, candidates = brute_force.estimated_work(systems)
    if pairs <= _BRUTE_MAX_PARTNERS * num_atoms and candidates <= _BRUTE_MAX_CANDIDATES * num_atoms:
        return "brute_force"
    return "cell_list"


class _Backend(NamedTuple):
    """One neighbor-list backend: how to run it, whether it is installed, whether it knows periodic cells."""

    compute: Callable[[Systems], NeighborList]
    is_available: Callable[[], bool]
    periodic: bool
    package: str


#: Every backend but ``auto``, in one place (``BACKENDS`` lists their names).
_BACKENDS = {
    "cell_list": _Backend(cell_list.compute, lambda: True, True, ""),
    "brute_force": _Backend(brute_force.compute, lambda: True, True, ""),
    "vesin": _Backend(vesin_backend.compute, vesin_backend.is_available, True, "vesin-torch"),
    "torch_cluster": _Backend(torch_cluster_backend.compute, torch_cluster_backend.is_available, False, "torch-cluster"),
    "dense": _Backend(dense.compute, lambda: True, False, ""),
}


def _run_backend(systems: Systems, backend: str) -> NeighborList:
    if backend == "auto":
        backend = _auto_backend(systems)
    if backend not in _BACKENDS:
        raise ValueError(f"unknown neighbor-list backend {backend!r}; choose one of {BACKENDS}")
    chosen = _BACKENDS[backend]
    if not chosen.is_available():
        raise ValueError(f"backend={backend!r} requested but {chosen.package} is not installed")
    if systems.any_periodic and not chosen.periodic:
        return _run_backend(systems, "auto")  # it knows no periodic images
    return chosen.compute(systems)


def takes_dense_search(pos, batch, cell, pbc, backend: str = "auto") -> bool:
    """Whether ``radius_graph`` searches these arguments by ``equinnp.neighbors.dense`` without
    building :class:`Systems`: one open system given without ``batch``, up to ``dense.MAX_ATOMS``
    atoms for ``"auto"``."""
    return (backend in ("auto", "dense") and batch is None and cell is None and pbc is None
            and isinstance(pos, Tensor) and pos.dim() == 2
            and (backend == "dense" or pos.shape[0] <= dense.MAX_ATOMS))


@torch.no_grad()
def radius_graph(
    pos: Tensor,
    cutoff: float,
    batch: Tensor | None = None,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
    backend: str = "auto",
) -> NeighborList:
    """All pairs of atoms closer than ``cutoff``, with periodic images.

    Parameters
    ----------
    pos : Tensor
        ``[N, 3]`` Cartesian positions in Angstrom. Need not be wrapped into
        the cell.
    cutoff : float
        Cutoff radius in Angstrom; pairs with ``|r_ij| <= cutoff`` are edges.
    batch : Tensor, optional
        ``[N]`` long index of the system of every atom (``None``: one system).
        Atoms of different systems are never connected.
    cell : Tensor, optional
        ``[B, 3, 3]`` lattice vectors as rows (``[3, 3]`` is broadcast to all
        systems). ``None``: every system is open.
    pbc : Tensor, optional
        ``[B, 3]`` (or ``[3]``) bool periodicity per lattice direction. Default:
        all ``True`` when ``cell`` is given, all ``False`` otherwise. The cell
        rows of non-periodic directions are ignored (they may be zero).
    backend : str
        ``"auto"``, ``"cell_list"``, ``"brute_force"``, ``"vesin"`` or
        ``"torch_cluster"`` or ``"dense"`` (open systems only; periodic
        batches fall back to ``"auto"``). ``"auto"`` takes ``"dense"``
        (``equinnp.neighbors.dense``, an [N, N] distance matrix) for one open
        system of up to ``dense.MAX_ATOMS`` atoms given without ``batch``.

    Returns
    -------
    NeighborList
        ``edge_index`` ``[2, E]`` (row 0 neighbor ``j``, row 1 center ``i``)
        and ``cell_shifts`` ``[E, 3]`` in the dtype of ``pos``, such that
        ``r_ij = pos[j] - pos[i] + cell_shifts @ cell[batch[i]]``. Edges are
        sorted by ``i``, then ``j``, then shift. Both directions of every pair
        are present; cells narrower than the cutoff yield several images of
        the same atom (including the atom itself through non-zero shifts).

    Raises
    ------
    ValueError
        For non-finite positions, a non-positive cutoff, shape mismatches,
        or a degenerate / non-finite cell along a periodic direction.

    Notes
    -----
    Runs under ``torch.no_grad()``: only indices are returned; compute the
    edge vectors from ``pos`` (and ``cell``) to differentiate through them.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown neighbor-list backend {backend!r}; choose one of {BACKENDS}")
    if takes_dense_search(pos, batch, cell, pbc, backend):
        cutoff = _as_cutoff(cutoff)
        _check_pos(pos)
        return dense.compute_open(pos, cutoff)
    systems = prepare_systems(pos, cutoff, batch, cell, pbc)
    return _run_backend(systems, backend)


@torch.no_grad()
def brute_force_radius_graph(
    pos: Tensor,
    cutoff: float,
    batch: Tensor | None = None,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
) -> NeighborList:
    """Reference O(N^2) radius graph; same arguments and result as :func:`radius_graph`."""
    systems = prepare_systems(pos, cutoff, batch, cell, pbc)
    return brute_force.compute(systems)
