"""Twins of equinnp models in peer implementations, carrying the same weights."""

from __future__ import annotations

import math

import torch

__all__ = ["pyg_schnet_twin"]


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
