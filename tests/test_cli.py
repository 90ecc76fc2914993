"""``equinnp train`` and ``equinnp evaluate`` from the command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from equinnp.cli import main
from train_helpers import tiny_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained through ``equinnp train CONFIG --set ...``."""
    folder = tmp_path_factory.mktemp("cli")
    config = tiny_config(folder / "run", max_epochs=1)
    path = folder / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["train", str(path), "--set", "training.max_epochs=2", "--set", "training.lr=2e-3"]) == 0
    return folder


@pytest.fixture(scope="module")
def xyz_frames(tmp_path_factory):
    """20 labelled rMD17 ethanol test frames as extxyz (eV, eV/Å)."""
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    from equinnp.data.datasets import RMD17Dataset
    from equinnp.data.bundled import ETHANOL_TEST

    dataset = RMD17Dataset(ETHANOL_TEST, dtype="float64")
    frames = []
    for k in range(20):
        import ase

        record = dataset[k]
        atoms = ase.Atoms(numbers=record.z.numpy(), positions=record.pos.numpy())
        atoms.calc = SinglePointCalculator(atoms, energy=float(record.energy), forces=record.forces.numpy())
        frames.append(atoms)
    path = tmp_path_factory.mktemp("xyz") / "ethanol20.xyz"
    ase.io.write(path, frames, format="extxyz")
    return path, frames


def test_train_cli_applies_overrides_and_writes_the_model(trained):
    saved = yaml.safe_load((trained / "run" / "config.yaml").read_text())
    assert saved["training"]["max_epochs"] == 2 and saved["training"]["lr"] == 2e-3
    assert (trained / "run" / "model.pt").is_file()


def test_train_cli_misspelt_key_exits_with_a_suggestion(trained, capsys):
    assert main(["train", str(trained / "run.yaml"), "--set", "training.max_epoch=3"]) == 2
    assert "Did you mean 'training.max_epochs'" in capsys.readouterr().err


def test_evaluate_json_is_one_object_on_stdout_and_writes_the_plot(trained, xyz_frames, tmp_path):
    path, _ = xyz_frames
    plot = tmp_path / "parity.png"
    result = subprocess.run(
        [sys.executable, "-m", "equinnp.cli", "evaluate", str(trained / "run" / "model.pt"), "--data", str(path),
         "--json", "--plot", str(plot)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)  # the whole of stdout is one JSON object
    assert isinstance(metrics, dict)
    for key in ("energy_mae", "energy_rmse", "forces_mae", "forces_rmse"):
        assert isinstance(metrics[key], float) and metrics[key] > 0
    assert metrics["n_structures"] == 20
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_agrees_with_the_ase_calculator(trained, xyz_frames, capsys):
    from equinnp import load_potential
    from equinnp.calculators import EquinnpCalculator

    path, frames = xyz_frames
    assert main(["evaluate", str(trained / "run" / "model.pt"), "--data", str(path), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    calculator = EquinnpCalculator(load_potential(trained / "run" / "model.pt"))
    energy_errors, force_errors = [], []
    for atoms in frames:
        reference_energy, reference_forces = atoms.get_potential_energy(), atoms.get_forces()
        copy = atoms.copy()
        copy.calc = calculator
        energy_errors.append(copy.get_potential_energy() - reference_energy)
        force_errors.append(copy.get_forces() - reference_forces)
    energy_errors, force_errors = np.array(energy_errors), np.concatenate(force_errors)
    assert metrics["energy_mae"] == pytest.approx(1000 * np.abs(energy_errors).mean(), rel=1e-5)
    assert metrics["energy_rmse"] == pytest.approx(1000 * np.sqrt((energy_errors ** 2).mean()), rel=1e-5)
    assert metrics["forces_mae"] == pytest.approx(1000 * np.abs(force_errors).mean(), rel=1e-5)
    assert metrics["forces_rmse"] == pytest.approx(1000 * np.sqrt((force_errors ** 2).mean()), rel=1e-5)


def test_evaluate_plain_text(trained, capsys):
    assert main(["evaluate", str(trained / "run" / "model.pt"), "--data", "bundled:rmd17_ethanol_test_01.npz", "--batch-size", "200"]) == 0
    out = capsys.readouterr().out
    assert "1000 structures" in out and "forces  MAE" in out and "meV/Å" in out


def test_train_needs_config_or_demo(capsys):
    assert main(["train"]) == 2
    assert "--demo" in capsys.readouterr().err


def _run_without_the_package_root(code):
    """Run ``code`` with ``equinnp`` as a bare namespace (its ``__init__`` not run), to see what the CLI itself imports."""
    prelude = (
        "import sys, types\n"
        f"package = types.ModuleType('equinnp'); package.__path__ = [{os.path.join(REPO, 'equinnp')!r}]\n"
        "sys.modules['equinnp'] = package\n"
    )
    return subprocess.run([sys.executable, "-c", prelude + code], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_help_and_version_import_neither_torch_nor_pyg():
    code = (
        "import contextlib, io\n"
        "from equinnp.cli import main\n"
        "for argv in (['--help'], ['--version'], ['train', '--help'], ['evaluate', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torch_geometric', 'e3nn', 'ase', 'numpy', 'yaml'))\n"
        "print(heavy[:5])\n"
    )
    result = _run_without_the_package_root(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_version_is_the_package_version():
    from equinnp.version import __version__

    result = subprocess.run([sys.executable, "-m", "equinnp.cli", "--version"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == f"equinnp {__version__}"


def test_train_package_names_resolve_on_first_use():
    import equinnp.train

    for name in equinnp.train.__all__:
        assert getattr(equinnp.train, name) is not None, name
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        equinnp.train.nope
