"""End to end: SchNet with the total-charge embedding trained briefly on Ag3+ and Ag3- (bundled slice)
gives energies that differ by charge for the same geometry; without the embedding it cannot."""

import torch

import equinnp
from equinnp.data.datasets.ase_dataset import ASEDataset
from equinnp.data.bundled import BUNDLED_DIR
from equinnp.train import train
from equinnp.train.config import load_config

AG3 = BUNDLED_DIR / "ag3_charged_440.db"


def test_ag3_energies_differ_by_charge_after_training(tmp_path):
    config = load_config("ag3_charged")
    config["output_dir"] = str(tmp_path / "run")
    config["data"].update(train_size=96, val_size=24, batch_size=16)
    config["model"].update(hidden_channels=16, num_filters=16, num_interactions=2, num_gaussians=12)
    config["training"].update(max_epochs=25, lr=5e-3, num_threads=1, progress_bar=False, tensorboard=False, log_every=100)
    train(config)
    pot = equinnp.load_potential(tmp_path / "run" / "model.pt").double().eval()
    assert pot.model.requires_charge
    records = ASEDataset(AG3, charge_key="total_charge", spin_key=None, dipole_key=None, dtype=torch.float64)
    anion = next(r for r in records if r.charge.item() == -1.0)
    cation = anion.clone()
    cation.charge = torch.tensor([1.0], dtype=torch.float64)
    gap = float(pot(cation, compute_forces=False).energy.detach() - pot(anion, compute_forces=False).energy.detach())
    # the labels: Ag3- about -13.8 eV, Ag3+ about +4 eV at similar geometries (a gap of ~17.8 eV)
    assert gap > 10.0, gap
    labels = {q: [float(r.energy) for r in records if r.charge.item() == q] for q in (-1.0, 1.0)}
    label_gap = sum(labels[1.0]) / len(labels[1.0]) - sum(labels[-1.0]) / len(labels[-1.0])
    assert abs(gap - label_gap) < 0.3 * label_gap, (gap, label_gap)


def test_without_the_embedding_the_charge_changes_nothing():
    pot = equinnp.build_potential("schnet", cutoff=5.0, elements=[47], **equinnp.ARCHITECTURES["schnet"].tiny, dtype="float64")
    record = ASEDataset(AG3, charge_key="total_charge", spin_key=None, dipole_key=None, dtype=torch.float64)[0]
    other = record.clone()
    other.charge = -record.charge
    assert torch.equal(pot(record).energy, pot(other).energy)
