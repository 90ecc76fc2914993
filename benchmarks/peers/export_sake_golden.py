"""Export SAKE reference (golden) outputs computed by the authors' JAX code.

Run with the SAKE peer environment (``benchmarks/peers/setup_envs.sh sake``)::

    .peers/sake/bin/python benchmarks/peers/export_sake_golden.py

``sake-gnn`` 0.0.2.post1 is the authors' package (its ``sake/*.py`` are the files
of choderalab/sake at its last commit, 0a25409). This script builds
``sake.models.DenseSAKEModel(hidden_features=F, out_features=1, depth=L,
n_heads=H)`` as the paper's scripts do (SiLU, positions updated in every layer,
no cutoff), in float64 (``jax_enable_x64``), initialises it from a fixed seed and
perturbs every parameter (see ``perturb``) so that zero biases and the initial
radial centres and widths are not what is compared.

Each molecule (rMD17 frames of ``tests/data/rmd17_frames.npz``) is evaluated on
its own, dense and unmasked: all pairs, means over the molecule's n atoms. The
input features are one-hot vectors over ``ELEMENTS`` (the class index is
equinnp's species index). The energy is the sum of the per-atom outputs, the
forces ``-jax.grad`` of it with respect to the input positions, through every
position update.

Writes ``tests/data/sake_golden.npz`` (plain arrays, ``allow_pickle=False``):

- ``config_*``: F, L, H, number of radial functions, elements, seed;
- ``param/<flax path>``: every parameter under its flax name (``d0/edge_model/mlp_in/kernel``,
  ...; Dense kernels are ``[in, out]``);
- per molecule ``<mol>_z`` [N], ``<mol>_pos`` [N, 3], ``<mol>_energy`` [],
  ``<mol>_forces`` [N, 3] and, for every layer l, ``<mol>_h<l>`` [N, F],
  ``<mol>_x<l>`` [N, 3], ``<mol>_v<l>`` [N, 3] (after the layer);
- ``versions``: the packages used.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import flax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from flax import traverse_util  # noqa: E402

from sake.models import DenseSAKEModel  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
FRAMES = REPO / "tests" / "data" / "rmd17_frames.npz"
OUT = REPO / "tests" / "data" / "sake_golden.npz"

ELEMENTS = [1, 6, 7, 8]
HIDDEN, DEPTH, HEADS, NUM_RBF = 12, 4, 4, 50  # NUM_RBF: the reference's fixed kernel_features
SEED = 7
MOLECULES = [("ethanol", 0), ("aspirin", 0)]


def perturb(flat: dict, key) -> dict:
    """Kernels and biases: + 0.1 N(0, 1); radial centres: + 0.02 N(0, 1); widths: x exp(0.1 N(0, 1))."""
    out = {}
    for k, (path, value) in enumerate(sorted(flat.items())):
        noise = jax.random.normal(jax.random.fold_in(key, k), value.shape, dtype=jnp.float64)
        if path[-1] == "betas":
            out[path] = value * jnp.exp(0.1 * noise)
        elif path[-1] == "means":
            out[path] = value + 0.02 * noise
        else:
            out[path] = value + 0.1 * noise
    return out


def one_hot(z: np.ndarray) -> jnp.ndarray:
    species = np.array([ELEMENTS.index(int(e)) for e in z])
    return jax.nn.one_hot(species, len(ELEMENTS), dtype=jnp.float64)  # [N, K]


def layer_states(module, h, x):
    """Per-layer (h, x, v) and the per-atom outputs, as ``DenseSAKEModel.__call__`` computes them."""
    h = module.embedding_in(h)
    v = None
    states = []
    for layer in module.layers:
        h, x, v = layer(h, x, v)
        states.append((h, x, v))
    return module.embedding_out(h), states


def main():
    data = np.load(FRAMES)
    model = DenseSAKEModel(hidden_features=HIDDEN, out_features=1, depth=DEPTH, n_heads=HEADS)
    z0 = data[f"{MOLECULES[0][0]}_z"]
    x0 = jnp.asarray(data[f"{MOLECULES[0][0]}_pos"][MOLECULES[0][1]], dtype=jnp.float64)
    params = model.init(jax.random.PRNGKey(SEED), one_hot(z0), x0)
    flat = traverse_util.flatten_dict(flax.core.unfreeze(params))
    flat = perturb(flat, jax.random.PRNGKey(SEED + 1))
    params = flax.core.freeze(traverse_util.unflatten_dict(flat))

    def energy(x, h):
        out, _ = model.apply(params, h, x, method=layer_states)
        return out.sum()

    arrays = {
        "config_hidden_channels": np.array(HIDDEN),
        "config_num_layers": np.array(DEPTH),
        "config_num_heads": np.array(HEADS),
        "config_num_rbf": np.array(NUM_RBF),
        "config_elements": np.array(ELEMENTS),
        "config_seed": np.array(SEED),
    }
    for path, value in flat.items():
        assert path[0] == "params", path
        arrays["param/" + "/".join(path[1:])] = np.asarray(value, dtype=np.float64)
    for name, frame in MOLECULES:
        z = data[f"{name}_z"]
        x = jnp.asarray(data[f"{name}_pos"][frame], dtype=jnp.float64)
        h = one_hot(z)
        out, states = model.apply(params, h, x, method=layer_states)
        e = out.sum()
        forces = -jax.grad(energy)(x, h)
        arrays[f"{name}_z"] = np.asarray(z)
        arrays[f"{name}_pos"] = np.asarray(x)
        arrays[f"{name}_energy"] = np.asarray(e)
        arrays[f"{name}_forces"] = np.asarray(forces)
        for layer, (h_l, x_l, v_l) in enumerate(states):
            arrays[f"{name}_h{layer}"] = np.asarray(h_l)
            arrays[f"{name}_x{layer}"] = np.asarray(x_l)
            arrays[f"{name}_v{layer}"] = np.asarray(v_l)
        print(f"{name}: E = {float(e):.12g}, |F|max = {float(jnp.abs(forces).max()):.6g}, "
              f"max displacement {float(jnp.abs(states[-1][1] - x).max()):.3g} A")
    versions = [f"{p}=={importlib.metadata.version(p)}" for p in ("sake-gnn", "jax", "jaxlib", "flax", "numpy")]
    arrays["versions"] = np.array(versions)
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} kB): {len(flat)} parameters; {', '.join(versions)}")


if __name__ == "__main__":
    main()
