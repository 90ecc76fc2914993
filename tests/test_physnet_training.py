"""PhysNet's non-hierarchicality penalty in ``equinnp train`` (``training.loss.nonhierarchicality``) and the
per-module outputs it is computed from."""

import csv

import pytest
import torch

import equinnp
from equinnp.data import from_arrays
from equinnp.models.physnet import PhysNet
from equinnp.nn.physnet_layers import nonhierarchicality_penalty
from equinnp.train import train
from equinnp.train.config import load_config
from equinnp.train.losses import LossTerms, add_model_penalties

from train_helpers import tiny_config

torch.set_num_threads(1)


def physnet_config(output_dir, penalty):
    config = tiny_config(output_dir, max_epochs=2, loss={"weights": {"energy": 1.0, "forces": 10.0}, "nonhierarchicality": penalty})
    config["data"].update(train_size=16, test_size=None, test=None)
    config["model"] = {"architecture": "physnet", "cutoff": 4.0, "dtype": "float64", **PhysNet.tiny,
                       "postprocessing": {"transforms": ["scale_shift", "uniform_charges"]}}
    return config


def final_weights(run_dir):
    return equinnp.load_potential(run_dir / "model.pt").model.state_dict()


def test_the_penalty_changes_training_and_is_logged(tmp_path):
    train(physnet_config(tmp_path / "off", 0.0))
    train(physnet_config(tmp_path / "on", 0.5))
    off, on = final_weights(tmp_path / "off"), final_weights(tmp_path / "on")
    assert any(not torch.equal(off[k], on[k]) for k in off)
    with open(tmp_path / "on" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert all(0.0 < float(row["train_nonhierarchicality_loss"]) < 1.0 for row in rows)  # M = 2 modules: at most 1
    with open(tmp_path / "off" / "metrics.csv") as handle:
        assert "train_nonhierarchicality_loss" not in next(csv.DictReader(handle))


def ethanol_batch():
    from equinnp.data.bundled import ETHANOL_TEST
    import numpy as np

    raw = np.load(ETHANOL_TEST)
    return from_arrays(raw["nuclear_charges"], raw["coords"][0], dtype=torch.float64)


def test_penalty_term_is_weight_times_the_models_value_and_zero_when_off():
    pot = equinnp.build_potential("physnet", cutoff=4.0, elements=[1, 6, 8], dtype="float64", **PhysNet.tiny)
    for parameter in pot.parameters():  # the gates start at zero; give every module an output
        torch.nn.init.normal_(parameter, std=0.3)
    output = pot(ethanol_batch(), compute_forces=False)
    penalty = pot.model.nonhierarchicality
    assert penalty.requires_grad and 0.0 < penalty.item() < 1.0
    labels = LossTerms(torch.tensor(2.0, dtype=torch.float64), {"energy": torch.tensor(2.0)})
    with_penalty = add_model_penalties(labels, pot.model, {"nonhierarchicality": 0.01})
    assert with_penalty.total.item() == pytest.approx(2.0 + 0.01 * penalty.item(), rel=1e-14)
    assert with_penalty.parts["nonhierarchicality"].item() == penalty.item()
    off = add_model_penalties(labels, pot.model, {"nonhierarchicality": 0.0})
    assert off.total.item() == 2.0 and "nonhierarchicality" not in off.parts
    # the per-module outputs it is computed from, [M, N, 2], summing to the model's atomic energies
    modules = pot.model.module_outputs
    assert modules.shape == (2, 9, 2)
    assert nonhierarchicality_penalty(list(modules)).item() == pytest.approx(penalty.item(), rel=1e-14)
    assert modules[:, :, 0].sum().item() == pytest.approx(output.energy.item(), rel=1e-12)  # unit scale, no shift


def test_penalty_on_a_model_without_it_is_an_error(tmp_path):
    config = tiny_config(tmp_path / "schnet", loss={"weights": {"energy": 1.0, "forces": 10.0}, "nonhierarchicality": 0.01})
    with pytest.raises(ValueError, match=r"training.loss.nonhierarchicality = 0.01 .*schnet"):
        train(config)
    pot = equinnp.build_potential("schnet", cutoff=4.0, elements=[1, 6, 8], **equinnp.ARCHITECTURES["schnet"].tiny)
    labels = LossTerms(torch.tensor(1.0), {})
    with pytest.raises(ValueError, match="SchNet model does not compute 'nonhierarchicality'"):
        add_model_penalties(labels, pot.model, {"nonhierarchicality": 0.01})


def test_negative_penalty_weight_is_a_config_error():
    with pytest.raises(ValueError, match="training.loss.nonhierarchicality"):
        load_config("physnet", ["training.loss.nonhierarchicality=-0.01"])
