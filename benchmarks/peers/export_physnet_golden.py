"""Golden numbers from the PhysNet authors' TensorFlow code, for ``tests/test_physnet_golden.py``.

Runs MMunibas/PhysNet (a source checkout, not committed; tested at e243e2c)
in the ``.peers/physnet_tf`` venv (``setup_envs.sh physnet_tf``): its TF1
modules are imported with ``tensorflow`` bound to ``tensorflow.compat.v1`` in
graph mode. A small float64 network (F 8, K 6, cutoff 3.5 Å, 3 blocks, 2/2/1
residual layers, electrostatics on, dispersion off) gets every variable
perturbed by Gaussian noise (so that the zero-initialised gates and outputs
take part); the variables and PhysNet's own energies, forces, charges and
non-hierarchicality loss on two rMD17 ethanol frames (total charge 0 and +1)
are written to an ``.npz``. D3 is off, so its tables are not needed: when the
checkout lacks ``c6ab.npy`` (a large file), a zero array of its shape stands
in for it in a temporary copy. The RBF layer is built in float64 (the TF code
leaves it at float32 whatever the network's dtype, which fails in a float64 graph),
and the shifted softplus subtracts ln 2 in the input's dtype (the TF code's
``tf.log(2.0)`` is float32); both are dtype changes only. Dropout (keep_prob 1,
the identity) is bypassed, as TF refuses its float32 keep_prob on float64 features.

    .peers/physnet_tf/bin/python benchmarks/peers/export_physnet_golden.py \\
        --physnet-src /path/to/PhysNet --out tests/data/physnet_golden.npz
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ETHANOL = REPO / "equinnp" / "data" / "bundled" / "rmd17_ethanol_test_01.npz"
HYPER = dict(F=8, K=6, sr_cut=3.5, num_blocks=3, num_residual_atomic=2, num_residual_interaction=2, num_residual_output=1)


def import_physnet(src: Path, workdir: Path, float64: bool = True):
    """``(tf, NeuralNetwork)`` from a PhysNet checkout, copied to ``workdir``; ``float64``: the dtype-only
    adaptations for a float64 graph (``benchmarks/physnet_inference.py`` runs the code unchanged in float32)."""
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    sys.modules["tensorflow"] = tf  # the TF1 modules say "import tensorflow as tf"
    if float64:
        # Dropout with keep_prob = 1 (PhysNet's default, always at inference) is the identity; TF's
        # dropout refuses a float32 keep_prob on float64 features, so the identity is used directly.
        tf.nn.dropout = lambda x, *args, **kwargs: x
    package = workdir / "neural_network"
    shutil.copytree(src / "neural_network", package)
    c6ab = package / "grimme_d3" / "tables" / "c6ab.npy"
    if not c6ab.is_file() or c6ab.stat().st_size < 1000:  # absent or an LFS pointer; D3 is off
        np.save(c6ab, np.zeros((95, 95, 5, 5, 3)))
    sys.path.insert(0, str(workdir))
    from neural_network.layers.RBFLayer import RBFLayer
    from neural_network.NeuralNetwork import NeuralNetwork

    if float64:
        # NeuralNetwork builds its RBFLayer without passing dtype (float32 by default), which a
        # float64 graph rejects; the layer is given the network's float64 instead.
        RBFLayer.__init__.__defaults__ = (None, tf.float64)
    return tf, NeuralNetwork


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--physnet-src", required=True, type=Path)
    parser.add_argument("--out", default=str(REPO / "tests" / "data" / "physnet_golden.npz"))
    args = parser.parse_args()

    data = np.load(ETHANOL)
    z = data["nuclear_charges"].astype(np.int64)
    frames = [data["coords"][0], data["coords"][5]]
    charges = [0.0, 1.0]

    with tempfile.TemporaryDirectory() as tmp:
        tf, NeuralNetwork = import_physnet(args.physnet_src, Path(tmp))
        # The TF code's shifted_softplus subtracts tf.log(2.0), a float32 constant that a float64
        # graph rejects: the same function with the constant in the input's dtype.
        def shifted_softplus(x):
            return tf.nn.softplus(x) - tf.log(tf.constant(2.0, dtype=x.dtype))

        tf.set_random_seed(0)  # with the op-level seed below, the initial variables are reproducible
        np.random.seed(0)
        net = NeuralNetwork(**HYPER, use_electrostatic=True, use_dispersion=False, dtype=tf.float64, seed=1,
                            activation_fn=shifted_softplus, scope="physnet")
        n = len(z)
        i, j = np.nonzero(~np.eye(n, dtype=bool))  # all ordered pairs, sorted by i
        Z_ph = tf.placeholder(tf.int32, [None])
        R_ph = tf.placeholder(tf.float64, [None, 3])
        Q_ph = tf.placeholder(tf.float64, [None])
        i_ph, j_ph = tf.placeholder(tf.int32, [None]), tf.placeholder(tf.int32, [None])
        Ea, Qa, Dij, nhloss = net.atomic_properties(Z_ph, R_ph, i_ph, j_ph)
        q = net.scaled_charges(Z_ph, Qa, Q_ph)
        energy, forces = net.energy_and_forces_from_atomic_properties(Ea, Qa, Dij, Z_ph, R_ph, i_ph, j_ph, Q_ph)
        rng = np.random.default_rng(0)
        out = {}
        with tf.Session() as sess:
            sess.run(tf.global_variables_initializer())
            for name, variable in net.variables.items():
                if name.split(":")[0] in ("s6", "s8", "a1", "a2"):
                    continue
                value = sess.run(variable)
                sess.run(variable.assign(value + 0.3 * rng.standard_normal(value.shape)))
                out["var/" + name.split(":")[0]] = sess.run(variable)
            for k, (pos, total) in enumerate(zip(frames, charges)):
                feed = {Z_ph: z, R_ph: pos, Q_ph: [total], i_ph: i, j_ph: j}
                values = sess.run({"energy": energy, "forces": forces, "charges": q, "raw_charges": Qa,
                                   "atomic_energy": Ea, "nhloss": nhloss}, feed)
                out[f"frame{k}/pos"] = pos
                out[f"frame{k}/total_charge"] = np.array(total)
                for key, value in values.items():
                    out[f"frame{k}/{key}"] = np.asarray(value)
        out["z"] = z
        for key, value in HYPER.items():
            out[f"hyper/{key}"] = np.array(value)
        out["tf_version"] = np.array(tf.__version__)
    np.savez(args.out, **out)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {np.shape(v)}" for k, v in sorted(out.items()) if not k.startswith("var/")))


if __name__ == "__main__":
    main()
