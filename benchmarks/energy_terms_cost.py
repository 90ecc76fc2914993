"""Cost of each physics energy term on the 1,029-atom water cluster (energy + forces, float32 network).

A SchNet with a charge head (128 features, 3 interactions, 5 Å, random weights,
uniform charge conservation) is timed alone and with one energy term added:
Coulomb (all pairs, PhysNet shielding), Coulomb (damped shifted force, 15 Å),
ZBL, D3(BJ) (ωB97M, 60/40 bohr cutoffs), D3(BJ) with the three-body (ATM)
term (s9 = 1, 10 and 15 bohr three-body cutoffs, default ``atm_chunk_size``; the
peak memory of one such call: ``d3_atm_memory.py``), and, on the same waters in a periodic
21.7 Å box, Coulomb by Ewald (10 Å real space, ε = 1e-8) against the periodic
SchNet alone. Each potential searches its own neighbors inside the timed call
(one search at the largest cutoff of network and term, so a term with a long
cutoff also pays for the longer search). The contenders of each group are timed
one call each in turn, ``repeats`` times after a warm-up; medians are reported,
and a term's cost is its potential's median minus the base median.

    python benchmarks/energy_terms_cost.py [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import alternating_medians, machine, water_cluster, write_table  # noqa: E402

import equinnp  # noqa: E402
from equinnp.postprocessing.dispersion import BOHR  # noqa: E402

BASE = dict(cutoff=5.0, elements=[1, 8], hidden_channels=128, num_filters=128, num_interactions=3, num_gaussians=50,
            charge_head=True, dtype="float32")
TERMS = {
    "Coulomb, all pairs + PhysNet shielding (2.5 Å)": {"name": "coulomb", "shielding": "physnet", "switch_radius": 2.5},
    "Coulomb, damped shifted force (0.2 /Å, 15 Å)": {"name": "coulomb", "method": "dsf"},
    "ZBL (switch-off at the covalent radii)": {"name": "zbl"},
    "D3(BJ), ωB97M, 60/40 bohr": {"name": "d3", "functional": "wb97m"},
    "D3(BJ) + three-body (ATM, 10 bohr)": {"name": "d3", "functional": "wb97m", "s9": 1.0, "atm_cutoff": 10.0 * BOHR},
    "D3(BJ) + three-body (ATM, 15 bohr)": {"name": "d3", "functional": "wb97m", "s9": 1.0, "atm_cutoff": 15.0 * BOHR},
}
EWALD = {"name": "coulomb", "shielding": "physnet", "switch_radius": 2.5, "method": "ewald", "ewald_cutoff": 10.0}


def potential(term=None):
    terms = ["reference_energies"] + ([term] if term else [])
    torch.manual_seed(0)
    pot = equinnp.build_potential("schnet", **BASE, postprocessing={"transforms": ["scale_shift", "uniform_charges"],
                                                                       "energy_terms": terms})
    return pot.eval()


def call(pot, data):
    return lambda: pot(data).forces.sum().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results" / "energy_terms_cost.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    cluster = water_cluster()
    cluster.charge = torch.zeros(1)
    box = copy.copy(cluster)
    box.cell = torch.eye(3).unsqueeze(0) * 7 * 3.1
    box.pbc = torch.ones(1, 3, dtype=torch.bool)

    groups = [("open cluster", cluster, {"SchNet alone": None, **TERMS}),
              ("periodic box (21.7 Å)", box, {"SchNet alone": None, "Coulomb, Ewald (10 Å, ε 1e-8) + PhysNet shielding": EWALD})]
    rows = []
    for label, data, contenders in groups:
        pots = {name: potential(term) for name, term in contenders.items()}
        medians = alternating_medians({name: call(pot, data) for name, pot in pots.items()}, args.repeats)
        base = medians["SchNet alone"]
        for name, seconds in medians.items():
            energy = pots[name](data, compute_forces=False).energy_terms
            term_energy = "" if name == "SchNet alone" else f"{float(list(energy.values())[-1].sum().detach()):.4g}"
            added = "" if name == "SchNet alone" else f"{seconds - base:+.3f}"
            rows.append([label, name, f"{seconds:.3f}", added, f"{seconds / base:.2f}", term_energy])
            print(rows[-1], flush=True)

    notes = [f"Machine: {machine(args.threads)}. Median of {args.repeats} alternating repeats per group, energy + forces.",
             "Network: SchNet 128 features, 3 interactions, 5 Å, charge head, uniform charge conservation, float32, random weights; "
             "the terms run in float64. Each potential does its own neighbor search in the timed call.",
             "The three-body (ATM) rows use the default atm_chunk_size; their peak memory (RSS of one call in a fresh process) "
             "comes from `benchmarks/d3_atm_memory.py` (docs/physics.md).",
             f"Command: `python benchmarks/energy_terms_cost.py --repeats {args.repeats} --threads {args.threads}`"]
    print(write_table(Path(args.out), "Cost of each energy term on the 1,029-atom water cluster",
                      notes, ["system", "potential", "seconds per call", "added by the term (s)", "ratio to SchNet alone",
                              "term energy (eV)"], rows))


if __name__ == "__main__":
    main()
