"""Run configs: every registered architecture has one that validates; errors name the key."""

from pathlib import Path

import pytest

import equinnp
from equinnp.train.config import CONFIG_DIR, apply_overrides, load_config, resolve_data_path

CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(equinnp.ARCHITECTURES))
def test_every_architecture_has_a_config_that_validates(name):
    path = CONFIG_DIR / f"{name}.yaml"
    assert path.is_file(), f"configs/{name}.yaml is missing for the registered architecture {name!r}"
    config = load_config(path)
    assert config["model"]["architecture"] == name
    assert resolve_data_path(config["data"]["train"]).is_file()


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_config_file_validates(path):
    config = load_config(path)
    for key in ("train", "val", "test"):
        if config["data"][key] is not None:
            assert resolve_data_path(config["data"][key]).exists()


def test_configs_are_found_by_name():
    assert load_config("demo")["output_dir"] == load_config(CONFIG_DIR / "demo.yaml")["output_dir"]


@pytest.mark.parametrize(
    "override, suggestion",
    [
        ("training.lrr=1e-3", "training.lr"),
        ("data.batchsize=4", "data.batch_size"),
        ("ouput_dir=x", "output_dir"),
        ("training.loss.forces_wieght=1", "training.loss.weights.forces"),
        ("training.loss.weights.forcse=1", "training.loss.weights.forces"),
        ("model.hiden_channels=8", "hidden_channels"),
    ],
)
def test_misspelt_key_is_an_error_with_a_suggestion(override, suggestion):
    with pytest.raises(ValueError, match=f"Did you mean '{suggestion}'"):
        load_config("demo", [override])


def test_misspelt_key_in_a_file_is_an_error(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text((CONFIG_DIR / "demo.yaml").read_text().replace("max_epochs:", "max_epoch:"))
    with pytest.raises(ValueError, match="unknown config key 'training.max_epoch'. Did you mean 'training.max_epochs'"):
        load_config(path)


@pytest.mark.parametrize(
    "override, message",
    [
        ("training.lr=-1", "training.lr must be > 0"),
        ("training.scheduler=step", "training.scheduler must be one of"),
        ("data.batch_size=0", "data.batch_size must be >= 1"),
        ("training.ema_decay=1.5", "training.ema_decay must be below 1"),
        ("model.architecture=schnett", "Did you mean 'schnet'"),
        ("data.train=bundled:nope.npz", None),
    ],
)
def test_bad_values_are_errors_naming_the_key(override, message):
    if message is None:
        config = load_config("demo", [override])  # a path is only resolved when the data is read
        with pytest.raises(FileNotFoundError, match="nope.npz"):
            resolve_data_path(config["data"]["train"])
        return
    with pytest.raises(ValueError, match=message):
        load_config("demo", [override])


def test_set_overrides_parse_yaml_values_and_dotted_keys():
    config = load_config(
        "demo",
        ["training.lr=5e-4", "training.max_time=null", "training.loss.type=huber", "data.batch_size=4",
         "training.loss.stages=[{epoch: 3, weights: {energy: 1000}}]", "model.hidden_channels=8"],
    )
    assert config["training"]["lr"] == 5e-4
    assert config["training"]["max_time"] is None
    assert config["training"]["loss"]["type"] == "huber"
    assert config["data"]["batch_size"] == 4
    assert config["training"]["loss"]["stages"] == [{"epoch": 3, "weights": {"energy": 1000}}]
    assert config["model"]["hidden_channels"] == 8
    assert config["training"]["loss"]["weights"] == load_config("demo")["training"]["loss"]["weights"]


def test_override_syntax_errors():
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides({}, ["training.lr"])
    with pytest.raises(ValueError, match="not a section"):
        apply_overrides({"output_dir": "x"}, ["output_dir.sub=1"])


def test_bundled_paths_resolve_to_the_package_data():
    from equinnp.data.bundled import ETHANOL_TEST

    assert resolve_data_path("bundled:rmd17_ethanol_test_01.npz") == ETHANOL_TEST
    assert resolve_data_path(str(ETHANOL_TEST)) == Path(ETHANOL_TEST)


def test_the_clone_s_configs_folder_holds_the_package_s_configs():
    root = Path(__file__).resolve().parents[1] / "configs"
    package = {p.name: p.read_bytes() for p in CONFIG_DIR.glob("*.yaml")}
    assert CONFIG_DIR.parent.name == "equinnp" and set(package) >= {"demo.yaml", "schnet.yaml"}
    copies = {p.name: p.read_bytes() for p in root.glob("*.yaml")}
    assert copies == package, "configs/ must hold copies of equinnp/configs/*.yaml: edit equinnp/configs and copy"


def test_an_unknown_config_name_lists_the_bundled_ones():
    with pytest.raises(FileNotFoundError, match=r"'paint' is neither a file nor one of the bundled configs \[.*'demo', .*'painn'"):
        load_config("paint")


def test_the_wheel_ships_the_configs(tmp_path):
    """``equinnp train --demo`` from an installed wheel reads the configs from the package."""
    import shutil
    import subprocess
    import sys
    import zipfile

    repo = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # a copy, so that the build leaves nothing in the clone
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    shutil.copytree(repo / "equinnp", source / "equinnp", ignore=shutil.ignore_patterns("__pycache__"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                             "-w", str(tmp_path / "wheel"), "-q"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    (wheel,) = (tmp_path / "wheel").glob("equinnp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {Path(name).name: archive.read(name) for name in archive.namelist() if name.startswith("equinnp/configs/")}
    assert shipped == {p.name: p.read_bytes() for p in CONFIG_DIR.glob("*.yaml")}
