"""robnet: the RobNets search space, model zoo, attacks, adversarial training and one-shot search.

Subpackages: :mod:`robnet.models`, :mod:`robnet.attacks`, :mod:`robnet.data`, :mod:`robnet.train`,
:mod:`robnet.search`, :mod:`robnet.io`, :mod:`robnet.cli`; shared helpers in :mod:`robnet.utils`.
"""

import lazy_loader as _lazy

__version__ = "0.2.0"

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
