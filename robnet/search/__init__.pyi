"""The one-shot robust architecture search (Guo et al., CVPR 2020, section 3; docs/search.md).

Stages on one run folder: ``supernet`` (PGD adversarial training of the weight-sharing supernet),
``sample`` (N distinct genotypes), ``finetune`` (each candidate inherits the supernet's weights,
is evaluated, finetuned and evaluated again) and ``report``.
"""

from .candidate import accuracy, count_flops, count_params, recalibrate_bn
from .config import PAPER_BUDGETS, PRESETS, SearchConfig, preset_config, sample_candidates, space_size
from .rundir import SearchDir
from .stages import CandidateFilter, ScoreContext, Scorer, finetune_stage, genotype_stats

__all__ = [
    "PAPER_BUDGETS", "PRESETS", "CandidateFilter", "ScoreContext", "Scorer", "SearchConfig", "SearchDir", "accuracy",
    "count_flops", "count_params", "finetune_stage", "genotype_stats", "preset_config", "recalibrate_bn",
    "sample_candidates", "space_size",
]
