"""Published pretrained potentials: ``equinnp.load_pretrained(name)``.

=========  ================================================================
name       model
=========  ================================================================
``ani2x``  ANI-2x (Devereux et al. 2020), the 8-member ensemble, wB97X/6-31G(d),
           elements H C N O S F Cl; ``energy_std`` is the ensemble spread
=========  ================================================================
"""

from __future__ import annotations

__all__ = ["PRETRAINED", "load_pretrained"]

PRETRAINED = {"ani2x": "ANI-2x (Devereux et al., JCTC 16, 4192 (2020)): 8-member ensemble, H C N O S F Cl"}


def load_pretrained(name: str, path=None, *, dtype: str = "float32", float32_constants: bool = True,
                    members=None, download: bool = True):
    """A published model as a ready ``Potential`` (energies in eV, forces in eV/Å).

    Parameters
    ----------
    name : str
        One of ``PRETRAINED`` (``"ani2x"``).
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

    Examples
    --------
    >>> pot = equinnp.load_pretrained("ani2x")
    >>> out = pot(equinnp.data.from_ase(ase.build.molecule("CH3SH")))
    >>> out.energy, out.forces, out.energy_std        # eV, eV/Å, eV
    """
    if name not in PRETRAINED:
        from equinnp.suggest import unknown_key_error

        raise unknown_key_error(name, PRETRAINED, "pretrained model")
    from equinnp.pretrained.ani2x import build_ani2x
    from equinnp.pretrained.download import locate_ani2x

    return build_ani2x(locate_ani2x(path, download=download), dtype=dtype, float32_constants=float32_constants,
                       members=members)
