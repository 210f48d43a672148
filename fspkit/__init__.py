"""fspkit: FSP-based robustness analysis on top of robnet (hook capture, fused FSP distance, scoring)."""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
