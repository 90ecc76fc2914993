"""Every architecture of the registry has a peer benchmark, and the shared workloads are what they say."""

import sys
from pathlib import Path

import equinnp

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import harness  # noqa: E402


def test_every_architecture_names_its_peer_benchmark():
    assert set(harness.PEER_BENCHMARKS) == set(equinnp.ARCHITECTURES)
    for name, (script, peer) in harness.PEER_BENCHMARKS.items():
        assert (BENCHMARKS / script).is_file(), f"{name}: {script} is missing"
        assert peer


def test_water_cluster_size():
    cluster = harness.water_cluster()
    assert cluster.num_nodes == 1029 and sorted(set(cluster.z.tolist())) == [1, 8]
