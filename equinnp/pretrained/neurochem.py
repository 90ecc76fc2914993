"""Reader of NeuroChem model files, the format of the published ANI models.

A model folder holds (ANI-2x: ``ani-2x_8x.info`` beside ``ani-2x_8x/``):

- ``<name>.info``: four lines, the constants file, the self-energy file, the
  ensemble prefix and the number of members, paths relative to the folder;
- the constants file: ``name = value`` lines (``Rcr``, ``Rca``, ``EtaR``, ``ShfR``,
  ``Zeta``, ``ShfZ``, ``EtaA``, ``ShfA`` as bracketed lists or scalars, ``Atyp =
  [H,C,...]``; other flags are ignored);
- the self-energy file: lines ``Symbol,index=value`` (hartree);
- ``<prefix><m>/networks/ANN-<Symbol>.nnf`` for every member m and element: an ASCII
  header ``<count>=\\n``, then a bzip2 stream of text (ending in one NUL) that
  describes the layers: ``layer [ nodes=...; activation=...; blocksize=...;
  weights=FILE:<file>[<count>]; biases=FILE:<file>[<count>]; ]``;
- the weight and bias files named there: raw little-endian float32, weights
  (nodes, blocksize) = (out, in), row-major.

Everything read is checked; a missing, truncated or corrupt file raises an
error that names the file and what is wrong with it.
"""

from __future__ import annotations

import bz2
import re
from pathlib import Path
from typing import Dict, List, NamedTuple, Sequence

import numpy as np

__all__ = ["NeuroChemInfo", "NeuroChemLayer", "read_info", "read_constants", "read_self_energies",
           "read_network", "read_ensemble", "ACTIVATIONS"]

#: NeuroChem activation codes used by the ANI models: 6 = identity (the output layer), 9 = CELU(α = 0.1).
ACTIVATIONS = {6: "identity", 9: "celu"}
_LISTS = ("EtaR", "ShfR", "Zeta", "ShfZ", "EtaA", "ShfA")
_SCALARS = ("Rcr", "Rca")


class NeuroChemInfo(NamedTuple):
    """What ``<name>.info`` says: absolute paths of the constants and self-energy files, the ensemble prefix, M."""

    constants_file: Path
    self_energies_file: Path
    ensemble_prefix: Path
    num_members: int


class NeuroChemLayer(NamedTuple):
    """One dense layer: ``weight`` [out, in] and ``bias`` [out] float32 arrays, ``activation`` code."""

    weight: np.ndarray
    bias: np.ndarray
    activation: int


def _read_text(path: Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"NeuroChem file {path} does not exist")
    return path.read_text()


def read_info(path) -> NeuroChemInfo:
    """Parse ``<name>.info`` (four non-empty lines)."""
    path = Path(path)
    lines = [line.strip() for line in _read_text(path).splitlines() if line.strip()]
    if len(lines) != 4:
        raise ValueError(f"{path}: expected 4 lines (constants, self energies, ensemble prefix, size), got {len(lines)}")
    try:
        count = int(lines[3])
    except ValueError:
        raise ValueError(f"{path}: the ensemble size on line 4 is not an integer: {lines[3]!r}") from None
    if count < 1:
        raise ValueError(f"{path}: ensemble size must be at least 1, got {count}")
    folder = path.parent
    return NeuroChemInfo(folder / lines[0], folder / lines[1], folder / lines[2], count)


def read_constants(path) -> dict:
    """AEV constants: ``Rcr``, ``Rca`` (float), the lists ``EtaR`` ... ``ShfA`` (lists of float), ``Atyp`` (symbols)."""
    path = Path(path)
    values = {}
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if "=" not in line:
            continue
        name, value = (part.strip() for part in line.split("=", 1))
        try:
            if name in _SCALARS:
                values[name] = float(value)
            elif name in _LISTS:
                values[name] = [float(v) for v in value.strip("[]").split(",")]
            elif name == "Atyp":
                values[name] = [v.strip() for v in value.strip("[]").split(",")]
        except ValueError:
            raise ValueError(f"{path}, line {number}: cannot read {name} from {value!r}") from None
    missing = [k for k in _SCALARS + _LISTS + ("Atyp",) if k not in values]
    if missing:
        raise ValueError(f"{path}: missing AEV constants {missing}")
    return values


def read_self_energies(path) -> Dict[str, float]:
    """Symbol → self energy (hartree), in the file's index order."""
    path = Path(path)
    entries = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"\s*([A-Za-z]+)\s*,\s*(\d+)\s*=\s*(\S+)\s*", line)
        if match is None:
            raise ValueError(f"{path}, line {number}: expected 'Symbol,index=value', got {line!r}")
        try:
            entries.append((int(match.group(2)), match.group(1), float(match.group(3))))
        except ValueError:
            raise ValueError(f"{path}, line {number}: the self energy {match.group(3)!r} is not a number") from None
    return {symbol: value for _, symbol, value in sorted(entries)}


def _decompressed(path: Path) -> str:
    raw = Path(path).read_bytes() if Path(path).is_file() else None
    if raw is None:
        raise FileNotFoundError(f"NeuroChem network file {path} does not exist")
    header_end = raw.find(b"=\n")
    if header_end < 0 or not raw[:header_end].strip().isdigit():
        raise ValueError(f"{path}: not a NeuroChem network file (no '<count>=' header line)")
    try:
        text = bz2.decompress(raw[header_end + 2:]).decode("ascii")
    except (OSError, EOFError, ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: the compressed network description is corrupt ({error})") from None
    return text[:-1]  # the text ends in one NUL


def _raw_floats(path: Path, count: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(f"NeuroChem parameter file {path} does not exist")
    size = path.stat().st_size
    if size != 4 * count:
        raise ValueError(f"{path}: {size} bytes, expected {4 * count} ({count} float32 values)")
    return np.fromfile(path, dtype="<f4")


def read_network(path) -> List[NeuroChemLayer]:
    """The layers of one atomic network (``ANN-<Symbol>.nnf``), with weights read from its parameter files."""
    path = Path(path)
    text = _decompressed(path)
    blocks = re.findall(r"layer\s*\[(.*?)\n\s*\]", text, flags=re.S)  # a block closes with ']' on its own line
    if not blocks:
        raise ValueError(f"{path}: no 'layer [ ... ]' blocks in the network description")
    layers = []
    for number, block in enumerate(blocks, 1):
        fields = dict(re.findall(r"(\w+)\s*=\s*([^;]*);", block))
        try:
            nodes, inputs, activation = int(fields["nodes"]), int(fields["blocksize"]), int(fields["activation"])
            weight_file, weight_count = re.fullmatch(r"FILE:(.+)\[(\d+)\]", fields["weights"].strip()).groups()
            bias_file, bias_count = re.fullmatch(r"FILE:(.+)\[(\d+)\]", fields["biases"].strip()).groups()
        except (KeyError, AttributeError, ValueError):
            raise ValueError(f"{path}, layer {number}: cannot read nodes, blocksize, activation, weights and biases") from None
        if activation not in ACTIVATIONS:
            raise ValueError(f"{path}, layer {number}: activation {activation} is not one of {ACTIVATIONS}")
        if int(weight_count) != nodes * inputs or int(bias_count) != nodes:
            raise ValueError(f"{path}, layer {number}: {weight_count} weights and {bias_count} biases for a "
                             f"{inputs} -> {nodes} layer")
        weight = _raw_floats(path.parent / weight_file, nodes * inputs).reshape(nodes, inputs)
        bias = _raw_floats(path.parent / bias_file, nodes)
        layers.append(NeuroChemLayer(weight, bias, activation))
    for number, (before, after) in enumerate(zip(layers[:-1], layers[1:]), 2):
        if after.weight.shape[1] != before.weight.shape[0]:
            raise ValueError(f"{path}, layer {number}: takes {after.weight.shape[1]} inputs, the layer before gives "
                             f"{before.weight.shape[0]}")
    return layers


def read_ensemble(info: NeuroChemInfo, symbols: Sequence[str], members=None) -> List[Dict[str, List[NeuroChemLayer]]]:
    """``[member][symbol] → layers`` for the members ``members`` (default: all M) of ``info``."""
    members = range(info.num_members) if members is None else members
    return [
        {symbol: read_network(Path(f"{info.ensemble_prefix}{m}") / "networks" / f"ANN-{symbol}.nnf") for symbol in symbols}
        for m in members
    ]
