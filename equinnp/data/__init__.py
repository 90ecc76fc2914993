"""Atoms, arrays and files → ``torch_geometric.data.Data`` records (Å, eV)."""

from equinnp.data.atoms import from_arrays, from_ase, validate_structure
from equinnp.data.datasets import (
    ANIDataset,
    ASEDataset,
    MD17Dataset,
    QM9Dataset,
    RMD17Dataset,
    SPICEDataset,
    load_dataset,
)
from equinnp.data.splits import random_split, split_from_indices
from equinnp.data.statistics import DatasetStatistics

__all__ = [
    "ANIDataset",
    "DatasetStatistics",
    "ASEDataset",
    "MD17Dataset",
    "QM9Dataset",
    "RMD17Dataset",
    "SPICEDataset",
    "from_arrays",
    "from_ase",
    "load_dataset",
    "random_split",
    "split_from_indices",
    "validate_structure",
]
