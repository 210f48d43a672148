"""Files, checkpoints, results and run folders (public: fspkit uses them too).

* :mod:`~robnet.io.files`: the one atomic writer, md5, download, safe extraction.
* :mod:`~robnet.io.checkpoint`: save/load with ``weights_only``; :mod:`~robnet.io.official`:
  official RobNets checkpoints through the restricted unpickler (:mod:`~robnet.io.unpickle`): no
  pickled code runs.
* :mod:`~robnet.io.models`: ``load_model``, one entry point for any model file (ours, official,
  plain state_dicts, safetensors, opted-in pickles); :mod:`~robnet.io.external` resolves ``--arch``
  (a zoo name or a user's ``MODULE:CALLABLE``).
* :mod:`~robnet.io.results`: provenance, derived seeds, strict JSON and fsynced JSON Lines.
* :mod:`~robnet.io.rundir`: run folders that cannot be clobbered (lock, record, resume checks).
"""

import lazy_loader as _lazy

# The names below load on first use (lazy_loader reads them from __init__.pyi), so importing
# a package does not import torch until something that needs it is used.
__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
