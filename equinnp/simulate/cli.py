"""``equinnp md``, ``equinnp optimize`` and ``equinnp vibrations``.

::

    equinnp md MODEL --atoms FILE [--ensemble nve|langevin|nose-hoover|npt] --temperature K
               --timestep FS --steps N --trajectory out.traj [--interval 10] [--resume]
    equinnp optimize MODEL --atoms FILE [--fmax 0.01] [--optimizer bfgs|fire] [--cell] [--output relaxed.xyz]
    equinnp vibrations MODEL --atoms FILE [--modes modes.xyz]

Each shows a progress bar and writes its log as it goes; Ctrl-C ends ``md``
and ``optimize`` after the current step with every finished step kept.
"""

from __future__ import annotations

import sys

__all__ = ["register_commands"]


def register_commands(subparsers) -> None:
    from equinnp.simulate.common import add_calculator_arguments

    p = subparsers.add_parser("md", help="molecular dynamics through ASE (trajectory and log written as it runs)")
    add_calculator_arguments(p)
    p.add_argument("--atoms", help="start structure (a file ASE reads); not needed with --resume")
    p.add_argument("--index", default="-1", help="frame of a multi-frame --atoms file (default: the last)")
    p.add_argument("--ensemble", default="nve", choices=["nve", "langevin", "nose-hoover", "npt"])
    p.add_argument("--temperature", type=float, default=300.0, help="K: initial velocities and thermostat (default 300)")
    p.add_argument("--timestep", type=float, default=0.5, help="fs (default 0.5)")
    p.add_argument("--steps", type=int, default=1000, help="total number of steps, resumed ones included (default 1000)")
    p.add_argument("--trajectory", required=True, help="ASE trajectory (.traj), appended every --interval steps")
    p.add_argument("--interval", type=int, default=10, help="steps between frames and log lines (default 10)")
    p.add_argument("--log", help="text log (default: the trajectory with .log)")
    p.add_argument("--resume", action="store_true", help="continue the trajectory from its last frame")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction, 1/fs (default 0.01)")
    p.add_argument("--tdamp", type=float, help="Nosé-Hoover / NPT thermostat time, fs (default 100 steps)")
    p.add_argument("--pressure", type=float, default=1.01325, help="NPT pressure, bar (default 1 atm)")
    p.add_argument("--pdamp", type=float, help="NPT barostat time, fs (default 1000 steps)")
    p.add_argument("--seed", type=int, default=0, help="initial velocities and Langevin noise")
    p.set_defaults(func=cmd_md)

    p = subparsers.add_parser("optimize", help="relax a structure (BFGS or FIRE; --cell for periodic cells)")
    add_calculator_arguments(p)
    p.add_argument("--atoms", required=True, help="structure file ASE reads")
    p.add_argument("--index", default="-1", help="frame of a multi-frame file (default: the last)")
    p.add_argument("--fmax", type=float, default=0.01, help="converged when every force is below this, eV/Å (default 0.01)")
    p.add_argument("--optimizer", default="bfgs", choices=["bfgs", "fire"])
    p.add_argument("--cell", action="store_true", help="relax the cell too (periodic systems)")
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--trajectory", help="ASE trajectory of every step")
    p.add_argument("--log", help="ASE optimizer log, written every step (default: none)")
    p.add_argument("--output", help="write the relaxed structure here (any format ASE writes)")
    p.set_defaults(func=cmd_optimize)

    p = subparsers.add_parser("vibrations", help="harmonic frequencies (cm⁻¹) from the model's Hessian")
    add_calculator_arguments(p)
    p.add_argument("--atoms", required=True, help="structure file ASE reads (ideally at a minimum: equinnp optimize)")
    p.add_argument("--index", default="-1", help="frame of a multi-frame file (default: the last)")
    p.add_argument("--modes", help="write the normal modes here (Jmol xyz)")
    p.add_argument("--hessian", help="write the Hessian (eV/Å², [3N, 3N]) here as .npy")
    p.set_defaults(func=cmd_vibrations)


def cmd_md(args) -> int:
    from equinnp.simulate.common import calculator_from_args, graceful_interrupt, read_atoms
    from equinnp.simulate.md import run_md

    atoms = None if args.resume else read_atoms(args.atoms, args.index)
    calculator = calculator_from_args(args)
    with graceful_interrupt() as stop:
        result = run_md(atoms, calculator, ensemble=args.ensemble, temperature=args.temperature, timestep=args.timestep,
                        steps=args.steps, trajectory=args.trajectory, log=args.log, interval=args.interval,
                        resume=args.resume, seed=args.seed, progress=sys.stderr.isatty(), stop=stop,
                        friction=args.friction, tdamp=args.tdamp, pressure=args.pressure, pdamp=args.pdamp)
    print(f"{result['steps_done']} of {args.steps} steps ({result['steps_run']} now, {result['steps_per_second']:.1f} steps/s, "
          f"{calculator.neighbor_searches} neighbor searches); trajectory {args.trajectory}")
    if result["interrupted"]:
        print(f"equinnp md: interrupted at step {result['steps_done']}; continue with the same command and --resume",
              file=sys.stderr)
        return 130
    return 0


def cmd_optimize(args) -> int:
    from equinnp.simulate.common import calculator_from_args, graceful_interrupt, read_atoms
    from equinnp.simulate.optimize import optimize

    atoms = read_atoms(args.atoms, args.index)
    with graceful_interrupt() as stop:
        result = optimize(atoms, calculator_from_args(args), fmax=args.fmax, optimizer=args.optimizer, cell=args.cell,
                          max_steps=args.max_steps, trajectory=args.trajectory, log=args.log,
                          progress=sys.stderr.isatty(), stop=stop)
    state = "converged" if result["converged"] else ("interrupted" if result["interrupted"] else "not converged")
    print(f"{state} after {result['steps']} steps: energy {result['energy']:.6f} eV, max force {result['fmax']:.5f} eV/Å")
    if args.output:
        import ase.io

        ase.io.write(args.output, result["atoms"])
        print(f"relaxed structure: {args.output}")
    return 0 if result["converged"] else (130 if result["interrupted"] else 1)


def cmd_vibrations(args) -> int:
    from equinnp.simulate.common import calculator_from_args, read_atoms
    from equinnp.simulate.vibrations import vibrations

    atoms = read_atoms(args.atoms, args.index)
    result = vibrations(atoms, calculator_from_args(args), modes_file=args.modes)
    if args.hessian:
        import numpy as np

        np.save(args.hessian, result["hessian"])
    rigid = result["rigid"]
    print(f"{len(atoms)} atoms ({atoms.get_chemical_formula()}), max force {result['fmax']:.2e} eV/Å"
          + (" (not at a minimum: the rigid-body modes are not zero; relax first with equinnp optimize)"
             if result["fmax"] > 0.01 else ""))
    print(f"{'mode':>4}  {'cm^-1':>10}")
    for k, frequency in enumerate(result["frequencies"]):
        note = "  translation/rotation" if k < rigid else ""
        shown = f"{abs(frequency):10.2f}" + ("i" if frequency < 0 else " ")
        print(f"{k:4d}  {shown}{note}")
    if args.modes:
        print(f"normal modes: {args.modes}")
    return 0
