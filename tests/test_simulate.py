"""``equinnp md``, ``optimize`` and ``vibrations`` with a tiny model: Ctrl-C keeps the frames and
``--resume`` continues them; relaxation converges; a relaxed molecule has six near-zero modes."""

import os
import signal
import subprocess
import sys
import time

import ase
import ase.io
import numpy as np
import pytest
import torch

import equinnp
from equinnp.calculators import EquinnpCalculator
from equinnp.cli import main
from equinnp.data.bundled import ethanol_atoms
from equinnp.simulate.common import StopRequest
from equinnp.simulate.md import run_md
from equinnp.simulate.optimize import optimize
from equinnp.simulate.vibrations import vibrations

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny float64 SchNet with small forces, saved; and an ethanol structure file."""
    torch.manual_seed(0)
    potential = equinnp.build_potential("schnet", cutoff=4.0, elements=[1, 6, 8], dtype="float64", scale=0.3,
                                        **equinnp.ARCHITECTURES["schnet"].tiny)
    folder = tmp_path_factory.mktemp("simulate")
    potential.save(folder / "model.pt")
    ase.io.write(folder / "ethanol.xyz", ethanol_atoms())
    return folder


def test_md_stopped_keeps_its_frames_and_resumes_to_the_same_total(model, tmp_path):
    calculator = EquinnpCalculator(model / "model.pt")
    stop = StopRequest()

    def interrupt(step):
        if step == 7:
            stop.requested = True

    traj = tmp_path / "md.traj"
    first = run_md(ethanol_atoms(), calculator, ensemble="langevin", temperature=300, timestep=0.5, steps=20,
                   trajectory=traj, interval=5, progress=False, stop=stop, on_step=interrupt)
    assert first["interrupted"] and first["steps_done"] == 7
    frames = ase.io.read(traj, ":")
    assert [f.info["md_step"] for f in frames] == [0, 5, 7]
    second = run_md(None, calculator, ensemble="langevin", temperature=300, timestep=0.5, steps=20, trajectory=traj,
                    interval=5, resume=True, progress=False)
    assert not second["interrupted"] and second["steps_run"] == 13
    frames = ase.io.read(traj, ":")
    assert [f.info["md_step"] for f in frames] == [0, 5, 7, 10, 15, 20]
    log = (tmp_path / "md.log").read_text().splitlines()
    assert log[0].startswith("# step") and [int(line.split()[0]) for line in log[1:]] == [0, 5, 7, 10, 15, 20]
    with pytest.raises(ValueError, match="exists: continue it with --resume"):
        run_md(ethanol_atoms(), calculator, steps=5, trajectory=traj, progress=False)


@pytest.mark.parametrize("ensemble", ["nve", "nose-hoover", "npt"])
def test_ensembles_run(model, tmp_path, ensemble):
    atoms = ethanol_atoms()
    if ensemble == "npt":
        with pytest.raises(ValueError, match="npt ensemble needs a cell periodic in all three directions"):
            run_md(atoms, EquinnpCalculator(model / "model.pt"), ensemble="npt", steps=2, trajectory=tmp_path / "x.traj", progress=False)
        atoms = ase.Atoms("H2O" * 8, positions=np.random.default_rng(0).uniform(0, 6, (24, 3)), cell=[6.0] * 3, pbc=True)
    result = run_md(atoms, EquinnpCalculator(model / "model.pt"), ensemble=ensemble, temperature=300, timestep=0.5,
                    steps=4, trajectory=tmp_path / f"{ensemble}.traj", interval=2, progress=False)
    assert result["steps_done"] == 4
    frames = ase.io.read(tmp_path / f"{ensemble}.traj", ":")
    assert len(frames) == 3 and np.isfinite(frames[-1].get_potential_energy())


def test_ctrl_c_on_the_command_line_keeps_frames_and_resume_finishes(model, tmp_path):
    traj = tmp_path / "md.traj"
    command = [sys.executable, "-m", "equinnp.cli", "md", str(model / "model.pt"), "--atoms", str(model / "ethanol.xyz"),
               "--steps", "100000", "--interval", "2", "--trajectory", str(traj), "--threads", "1"]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not traj.exists() or len((tmp_path / "md.log").read_text().splitlines()) < 4):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "continue with the same command and --resume" in err
    frames = ase.io.read(traj, ":")
    done = frames[-1].info["md_step"]
    assert len(frames) >= 3 and 4 <= done < 100000
    resume = [c if c != "100000" else str(done + 4) for c in command if c not in ("--atoms", str(model / "ethanol.xyz"))]
    assert main(resume[3:] + ["--resume"]) == 0
    assert ase.io.read(traj, index=-1).info["md_step"] == done + 4


def test_optimize_converges_and_the_minimum_has_six_zero_modes(model, tmp_path, capsys):
    calculator = EquinnpCalculator(model / "model.pt")
    result = optimize(ethanol_atoms(), calculator, fmax=1e-3, progress=False, log=tmp_path / "opt.log")
    assert result["converged"] and result["fmax"] < 1e-3
    assert len((tmp_path / "opt.log").read_text().splitlines()) == result["steps"] + 2  # header, then one line per step
    vib = vibrations(result["atoms"], calculator, modes_file=str(tmp_path / "modes.xyz"))
    frequencies = np.abs(vib["frequencies"])
    # translations exactly zero; rotations zero up to the residual force; the softest vibration of this random model is 15 cm⁻¹
    assert vib["rigid"] == 6 and frequencies[:3].max() < 1e-2 and frequencies[:6].max() < 10.0
    assert frequencies[6] > 2 * frequencies[:6].max()
    assert (tmp_path / "modes.xyz").stat().st_size > 0
    ase.io.write(tmp_path / "relaxed.xyz", result["atoms"])
    assert main(["vibrations", str(model / "model.pt"), "--atoms", str(tmp_path / "relaxed.xyz")]) == 0
    assert "translation/rotation" in capsys.readouterr().out


def test_optimize_with_the_cell(model):
    # CsCl-type CO: the forces vanish by symmetry, only the cell relaxes (this model's minimum is near 1.9 Å)
    atoms = ase.Atoms("CO", positions=[[0, 0, 0], [1.2, 1.2, 1.2]], cell=[2.4] * 3, pbc=True)
    calculator = EquinnpCalculator(model / "model.pt")
    result = optimize(atoms, calculator, fmax=0.01, cell=True, max_steps=100, progress=False)
    assert result["converged"] and result["atoms"].cell.lengths().max() < 2.2
    relaxed = result["atoms"]
    assert np.abs(relaxed.get_stress()).max() * relaxed.get_volume() < 0.01
    with pytest.raises(ValueError, match="--cell relaxes a cell periodic in all three directions"):
        optimize(ethanol_atoms(), calculator, cell=True, progress=False)


def test_predict_prints_the_stress_and_writes_its_results(model, tmp_path, capsys):
    import json

    atoms = ase.Atoms("CO", positions=[[0, 0, 0], [1.2, 1.2, 1.2]], cell=[2.4] * 3, pbc=True)
    ase.io.write(tmp_path / "co.xyz", atoms, format="extxyz")
    assert main(["predict", str(model / "model.pt"), "--atoms", str(tmp_path / "co.xyz"), "--threads", "1",
                 "--output", str(tmp_path / "out.json")]) == 0
    assert "stress (eV/Å³" in capsys.readouterr().out
    written = json.loads((tmp_path / "out.json").read_text())
    atoms.calc = EquinnpCalculator(model / "model.pt")
    np.testing.assert_allclose(written["stress"], atoms.get_stress(voigt=False))
    assert main(["predict", str(model / "model.pt"), "--atoms", str(tmp_path / "co.xyz"), "--output", str(tmp_path / "out.xyz")]) == 0
    assert ase.io.read(tmp_path / "out.xyz").get_potential_energy() == pytest.approx(atoms.get_potential_energy())
