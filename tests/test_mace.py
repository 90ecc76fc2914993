"""MACE: agreement with mace-torch, the product basis, internal equivariance.

``tests/data/mace_golden.pt`` was written by ``benchmarks/peers/export_mace_golden.py``
with mace-torch 0.3.16 (random weights, float64, rMD17 ethanol and aspirin).
"""

import os

import pytest
import torch
from e3nn import o3
from hypothesis import given

import equinnp
from equinnp.data import from_arrays
from equinnp.models.base import Graph
from equinnp.models.mace import MACE
from equinnp.neighbors import radius_graph
from equinnp.nn.irreps import to_channels
from equinnp.nn.symmetric_contraction import SymmetricContraction
from equinnp.testing.strategies import molecules, rotations

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "mace_golden.pt")
ELEMENTS = [1, 6, 7, 8]


def _D(irreps, R):
    """Wigner D of ``irreps`` for the orthogonal matrix R, computed in float64 throughout."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # e3nn builds D from generators in the default dtype
    try:
        return irreps.D_from_matrix(R.double())
    finally:
        torch.set_default_dtype(default)


# ------------------------------------------------------------------ mace-torch weights


def _sym(U: torch.Tensor, nu: int, has_m: bool) -> torch.Tensor:
    """Symmetrize U over its ν feature slots; returns [(2L+1)*D^ν, K]."""
    import itertools

    if not has_m:
        U = U.unsqueeze(0)
    K = U.shape[-1]
    perms = list(itertools.permutations(range(1, nu + 1)))
    S = sum(U.permute(0, *p, nu + 1) for p in perms) / len(perms)
    return S.reshape(-1, K)


def contraction_weights(sc: SymmetricContraction, sd: dict, prefix: str, correlation: int):
    """mace-torch's symmetric-contraction weights expressed in this module's basis.

    Both bases span the symmetric equivariant maps of each power ν; solve
    Sym(V) X = Sym(U) for X (exact: the residual is checked) and map w' = X w.
    """
    mapped = []
    for t, (_, ir) in enumerate(sc.irreps_out):
        orders = torch.tensor(sc.path_orders[t])
        w_new = torch.zeros(sc.num_elements, len(orders), sc.channels, dtype=torch.float64)
        for nu in range(1, correlation + 1):
            U = sd[f"{prefix}.contractions.{t}.U_matrix_{nu}"].double()
            w = sd[f"{prefix}.contractions.{t}.weights_max"] if nu == correlation else sd[f"{prefix}.contractions.{t}.weights.{correlation - 1 - nu}"]
            theirs = _sym(U, nu, ir.l > 0)  # [(2L+1) D^ν, K]
            mine = _sym(sc.dense_basis(t, nu), nu, True)  # [(2L+1) D^ν, P_ν]
            if mine.shape[1] == 0:
                assert theirs.abs().max() < 1e-12
                continue
            X = torch.linalg.lstsq(mine, theirs).solution  # [P_ν, K]
            residual = (mine @ X - theirs).abs().max().item()
            assert residual < 1e-12, f"mace-torch basis not in this basis' span (ν={nu}, {ir}): {residual:.2e}"
            # this basis is minimal: as many functions as mace-torch's symmetrized U has independent ones
            assert torch.linalg.matrix_rank(theirs).item() == mine.shape[1]
            w_new[:, orders == nu] = torch.einsum("pk,ekc->epc", X, w.double())
        mapped.append(w_new)
    return mapped


def load_mace_torch(model: MACE, sd: dict, correlation: int) -> None:
    """Copy a mace-torch ``ScaleShiftMACE`` state_dict (same hyperparameters) into ``model``."""
    with torch.no_grad():
        model.node_embedding.weight.copy_(sd["node_embedding.linear.weight"])
        model.radial_basis.freqs.copy_(sd["radial_embedding.bessel_fn.bessel_weights"])
        for t, (interaction, product) in enumerate(zip(model.interactions, model.products)):
            p = f"interactions.{t}"
            for name in ("linear_up", "linear", "skip_tp"):
                getattr(interaction, name).weight.copy_(sd[f"{p}.{name}.weight"])
            layers = [m for m in interaction.radial_mlp if hasattr(m, "weight")]
            for k, layer in enumerate(layers):
                layer.weight.copy_(sd[f"{p}.conv_tp_weights.layer{k}.weight"])
            # mace-torch's edge vector is pos[i] - pos[j] = -r_ij: Y_l changes sign for odd l
            tp, sign, start = interaction.conv_tp, [], 0
            for ins in tp.instructions:
                n = int(torch.tensor(ins.path_shape).prod())
                sign += [(-1.0) ** tp.irreps_in2[ins.i_in2].ir.l] * n
            layers[-1].weight.mul_(torch.tensor(sign, dtype=layers[-1].weight.dtype))
            mapped = contraction_weights(product.symmetric_contraction, sd, f"products.{t}.symmetric_contractions", correlation)
            for weight, w in zip(product.symmetric_contraction.weights, mapped):
                weight.copy_(w)
            product.linear.weight.copy_(sd[f"products.{t}.linear.weight"])
        model.readouts[0].weight.copy_(sd["readouts.0.linear.weight"])
        model.readouts[-1][0].weight.copy_(sd[f"readouts.{len(model.readouts) - 1}.linear_1.weight"])
        model.readouts[-1][2].weight.copy_(sd[f"readouts.{len(model.readouts) - 1}.linear_2.weight"])


@pytest.fixture(scope="module")
def golden():
    return torch.load(GOLDEN, weights_only=True)


@pytest.fixture(scope="module")
def mapped_potential(golden):
    return potential_from_golden(golden)


def potential_from_golden(golden) -> equinnp.Potential:
    """equinnp's MACE with the golden file's mace-torch weights, scale, shift and E0."""
    c = golden["config"]
    model = MACE(
        cutoff=c["r_max"],
        elements=c["atomic_numbers"],
        hidden_irreps=c["hidden_irreps"],
        max_ell=c["max_ell"],
        correlation=c["correlation"],
        num_interactions=c["num_interactions"],
        num_bessel=c["num_bessel"],
        num_polynomial_cutoff=c["num_polynomial_cutoff"],
        radial_mlp=c["radial_MLP"],
        readout_mlp=o3.Irreps(c["MLP_irreps"]).dim,
        avg_num_neighbors=c["avg_num_neighbors"],
    ).double()
    load_mace_torch(model, golden["state_dict"], c["correlation"])
    pot = equinnp.Potential(
        model,
        architecture="mace",
        scale=c["atomic_inter_scale"],
        shift=c["atomic_inter_shift"],
        reference_energies=dict(zip(c["atomic_numbers"], c["atomic_energies"])),
    ).double()
    return pot.eval()


def test_matches_mace_torch_energies_forces_and_features(golden, mapped_potential):
    e0 = dict(zip(golden["config"]["atomic_numbers"], golden["config"]["atomic_energies"]))
    for k in range(len(golden["energy"])):
        z, pos = golden["z"][k], golden["pos"][k]
        out = mapped_potential(from_arrays(z, pos, dtype=torch.float64))
        reference_e0 = sum(e0[int(a)] for a in z)
        interaction = golden["energy"][k] - reference_e0  # compare the learned part, not E0
        assert abs(out.energy.item() - golden["energy"][k].item()) <= 1e-10 * abs(interaction.item())
        forces = golden["forces"][k]
        assert (out.forces - forces).abs().max() <= 1e-10 * forces.abs().max()

        graph = _graph(mapped_potential, from_arrays(z, pos, dtype=torch.float64))
        for (A, h), reference in zip(mapped_potential.model.features(graph), golden["features"][k]):
            assert (h - reference).abs().max() <= 1e-10 * reference.abs().max()


def test_mace_torch_weights_are_not_trivially_equal(golden, mapped_potential):
    """The comparison above can fail: a changed weight changes energy and forces."""
    z, pos = golden["z"][3], golden["pos"][3]
    model = mapped_potential.model
    weight = model.products[0].symmetric_contraction.weights[0]
    original = weight.detach().clone()
    with torch.no_grad():
        weight[:, -1] += 0.5  # one third-order invariant
    try:
        out = mapped_potential(from_arrays(z, pos, dtype=torch.float64))
        assert (out.forces - golden["forces"][3]).abs().max() > 1e-4
    finally:
        with torch.no_grad():
            weight.copy_(original)


# ------------------------------------------------------------------ the product basis


def _dense_output(sc: SymmetricContraction, x, species):
    xc = to_channels(x, sc.irreps_in)
    outs = []
    for t in range(len(sc.irreps_out)):
        total = 0
        orders = torch.tensor(sc.path_orders[t])
        for nu in range(1, sc.correlation + 1):
            U = sc.dense_basis(t, nu)
            sub = "ijkl"[:nu]
            f = torch.einsum("M" + sub + "p," + ",".join("nc" + s for s in sub) + "->ncMp", U, *([xc] * nu))
            total = total + torch.einsum("ncMp,npc->ncM", f, sc.weights[t][species][:, orders == nu])
        outs.append(total.reshape(x.shape[0], -1))
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize("irreps_in,irreps_out,correlation", [("3x0e+3x1o+3x2e", "3x0e+3x1o", 3), ("2x0e+2x1o+2x2e+2x3o", "2x0e+2x1o+2x2e", 2), ("2x0e+2x1o", "2x0e", 4)])
def test_symmetric_contraction_equals_dense_generalized_cg(irreps_in, irreps_out, correlation):
    """Path-by-path evaluation equals the dense contraction with U (independent einsum)."""
    torch.manual_seed(0)
    sc = SymmetricContraction(irreps_in, irreps_out, correlation, num_elements=3).double()
    x = torch.randn(6, sc.irreps_in.dim, dtype=torch.float64)
    species = torch.tensor([0, 1, 2, 2, 1, 0])
    expected = _dense_output(sc, x, species)
    assert (sc(x, species) - expected).abs().max() <= 1e-12 * expected.abs().max()


def test_symmetric_contraction_basis_counts():
    """Counts of independent symmetric invariants of A = 0e + 1o + 2e + 3o (one channel), by hand:
    ν=1: 1; ν=2: one per l (4); ν=3: 0·(l,l) for l=1,2,3 (3), 2e^3 (1), 1o1o2e and 3o3o2e (2), 1o2e3o (1) = 8."""
    sc = SymmetricContraction("1x0e+1x1o+1x2e+1x3o", "1x0e", 3, num_elements=1)
    assert [sc.path_orders[0].count(nu) for nu in (1, 2, 3)] == [1, 4, 8]


def test_symmetric_contraction_is_equivariant():
    torch.manual_seed(1)
    sc = SymmetricContraction("2x0e+2x1o+2x2e+2x3o", "2x0e+2x1o+2x2e", 3, num_elements=2).double()
    x = torch.randn(4, sc.irreps_in.dim, dtype=torch.float64)
    species = torch.tensor([0, 1, 1, 0])
    R = -o3.rand_matrix(dtype=torch.float64)  # improper
    rotated = sc(x @ _D(sc.irreps_in, R).T, species)
    expected = sc(x, species) @ _D(sc.irreps_out, R).T
    assert (rotated - expected).abs().max() <= 1e-12 * expected.abs().max()


# ------------------------------------------------------------------ the model


def _graph(pot, data) -> Graph:
    pos = data.pos
    nl = radius_graph(pos, pot.cutoff)
    j, i = nl.edge_index
    edge_vec = pos[j] - pos[i]  # [E, 3]
    return Graph(
        species=pot.species_of_z[data.z],
        z=data.z,
        pos=pos,
        edge_index=nl.edge_index,
        edge_vec=edge_vec,
        edge_length=edge_vec.norm(dim=-1),
        batch=torch.zeros_like(data.z),
        num_graphs=1,
    )


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    pot = equinnp.build_potential("mace", cutoff=4.0, elements=ELEMENTS, dtype="float64", **MACE.tiny)
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return pot.eval()


@given(data=molecules(ELEMENTS, 3, 8), R=rotations())
def test_internal_features_are_equivariant(tiny, data, R):
    """A (first interaction) and h (first product) of every layer rotate with their irreps' D(R)."""
    model = tiny.model
    before = model.features(_graph(tiny, data))
    rotated = data.clone()
    rotated.pos = data.pos @ R.T
    after = model.features(_graph(tiny, rotated))
    for t, ((A, h), (A_rot, h_rot)) in enumerate(zip(before, after)):
        for x, x_rot, irreps in ((A, A_rot, model.irreps_A[t]), (h, h_rot, model.irreps_h[t])):
            expected = x @ _D(irreps, R).T
            assert (x_rot - expected).abs().max() <= 1e-9 * max(expected.abs().max().item(), 1e-12)
    vectors = before[0][1][:, model.irreps_h[0].slices()[1]]
    assert vectors.abs().max() > 1e-6  # the l=1 features exist and are checked, not zero


def test_avg_num_neighbors_is_a_saved_buffer(tiny, rmd17_frames, tmp_path):
    data = rmd17_frames[0]
    energy = tiny(data).energy
    tiny.model.set_avg_num_neighbors(11.0)
    try:
        assert not torch.allclose(tiny(data).energy, energy)
        tiny.save(tmp_path / "mace.pt")
        loaded = equinnp.load_potential(tmp_path / "mace.pt").double()
        assert loaded.model.avg_num_neighbors.item() == 11.0
        assert torch.allclose(loaded(data).energy, tiny(data).energy, rtol=1e-12)
    finally:
        tiny.model.set_avg_num_neighbors(1.0)
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        tiny.model.set_avg_num_neighbors(0.0)


def test_invariant_variant_and_paper_defaults_build(rmd17_frames):
    from equinnp.testing import contract

    torch.manual_seed(0)
    pot = equinnp.build_potential("mace", cutoff=4.0, elements=ELEMENTS, dtype="float64", hidden_irreps="8x0e", max_ell=3, correlation=3, radial_mlp=[8])
    R = o3.rand_matrix(dtype=torch.float64)
    contract.check_rotation(pot.eval(), rmd17_frames[3], R)
    paper = MACE()
    assert str(paper.hidden_irreps) == "128x0e+128x1o"
    assert [str(i) for i in paper.irreps_h] == ["128x0e+128x1o", "128x0e"]
    assert str(paper.irreps_A[1]) == "128x0e+128x1o+128x2e+128x3o"


@pytest.mark.parametrize("bad", [dict(hidden_irreps="8x0e+4x1o"), dict(hidden_irreps="8x1o"), dict(num_interactions=0), dict(avg_num_neighbors=-1.0)])
def test_bad_hyperparameters_raise(bad):
    with pytest.raises(ValueError):
        MACE(**{**MACE.tiny, **bad})


def test_fused_neighbor_sum_equals_e3nn_tensor_product_per_edge():
    """The atomic basis (padded neighbor table, CG per atom) equals e3nn's per-edge TensorProduct,
    summed over neighbors, then the e3nn Linear; the unfused ``message`` path too."""
    from equinnp.nn.irreps import from_components, refresh_wigner_3j
    from equinnp.nn.mace_blocks import AtomicBasis
    from equinnp.nn.scatter import scatter_sum

    torch.manual_seed(3)
    sh_irreps = o3.Irreps.spherical_harmonics(2)
    block = AtomicBasis("4x0e+4x1o", sh_irreps, "4x0e+4x1o+4x2e", "4x0e+4x1o", 3, 5, [8]).double()
    N = 7
    edge_index = torch.tensor([[1, 2, 3, 0, 0, 4, 6, 5, 2], [0, 0, 0, 1, 2, 2, 2, 6, 5]])  # degrees 3,1,3,0,0,1,1
    h = torch.randn(N, block.irreps_node.dim, dtype=torch.float64)
    attrs = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1, 2, 0]), 3).double()
    sh = o3.spherical_harmonics(sh_irreps, torch.randn(9, 3, dtype=torch.float64), normalize=True, normalization="component")
    radial = torch.randn(9, 5, dtype=torch.float64)
    avg = torch.tensor(2.5, dtype=torch.float64)

    weights = block.radial_mlp(radial)
    tp = o3.TensorProduct(block.irreps_node, sh_irreps, block.irreps_mid, block.instructions, shared_weights=False, internal_weights=False)
    tp = tp.double()
    refresh_wigner_3j(tp)  # e3nn keeps float32-rounded coefficients after .double()
    per_edge = tp(block.linear_up(h)[edge_index[0]], sh, weights)  # e3nn, [E, irreps_mid.dim]
    expected = block.linear(scatter_sum(per_edge, edge_index[1], N)) / avg  # [N, irreps_target.dim]

    order = torch.argsort(edge_index[1] * N + edge_index[0])
    rowptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(edge_index[1], minlength=N).cumsum(0)])
    adjacency = torch.sparse_csr_tensor(rowptr, edge_index[0][order], torch.ones(9, dtype=torch.float64), size=(N, N))
    fused, _ = block(h, attrs, adjacency, sh[order], radial[order], avg)
    unfused, _ = block(h, attrs, edge_index, sh, radial, avg)
    for A in (fused, unfused):
        assert (from_components(A, block.irreps_target) - expected).abs().max() <= 1e-12 * expected.abs().max()
