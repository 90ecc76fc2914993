"""Scaling of equinnp's neighbor-list backends against ASE, matscipy and vesin.

Random atoms at liquid-water-like density (0.1 atoms/A^3) in a cubic box,
cutoff 5 A, open (no cell) and fully periodic, N = 10 ... 100,000. Every
entry is the median time of several calls (after one warm-up call), CPU time
of the process by default (``--clock wall`` for elapsed time);
the exponent column is ``log(t2 / t1) / log(N2 / N1)`` between successive
sizes (1 = linear scaling).

Usage::

    python benchmarks/neighbor_list_scaling.py [--threads 1] [--sizes 10 100 ...]

Writes ``benchmarks/results/neighbor_list_scaling.md``. By default every
library runs single-threaded (``OMP_NUM_THREADS=1`` and
``torch.set_num_threads(1)``) so that numbers on a shared machine are
comparable; pass ``--threads`` to change that.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

DENSITY = 0.1  # atoms / A^3
CUTOFF = 5.0  # A
SKIP_ABOVE_S = 60.0  # skip a tool at the next size once it is predicted to exceed this
SLOW_S = 5.0  # calls predicted slower than this run once, without warm-up
RESULTS = Path(__file__).resolve().parent / "results" / "neighbor_list_scaling.md"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for torch, OpenMP and vesin")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1_000, 10_000, 100_000])
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--no-write", action="store_true", help="only print the tables")
    parser.add_argument("--clock", choices=["cpu", "wall"], default="cpu",
                        help="cpu: process CPU time (robust on a shared machine; equals wall "
                             "time for single-threaded code on an idle one); wall: elapsed time")
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)  # before numpy / torch / vesin load

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import cpu_name, median_time  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from equinnp.neighbors import radius_graph  # noqa: E402
from equinnp.neighbors import torch_cluster_backend, vesin_backend  # noqa: E402
from equinnp.neighbors.radius_graph import _auto_backend, prepare_systems, takes_dense_search  # noqa: E402


def repeats_for(num_atoms: int) -> int:
    if num_atoms <= 1_000:
        return 7
    if num_atoms <= 10_000:
        return 3
    return 1


def make_system(num_atoms: int, seed: int = 0):
    length = (num_atoms / DENSITY) ** (1.0 / 3.0)
    rng = np.random.default_rng(seed)
    pos = rng.random((num_atoms, 3)) * length
    return pos, np.eye(3) * length


def tools(periodic: bool):
    """name -> factory(pos, cell) returning a zero-argument callable."""

    def equinnp_backend(backend):
        def factory(pos, cell):
            pos_t = torch.as_tensor(pos)
            cell_t = torch.as_tensor(cell) if periodic else None
            return lambda: radius_graph(pos_t, CUTOFF, cell=cell_t, backend=backend)

        return factory

    found = {
        "equinnp cell_list": equinnp_backend("cell_list"),
        "equinnp brute_force": equinnp_backend("brute_force"),
        "equinnp auto": equinnp_backend("auto"),
    }
    if vesin_backend.is_available():
        found["equinnp vesin"] = equinnp_backend("vesin")
    if torch_cluster_backend.is_available() and not periodic:
        found["equinnp torch_cluster"] = equinnp_backend("torch_cluster")

    try:
        from ase import Atoms
        from ase.neighborlist import neighbor_list as ase_neighbor_list

        def ase_factory(pos, cell):
            atoms = Atoms(positions=pos, cell=cell, pbc=periodic)
            return lambda: ase_neighbor_list("ijS", atoms, CUTOFF, self_interaction=False)

        found["ASE neighbor_list"] = ase_factory
    except ImportError:
        pass
    try:
        from matscipy.neighbours import neighbour_list as matscipy_neighbour_list

        def matscipy_factory(pos, cell):
            pbc = np.array([periodic] * 3)
            return lambda: matscipy_neighbour_list("ijS", positions=pos, cell=cell, pbc=pbc,
                                                   cutoff=CUTOFF)

        found["matscipy neighbour_list"] = matscipy_factory
    except ImportError:
        pass
    try:
        from vesin_torch import NeighborList as VesinNeighborList
    except ImportError:
        try:
            from vesin.torch import NeighborList as VesinNeighborList
        except ImportError:
            VesinNeighborList = None
    if VesinNeighborList is not None:

        def vesin_factory(pos, cell):
            calculator = VesinNeighborList(cutoff=CUTOFF, full_list=True, n_threads=ARGS.threads)
            pos_t = torch.as_tensor(pos)
            box = torch.as_tensor(cell) if periodic else torch.zeros(3, 3, dtype=torch.float64)
            return lambda: calculator.compute(pos_t, box, periodic, "ijS")

        found["vesin (direct)"] = vesin_factory
    return found


def time_call(fn, repeats: int, predicted: float) -> tuple[float, int]:
    """Median time of ``repeats`` calls after a warm-up call.

    A call predicted to take more than ``SLOW_S`` seconds runs once, without
    warm-up. Returns the time and the number of timed calls.
    """
    slow = predicted > SLOW_S
    repeats = 1 if slow else repeats
    clock = time.process_time if ARGS.clock == "cpu" else time.perf_counter
    return median_time(fn, repeats, warmup=0 if slow else 1, clock=clock), repeats


def format_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def run(periodic: bool, sizes: list[int]):
    found = tools(periodic)
    results = {name: {} for name in found}
    edges = {}
    auto_choice = {}
    single = {}
    for num_atoms in sizes:
        pos, cell = make_system(num_atoms)
        pos_t = torch.as_tensor(pos)
        cell_t = torch.as_tensor(cell) if periodic else None
        edges[num_atoms] = radius_graph(pos_t, CUTOFF, cell=cell_t, backend="cell_list").edge_index.shape[1]
        auto_choice[num_atoms] = ("dense" if takes_dense_search(pos_t, None, cell_t, None)
                                  else _auto_backend(prepare_systems(pos_t, CUTOFF, cell=cell_t)))
        for name, factory in found.items():
            previous = [(n, t) for n, t in results[name].items() if isinstance(t, float)]
            predicted = 0.0
            if previous:
                n_prev, t_prev = previous[-1]
                # Predict with the last exponent, at least linear, at most quadratic.
                if len(previous) >= 2:
                    (n_a, t_a), (n_b, t_b) = previous[-2:]
                    exponent = min(max(math.log(t_b / t_a) / math.log(n_b / n_a), 1.0), 2.0)
                else:
                    exponent = 1.0
                if "brute" in name:
                    exponent = 2.0
                predicted = t_prev * (num_atoms / n_prev) ** exponent
                if predicted > SKIP_ABOVE_S:
                    results[name][num_atoms] = f"skipped (~{predicted:.0f} s predicted)"
                    continue
            if name == "equinnp brute_force" and num_atoms > 20_000:
                results[name][num_atoms] = "skipped (O(N^2))"
                continue
            seconds, repeats = time_call(factory(pos, cell), repeats_for(num_atoms), predicted)
            results[name][num_atoms] = seconds
            if repeats == 1:
                single[(name, num_atoms)] = True
            print(f"  {'periodic' if periodic else 'open':8s} N={num_atoms:>7d} {name:26s} "
                  f"{format_time(seconds):>10s} (median of {repeats})", flush=True)
    return results, edges, auto_choice, single


def table(results, edges, auto_choice, single, sizes) -> str:
    names = list(results)
    header = "| N | edges | " + " | ".join(names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 2)]
    for k, num_atoms in enumerate(sizes):
        cells = [f"{num_atoms:,}", f"{edges[num_atoms]:,}"]
        for name in names:
            value = results[name].get(num_atoms)
            if not isinstance(value, float):
                cells.append(value or "")
                continue
            text = format_time(value)
            if single.get((name, num_atoms)):
                text += "*"
            if name == "equinnp auto":
                text += f" [{auto_choice[num_atoms]}]"
            if k > 0 and isinstance(results[name].get(sizes[k - 1]), float):
                prev = results[name][sizes[k - 1]]
                exponent = math.log(value / prev) / math.log(num_atoms / sizes[k - 1])
                text += f" (x^{exponent:.2f})"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> str:
    import importlib.metadata as md

    def version(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return "not installed"

    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",) * 3
    cpu = cpu_name()
    return (
        f"- platform: `{platform.platform()}`, CPU: {cpu}, `os.cpu_count()` = {os.cpu_count()}\n"
        f"- Python {platform.python_version()}, torch {torch.__version__}, "
        f"`torch.get_num_threads()` = {torch.get_num_threads()}, "
        f"OMP_NUM_THREADS = {os.environ.get('OMP_NUM_THREADS')}\n"
        f"- ase {version('ase')}, matscipy {version('matscipy')}, vesin-torch {version('vesin-torch')}, "
        f"torch-cluster {version('torch-cluster')}\n"
        f"- load average when the run ended: {', '.join(f'{x:.1f}' for x in load)} "
        f"(the machine is shared; single runs can be noisy)"
    )


def main():
    torch.set_num_threads(ARGS.threads)
    sizes = ARGS.sizes
    sections = []
    for periodic in (False, True):
        kind = "periodic cubic box" if periodic else "open (non-periodic) cluster"
        print(f"{kind}:", flush=True)
        results, edges, auto_choice, single = run(periodic, sizes)
        sections.append(f"### {kind}\n\n" + table(results, edges, auto_choice, single, sizes))
    text = (
        "# Neighbor-list scaling\n\n"
        f"Random atoms at {DENSITY} atoms/A^3 (liquid-water-like), cutoff {CUTOFF} A, "
        "float64, full neighbor list (both directions). Median "
        + ("CPU time (`time.process_time`) " if ARGS.clock == "cpu" else "wall time ")
        + "per call "
        "(7 repeats up to 1,000 atoms, 3 at 10,000, 1 at 100,000; one warm-up call before; "
        f"`*`: a single call without warm-up, used when a call was predicted above {SLOW_S:.0f} s). "
        "`(x^k)`: growth exponent from the previous size (1 = linear). `[..]` after "
        "`equinnp auto`: the backend it picked. A tool is skipped at a size where its time is "
        f"predicted above {SKIP_ABOVE_S:.0f} s. `equinnp vesin` is the equinnp wrapper around "
        "vesin (per-system loop, exact re-check and sorting); `vesin (direct)` is vesin alone.\n\n"
        "Generated by `python benchmarks/neighbor_list_scaling.py`"
        + (f" --threads {ARGS.threads}" if ARGS.threads != 1 else "")
        + (" --clock wall" if ARGS.clock == "wall" else "")
        + ".\n\n"
        + "\n\n".join(sections)
        + "\n\n## Machine\n\n"
        + machine()
        + "\n"
    )
    print()
    print(text)
    if not ARGS.no_write:
        ARGS.output.parent.mkdir(parents=True, exist_ok=True)
        ARGS.output.write_text(text)
        print(f"written to {ARGS.output}")


if __name__ == "__main__":
    main()
