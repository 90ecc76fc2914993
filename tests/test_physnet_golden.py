"""PhysNet against the authors' TensorFlow code with the same weights (float64).

Golden file ``tests/data/physnet_golden.npz``: written by
``benchmarks/peers/export_physnet_golden.py`` in the ``.peers/physnet_tf`` venv
from MMunibas/PhysNet @ e243e2c (F 8, K 6, cutoff 3.5 Å, 3 blocks, 2/2/1
residual layers, every variable perturbed; electrostatics on, dispersion off;
two rMD17 ethanol frames with total charge 0 and +1). The TF variables are
mapped onto equinnp's PhysNet (TF ``W`` is [in, out]; equinnp's ``Linear`` is
[out, in]); the energy includes the shielded Coulomb term of the potential.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

import equinnp
from equinnp.data import from_arrays

GOLDEN = Path(__file__).parent / "data" / "physnet_golden.npz"


def _linear(linear, golden, prefix, bias=True):
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(golden[f"var/{prefix}/W"].T))
        if bias:
            linear.bias.copy_(torch.from_numpy(golden[f"var/{prefix}/b"]))


def _residual(layer, golden, prefix):
    _linear(layer.dense, golden, f"{prefix}/dense")
    _linear(layer.residual, golden, f"{prefix}/residual")


def physnet_from_golden(golden, perturb: str = ""):
    """equinnp's PhysNet with the TF variables; ``perturb`` names one TF variable to change by 0.05."""
    golden = {k: np.array(golden[k]) for k in golden.files}
    if perturb:
        golden[f"var/{perturb}"].reshape(-1)[0] += 0.05
    z = golden["z"]
    elements = sorted(set(z.tolist()))
    cutoff = float(golden["hyper/sr_cut"])
    blocks = int(golden["hyper/num_blocks"])
    scale = golden["var/Escale"][elements]
    shift = golden["var/Eshift"][elements]
    pot = equinnp.build_potential(
        "physnet", cutoff=cutoff, elements=elements, dtype="float64", scale=scale.tolist(), shift=shift.tolist(),
        hidden_channels=int(golden["hyper/F"]), num_rbf=int(golden["hyper/K"]), num_modules=blocks,
        num_residual_atomic=int(golden["hyper/num_residual_atomic"]),
        num_residual_interaction=int(golden["hyper/num_residual_interaction"]),
        num_residual_output=int(golden["hyper/num_residual_output"]),
        postprocessing={"transforms": ["scale_shift", "uniform_charges"],
                        "energy_terms": [{"name": "coulomb", "shielding": "physnet", "switch_radius": cutoff / 2}]},
    )
    model = pot.model
    with torch.no_grad():
        model.embedding.weight.copy_(torch.from_numpy(golden["var/embeddings"][elements]))
        model.rbf.raw_centers.copy_(torch.from_numpy(golden["var/rbf_layer/centers"]))
        model.rbf.raw_widths.copy_(torch.from_numpy(golden["var/rbf_layer/widths"]))
        model.charge_scale.copy_(torch.from_numpy(golden["var/Qscale"][elements]))
        model.charge_shift.copy_(torch.from_numpy(golden["var/Qshift"][elements]))
        for m in range(blocks):
            block, prefix = model.interactions[m], f"interaction_block{m}"
            layer = block.interaction
            _linear(layer.distance_gate, golden, f"{prefix}/interaction_layer/k2f", bias=False)
            _linear(layer.dense_i, golden, f"{prefix}/interaction_layer/dense_i")
            _linear(layer.dense_j, golden, f"{prefix}/interaction_layer/dense_j")
            _linear(layer.dense, golden, f"{prefix}/interaction_layer/dense")
            layer.u.copy_(torch.from_numpy(golden[f"var/{prefix}/interaction_layer/u"]))
            for r, res in enumerate(layer.residuals):
                _residual(res, golden, f"{prefix}/interaction_layer/residual_layer{r}")
            for r, res in enumerate(block.residuals):
                _residual(res, golden, f"{prefix}/residual_layer{r}")
            out_block = model.output_blocks[m]
            for r, res in enumerate(out_block.residuals):
                _residual(res, golden, f"output_block{m}/residual_layer{r}")
            _linear(out_block.dense, golden, f"output_block{m}/dense_layer", bias=False)
    return pot.eval()


@pytest.fixture(scope="module")
def golden():
    return np.load(GOLDEN)


def _frame(golden, k):
    data = from_arrays(golden["z"], golden[f"frame{k}/pos"], dtype=torch.float64)
    data.charge = torch.tensor([float(golden[f"frame{k}/total_charge"])], dtype=torch.float64)
    return data


@pytest.mark.parametrize("k", [0, 1])
def test_same_numbers_as_the_tf_code(golden, k):
    pot = physnet_from_golden(golden)
    out = pot(_frame(golden, k))
    energy = float(golden[f"frame{k}/energy"])
    forces = golden[f"frame{k}/forces"]
    assert out.energy.item() == pytest.approx(energy, rel=1e-12)
    np.testing.assert_allclose(out.forces.detach().numpy(), forces, rtol=0, atol=1e-12 * np.abs(forces).max())
    np.testing.assert_allclose(out.charges.detach().numpy(), golden[f"frame{k}/charges"], rtol=0, atol=1e-12)
    assert pot.model.nonhierarchicality.item() == pytest.approx(float(golden[f"frame{k}/nhloss"]), rel=1e-12)
    assert out.energy_terms["coulomb"].abs().item() > 1e-3  # the electrostatics take part


@pytest.mark.parametrize("variable", ["rbf_layer/widths", "interaction_block1/interaction_layer/u",
                                      "interaction_block2/residual_layer1/residual/W", "output_block0/dense_layer/W",
                                      "Qshift"])
def test_a_changed_tf_variable_breaks_the_comparison(golden, variable):
    if variable == "Qshift":
        variable_index = int(golden["z"][0])  # a row that an element of the molecule reads
        golden_dict = {k: np.array(golden[k]) for k in golden.files}
        golden_dict["var/Qshift"][variable_index] += 0.05
        pot = physnet_from_golden(_Golden(golden_dict))
    else:
        pot = physnet_from_golden(golden, perturb=variable)
    out = pot(_frame(golden, 1))
    energy_off = abs(out.energy.item() - float(golden["frame1/energy"])) > 1e-6
    forces_off = np.abs(out.forces.detach().numpy() - golden["frame1/forces"]).max() > 1e-6
    assert energy_off or forces_off


class _Golden(dict):
    """A dict with the ``files`` attribute of an ``NpzFile``."""

    @property
    def files(self):
        return list(self)
