"""Build equinnp's AIMNet2 from ``tests/data/aimnet2_golden.npz`` (aimnet's weights, 4-bit grid codes)."""

from pathlib import Path

import numpy as np
import torch

import equinnp

GOLDEN = Path(__file__).parent / "data" / "aimnet2_golden.npz"
GOLDEN_ELEMENTS = [1, 6, 7, 8, 11, 17]
# aimnet state-dict prefix → equinnp parameter prefix (the MLPs share the Sequential layout)
PREFIXES = {"mlps.": "passes.", "outputs.energy_mlp.mlp.": "energy_mlp.", "conv_a.agh": "conv_a.agh", "conv_q.agh": "conv_q.agh"}


def unpack(golden, name: str) -> np.ndarray:
    """The float64 values of aimnet tensor ``name``: ``(2k - 15)·2^e`` from its packed 4-bit codes."""
    codes = golden[f"w/{name}/codes"].astype(np.int64)
    k = np.stack([codes // 16, codes % 16], axis=-1).reshape(-1)
    shape = tuple(golden[f"w/{name}/shape"])
    values = (2 * k[: int(np.prod(shape))] - 15).astype(np.float64) * 2.0 ** int(golden[f"w/{name}/exponent"])
    return values.reshape(shape)


def aimnet2_from_golden(golden, elements=GOLDEN_ELEMENTS, change=None, exact_charge_conservation=False, **options):
    """equinnp's AIMNet2 potential (float64) with the golden weights; ``change`` = (aimnet name, flat index, delta)."""
    weights = {name[2:-6]: unpack(golden, name[2:-6]) for name in golden.files if name.endswith("/codes")}
    if change is not None:
        name, index, delta = change
        weights[name].reshape(-1)[index] += delta
    rc = float(golden["const/outputs.lrcoulomb.rc"])
    pot = equinnp.build_potential(
        "aimnet2", elements=elements, dtype="float64", cutoff=float(golden["const/aev.rc_s"]),
        exact_charge_conservation=exact_charge_conservation,
        postprocessing={"transforms": ["scale_shift"],
                        "energy_terms": [{"name": "coulomb", "shielding": "aimnet2", "switch_radius": rc}]},
        **options,
    )
    model = pot.model
    rows = torch.as_tensor(elements)
    state = {"embedding.weight": torch.from_numpy(weights.pop("afv.weight"))[rows],
             "energy_shift": torch.from_numpy(weights.pop("outputs.atomic_shift.shifts.weight"))[rows, 0]}
    for name, value in weights.items():
        target = next(new + name[len(old):] for old, new in PREFIXES.items() if name.startswith(old))
        state[target] = torch.from_numpy(value)
    missing = set(dict(model.named_parameters())) - set(state)
    if missing:
        raise KeyError(f"no golden weights for {sorted(missing)}")
    with torch.no_grad():
        for name, value in state.items():
            model.get_parameter(name).copy_(value)
    return pot.eval()
