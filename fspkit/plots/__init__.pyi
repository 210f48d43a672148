"""The paper's figures from a study's analysis (matplotlib and seaborn, imported lazily).

:mod:`~fspkit.plots.data` prepares what each figure shows without matplotlib; :mod:`~fspkit.plots.style`
is the look and the files; :mod:`~fspkit.plots.architecture`, :mod:`~fspkit.plots.fsp` and
:mod:`~fspkit.plots.proxies` draw; :mod:`~fspkit.plots.figures` puts whole figures together. No
statistic is computed here: every number comes from :func:`fspkit.stats.analyze`.
"""

from .architecture import (
    plot_density,
    plot_direct_convs,
    plot_finetune,
    plot_finetune_hist,
    plot_params,
    plot_tsne,
    plot_weights,
)
from .data import KEEP, caption_text, direct_convs, run_context, series
from .figures import FIGURES, draw_figure, figure_script, make_figure, plot_all, plot_run
from .fsp import plot_filtering, plot_fsp_depth
from .proxies import plot_proxies
from .style import DPI, FORMATS, add_caption, new_figure, plot_style, save_figure

__all__ = [
    "DPI",
    "FIGURES",
    "FORMATS",
    "KEEP",
    "add_caption",
    "caption_text",
    "direct_convs",
    "draw_figure",
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
