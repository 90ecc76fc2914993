"""MACE: agreement with mace-torch, the product basis, internal equivariance, isolated atoms,
the average neighbor count.

``tests/data/mace_golden.pt`` (first layer residual) and ``tests/data/mace_golden_default.pt``
(first layer ``RealAgnosticInteractionBlock``, mace-torch's ``MACE`` layout, with an
isolated carbon atom among the structures) were written by
``benchmarks/peers/export_mace_golden.py`` with mace-torch 0.3.16 (random weights,
float64, rMD17 ethanol and aspirin).
"""

import os

import pytest
import torch
from e3nn import o3
from hypothesis import given

import equinnp
from equinnp.data import DatasetStatistics, from_arrays
from equinnp.models.base import Graph
from equinnp.models.mace import MACE
from equinnp.neighbors import radius_graph
from equinnp.nn.irreps import to_channels
from equinnp.nn.symmetric_contraction import SymmetricContraction
from equinnp.testing.strategies import molecules, rotations
from equinnp.testing.wigner import wigner_D

DATA = os.path.join(os.path.dirname(__file__), "data")
GOLDEN = {"residual": os.path.join(DATA, "mace_golden.pt"), "default": os.path.join(DATA, "mace_golden_default.pt")}
LEGACY = os.path.join(DATA, "legacy")
ELEMENTS = [1, 6, 7, 8]
E0 = {1: -13.6, 6: -1030.5, 7: -1485.3, 8: -2042.6}


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
    """Copy a mace-torch ``ScaleShiftMACE`` state_dict (same hyperparameters and layout) into ``model``.

    The element-dependent ``skip_tp`` has the same irreps and weight layout in both
    codes in either layout (on h in a residual block, on the message in mace-torch's
    ``RealAgnosticInteractionBlock``), so its weights are copied as they are.
    """
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


def _first_layer_is_residual(golden) -> bool:
    return golden["config"]["interaction"].startswith("RealAgnosticResidualInteractionBlock")


@pytest.fixture(scope="module", params=sorted(GOLDEN))
def golden(request):
    return torch.load(GOLDEN[request.param], weights_only=True)


@pytest.fixture(scope="module")
def mapped_potential(golden):
    return potential_from_golden(golden)


def potential_from_golden(golden) -> equinnp.Potential:
    """equinnp's MACE with the golden file's mace-torch weights, layout, scale, shift and E0."""
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
        residual_first_layer=_first_layer_is_residual(golden),
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


def test_golden_files_have_the_layouts_they_claim():
    residual, default = (torch.load(GOLDEN[k], weights_only=True) for k in ("residual", "default"))
    assert _first_layer_is_residual(residual) and not _first_layer_is_residual(default)
    assert default["config"]["atomic_inter_shift"] == 0.0
    assert default["molecule"][-1] == "isolated C" and default["edge_index"][-1].shape == (2, 0)
    assert default["energy"][-1].item() == E0[6]  # mace-torch's own: no neighbors, energy = E0 exactly


def test_matches_mace_torch_energies_forces_and_features(golden, mapped_potential):
    for k in range(len(golden["energy"])):
        z, pos = golden["z"][k], golden["pos"][k]
        out = mapped_potential(from_arrays(z, pos, dtype=torch.float64))
        # 1e-10 eV on totals of ~1e4 eV (float64 spacing there: 4e-12 eV)
        assert abs(out.energy.item() - golden["energy"][k].item()) <= 1e-10
        if golden["molecule"][k] == "isolated C":
            assert out.energy.item() == golden["energy"][k].item()  # both exactly E0
        forces = golden["forces"][k]
        assert (out.forces - forces).abs().max() <= 1e-12 * forces.abs().max()

        graph = _graph(mapped_potential, from_arrays(z, pos, dtype=torch.float64))
        assert torch.equal(graph.edge_index, golden["edge_index"][k])  # the same neighbor list
        for (A, h), reference in zip(mapped_potential.model.features(graph), golden["features"][k]):
            assert (h - reference).abs().max() <= 1e-12 * reference.abs().max()


def test_mace_torch_weights_are_not_trivially_equal(golden, mapped_potential):
    """The comparison above can fail: a changed weight changes energy, forces and features by
    far more than its tolerances (1e-10 eV, 1e-12 relative)."""
    z, pos = golden["z"][3], golden["pos"][3]
    model = mapped_potential.model
    weight = model.products[0].symmetric_contraction.weights[0]
    original = weight.detach().clone()
    with torch.no_grad():
        weight[:, -1] += 0.5  # one third-order invariant
    try:
        data = from_arrays(z, pos, dtype=torch.float64)
        out = mapped_potential(data)
        forces = golden["forces"][3]
        assert abs(out.energy.item() - golden["energy"][3].item()) > 1e-6
        assert (out.forces - forces).abs().max() > 1e-5 * forces.abs().max()
        h = model.features(_graph(mapped_potential, data))[0][1]
        assert (h - golden["features"][3][0]).abs().max() > 1e-5 * golden["features"][3][0].abs().max()
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
    rotated = sc(x @ wigner_D(sc.irreps_in, R).T, species)
    expected = sc(x, species) @ wigner_D(sc.irreps_out, R).T
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


def _randomized(pot, seed=0, scale=0.1):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in pot.parameters():
            p.add_(scale * torch.randn_like(p))
    return pot.eval()


@pytest.fixture(scope="module", params=[False, True], ids=["default", "residual_first_layer"])
def tiny(request):
    torch.manual_seed(0)
    pot = equinnp.build_potential(
        "mace", cutoff=4.0, elements=ELEMENTS, dtype="float64", residual_first_layer=request.param, **MACE.tiny
    )
    return _randomized(pot)


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
            expected = x @ wigner_D(irreps, R).T
            assert (x_rot - expected).abs().max() <= 1e-12 * max(expected.abs().max().item(), 1e-12)
    vectors = before[0][1][:, model.irreps_h[0].slices()[1]]
    assert vectors.abs().max() > 1e-6  # the l=1 features exist and are checked, not zero


def test_edges_in_any_order_give_the_same_energies(tiny, rmd17_frames):
    """Graph edges come sorted by center (the CSR order, used as is); a graph built by hand in
    another order is sorted first, to the same numbers up to the order of the neighbor sums."""
    graph = _graph(tiny, rmd17_frames[3])
    assert bool((graph.edge_index[1][1:] >= graph.edge_index[1][:-1]).all())
    shuffle = torch.randperm(graph.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    shuffled = graph._replace(edge_index=graph.edge_index[:, shuffle], edge_vec=graph.edge_vec[shuffle],
                              edge_length=graph.edge_length[shuffle])
    expected = tiny.model(graph).energy
    torch.testing.assert_close(tiny.model(shuffled).energy, expected, rtol=0, atol=1e-12 * expected.abs().max().item())


def test_wigner_D_is_exact():
    """equinnp.testing.wigner.wigner_D: e3nn's D_from_matrix up to e3nn's own rounding, and an
    exact orthogonal representation (homomorphism), parity included."""
    irreps = o3.Irreps("2x0e + 0o + 1o + 1e + 2x2e + 2o + 3o + 4e")
    generator = torch.Generator().manual_seed(0)
    near_identity = o3.axis_angle_to_matrix(torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64), torch.tensor(1e-3, dtype=torch.float64))
    nearer = o3.axis_angle_to_matrix(torch.tensor([-0.2, 0.9, 0.1], dtype=torch.float64), torch.tensor(1e-8, dtype=torch.float64))
    matrices = [o3.rand_matrix(dtype=torch.float64) for _ in range(6)] + [near_identity, nearer, torch.eye(3, dtype=torch.float64)]
    matrices += [-R for R in matrices]
    default = torch.get_default_dtype()
    for R1 in matrices:
        D1 = wigner_D(irreps, R1)
        torch.set_default_dtype(torch.float64)  # e3nn builds its generators in the default dtype
        try:
            e3nn_D = irreps.D_from_matrix(R1)
        finally:
            torch.set_default_dtype(default)
        assert (D1 - e3nn_D).abs().max() < 1e-7  # e3nn's error: up to ~2e-8 near the identity (Euler angles)
        assert (D1 @ D1.T - torch.eye(irreps.dim, dtype=torch.float64)).abs().max() < 1e-13
        assert (wigner_D("1o", R1) - R1).abs().max() < 1e-14  # the vector block is R itself
        R2 = matrices[int(torch.randint(len(matrices), (1,), generator=generator))]
        assert (wigner_D(irreps, R1 @ R2) - D1 @ wigner_D(irreps, R2)).abs().max() < 1e-13
    inversion = wigner_D(irreps, -torch.eye(3, dtype=torch.float64))
    parities = torch.cat([torch.full((ir.dim,), float(ir.p), dtype=torch.float64) for mul, ir in irreps for _ in range(mul)])
    assert torch.equal(inversion.diagonal().round(), parities)
    with pytest.raises(ValueError, match="orthogonal"):
        wigner_D(irreps, 2 * torch.eye(3))


def test_isolated_atom_energy_is_its_reference_energy():
    """Default layout: an atom without neighbors has zero message, so its first-layer
    A (element map of the message) and h are 0, the later residuals FCTP(0) are 0 and
    every readout gives 0: E = E0 exactly, whatever the weights. With a residual first
    layer, h = FCTP(embedding(z), z) != 0 and the readouts add an element-dependent energy."""
    atom = from_arrays([6], [[0.0, 0.0, 0.0]], dtype=torch.float64)
    deviation = {}
    for residual in (False, True):
        torch.manual_seed(1)
        pot = equinnp.build_potential(
            "mace", cutoff=4.0, elements=ELEMENTS, dtype="float64", reference_energies=E0, scale=1.3, shift=0.0,
            residual_first_layer=residual, **MACE.tiny,
        )
        _randomized(pot, seed=1, scale=0.3)
        out = pot(atom)
        deviation[residual] = out.energy.item() - E0[6]
        assert torch.equal(out.forces, torch.zeros(1, 3, dtype=torch.float64))
    assert deviation[False] == 0.0
    assert abs(deviation[True]) > 1e-4


def test_residual_first_layer_keeps_the_saved_layout_of_0_1_0():
    """Files saved by equinnp 0.1.0 (no ``residual_first_layer`` in their config) load into
    ``residual_first_layer=True`` with the same state_dict keys and shapes and give their outputs."""
    import numpy as np

    assert MACE.legacy_hyperparameters == {"residual_first_layer": True}
    outputs = torch.load(os.path.join(LEGACY, "outputs_0.1.0.pt"), weights_only=True)
    frames = np.load(os.path.join(DATA, "rmd17_frames.npz"))
    structures = [from_arrays(frames[f"{m}_z"], frames[f"{m}_pos"][0], dtype=torch.float64) for m in ("ethanol", "aspirin")]
    for dtype in ("float32", "float64"):
        payload = torch.load(os.path.join(LEGACY, f"mace_{dtype}_0.1.0.pt"), weights_only=True)
        hyperparameters = payload["config"]["hyperparameters"]
        assert "residual_first_layer" not in hyperparameters
        pot = equinnp.build_potential("mace", dtype=dtype, **hyperparameters, **MACE.legacy_hyperparameters)
        state = {k: v for k, v in payload["state_dict"].items()}
        ours = pot.state_dict()
        assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in state.items()}
        pot.load_state_dict(state)
        assert pot.model.avg_num_neighbors.item() == 6.5  # the saved value, not the constructor's 1.0
        pot.eval()
        tolerance = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-6, atol=1e-6)  # float32: summation order
        for data, expected in zip(structures, outputs[f"mace_{dtype}"]):
            out = pot(data.clone())
            torch.testing.assert_close(out.energy, expected["energy"], **tolerance)
            torch.testing.assert_close(out.forces, expected["forces"], **tolerance)
        with pytest.raises(RuntimeError, match="size mismatch"):  # the default layout is a different network
            equinnp.build_potential("mace", dtype=dtype, **hyperparameters).load_state_dict(state)


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
        tiny.model.set_avg_num_neighbors(MACE.tiny["avg_num_neighbors"])
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        tiny.model.set_avg_num_neighbors(0.0)


def test_avg_num_neighbors_is_fitted_or_refuses_to_run(rmd17_frames, tmp_path):
    hyperparameters = {k: v for k, v in MACE.tiny.items() if k != "avg_num_neighbors"}
    pot = equinnp.build_potential("mace", cutoff=4.0, elements=ELEMENTS, dtype="float64", **hyperparameters)
    assert pot.model.hyperparameters["avg_num_neighbors"] is None
    with pytest.raises(ValueError, match=r"avg_num_neighbors.*pot\.fit\(dataset\).*avg_num_neighbors=") as error:
        pot(rmd17_frames[0])
    assert "not set" in str(error.value)

    unfitted = tmp_path / "unfitted.pt"
    pot.save(unfitted)  # an unfitted model saves and loads, and still refuses to run
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        equinnp.load_potential(unfitted).double()(rmd17_frames[0])

    statistics = DatasetStatistics(rmd17_frames)
    expected = statistics.avg_num_neighbors(4.0)
    assert pot.model.fit(statistics) == {"avg_num_neighbors": expected}
    assert pot.model.avg_num_neighbors.item() == pytest.approx(expected, rel=1e-15)
    energy = pot(rmd17_frames[0]).energy
    pot.save(tmp_path / "fitted.pt")
    loaded = equinnp.load_potential(tmp_path / "fitted.pt").double()
    assert loaded.model.hyperparameters["avg_num_neighbors"] is None
    torch.testing.assert_close(loaded(rmd17_frames[0]).energy, energy, rtol=1e-14, atol=0)

    # loading an unfitted state into a fitted model makes it refuse again (checked once, at the next call)
    loaded.load_state_dict(torch.load(unfitted, weights_only=True)["state_dict"])
    with pytest.raises(ValueError, match="avg_num_neighbors"):
        loaded(rmd17_frames[0])
    loaded.model.avg_num_neighbors.fill_(5.0)  # a value written into the buffer is accepted
    loaded(rmd17_frames[0])

    given = equinnp.build_potential("mace", cutoff=4.0, elements=ELEMENTS, dtype="float64", **{**hyperparameters, "avg_num_neighbors": 3.0})
    assert given.model.fit(statistics) == {}
    assert given.model.avg_num_neighbors.item() == 3.0


def test_invariant_variant_and_paper_defaults_build(rmd17_frames):
    from equinnp.testing import contract

    torch.manual_seed(0)
    pot = equinnp.build_potential(
        "mace", cutoff=4.0, elements=ELEMENTS, dtype="float64", hidden_irreps="8x0e", max_ell=3, correlation=3, radial_mlp=[8], avg_num_neighbors=8.0
    )
    R = o3.rand_matrix(dtype=torch.float64)
    contract.check_rotation(pot.eval(), rmd17_frames[3], R)
    paper = MACE()
    assert str(paper.hidden_irreps) == "128x0e+128x1o"
    assert [str(i) for i in paper.irreps_h] == ["128x0e+128x1o", "128x0e"]
    assert str(paper.irreps_A[1]) == "128x0e+128x1o+128x2e+128x3o"
    assert not paper.residual_first_layer and paper.hyperparameters["avg_num_neighbors"] is None


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

    # without residual: e3nn's FullyConnectedTensorProduct of that A with the element one-hot
    plain = AtomicBasis("4x0e+4x1o", sh_irreps, "4x0e+4x1o+4x2e", None, 3, 5, [8], residual=False).double()
    plain.load_state_dict({k: v for k, v in block.state_dict().items() if not k.startswith("skip_tp.")} | {
        k: v for k, v in plain.state_dict().items() if k.startswith("skip_tp.")
    })
    with torch.no_grad():
        plain.skip_tp.weight.normal_()
    refresh_wigner_3j(plain.skip_tp)
    expected_plain = plain.skip_tp(expected, attrs)  # e3nn, [N, irreps_target.dim]
    species = attrs.argmax(dim=1)
    for adj, s_, r_ in ((adjacency, sh[order], radial[order]), (edge_index, sh, radial)):
        for given_species in (None, species):  # multiplied by the one-hot, or weights selected
            A, s = plain(h, attrs, adj, s_, r_, avg, given_species)
            assert s is None
            assert (from_components(A, plain.irreps_target) - expected_plain).abs().max() <= 1e-12 * expected_plain.abs().max()
    soft = torch.softmax(torch.randn(N, 3, dtype=torch.float64), dim=-1)  # any node attributes, not only one-hot
    A, _ = plain(h, soft, adjacency, sh[order], radial[order], avg)
    reference = plain.skip_tp(expected, soft)
    assert (from_components(A, plain.irreps_target) - reference).abs().max() <= 1e-12 * reference.abs().max()


def test_float32_matches_mace_torch_to_float32_round_off(golden):
    """The same weights in float32: interaction energies (E - ΣE0) within 5e-6 relative,
    forces within 2e-5 of the largest component (float64 reference energies keep totals exact)."""
    pot = potential_from_golden(golden).float()
    for k in range(len(golden["energy"])):
        data = from_arrays(golden["z"][k], golden["pos"][k], dtype=torch.float64)
        out = pot(data)
        interaction = golden["energy"][k] - pot.reference_energies.per_atom(pot._species(data.z)).sum()
        assert (out.energy - golden["energy"][k]).abs().item() <= 5e-6 * max(interaction.abs().item(), 1e-3)
        forces = golden["forces"][k]
        assert (out.forces.double() - forces).abs().max() <= 2e-5 * max(forces.abs().max().item(), 1e-12)
