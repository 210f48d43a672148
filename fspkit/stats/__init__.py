"""Statistics of a robust architecture search (numpy, scipy, scikit-learn; no torch).

Correlations with their p-values and intervals (plain, partial, within strata of equal capacity),
permutation tests, bootstrap and BCa intervals, Holm's correction, the measurement's noise, the
paper's Findings #1-#3 as claims with verdicts, how well a cheap score filters candidates, and the
study (:func:`analyze`) that runs them all. docs/study.md states each claim's test.
"""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
