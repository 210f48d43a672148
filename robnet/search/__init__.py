"""The one-shot robust architecture search (Guo et al., CVPR 2020, section 3; docs/search.md).

Stages on one run folder: ``supernet`` (PGD adversarial training of the weight-sharing supernet),
``sample`` (N distinct genotypes), ``finetune`` (each candidate inherits the supernet's weights,
is evaluated, finetuned and evaluated again) and ``report``.
"""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
