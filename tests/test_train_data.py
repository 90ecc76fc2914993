"""The data of a run: an overridden data.train does not inherit the bundled test split; errors name the user's file and key."""

import warnings

import pytest

from equinnp.cli import main
from equinnp.train.config import CONFIG_DIR, load_config
from equinnp.train.data import load_run_data, open_dataset


@pytest.fixture(scope="module")
def xyz(tmp_path_factory):
    """24 labelled ethanol frames as extxyz with the label names REF_energy and REF_forces."""
    import ase.io

    from equinnp.data.datasets import RMD17Dataset
    from equinnp.data.bundled import ETHANOL_TEST

    dataset = RMD17Dataset(ETHANOL_TEST, dtype="float64")
    frames = []
    for k in range(24):
        import ase

        record = dataset[k]
        atoms = ase.Atoms(numbers=record.z.numpy(), positions=record.pos.numpy())
        atoms.info["REF_energy"] = float(record.energy)
        atoms.arrays["REF_forces"] = record.forces.numpy()
        frames.append(atoms)
    path = tmp_path_factory.mktemp("xyz") / "mine.xyz"
    ase.io.write(path, frames, format="extxyz")
    return path


def test_overriding_data_train_drops_the_bundled_test_split_with_a_note(xyz):
    notes = []
    config = load_config("painn", [f"data.train={xyz}"], notes=notes)
    assert config["data"]["train"] == str(xyz) and config["data"]["test"] is None
    assert len(notes) == 1 and "data.test (bundled:rmd17_ethanol_test_01.npz)" in notes[0] and "is not used" in notes[0]
    kept = load_config("painn", [f"data.train={xyz}", "data.test=bundled:rmd17_ethanol_test_01.npz"])
    assert kept["data"]["test"] == "bundled:rmd17_ethanol_test_01.npz"
    same = load_config("painn", ["data.train=bundled:rmd17_ethanol_train_01.npz"])
    assert same["data"]["test"] == "bundled:rmd17_ethanol_test_01.npz"


def test_a_config_s_own_test_file_is_kept(xyz, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text((CONFIG_DIR / "painn.yaml").read_text().replace("bundled:rmd17_ethanol_test_01.npz", str(xyz)))
    notes = []
    config = load_config(path, ["data.train=bundled:rmd17_ethanol_train_02.npz"], notes=notes)
    assert config["data"]["test"] == str(xyz) and notes == []


def test_an_option_the_file_cannot_take_names_the_config_keys_and_the_file_as_given():
    with pytest.raises(ValueError) as error:
        open_dataset("bundled:rmd17_ethanol_test_01.npz", energy_key="REF_energy", key="data.test")
    message = str(error.value)
    assert message.startswith("data.test = bundled:rmd17_ethanol_test_01.npz: its format does not take data.energy_key")
    assert "RMD17Dataset" not in message and "/equinnp/data/bundled" not in message


def test_a_missing_label_or_file_names_the_key(xyz):
    config = load_config("painn", [f"data.train={xyz}", "data.val_size=4"])
    with pytest.raises(ValueError, match=rf"data.train = {xyz}: energy key 'energy' not found.*\(set with data.energy_key\)"):
        load_run_data(config["data"])
    config = load_config("painn", ["data.train=missing.xyz"])
    with pytest.raises(FileNotFoundError, match="data.train = missing.xyz: data file missing.xyz does not exist"):
        load_run_data(config["data"])
    config = load_config("painn", [f"data.train={xyz}", "data.energy_key=REF_energy", "data.forces_key=REF_forces"])
    with pytest.raises(ValueError, match=rf"the validation split of the 24 structures of data.train = {xyz} would hold 50"):
        load_run_data(config["data"])


def test_train_on_the_user_s_file_from_a_bundled_config(xyz, tmp_path, capsys):
    out = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["train", "painn", "--set", f"data.train={xyz}", "--set", "data.energy_key=REF_energy",
                     "--set", "data.forces_key=REF_forces", "--set", "data.val_size=4", "--set", f"output_dir={out}",
                     "--set", "model.hidden_channels=8", "--set", "model.num_interactions=1", "--set", "training.max_epochs=1",
                     "--set", "training.warmup_steps=0", "--set", "training.progress_bar=false", "--set", "training.tensorboard=false"])
    assert code == 0
    assert "data.test (bundled:rmd17_ethanol_test_01.npz) belongs to its own training data" in capsys.readouterr().out
    assert (out / "model.pt").is_file() and not (out / "test_metrics.json").exists()
