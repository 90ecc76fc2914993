"""The ``equinnp`` command line: ``equinnp models | predict | train | evaluate | md | optimize | vibrations``.

Building the parser imports nothing heavy (torch, PyG, e3nn, ASE): each command
imports what it needs when it runs, so that ``--help`` and ``--version``
answer at once.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def cmd_models(args) -> int:
    from equinnp.models import ARCHITECTURES

    width = max(len(name) for name in ARCHITECTURES)
    for name, cls in ARCHITECTURES.items():
        print(f"{name:<{width}}  {cls.paper}")
    return 0


def cmd_predict(args) -> int:
    """Energy and forces of a structure file with a saved model (or a fresh one, as a demo)."""
    import ase.io

    from equinnp.build import build_potential
    from equinnp.calculators import EquinnpCalculator

    if args.atoms is None:
        from equinnp.data.bundled import ethanol_atoms

        atoms = ethanol_atoms()
        source = "rMD17 ethanol, frame 0 (bundled)"
    else:
        atoms = ase.io.read(args.atoms, index=args.index)
        source = args.atoms
    if args.model is None:
        import torch

        torch.manual_seed(0)
        elements = sorted(set(atoms.get_atomic_numbers().tolist()))
        pot = build_potential(args.architecture, elements=elements)
        print(f"model: untrained {args.architecture} (random weights, seed 0), elements {elements}")
    else:
        from equinnp.train.checkpoint import load_model_file

        pot, description = load_model_file(args.model)
        print(f"model: {args.model} ({pot.architecture}" + (f"; {description})" if description else ")"))
    atoms.calc = EquinnpCalculator(pot, threads=args.threads)
    energy = atoms.get_potential_energy()
    forces = atoms.get_forces()
    print(f"structure: {source}, {len(atoms)} atoms ({atoms.get_chemical_formula()})")
    print(f"energy: {energy:.6f} eV")
    print("forces (eV/Å):")
    for symbol, force in zip(atoms.get_chemical_symbols(), forces):
        print(f"  {symbol:<2} {force[0]:+.6f} {force[1]:+.6f} {force[2]:+.6f}")
    if any(atoms.pbc):
        stress = atoms.get_stress(voigt=False)
        print("stress (eV/Å³, positive under tension):")
        for row in stress:
            print(f"  {row[0]:+.6e} {row[1]:+.6e} {row[2]:+.6e}")
    if args.output:
        _write_prediction(atoms, args.output)
        print(f"results: {args.output}")
    return 0


def _write_prediction(atoms, path: str) -> None:
    """The structure with its energy, forces (and stress): JSON for ``.json``, else any format ASE writes (extxyz)."""
    if path.endswith(".json"):
        import json

        results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces().tolist(),
                   "numbers": atoms.get_atomic_numbers().tolist(), "positions": atoms.get_positions().tolist(),
                   "units": {"energy": "eV", "forces": "eV/Å", "stress": "eV/Å³"}}
        if any(atoms.pbc):
            results["stress"] = atoms.get_stress(voigt=False).tolist()
        with open(path, "w") as handle:
            json.dump(results, handle, indent=1)
        return
    import ase.io

    ase.io.write(path, atoms)


def build_parser() -> argparse.ArgumentParser:
    from equinnp.version import __version__

    parser = argparse.ArgumentParser(prog="equinnp", description="Neural network potentials on PyG and e3nn.")
    parser.add_argument("--version", action="version", version=f"equinnp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the registered architectures with their papers")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("predict", help="energy and forces of a structure")
    p.add_argument("model", nargs="?", help="saved model (model.pt) or training checkpoint (last.pt, best.pt); "
                                            "omit for an untrained demo model")
    p.add_argument("--atoms", help="structure file readable by ASE (default: a bundled rMD17 ethanol frame)")
    p.add_argument("--index", default="0", help="frame of a multi-frame file (ASE index syntax)")
    p.add_argument("--architecture", default="schnet", help="architecture of the demo model")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: chosen by system size, equinnp.threads)")
    p.add_argument("--output", help="write the results: .json, or a structure file with them (extxyz, ...)")
    p.set_defaults(func=cmd_predict)

    for register in _subcommand_registrars():
        register(sub)
    return parser


def _subcommand_registrars():
    """Commands that live in their own modules (training, evaluation) register themselves here."""
    from equinnp.simulate.cli import register_commands as simulation
    from equinnp.train.cli import register_commands as training

    return [training, simulation]


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as error:
        print(f"equinnp {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
