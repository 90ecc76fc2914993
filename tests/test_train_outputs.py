"""Loss terms, metrics, CSV columns and config keys derived from the output registry; the keys of equinnp 0.1."""

import csv
import math
import warnings

import pytest
import torch
from torch_geometric.data import Batch, Data

from equinnp.potential import PotentialOutput
from equinnp.train import MetricAccumulator, Trainer, WeightedLoss, load_config, train
from equinnp.train.config import DEFAULTS
from equinnp.train.outputs import OUTPUTS
from equinnp.train.reporting import format_epoch_line, metrics_columns
from train_helpers import tiny_config


def _charged_batch():
    """Two structures of 3 and 2 atoms with partial-charge [N] and dipole [B, 3] labels."""
    records = [
        Data(z=torch.ones(3, dtype=torch.long), pos=torch.zeros(3, 3), energy=torch.tensor([1.0], dtype=torch.float64),
             charges=torch.tensor([0.1, -0.2, 0.1]), dipole=torch.tensor([[0.0, 0.0, 1.0]])),
        Data(z=torch.ones(2, dtype=torch.long), pos=torch.zeros(2, 3), energy=torch.tensor([-2.0], dtype=torch.float64),
             charges=torch.tensor([0.3, -0.3]), dipole=torch.tensor([[0.5, 0.0, 0.0]])),
    ]
    batch = Batch.from_data_list(records)
    output = PotentialOutput(
        energy=batch.energy.double() + torch.tensor([0.3, -0.4], dtype=torch.float64), forces=None,
        atomic_energies=torch.zeros(5, dtype=torch.float64),
        charges=batch.charges + torch.tensor([0.01, 0.0, -0.01, 0.02, 0.0]),
        dipole=batch.dipole.reshape(2, 3) + torch.tensor([[0.0, 0.0, 0.03], [0.0, 0.0, 0.0]]),
    )
    return output, batch


def test_every_registered_output_has_a_default_weight_key():
    assert list(DEFAULTS["training"]["loss"]["weights"]) == list(OUTPUTS)
    assert load_config("demo", ["training.loss.weights.charges=2"])["training"]["loss"]["weights"]["charges"] == 2


def test_charges_and_dipole_labels_are_loss_terms_and_metrics():
    output, batch = _charged_batch()
    terms = WeightedLoss()(output, batch, {"energy": 0.0, "charges": 10.0, "dipole": 2.0})
    charges = (0.01 ** 2 + 0.01 ** 2 + 0.02 ** 2) / 5  # per atom
    dipole = 0.03 ** 2 / 6  # per component of each system, not per atom
    assert float(terms.parts["charges"]) == pytest.approx(charges, rel=1e-4)
    assert float(terms.parts["dipole"]) == pytest.approx(dipole, rel=1e-4)
    assert float(terms.total) == pytest.approx(10 * charges + 2 * dipole, rel=1e-4)
    accumulator = MetricAccumulator()
    accumulator.update(output, batch)
    metrics = accumulator.compute()
    assert metrics["charges_mae"] == pytest.approx(1000 * 0.04 / 5, rel=1e-4)  # me
    assert metrics["dipole_rmse"] == pytest.approx(1000 * math.sqrt(0.03 ** 2 / 6), rel=1e-4)  # me·Å
    assert "charges_per_atom_mae" not in metrics and "energy_per_atom_mae" in metrics
    line = format_epoch_line(1, 10, {"train_loss": 1.0, "lr": 1e-3, **{f"val_{k}": v for k, v in metrics.items()}}, 5.0)
    assert "q 8.00 me" in line and "μ" in line and "E 350.00 meV (150.00 meV/atom)" in line


def test_a_positive_weight_without_prediction_or_label_is_an_error():
    output, batch = _charged_batch()
    with pytest.raises(ValueError, match="'forces' is 1 but the potential did not return 'forces'"):
        WeightedLoss()(output, batch, {"forces": 1.0})
    with pytest.raises(ValueError, match="'stress' is 1 but the potential did not return"):
        WeightedLoss()(output, batch, {"stress": 1.0})
    with pytest.raises(ValueError, match="unknown loss output"):
        WeightedLoss()(output, batch, {"charge": 1.0})


def test_csv_columns_follow_the_outputs():
    columns = metrics_columns(["energy", "charges"])
    assert columns == ["epoch", "time_s", "lr", "energy_weight", "charges_weight", "train_loss", "train_energy_loss",
                       "train_charges_loss", "val_loss", "val_energy_mae", "val_energy_rmse", "val_energy_per_atom_mae",
                       "val_energy_per_atom_rmse", "val_charges_mae", "val_charges_rmse"]


def test_weights_merge_with_the_defaults_and_misspelt_names_get_suggestions():
    weights = load_config("demo", ["training.loss.weights={forces: 5}"])["training"]["loss"]["weights"]
    assert weights == {"energy": 1.0, "forces": 5, "stress": 0.0, "charges": 0.0, "dipole": 0.0}
    with pytest.raises(ValueError, match="Did you mean 'training.loss.weights.forces'"):
        load_config("demo", ["training.loss.weights.forcse=1"])
    with pytest.raises(ValueError, match="Did you mean 'training.loss.weights.forces'"):
        load_config("demo", ["training.loss.forces_wieght=1"])
    with pytest.raises(ValueError, match=r"stages\[0\].weights.energy must be >= 0"):
        load_config("demo", ["training.loss.stages=[{epoch: 3, weights: {energy: -1}}]"])
    with pytest.raises(ValueError, match="Did you mean 'weights'"):
        load_config("demo", ["training.loss.stages=[{epoch: 3, weight: {energy: 1}}]"])


def test_old_weight_keys_are_read_in_the_new_form_with_a_note():
    old = {"output_dir": "x", "data": {"train": "bundled:rmd17_ethanol_train_01.npz"},
           "model": {"architecture": "schnet", "hidden_channels": 8, "num_filters": 8, "num_interactions": 1},
           "training": {"loss": {"energy_weight": 2.0, "forces_weight": 50.0,
                                 "stages": [{"epoch": 4, "energy_weight": 1000.0, "lr": 1e-4}]}}}
    notes = []
    with pytest.warns(DeprecationWarning, match="training.loss.energy_weight is deprecated"):
        config = load_config(old, ["training.loss.stress_weight=0.5"], notes=notes)
    loss = config["training"]["loss"]
    assert loss["weights"] == {"energy": 2.0, "forces": 50.0, "stress": 0.5, "charges": 0.0, "dipole": 0.0}
    assert loss["stages"] == [{"epoch": 4, "weights": {"energy": 1000.0}, "lr": 1e-4}]
    assert len(notes) == 4
    assert "training.loss.stages[0].energy_weight is deprecated: read as training.loss.stages[0].weights.energy" in notes[2]
    # an old-style override wins over the file's new-style weight
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert load_config("demo", ["training.loss.forces_weight=7"])["training"]["loss"]["weights"]["forces"] == 7
        with pytest.raises(ValueError, match="gives both forces_weight and weights.forces: keep training.loss.weights.forces"):
            load_config({**old, "training": {"loss": {"forces_weight": 1.0, "weights": {"forces": 2.0}}}})


def test_trainer_prints_the_notes_and_names_a_weighted_output_the_data_lack(tmp_path, capsys):
    config = tiny_config(tmp_path / "a", max_epochs=1)
    config["training"]["loss"] = {"energy_weight": 1.0, "forces_weight": 10.0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        summary = train(config)
    assert summary["epochs"] == 1
    assert "training.loss.forces_weight is deprecated: read as training.loss.weights.forces = 10.0" in capsys.readouterr().out
    with open(tmp_path / "a" / "metrics.csv", newline="") as handle:
        header = next(csv.reader(handle))
    assert header == metrics_columns(["energy", "forces"])  # no stress columns for unlabelled, unweighted stress
    config = tiny_config(tmp_path / "b", max_epochs=1)
    config["training"]["loss"]["weights"]["charges"] = 1.0
    with pytest.raises(ValueError, match=r"training.loss.weights.charges > 0 but no training structure of data.train = bundled:rmd17_ethanol_train_01.npz has a 'charges' label"):
        Trainer(config).fit()


def test_the_rewrites_know_every_loss_and_stage_key():
    from equinnp.train.config import STAGE_KEYS
    from equinnp.train.rewrites import _LOSS_KEYS

    assert set(_LOSS_KEYS) == set(DEFAULTS["training"]["loss"]) | set(STAGE_KEYS)
