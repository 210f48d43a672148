"""The candidate record: the one schema of a search's results, and the one reader of them.

A search writes one JSON object per candidate (``records.rank{R}.jsonl`` in its run folder, one
file per process); ``fspkit search`` adds its FSP and proxy columns; the statistics, plots, report
and study read records through :func:`read_records`, which also takes JSON Lines and CSV files
made elsewhere. Every value is checked when read: anything else is one :class:`RecordError`
naming the file, the line and the column (or, with ``skip_invalid``, the record is skipped and
counted).

* :mod:`~robnet.search.records.schema`: the columns (:data:`COLUMNS`, the names as constants such
  as :data:`PGD_ACC`), their checks, :func:`check_record`.
* :mod:`~robnet.search.records.folder`: a run folder's files (``search.json``, ``candidates.json``,
  every process's shards).
* :mod:`~robnet.search.records.reader`: :func:`read_records` -> :class:`RecordSet`.

This package imports no torch: statistics on 100,000 records need none.
"""

from .folder import (
    jsonl_records,
    read_candidates,
    read_json_object,
    read_search_json,
    read_shards,
    records_path,
    scores_path,
)
from .reader import RecordSet, read_records
from .schema import (
    BEFORE,
    BITS,
    BUDGET,
    CANDIDATES_FILE,
    CLEAN_ACC,
    CLEAN_ACC_BEFORE,
    COLUMNS,
    CONFIG_FILE,
    CONFIG_HASH,
    CONVS,
    DENSITY,
    DIRECT_CONVS,
    FILTERED_OUT,
    FINETUNE_EPOCHS,
    FLOPS,
    FSP,
    FSP_DEEP,
    FSP_REL,
    FSP_SCALE,
    FSP_STRIDED,
    GENOTYPE,
    ID,
    MISSING_SUFFIX,
    N_EVAL,
    PARAMS,
    PGD_ACC,
    PGD_ACC_BEFORE,
    PGD_ACC_HALF,
    PGD_ACC_RETEST,
    PREFIXES,
    PROXY_PREFIX,
    RANK,
    REQUIRED,
    SCHEMA_VERSION,
    SECONDS_PREFIX,
    SEED,
    VERSIONS,
    Column,
    RecordError,
    check_record,
    column,
    show,
)

__all__ = [
    "BEFORE", "BITS", "BUDGET", "CANDIDATES_FILE", "CLEAN_ACC", "CLEAN_ACC_BEFORE", "COLUMNS", "CONFIG_FILE",
    "CONFIG_HASH", "CONVS", "DENSITY", "DIRECT_CONVS", "FILTERED_OUT", "FINETUNE_EPOCHS", "FLOPS", "FSP", "FSP_DEEP",
    "FSP_REL", "FSP_SCALE", "FSP_STRIDED", "GENOTYPE", "ID", "MISSING_SUFFIX", "N_EVAL", "PARAMS", "PGD_ACC",
    "PGD_ACC_BEFORE", "PGD_ACC_HALF", "PGD_ACC_RETEST", "PREFIXES", "PROXY_PREFIX", "RANK", "REQUIRED",
    "SCHEMA_VERSION", "SECONDS_PREFIX", "SEED", "VERSIONS", "Column", "RecordError", "RecordSet", "check_record",
    "column", "jsonl_records", "read_candidates", "read_json_object", "read_records", "read_search_json",
    "read_shards", "records_path", "scores_path", "show",
]
