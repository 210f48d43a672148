"""robnet: the RobNets search space, model zoo, attacks, adversarial training and one-shot search."""

from .genotype import ROBNET_FREE, ROBNET_LARGE, Genotype
from .network import RobNet, build_robnet
from .zoo import build_model, list_models

__all__ = ["ROBNET_FREE", "ROBNET_LARGE", "Genotype", "RobNet", "build_model", "build_robnet", "list_models"]
__version__ = "0.1.0"
