"""The paper's figures from a study's analysis (matplotlib and seaborn, imported lazily).

:mod:`~fspkit.plots.data` prepares what each figure shows without matplotlib; :mod:`~fspkit.plots.style`
is the look and the files; :mod:`~fspkit.plots.architecture`, :mod:`~fspkit.plots.fsp` and
:mod:`~fspkit.plots.proxies` draw; :mod:`~fspkit.plots.figures` puts whole figures together. No
statistic is computed here: every number comes from :func:`fspkit.stats.analyze`.
"""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
