"""Saved potentials: files of earlier releases load with their numbers; files that would run code are refused."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import equinnp
from equinnp.data import from_arrays

LEGACY = Path(__file__).parent / "data" / "legacy"
RELEASES = ["0.1.0"]


def legacy_structures():
    frames = np.load(Path(__file__).parent / "data" / "rmd17_frames.npz")
    return [from_arrays(frames["ethanol_z"], frames["ethanol_pos"][0], dtype=torch.float64),
            from_arrays(frames["aspirin_z"], frames["aspirin_pos"][0], dtype=torch.float64)]


def released(release):
    """(release, architecture) for every architecture of the registry that ``release`` had (its outputs file)."""
    outputs = torch.load(LEGACY / f"outputs_{release}.pt", weights_only=True)
    return [(release, name) for name in sorted(equinnp.ARCHITECTURES) if f"{name}_float64" in outputs]


@pytest.mark.parametrize("release, name", [pair for release in RELEASES for pair in released(release)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_files_of_earlier_releases_give_their_numbers(release, name, dtype):
    """``tests/data/legacy/make_legacy_files.py`` wrote these with that release.

    float64 files reproduce energies exactly; float32 files agree to float32
    round-off (scale, shift and reference energies are now applied in float64).
    """
    path = LEGACY / f"{name}_{dtype}_{release}.pt"
    if not path.exists():
        pytest.fail(f"missing fixture {path}: {name} was added after {release}?")
    expected = torch.load(LEGACY / f"outputs_{release}.pt", weights_only=True)[f"{name}_{dtype}"]
    pot = equinnp.load_potential(path)
    for data, ref in zip(legacy_structures(), expected):
        out = pot(data.clone())
        if dtype == "float64":
            torch.testing.assert_close(out.energy, ref["energy"], rtol=1e-15, atol=0)
            torch.testing.assert_close(out.forces, ref["forces"], rtol=1e-12, atol=1e-14)
        else:
            torch.testing.assert_close(out.energy, ref["energy"], rtol=1e-9, atol=1e-6)
            torch.testing.assert_close(out.forces, ref["forces"], rtol=1e-5, atol=2e-6)


def test_legacy_mace_keeps_its_residual_first_layer():
    pot = equinnp.load_potential(LEGACY / "mace_float64_0.1.0.pt")
    assert pot.model.hyperparameters["residual_first_layer"] is True


class RunsCode:
    """An object whose unpickling runs ``os.system``: what a crafted model file would hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    pot = equinnp.build_potential("schnet", elements=[1, 8], **equinnp.ARCHITECTURES["schnet"].tiny)
    pot.save(tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", weights_only=True)
    payload["metadata"]["note"] = RunsCode(marker)
    with open(tmp_path / "crafted.pt", "wb") as handle:
        pickle.dump(payload, handle)  # torch.load reads plain pickles too
    torch.save(payload, tmp_path / "crafted_zip.pt")
    for name in ("crafted.pt", "crafted_zip.pt"):
        with pytest.raises(ValueError, match="refusing to load .* objects other than tensors, numbers and strings"):
            equinnp.load_potential(tmp_path / name)
    assert not marker.exists()


def test_a_file_that_is_not_a_potential_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is not an equinnp potential file"):
        equinnp.load_potential(tmp_path / "other.pt")


def test_a_training_checkpoint_is_named_as_such(tmp_path):
    torch.save({"format": "equinnp-training-checkpoint", "epoch": 3}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="is an equinnp training checkpoint, not a potential file: .*potential_from_checkpoint"):
        equinnp.load_potential(tmp_path / "last.pt")
