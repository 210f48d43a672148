"""The paper's figures from a study's analysis (matplotlib and seaborn, imported lazily).

:mod:`~fspkit.plots.data` prepares what each figure shows without matplotlib;
:mod:`~fspkit.plots.figures` draws.
"""

from .data import KEEP
from .figures import (
    FIGURES,
    FORMATS,
    add_caption,
    caption_text,
    direct_convs,
    figure_script,
    make_figure,
    new_figure,
    plot_all,
    plot_density,
    plot_direct_convs,
    plot_filtering,
    plot_finetune,
    plot_finetune_hist,
    plot_fsp_depth,
    plot_params,
    plot_proxies,
    plot_run,
    plot_style,
    plot_tsne,
    plot_weights,
    run_context,
    save_figure,
    series,
)

__all__ = [
    "FIGURES",
    "FORMATS",
    "KEEP",
    "add_caption",
    "caption_text",
    "direct_convs",
    "figure_script",
    "make_figure",
    "new_figure",
    "plot_all",
    "plot_density",
    "plot_direct_convs",
    "plot_filtering",
    "plot_finetune",
    "plot_finetune_hist",
    "plot_fsp_depth",
    "plot_params",
    "plot_proxies",
    "plot_run",
    "plot_style",
    "plot_tsne",
    "plot_weights",
    "run_context",
    "save_figure",
    "series",
]
