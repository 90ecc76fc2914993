#!/usr/bin/env bash
# Create one virtual environment per peer implementation under .peers/<name>.
#
#   benchmarks/peers/setup_envs.sh                 # schnetpack now, mace + torchmdnet in the background
#   benchmarks/peers/setup_envs.sh --fg            # all three, one after the other, in the foreground
#   benchmarks/peers/setup_envs.sh sake            # the SAKE authors' JAX code (not built by default)
#   benchmarks/peers/setup_envs.sh mace torchmdnet # only these, in the foreground
#   benchmarks/peers/setup_envs.sh dftd3           # the D3 reference (not built by default)
#   benchmarks/peers/setup_envs.sh torchani       # TorchANI 2.9.0 (ANI-2x benchmark)
#   benchmarks/peers/setup_envs.sh physnet_tf     # TensorFlow for the PhysNet authors' TF1 code (golden file)
#   benchmarks/peers/setup_envs.sh aimnet         # aimnet 0.2.6 (AIMNet2 golden file and benchmark)
#
# Every env gets torch==2.13.0 first (the local CPU wheel) and all later pip
# calls run with a constraints file pinning it, so no peer can pull a CUDA torch.
# An env whose import check already passes is skipped (the script is idempotent);
# a half-built env is completed in place. Each env's exact package set is written
# to benchmarks/peers/versions-<name>.txt. Logs of background builds go to
# .peers/<name>.log.
#
# Environment variables: PEER_PYTHON (base interpreter, default python3.11 /
# python3), PEERS_DIR (default <repo>/.peers).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PEERS_DIR="${PEERS_DIR:-$REPO/.peers}"
PY="${PEER_PYTHON:-$(command -v python3.11 || command -v python3)}"
TORCH_PIN="torch==2.13.0"
CONSTRAINTS="$PEERS_DIR/constraints.txt"

mkdir -p "$PEERS_DIR"
echo "$TORCH_PIN" > "$CONSTRAINTS"

# ---------------------------------------------------------------- import checks
check_import() {
    local name="$1" py="$PEERS_DIR/$1/bin/python"
    [[ -x "$py" ]] || return 1
    case "$name" in
        schnetpack)
            "$py" - <<'EOF' >/dev/null 2>&1
import typing, torch.utils.data.dataloader as _dl
if not hasattr(_dl, "T_co"):
    _dl.T_co = typing.TypeVar("T_co", covariant=True)
import schnetpack, schnetpack.representation, schnetpack.atomistic
EOF
            ;;
        mace)
            TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 "$py" -c "import mace.modules" >/dev/null 2>&1 ;;
        sake)
            "$py" -c "import jax, flax.linen, sake.models" >/dev/null 2>&1 ;;
        torchmdnet)
            "$py" -c "import torchmdnet.models.tensornet" >/dev/null 2>&1 ;;
        dftd3)
            "$py" -c "import dftd3.interface" >/dev/null 2>&1 ;;
        torchani)
            "$py" -c "import torchani, torchani.neurochem" >/dev/null 2>&1 ;;
        physnet_tf)
            "$py" -c "import tensorflow.compat.v1 as tf; tf.disable_v2_behavior(); tf.segment_sum" >/dev/null 2>&1 ;;
        aimnet)
            "$py" -c "import aimnet.models.aimnet2, aimnet.calculators" >/dev/null 2>&1 ;;
        *) echo "unknown peer: $name" >&2; return 2 ;;
    esac
}

# ---------------------------------------------------------------- installers
pipc() {  # pip inside env $1, always constrained to the pinned torch
    local name="$1"; shift
    "$PEERS_DIR/$name/bin/python" -m pip install --disable-pip-version-check -c "$CONSTRAINTS" "$@"
}

install_schnetpack() {
    # schnetpack 2.1.1 pins sympy<=1.12, which torch 2.13 rejects: install it
    # without dependencies and add its runtime requirements by hand (sympy left
    # to torch; the dev-only pre-commit/black are skipped).
    pipc schnetpack --no-deps "schnetpack==2.1.1"
    pipc schnetpack "numpy>=2.0.0" "ase>=3.21" h5py pyyaml "hydra-core>=1.1.0" \
        "pytorch-lightning>=2.0.0" torchmetrics "hydra-colorlog>=1.1.0" rich \
        fasteners dirsync torch-ema "matscipy>=1.1.0" "tensorboard>=2.17.1" \
        "tensorboardX>=2.6.2.2" tqdm protobuf
}

install_mace() {
    # Keeps mace-torch's own pin e3nn==0.4.4; importing it under torch>=2.6
    # needs TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 (see README).
    pipc mace "mace-torch==0.3.16"
}

install_sake() {
    # sake-gnn 0.0.2.post1 is the SAKE authors' JAX/flax code (choderalab/sake,
    # the same modules as the repository's last commit). It declares only jax and
    # jaxlib; flax is added here, at versions with Python 3.11 CPU wheels whose
    # linen API the 2023 code uses unchanged.
    pipc sake "jax==0.4.30" "jaxlib==0.4.30" "flax==0.8.5" "numpy<2.1"
    pipc sake --no-deps "sake-gnn==0.0.2.post1"
}

install_torchmdnet() {
    pipc torchmdnet "torchmd-net==3.1.0"
}

install_dftd3() {
    # simple-dftd3's Python API (compiled wheel, LGPL): the reference D3 of tests/data/dftd3_golden.npz.
    pipc dftd3 "dftd3==1.7.0" "ase>=3.23"
}

install_torchani() {
    # torchani 2.9.0 caps torch at 2.13 (the project's pin). ANI2x() downloads
    # its weights, which cannot work offline: benchmarks/ani2x_inference.py
    # loads the published NeuroChem files with torchani.neurochem instead.
    pipc torchani "torchani==2.9.0"
}

install_physnet_tf() {
    # TensorFlow (CPU) only: MMunibas/PhysNet is a TF1 source tree (no package); its
    # modules run under tf.compat.v1 (benchmarks/peers/export_physnet_golden.py).
    pipc physnet_tf "tensorflow-cpu==2.21.0"
}

install_aimnet() {
    # aimnet 0.2.6 (isayevlab/aimnetcentral) needs Python >= 3.11 and pulls
    # warp-lang 1.19 and nvalchemi-toolkit-ops 0.5 (CPU wheels; warp prints "CUDA driver
    # not available" and runs on the CPU, no workaround needed). It ships the model YAMLs
    # but no weights (they are downloaded at run time, impossible here). Two things the
    # scripts using it handle: the model casts its inputs to torch's default dtype as it
    # was when aimnet.models.base was imported, and AIMNet2Calculator always casts the
    # coordinates to float32 (benchmarks/peers/export_aimnet2_*.py).
    pipc aimnet "aimnet==0.2.6"
}

build_env() {
    local name="$1"
    local lock="$PEERS_DIR/.$name.lock"
    exec {fd}>"$lock"
    flock "$fd"   # one builder per env at a time (shared working tree)
    if check_import "$name"; then
        echo "[$name] already imports: skipping"
    else
        echo "[$name] building in $PEERS_DIR/$name"
        [[ -x "$PEERS_DIR/$name/bin/python" ]] || "$PY" -m venv "$PEERS_DIR/$name"
        "$PEERS_DIR/$name/bin/python" -m pip install --disable-pip-version-check -q -U pip
        pipc "$name" "$TORCH_PIN"
        "install_$name"
        if ! check_import "$name"; then
            echo "[$name] FAILED: import check does not pass" >&2
            flock -u "$fd"; return 1
        fi
        echo "[$name] ok"
    fi
    "$PEERS_DIR/$name/bin/python" -m pip freeze --disable-pip-version-check \
        > "$HERE/versions-$name.txt"
    flock -u "$fd"
}

# ---------------------------------------------------------------- main
if [[ $# -gt 0 && "$1" != "--fg" ]]; then
    for n in "$@"; do build_env "$n"; done
elif [[ "${1:-}" == "--fg" ]]; then
    for n in schnetpack mace torchmdnet; do build_env "$n"; done
else
    build_env schnetpack
    # The other two run detached (2 shared cores: one after the other).
    nohup bash -c "'$HERE/setup_envs.sh' mace > '$PEERS_DIR/mace.log' 2>&1; '$HERE/setup_envs.sh' torchmdnet > '$PEERS_DIR/torchmdnet.log' 2>&1" \
        >/dev/null 2>&1 &
    echo "mace and torchmdnet are building in the background (pid $!):"
    echo "  logs: $PEERS_DIR/mace.log, $PEERS_DIR/torchmdnet.log"
fi
