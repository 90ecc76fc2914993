"""The trainer sets MACE's average neighbor count from the training structures."""

import numpy as np
import torch

import equinnp
from equinnp.data import from_arrays
from equinnp.neighbors import brute_force_radius_graph
from equinnp.train.fitting import average_num_neighbors, fit_postprocessing


def test_average_num_neighbors_counts_pairs_within_the_cutoff(rmd17_frames):
    cutoff = 2.0
    edges = sum(brute_force_radius_graph(d.pos, cutoff).edge_index.shape[1] for d in rmd17_frames)
    atoms = sum(d.num_nodes for d in rmd17_frames)  # ethanol and aspirin: pooled over atoms
    assert average_num_neighbors(rmd17_frames, cutoff) == edges / atoms
    crystal = from_arrays([6], [[0.0, 0.0, 0.0]], cell=np.eye(3) * 2.0, pbc=True, dtype=torch.float64)
    assert average_num_neighbors([crystal], 2.5) == 6.0  # simple cubic, a = 2 Å: 6 images at 2 Å, the next at 2.83 Å
    assert average_num_neighbors([crystal], 3.0) == 18.0  # + 12 at 2√2 Å


def test_fit_postprocessing_sets_mace_avg_num_neighbors(rmd17_frames):
    pot = equinnp.build_potential("mace", elements=[1, 6, 8], **equinnp.ARCHITECTURES["mace"].tiny)
    training = {"reference_energies": "fit", "scale": "rms_forces"}
    fitted = fit_postprocessing(pot, rmd17_frames[:3], training, model_config={})
    assert fitted["avg_num_neighbors"] == average_num_neighbors(rmd17_frames[:3], pot.cutoff)
    assert float(pot.model.avg_num_neighbors) == fitted["avg_num_neighbors"]
    fixed = fit_postprocessing(pot, rmd17_frames[:3], training, model_config={"avg_num_neighbors": 3.0})
    assert "avg_num_neighbors" not in fixed
