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

from .checkpoint import CheckpointError, load, load_raw, save
from .external import ArchSpec, parse_arch_kwargs, resolve_arch
from .files import atomic_open, atomic_write, file_md5
from .models import load_model
from .official import load_any, load_official
from .results import (
    append_jsonl,
    check_output_path,
    config_hash,
    derive_seed,
    dumps,
    provenance,
    read_jsonl,
    to_jsonable,
    versions,
    write_json,
)
from .rundir import RunDir, RunExistsError, RunLockedError, run_lock

__all__ = [
    "ArchSpec", "CheckpointError", "RunDir", "RunExistsError", "RunLockedError", "append_jsonl", "atomic_open",
    "atomic_write", "check_output_path", "config_hash", "derive_seed", "dumps", "file_md5", "load", "load_any",
    "load_model", "load_official", "load_raw", "parse_arch_kwargs", "provenance", "read_jsonl", "resolve_arch",
    "run_lock", "save", "to_jsonable", "versions", "write_json",
]
