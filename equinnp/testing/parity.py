"""Twins of equinnp models in peer implementations, carrying the same weights."""

from __future__ import annotations

import math

import torch

__all__ = ["pyg_schnet_twin", "pyg_dimenetpp_twin", "pyg_dimenetpp_weights"]


def pyg_schnet_twin(model, interaction_graph, exact_constants: bool = False):
    """A ``torch_geometric.nn.models.SchNet`` with the weights of equinnp's ``SchNet`` ``model``.

    PyG embeds by atomic number (100 rows), equinnp by element index: row ``Z``
    of PyG's embedding gets equinnp's row for element ``Z``. PyG's own radius
    graph needs torch-cluster, so the neighbor search is injected as
    ``interaction_graph(pos, batch) -> (edge_index, edge_weight)``.

    With ``exact_constants`` the twin's two float32-rounded constants (ln 2 in its
    shifted softplus, its Gaussian centers and width) are recomputed in float64
    by PyG's own formulas from the twin's hyperparameters (not copied from
    equinnp's model), so that float64 results agree to round-off and a wrong
    radial basis in equinnp still shows.
    """
    from torch_geometric.nn.models import SchNet as PygSchNet

    hyper = model.hyperparameters
    twin = PygSchNet(
        hidden_channels=hyper["hidden_channels"],
        num_filters=hyper["num_filters"],
        num_interactions=hyper["num_interactions"],
        num_gaussians=hyper["num_gaussians"],
        cutoff=hyper["cutoff"],
        interaction_graph=interaction_graph,
    ).to(next(model.parameters()).dtype)
    with torch.no_grad():
        twin.embedding.weight.zero_()
        for k, z in enumerate(model.elements):
            twin.embedding.weight[z] = model.embedding.weight[k]
        for theirs, mine in zip(twin.interactions, model.interactions):
            theirs.mlp[0].load_state_dict(mine.conv.filter_net[0].state_dict())
            theirs.mlp[2].load_state_dict(mine.conv.filter_net[2].state_dict())
            theirs.conv.lin1.load_state_dict(mine.conv.lin1.state_dict())
            theirs.conv.lin2.load_state_dict(mine.conv.lin2.state_dict())
            theirs.lin.load_state_dict(mine.lin.state_dict())
        twin.lin1.load_state_dict(model.lin1.state_dict())
        twin.lin2.load_state_dict(model.lin2.state_dict())
    if exact_constants:
        for module in twin.modules():
            if type(module).__name__ == "ShiftedSoftplus":
                module.shift = math.log(2.0)
        # torch_geometric's GaussianSmearing(0, cutoff, num_gaussians), evaluated in float64
        offset = torch.linspace(0.0, hyper["cutoff"], hyper["num_gaussians"], dtype=torch.float64)
        twin.distance_expansion.offset = offset.to(twin.distance_expansion.offset.device)
        twin.distance_expansion.coeff = -0.5 / (offset[1] - offset[0]).item() ** 2
    return twin.eval()


def pyg_dimenetpp_twin(model, exact_normalizer: bool = False):
    """A ``torch_geometric.nn.models.DimeNetPlusPlus`` with the weights of equinnp's ``DimeNetPlusPlus`` ``model``.

    The parameter names are the same on both sides except the embedding: PyG's
    has 95 rows by atomic number, equinnp's one per element. PyG's ``forward``
    calls ``radius_graph`` (pyg-lib) and ``triplets`` (torch-sparse); callers
    replace those module-level functions where the compiled packages are absent.

    Under NumPy >= 2, PyG's ``bessel_basis`` computes the normalisers
    :math:`N_{ln}` in float32 arithmetic (its float32 roots promote the whole
    expression, NEP 50): 2e-7 relative from their float64 value, which moves
    float64 energies by ~1e-8. With ``exact_normalizer`` the twin is built with
    PyG's own formula evaluated in float64 (its ``Jn`` is given the float32
    roots as float64 numbers); the roots stay float32-rounded.
    """
    import numpy as np
    import torch_geometric.nn.models.dimenet_utils as utils
    from torch_geometric.nn.models import DimeNetPlusPlus as PygDimeNetPlusPlus

    h = model.hyperparameters
    original_jn = utils.Jn
    if exact_normalizer:
        utils.Jn = lambda r, n: original_jn(np.float64(r), n)
    try:
        twin = PygDimeNetPlusPlus(
            hidden_channels=h["hidden_channels"], out_channels=1, num_blocks=h["num_blocks"],
            int_emb_size=h["int_emb_size"], basis_emb_size=h["basis_emb_size"], out_emb_channels=h["out_emb_channels"],
            num_spherical=h["num_spherical"], num_radial=h["num_radial"], cutoff=h["cutoff"],
            envelope_exponent=h["envelope_exponent"], num_before_skip=h["num_before_skip"],
            num_after_skip=h["num_after_skip"], num_output_layers=h["num_output_layers"],
        )
    finally:
        utils.Jn = original_jn
    return pyg_dimenetpp_weights(twin.to(next(model.parameters()).dtype), model)


def pyg_dimenetpp_weights(twin, model):
    """Load equinnp ``model``'s weights into the PyG ``twin`` (same dtype); returns it in eval mode."""
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("sbf_radial.")}
    table = torch.zeros(95, state["emb.emb.weight"].shape[1], dtype=state["emb.emb.weight"].dtype)
    for k, z in enumerate(model.elements):
        table[z] = state["emb.emb.weight"][k]
    state["emb.emb.weight"] = table
    twin.load_state_dict(state, strict=True)
    return twin.eval()
