"""Train / validation / test splits of PyG datasets.

Both functions return PyG subsets, ``dataset[index_tensor]``: views that share
the parent's storage and report their parent rows through ``subset.indices()``.
"""

from __future__ import annotations

import math
import os
from typing import List, Sequence, Union

import numpy as np
import torch

__all__ = ["random_split", "read_index_file", "split_from_indices"]


def read_index_file(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read integer frame indices from a text file (one per line, or comma/space separated).

    This is the format of the rMD17 release's ``splits/index_train_0k.csv`` and
    ``splits/index_test_0k.csv`` files.
    """
    with open(path) as f:
        text = f.read().replace(",", " ").split()
    try:
        values = np.array([float(token) for token in text])
    except ValueError as error:
        raise ValueError(f"index file {os.fspath(path)!r} holds a non-number: {error}") from None
    if values.size == 0:
        raise ValueError(f"index file {os.fspath(path)!r} is empty")
    if not np.all(values == np.round(values)):
        raise ValueError(f"index file {os.fspath(path)!r} holds non-integer indices")
    return values.astype(np.int64)


def _as_indices(indices, length: int) -> torch.Tensor:
    if isinstance(indices, (str, os.PathLike)):
        indices = read_index_file(indices)
    index = torch.as_tensor(np.asarray(indices))
    if index.dtype == torch.bool:
        if index.numel() != length:
            raise ValueError(f"boolean mask has {index.numel()} entries for a dataset of {length}")
        return index.nonzero().reshape(-1)
    if index.dim() != 1 or index.is_floating_point():
        raise ValueError(f"indices must be a 1-d integer array, got {index.dtype} of shape {tuple(index.shape)}")
    index = index.long()
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= length):
        raise ValueError(
            f"indices must lie in [0, {length}) for this dataset, got min {int(index.min())}, "
            f"max {int(index.max())}"
        )
    if index.unique().numel() != index.numel():
        raise ValueError("indices contain duplicates; a split must list each structure once")
    return index


def split_from_indices(dataset, index_file_or_array):
    """The subset of ``dataset`` at the given rows.

    Parameters
    ----------
    dataset : torch_geometric.data.Dataset
    index_file_or_array : path, array of int, or bool mask of shape [len(dataset)]
        A text file of integers (see :func:`read_index_file`) or the indices themselves.
    """
    return dataset[_as_indices(index_file_or_array, len(dataset))]


def _counts(sizes: Sequence[Union[int, float]], length: int) -> List[int]:
    if len(sizes) == 0:
        raise ValueError("sizes must name at least one split")
    if any(s < 0 for s in sizes):
        raise ValueError(f"split sizes must be non-negative, got {list(sizes)}")
    if all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in sizes):
        counts = [int(s) for s in sizes]
    elif all(isinstance(s, (int, float, np.integer, np.floating)) and not isinstance(s, bool) for s in sizes):
        total = float(sum(sizes))
        if total > 1 + 1e-9:
            raise ValueError(f"split fractions {list(sizes)} add up to {total} > 1")
        counts = [int(math.floor(float(s) * length)) for s in sizes]
        if math.isclose(total, 1.0, abs_tol=1e-9):
            for k in range(length - sum(counts)):  # rounding leftovers, one each from the first split on
                counts[k % len(counts)] += 1
    else:
        raise ValueError(f"sizes must be counts (int) or fractions (float), got {list(sizes)}")
    if sum(counts) > length:
        raise ValueError(f"split sizes {counts} need {sum(counts)} structures; the dataset has {length}")
    return counts


def random_split(dataset, sizes: Sequence[Union[int, float]], seed: int = 0) -> list:
    """Disjoint random subsets of ``dataset``.

    Parameters
    ----------
    dataset : torch_geometric.data.Dataset
    sizes : list of int or list of float
        Counts (``[950, 50]``) or fractions (``[0.95, 0.05]``). Fractions that add
        up to 1 use every structure; otherwise (and for counts) the rest is left out.
    seed : int
        Seed of a private ``torch.Generator``: the same seed gives the same split,
        and the global random state is not touched.

    Returns
    -------
    list of subsets, one per entry of ``sizes``, pairwise disjoint.
    """
    counts = _counts(sizes, len(dataset))
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(dataset), generator=generator)
    subsets, start = [], 0
    for count in counts:
        subsets.append(dataset[order[start:start + count]])
        start += count
    return subsets
