"""Training checkpoints: plain data read without running code, and accepted where a model file is."""

import json

import numpy as np
import pytest
import torch

from equinnp import load_potential
from equinnp.cli import main
from equinnp.train import train
from equinnp.train.checkpoint import (CHECKPOINT_FORMAT, capture_rng_state, load_checkpoint, load_model_file,
                                      potential_from_checkpoint, restore_rng_state)
from train_helpers import as_equinnp_0_1, tiny_config

TEST_DATA = "bundled:rmd17_ethanol_test_01.npz"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("checkpoint") / "run"
    summary = train(tiny_config(out, max_epochs=2))
    assert summary["best_epoch"] == 2  # so that best.pt's EMA weights are model.pt's
    return out


def test_checkpoints_hold_plain_data_only(run):
    payload = torch.load(run / "last.pt", weights_only=True)  # no allowlist needed
    assert payload["format"] == CHECKPOINT_FORMAT and payload["potential"]["config"]["architecture"] == "schnet"


def test_rng_states_round_trip():
    import random

    state = capture_rng_state()
    draws = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == draws


def test_evaluate_accepts_a_checkpoint_and_says_what_it_is(run, capsys):
    assert main(["evaluate", str(run / "model.pt"), "--data", TEST_DATA, "--json"]) == 0
    from_model = json.loads(capsys.readouterr().out)
    assert main(["evaluate", str(run / "best.pt"), "--data", TEST_DATA, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == pytest.approx(from_model)
    assert f"a training checkpoint (epoch 2 of {run}); evaluating its EMA weights" in captured.err
    assert main(["evaluate", str(run / "last.pt"), "--data", TEST_DATA]) == 0
    assert "a training checkpoint (epoch 2 of" in capsys.readouterr().out


def test_predict_accepts_a_checkpoint(run, capsys):
    assert main(["predict", str(run / "last.pt")]) == 0
    out = capsys.readouterr().out
    assert "(schnet; a training checkpoint (epoch 2 of" in out and "energy:" in out


def test_potential_from_checkpoint_gives_the_ema_or_the_raw_weights(run):
    ema, info = potential_from_checkpoint(run / "best.pt")
    raw, raw_info = potential_from_checkpoint(run / "best.pt", weights="model")
    assert info == {"epoch": 2, "output_dir": str(run), "weights": "ema"} and raw_info["weights"] == "model"
    saved = load_potential(run / "model.pt")
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(ema.state_dict()[key], value, rtol=0, atol=0)
    assert any(not torch.equal(raw.state_dict()[k], v) for k, v in ema.state_dict().items())
    assert ema.fit_info == saved.fit_info


def test_a_checkpoint_of_equinnp_0_1_is_a_model_too(run, tmp_path):
    payload = torch.load(run / "best.pt", weights_only=True)
    old = tmp_path / "best.pt"
    torch.save(as_equinnp_0_1(payload), old)
    with pytest.raises(Exception):
        torch.load(old, weights_only=True)  # its NumPy array needs the allowlist
    assert load_checkpoint(old)["epoch"] == 2
    # without a model.pt next to it, the elements come from the training data of its config
    potential, description = load_model_file(old)
    assert potential.elements == [1, 6, 8] and "epoch 2" in description
    reference = load_potential(run / "model.pt").state_dict()
    for key, value in reference.items():
        torch.testing.assert_close(potential.state_dict()[key], value, rtol=0, atol=0)


class _Payload:
    """An object whose unpickling would create a file (as a real attack would run a command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_whose_pickle_would_run_code_is_refused(tmp_path, capsys):
    marker = tmp_path / "ran"
    crafted = tmp_path / "run" / "last.pt"
    crafted.parent.mkdir()
    torch.save({"format": CHECKPOINT_FORMAT, "epoch": 1, "rng": [_Payload(marker)]}, crafted)
    with pytest.raises(ValueError, match="refusing to load .*could run code"):
        load_checkpoint(crafted)
    assert main(["evaluate", str(crafted), "--data", TEST_DATA]) == 2
    assert "refusing to load" in capsys.readouterr().err
    with pytest.raises(ValueError, match="refusing to load"):
        train(tiny_config(crafted.parent), resume=True)
    assert not marker.exists()


def test_a_file_that_is_neither_is_named(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a torch file")
    with pytest.raises(ValueError, match="is not an equinnp potential file or training checkpoint"):
        load_model_file(path)
