"""Simulations with a trained potential through ASE: molecular dynamics, geometry optimization, vibrations.

Each is a function (``run_md``, ``optimize``, ``vibrations``) and an ``equinnp``
subcommand (``equinnp md | optimize | vibrations``, registered by
``equinnp.simulate.cli``).
"""
