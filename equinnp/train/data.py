"""Datasets of a run: read, split, prepare (float64 energies, precomputed neighbor lists), batch.

Files are read with ``equinnp.data.load_dataset`` (rMD17 npz, ASE-readable
files, SPICE/ANI HDF5). Records keep their energy label in float64: total
energies of ~1e4-1e5 eV would lose meV resolution in float32.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch.utils.data import DistributedSampler
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from equinnp.train.config import resolve_data_path

__all__ = ["RunData", "load_records", "load_run_data", "make_loader", "open_dataset", "prepare_records"]


_LABEL_KEYS = ("energy_key", "forces_key", "stress_key")


def open_dataset(path, energy_key: Optional[str] = None, forces_key: Optional[str] = None,
                 stress_key: Optional[str] = None, options: Optional[dict] = None, key: Optional[str] = None):
    """Open a dataset file with ``equinnp.data.load_dataset``.

    The label keys are passed only when given (each format has its own
    defaults); ``options`` go to the dataset class as they are. ``key`` is the
    config key that names the file (``"data.test"``): errors then name it, the
    path as given and the config key of an option the file does not take.
    """
    from equinnp.data import load_dataset

    labels = {"energy_key": energy_key, "forces_key": forces_key, "stress_key": stress_key}
    keys = dict(options or {})
    keys.update({name: value for name, value in labels.items() if value is not None})
    resolved = resolve_data_path(path, key)
    if key is None:
        return load_dataset(resolved, **keys)
    try:
        return load_dataset(resolved, **keys)
    except (ValueError, KeyError) as error:
        message = str(error).strip("\"'")
        command_line = key.startswith("--")  # equinnp evaluate --data FILE --energy-key ...

        def setting(name):
            if command_line:
                return "--" + name.replace("_", "-")
            return f"data.{name}" if name in _LABEL_KEYS else f"data.options.{name}"

        if message.startswith("unknown option for"):
            for name, value in keys.items():
                if f"'{name}'" in message:
                    scope = "" if command_line else (" The label keys and options apply to every data file of the run "
                                                     "(data.train, data.val, data.test): give files of one format, or leave it unset")
                    raise ValueError(f"{key} = {path}: its format does not take {setting(name)} (set to {value!r}).{scope}") from None
        hints = [setting(name) for name in _LABEL_KEYS if f"{name}=" in message]
        hint = f" (set with {', '.join(hints)})" if hints else ""
        raise ValueError(f"{key} = {path}: {message}{hint}") from None


def load_records(path, energy_key: Optional[str] = None, forces_key: Optional[str] = None,
                 stress_key: Optional[str] = None, options: Optional[dict] = None, key: Optional[str] = None) -> List[Data]:
    """All structures of a dataset file as a list of ``Data`` records with labels (eV, Å)."""
    dataset = open_dataset(path, energy_key, forces_key, stress_key, options, key)
    return _as_list(dataset)


def _as_list(dataset) -> List[Data]:
    return [dataset[i] for i in range(len(dataset))]


def prepare_records(records: Sequence[Data], cutoff: float, dtype: torch.dtype) -> List[Data]:
    """Copies with float64 energies, ``pos``/``forces`` in the model dtype and a neighbor list.

    The neighbor list is attached once here by ``RadiusGraph`` (with the cutoff
    and positions it was built for, which ``Potential`` checks); ``Potential``
    recomputes the edge vectors from ``pos`` at every step.
    """
    from equinnp.neighbors import RadiusGraph

    attach_edges = RadiusGraph(cutoff)

    prepared = []
    for k, record in enumerate(records):
        data = record.clone()
        if getattr(data, "energy", None) is None:
            raise ValueError(f"structure {k} has no energy label")
        data.energy = data.energy.reshape(1).double()
        data.pos = data.pos.to(dtype)
        if getattr(data, "forces", None) is not None:
            data.forces = data.forces.to(dtype)
        for key in ("cell", "stress", "charge", "spin"):
            if getattr(data, key, None) is not None:
                setattr(data, key, getattr(data, key).to(dtype))
        data = attach_edges(data)
        data.cell_shifts = data.cell_shifts.to(dtype)
        prepared.append(data)
    return prepared


class RunData:
    """Train, validation and (optional) test records of a run."""

    def __init__(self, train: List[Data], val: List[Data], test: Optional[List[Data]]):
        self.train, self.val, self.test = train, val, test

    def elements(self) -> List[int]:
        return sorted({int(z) for record in self.train for z in record.z.tolist()})


def load_run_data(data_config: dict) -> RunData:
    """Read and split the files named in the ``data`` section of a config."""
    from equinnp.data import random_split

    keys = {k: data_config[k] for k in ("energy_key", "forces_key", "stress_key")}
    keys["options"] = data_config["options"]
    dataset = open_dataset(data_config["train"], **keys, key="data.train")
    if data_config["val"] is not None:
        train, val = _as_list(dataset), load_records(data_config["val"], **keys, key="data.val")
    else:
        n = len(dataset)
        n_val = data_config["val_size"] if data_config["val_size"] is not None else int(round(data_config["val_fraction"] * n))
        if not 0 < n_val < n:
            raise ValueError(f"the validation split of the {n} structures of data.train = {data_config['train']} would hold "
                             f"{n_val}: set data.val, data.val_fraction or data.val_size")
        val_set, train_set = random_split(dataset, [n_val, n - n_val], seed=data_config["seed"])
        train, val = _as_list(train_set), _as_list(val_set)
    if data_config["train_size"] is not None:
        if data_config["train_size"] > len(train):
            raise ValueError(f"data.train_size={data_config['train_size']} but only {len(train)} training structures remain")
        train = train[: data_config["train_size"]]
    test = None
    if data_config["test"] is not None:
        test = load_records(data_config["test"], **keys, key="data.test")
        if data_config["test_size"] is not None:
            test = test[: data_config["test_size"]]
    return RunData(train, val, test)


def make_loader(records: Sequence[Data], batch_size: int, *, shuffle: bool, seed: int = 0, rank: int = 0,
                world_size: int = 1, num_workers: int = 0) -> DataLoader:
    """A PyG ``DataLoader``; training shuffles with a ``DistributedSampler`` (``set_epoch`` each epoch),
    evaluation takes this process's contiguous-stride shard without padding."""
    if shuffle:
        sampler = DistributedSampler(records, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=False)
        return DataLoader(records, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
    shard = list(records)[rank::world_size]
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=num_workers)
