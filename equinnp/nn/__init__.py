"""Building blocks shared by the architectures."""

from equinnp.nn.activations import ShiftedSoftplus
from equinnp.nn.electronic import ChargeHead, TotalChargeSpinEmbedding
from equinnp.nn.cutoff import CosineCutoff, PolynomialCutoff
from equinnp.nn.radial import BesselRBF, GaussianRBF
from equinnp.nn.scatter import scatter_sum

__all__ = ["ShiftedSoftplus", "CosineCutoff", "PolynomialCutoff", "BesselRBF", "GaussianRBF", "scatter_sum", "ChargeHead", "TotalChargeSpinEmbedding"]
