import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, settings

# Structures are built from a drawn seed, so shrinking cannot simplify them: skip it.
NO_SHRINK = [Phase.explicit, Phase.generate]
COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)

# ci (the default): the same examples on every run and every machine, nothing read from
# or written to .hypothesis/, a failing example printed with its reproduction blob.
settings.register_profile("ci", max_examples=12, derandomize=True, database=None, print_blob=True, **COMMON)
# thorough: ten times the examples, newly drawn on every run (failures are still replayed
# from .hypothesis/ until fixed, as Hypothesis does by default).
settings.register_profile("thorough", max_examples=120, print_blob=True, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          deadline=None, suppress_health_check=COMMON["suppress_health_check"])
# dev: few random examples, for quick local iterations.
settings.register_profile("dev", max_examples=4, print_blob=True, phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          deadline=None, suppress_health_check=COMMON["suppress_health_check"])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Small tensor operations gain nothing from a second thread, and lose a lot on a shared machine.
torch.set_num_threads(1)

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
SHARED_DATA = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))


@pytest.fixture(scope="session")
def rmd17_frames():
    """Real rMD17 structures (ethanol, aspirin) as float64 Data records with labels."""
    from equinnp.data import from_arrays

    frames = np.load(os.path.join(DATA_DIR, "rmd17_frames.npz"))
    records = []
    for molecule in ("ethanol", "aspirin"):
        z = frames[f"{molecule}_z"]
        for pos, energy, forces in zip(frames[f"{molecule}_pos"], frames[f"{molecule}_energy"], frames[f"{molecule}_forces"]):
            records.append(from_arrays(z, pos, energy=energy, forces=forces, dtype=torch.float64))
    return records
