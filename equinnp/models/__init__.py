"""The architectures. ``ARCHITECTURES`` is the one registry every consumer iterates:
tests, the command line, config validation and the benchmarks."""

from equinnp.models.aimnet2 import AIMNet2
from equinnp.models.ani2x import ANI2x
from equinnp.models.base import AtomicOutput, AtomisticModel, Graph
from equinnp.models.dimenetpp import DimeNetPlusPlus
from equinnp.models.mace import MACE
from equinnp.models.painn import PaiNN
from equinnp.models.physnet import PhysNet
from equinnp.models.sake import SAKE
from equinnp.models.schnet import SchNet
from equinnp.models.tensornet import TensorNet

ARCHITECTURES = {
    "schnet": SchNet,
    "painn": PaiNN,
    "mace": MACE,
    "tensornet": TensorNet,
    "sake": SAKE,
    "ani2x": ANI2x,
    "dimenetpp": DimeNetPlusPlus,
    "physnet": PhysNet,
    "aimnet2": AIMNet2,
}

__all__ = ["AIMNet2", "ANI2x", "ARCHITECTURES", "AtomicOutput", "AtomisticModel", "DimeNetPlusPlus", "Graph", "MACE", "PaiNN", "PhysNet", "SAKE",
           "SchNet", "TensorNet"]
