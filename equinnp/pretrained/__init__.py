"""Published pretrained potentials: ``equinnp.load_pretrained(name)``.

=========  ================================================================
name       model
=========  ================================================================
``ani2x``  ANI-2x (Devereux et al. 2020), the 8-member ensemble, wB97X/6-31G(d),
           elements H C N O S F Cl; ``energy_std`` is the ensemble spread
``aimnet2`` AIMNet2 (Anstine et al. 2025) from a local model file in aimnet's
           version-2 ``.pt`` format (``path=``; nothing is downloaded)
=========  ================================================================
"""

from __future__ import annotations

__all__ = ["PRETRAINED", "load_pretrained"]

PRETRAINED = {"ani2x": "ANI-2x (Devereux et al., JCTC 16, 4192 (2020)): 8-member ensemble, H C N O S F Cl",
              "aimnet2": "AIMNet2 (Anstine et al., Chem. Sci. 16, 10228 (2025)) from a local aimnet model file (path=)"}


def load_pretrained(name: str, path=None, *, dtype: str = "float32", float32_constants: bool = True,
                    members=None, download: bool = True, exact_charge_conservation: bool = True):
    """A published model as a ready ``Potential`` (energies in eV, forces in eV/Å).

    Parameters
    ----------
    name : str
        One of ``PRETRAINED`` (``"ani2x"``, ``"aimnet2"``).
    path : path, optional
        The folder holding the model files (ANI-2x: ``ani-2x_8x.info`` and ``ani-2x_8x/``).
        Default: ``$EQUINNP_ANI2X_PATH``, else the cache (``~/.cache/equinnp/ani2x``),
        else a download into the cache (``equinnp.pretrained.download``).
    dtype : "float32" or "float64"
        Dtype of the network.
    float32_constants : bool
        True (default): AEV constants and self energies rounded to float32 as TorchANI 2.9
        holds them, so that the numbers are TorchANI's; False: the exact values of the files.
    members : sequence of int, optional
        Keep only these members of the ensemble (``[0]``: one network, TorchANI's ``model_index=0``).
    download : bool
        Allow the download when neither ``path``, the environment variable nor the cache has the files.
    exact_charge_conservation : bool
        AIMNet2: equinnp's exact charge correction (default) or aimnet's form (its numbers to rounding).

    AIMNet2 needs ``path``: a model file in aimnet's version-2 ``.pt`` format
    (``equinnp.pretrained.aimnet2.load_aimnet2_file``); ``float32_constants``,
    ``members`` and ``download`` do not apply to it.

    Examples
    --------
    >>> pot = equinnp.load_pretrained("ani2x")
    >>> out = pot(equinnp.data.from_ase(ase.build.molecule("CH3SH")))
    >>> out.energy, out.forces, out.energy_std        # eV, eV/Å, eV
    """
    if name not in PRETRAINED:
        from equinnp.suggest import unknown_key_error

        raise unknown_key_error(name, PRETRAINED, "pretrained model")
    if name == "aimnet2":
        if path is None:
            raise ValueError("load_pretrained('aimnet2') needs path= to a local aimnet model file (version-2 .pt): "
                             "the published weights are downloaded by the aimnet package, not by equinnp")
        from equinnp.pretrained.aimnet2 import load_aimnet2_file

        return load_aimnet2_file(path, dtype=dtype, exact_charge_conservation=exact_charge_conservation)
    from equinnp.pretrained.ani2x import build_ani2x
    from equinnp.pretrained.download import locate_ani2x

    return build_ani2x(locate_ani2x(path, download=download), dtype=dtype, float32_constants=float32_constants,
                       members=members)
