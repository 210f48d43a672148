"""robnet: the RobNets search space, model zoo, attacks, adversarial training and one-shot search.

Subpackages: :mod:`robnet.models`, :mod:`robnet.attacks`, :mod:`robnet.data`, :mod:`robnet.train`,
:mod:`robnet.search`, :mod:`robnet.io`, :mod:`robnet.cli`; shared helpers in :mod:`robnet.utils`.
"""

from .models import ROBNET_FREE, ROBNET_LARGE, Genotype, RobNet, build_model, build_robnet, list_models

__version__ = "0.2.0"
__all__ = ["ROBNET_FREE", "ROBNET_LARGE", "Genotype", "RobNet", "__version__", "build_model", "build_robnet",
           "list_models"]
