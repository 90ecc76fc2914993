"""Build equinnp's AIMNet2 from ``tests/data/aimnet2_golden.npz`` (aimnet's weights as 4-bit grid codes)."""

from pathlib import Path

import numpy as np
import torch

from equinnp.pretrained.aimnet2 import potential_from_aimnet_state

GOLDEN = Path(__file__).parent / "data" / "aimnet2_golden.npz"
GOLDEN_ELEMENTS = [1, 6, 7, 8, 11, 17]


def unpack(golden, name: str) -> np.ndarray:
    """The float64 values of aimnet tensor ``name``: ``(2k - 15)·2^e`` from its packed 4-bit codes."""
    codes = golden[f"w/{name}/codes"].astype(np.int64)
    k = np.stack([codes // 16, codes % 16], axis=-1).reshape(-1)
    shape = tuple(golden[f"w/{name}/shape"])
    values = (2 * k[: int(np.prod(shape))] - 15).astype(np.float64) * 2.0 ** int(golden[f"w/{name}/exponent"])
    return values.reshape(shape)


def aimnet_state(golden) -> dict:
    """aimnet's state dict (float64 tensors) of the golden model, constants included."""
    state = {name[2:-6]: torch.from_numpy(unpack(golden, name[2:-6])) for name in golden.files if name.endswith("/codes")}
    state.update({name[6:]: torch.from_numpy(np.array(golden[name])) for name in golden.files if name.startswith("const/")})
    return state


def aimnet2_from_golden(golden, elements=GOLDEN_ELEMENTS, change=None, exact_charge_conservation=False, dtype="float64",
                        **options):
    """equinnp's AIMNet2 potential (float64) with the golden weights; ``change`` = (aimnet name, flat index, delta)."""
    state = aimnet_state(golden)
    if change is not None:
        name, index, delta = change
        state[name].reshape(-1)[index] += delta
    return potential_from_aimnet_state(state, elements, dtype=dtype, exact_charge_conservation=exact_charge_conservation,
                                       **options)
