"""Seconds and peak memory (RSS) of one energy + forces call with D3(BJ) + the three-body (ATM) term.

On the 1,029-atom water cluster, the potential of ``energy_terms_cost.py`` (SchNet,
float32, with the ``d3`` term, ωB97M, s9 = 1) in this fresh process: the peak
resident set size (``resource.getrusage``) is that of the whole process
(Python, torch, the network and the term), measured after one call.

    python benchmarks/d3_atm_memory.py --atm-cutoff 15 [--chunk-size 524288] [--threads 1]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from energy_terms_cost import potential  # noqa: E402
from harness import machine, water_cluster  # noqa: E402

from equinnp.postprocessing.dispersion import BOHR  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--atm-cutoff", type=float, default=15.0, help="three-body cutoff in bohr")
    parser.add_argument("--chunk-size", type=int, default=None, help="atm_chunk_size (default: the term's default)")
    parser.add_argument("--s9", type=float, default=1.0, help="0: the two-body term alone, for the baseline")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    term = {"name": "d3", "functional": "wb97m", "s9": args.s9, "atm_cutoff": args.atm_cutoff * BOHR}
    if args.chunk_size is not None:
        term["atm_chunk_size"] = args.chunk_size
    pot = potential(term)
    cluster = water_cluster()
    cluster.charge = torch.zeros(1)
    start = time.perf_counter()
    out = pot(cluster)
    forces = float(out.forces.abs().sum())
    seconds = time.perf_counter() - start
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux
    print(f"s9 {args.s9:g}, atm_cutoff {args.atm_cutoff:g} bohr, chunk {args.chunk_size}: {seconds:.1f} s, peak RSS {peak_gb:.2f} GB, "
          f"energy {float(out.energy.detach()):.10g} eV, |F|_1 {forces:.10g}; {machine(args.threads)}")


if __name__ == "__main__":
    main()
