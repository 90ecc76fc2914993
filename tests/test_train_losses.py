"""Loss, metric and schedule units on hand-made predictions with known errors."""

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from equinnp.potential import PotentialOutput
from equinnp.train import ExponentialMovingAverage, LearningRateSchedule, LossStage, MetricAccumulator, WeightedLoss, loss_weights_at


def _batch():
    """Two structures: 3 and 2 atoms, energies 1 and -2 eV, forces all 0.5 eV/Å."""
    records = [
        Data(z=torch.ones(3, dtype=torch.long), pos=torch.zeros(3, 3), energy=torch.tensor([1.0], dtype=torch.float64), forces=torch.full((3, 3), 0.5)),
        Data(z=torch.ones(2, dtype=torch.long), pos=torch.zeros(2, 3), energy=torch.tensor([-2.0], dtype=torch.float64), forces=torch.full((2, 3), 0.5)),
    ]
    return Batch.from_data_list(records)


def _output(energy_errors, force_error):
    batch = _batch()
    energy = batch.energy.double() + torch.tensor(energy_errors, dtype=torch.float64)
    forces = batch.forces + force_error
    return PotentialOutput(energy=energy, forces=forces, atomic_energies=torch.zeros(5, dtype=torch.float64)), batch


def test_mse_loss_uses_per_atom_energy_and_force_components():
    output, batch = _output([0.3, -0.4], 0.02)
    terms = WeightedLoss("mse")(output, batch, {"energy": 2.0, "forces": 5.0})
    expected_energy = ((0.3 / 3) ** 2 + (0.4 / 2) ** 2) / 2
    expected_forces = 0.02 ** 2
    assert list(terms.parts) == ["energy", "forces"]
    assert float(terms.parts["energy"]) == pytest.approx(expected_energy, rel=1e-6)
    assert float(terms.parts["forces"]) == pytest.approx(expected_forces, rel=1e-5)
    assert float(terms.total) == pytest.approx(2.0 * expected_energy + 5.0 * expected_forces, rel=1e-5)


def test_huber_loss_is_quadratic_inside_and_linear_outside_delta():
    output, batch = _output([0.0, 0.0], 0.02)
    small = WeightedLoss("huber", huber_delta=0.1)(output, batch, {"energy": 1.0, "forces": 1.0})
    assert float(small.parts["forces"]) == pytest.approx(0.5 * 0.02 ** 2, rel=1e-5)
    large = WeightedLoss("huber", huber_delta=0.01)(output, batch, {"energy": 1.0, "forces": 1.0})
    assert float(large.parts["forces"]) == pytest.approx(0.01 * (0.02 - 0.5 * 0.01), rel=1e-5)


def test_loss_backpropagates_into_predictions():
    output, batch = _output([0.3, -0.4], 0.02)
    forces = output.forces.clone().requires_grad_(True)
    terms = WeightedLoss()(output._replace(forces=forces), batch, {"energy": 1.0, "forces": 1.0})
    terms.total.backward()
    assert forces.grad is not None and torch.allclose(forces.grad, torch.full_like(forces, 2 * 0.02 / 15), rtol=1e-4)


def test_metrics_are_in_meV_and_meV_per_angstrom():
    output, batch = _output([0.3, -0.4], 0.02)
    accumulator = MetricAccumulator()
    accumulator.update(output, batch)
    metrics = accumulator.compute()
    assert metrics["n_structures"] == 2
    assert metrics["energy_mae"] == pytest.approx(350.0)
    assert metrics["energy_rmse"] == pytest.approx(1000 * math.sqrt((0.09 + 0.16) / 2))
    assert metrics["energy_per_atom_mae"] == pytest.approx(1000 * (0.1 + 0.2) / 2)
    assert metrics["forces_mae"] == pytest.approx(20.0, rel=1e-5)
    assert metrics["forces_rmse"] == pytest.approx(20.0, rel=1e-5)


def test_metrics_accumulate_over_batches_like_one_batch():
    output, batch = _output([0.3, -0.4], 0.02)
    whole = MetricAccumulator()
    whole.update(output, batch)
    parts = MetricAccumulator()
    for k in range(2):
        one = Batch.from_data_list([batch.get_example(k)])
        mask = batch.batch == k
        parts.update(PotentialOutput(output.energy[k:k + 1], output.forces[mask], output.atomic_energies[mask]), one)
    assert parts.compute() == pytest.approx(whole.compute())


def test_loss_stages_switch_weights_and_lr_at_their_epoch():
    config = {"weights": {"energy": 1.0, "forces": 100.0, "stress": 0.0},
              "stages": [{"epoch": 8, "weights": {"forces": 1.0}}, {"epoch": 5, "weights": {"energy": 1000.0, "forces": 10.0}, "lr": 1e-4}]}
    assert loss_weights_at(config, 4) == LossStage({"energy": 1.0, "forces": 100.0, "stress": 0.0}, None)
    assert loss_weights_at(config, 5) == LossStage({"energy": 1000.0, "forces": 10.0, "stress": 0.0}, 1e-4)
    # stages apply in epoch order, each updating the weights in effect; the lr of the last one that sets it holds
    assert loss_weights_at(config, 9) == LossStage({"energy": 1000.0, "forces": 1.0, "stress": 0.0}, 1e-4)


def _optimizer():
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_warmup_then_plateau_reduction():
    optimizer = _optimizer()
    schedule = LearningRateSchedule(optimizer, 1e-2, "plateau", warmup_steps=4, factor=0.5, patience=1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 / 4)
    for _ in range(3):
        schedule.step_batch()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-2)
    for epoch, loss in enumerate([1.0, 1.0, 1.0]):  # no improvement for 2 epochs > patience 1
        schedule.step_epoch(epoch, loss)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)


def test_cosine_decays_to_min_lr():
    optimizer = _optimizer()
    schedule = LearningRateSchedule(optimizer, 1e-2, "cosine", max_epochs=10, min_lr=1e-4)
    schedule.step_epoch(4, 0.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + math.cos(math.pi * 0.5)))
    schedule.step_epoch(9, 0.0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)


def test_ema_tracks_weights_with_decay():
    module = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        module.weight.fill_(0.0)
    ema = ExponentialMovingAverage(module, decay=0.5)
    with torch.no_grad():
        module.weight.fill_(1.0)
    ema.update(module)  # d_1 = min(0.5, 2/11) = 2/11
    assert float(ema.module.weight) == pytest.approx(1 - 2 / 11)
    ema.update(module)  # d_2 = min(0.5, 3/12) = 0.25
    assert float(ema.module.weight) == pytest.approx(1 - (2 / 11) * 0.25)


def test_stress_term_covers_periodic_structures_with_labels():
    records = [
        Data(z=torch.ones(2, dtype=torch.long), pos=torch.zeros(2, 3), energy=torch.tensor([0.0], dtype=torch.float64),
             forces=torch.zeros(2, 3), cell=torch.eye(3).reshape(1, 3, 3) * 5, pbc=torch.ones(1, 3, dtype=torch.bool),
             stress=torch.full((1, 3, 3), 0.01)),
        Data(z=torch.ones(2, dtype=torch.long), pos=torch.zeros(2, 3), energy=torch.tensor([0.0], dtype=torch.float64),
             forces=torch.zeros(2, 3), cell=torch.zeros(1, 3, 3), pbc=torch.zeros(1, 3, dtype=torch.bool),
             stress=torch.zeros(1, 3, 3)),
    ]
    batch = Batch.from_data_list(records)
    stress = torch.stack([torch.full((3, 3), 0.013), torch.full((3, 3), 7.0)])  # the open system's value is ignored
    output = PotentialOutput(energy=torch.zeros(2, dtype=torch.float64), forces=torch.zeros(4, 3),
                             atomic_energies=torch.zeros(4, dtype=torch.float64), stress=stress)
    terms = WeightedLoss()(output, batch, {"energy": 1.0, "forces": 1.0, "stress": 10.0})
    assert float(terms.parts["stress"]) == pytest.approx(0.003 ** 2, rel=1e-4)
    assert float(terms.total) == pytest.approx(10.0 * 0.003 ** 2, rel=1e-4)
    accumulator = MetricAccumulator()
    accumulator.update(output, batch)
    assert accumulator.compute()["stress_mae"] == pytest.approx(3.0, rel=1e-4)  # meV/Å³
