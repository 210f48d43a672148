"""The one-shot robust architecture search (Guo et al., CVPR 2020, section 3; docs/search.md).

:func:`run` is the entry point: stages ``supernet`` (PGD adversarial training of the weight-sharing
supernet), ``sample`` (N distinct genotypes), ``finetune`` (each candidate inherits the supernet's
weights, is evaluated, finetuned and evaluated again) and ``select`` (the best one, chosen on the
validation split, re-measured on the test split), on one run folder, resumable, on one process,
several local ones (``procs``) or a torchrun cluster. :mod:`~robnet.search.records` is the one
schema of the candidate records and their reader; :class:`SearchConfig` and :data:`PRESETS` say
what a search is.
"""

from .candidate import accuracy, count_flops, count_params, recalibrate_bn
from .config import PAPER_BUDGETS, PRESETS, SCHEDULES, SearchConfig, preset_config, sample_candidates, space_size
from .finetune import retest_ids, survivors
from .records import COLUMNS, RecordError, RecordSet, read_records
from .report import report_text
from .rundir import SearchDir
from .runner import STAGES, run
from .select import read_selection
from .stages import CandidateFilter, ScoreContext, Scorer, genotype_stats, step_genotype

__all__ = [
    "COLUMNS", "PAPER_BUDGETS", "PRESETS", "SCHEDULES", "STAGES", "CandidateFilter", "RecordError", "RecordSet",
    "ScoreContext", "Scorer", "SearchConfig", "SearchDir", "accuracy", "count_flops", "count_params",
    "genotype_stats", "preset_config", "read_records", "read_selection", "recalibrate_bn", "report_text",
    "retest_ids", "run", "sample_candidates", "space_size", "step_genotype", "survivors",
]
