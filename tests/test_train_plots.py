"""Parity plots: counts and metrics on every panel, a density view where points overlap."""

import numpy as np
import pytest

from equinnp.train.plots import DENSITY_THRESHOLD, parity_figure, parity_panels, parity_plot


def _arrays(num_structures=1000, num_components=27000, seed=0):
    rng = np.random.default_rng(seed)
    energy_ref = -97000.0 + rng.normal(0, 0.5, num_structures)
    forces_ref = rng.normal(0, 1.0, num_components)
    return {
        "energy_ref": energy_ref, "energy_pred": energy_ref + rng.normal(0, 0.01, num_structures),
        "forces_ref": forces_ref, "forces_pred": forces_ref + rng.normal(0, 0.05, num_components),
    }


def test_panels_carry_count_mae_and_rmse_in_metric_units():
    arrays = _arrays()
    energy, forces = parity_panels(arrays)
    error = arrays["forces_pred"] - arrays["forces_ref"]
    assert forces.name == "forces" and forces.count == 27000
    assert forces.mae == pytest.approx(1000 * np.abs(error).mean())
    assert forces.rmse == pytest.approx(1000 * np.sqrt((error ** 2).mean()))
    assert energy.count == 1000 and abs(energy.reference.mean()) < 1e-6  # relative to the mean reference
    assert energy.mae == pytest.approx(1000 * np.abs(arrays["energy_pred"] - arrays["energy_ref"]).mean())
    assert forces.density and not energy.density and DENSITY_THRESHOLD < 27000


def test_figure_draws_a_density_for_many_points_and_states_the_numbers(tmp_path):
    from matplotlib.collections import PathCollection, PolyCollection

    arrays = _arrays()
    fig = parity_figure(arrays, title="test set")
    energy_ax, forces_ax = fig.axes[:2]
    assert any(isinstance(c, PolyCollection) for c in forces_ax.collections)  # hexbin
    assert not any(isinstance(c, PathCollection) for c in forces_ax.collections)
    assert any(isinstance(c, PathCollection) for c in energy_ax.collections)  # scatter
    text = forces_ax.texts[0].get_text()
    forces = parity_panels(arrays)[1]
    assert "n = 27,000" in text and f"MAE {forces.mae:.2f} meV/Å" in text and f"RMSE {forces.rmse:.2f} meV/Å" in text
    assert "n = 1,000" in energy_ax.texts[0].get_text() and "meV" in energy_ax.texts[0].get_text()
    path = parity_plot(arrays, tmp_path / "parity.png", title="test set")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_outputs_with_values_get_a_panel():
    arrays = _arrays(20, 0)
    del arrays["forces_ref"], arrays["forces_pred"]
    assert [panel.name for panel in parity_panels(arrays)] == ["energy"]
    with pytest.raises(ValueError, match="nothing to plot"):
        parity_figure({})
