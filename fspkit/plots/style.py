"""The look of every figure and how it is saved: seaborn's style inside ``rc_context`` (never
``set_theme``, so the caller's rcParams stay as they were), ``Figure`` objects without pyplot, a caption
line under the axes, atomic saving with reproducible pdf and svg files. matplotlib and seaborn are
imported inside the functions: ``import fspkit`` never needs them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fspkit.plots.data import caption_text

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

__all__ = ["CAPTION_SIZE", "DPI", "FORMATS", "add_caption", "new_figure", "plot_style", "save_figure"]

FORMATS: tuple[str, ...] = ("png", "pdf", "svg")
DPI = 150
# Font sizes in points at the saved size (>= 9 pt everywhere).
_FONTS: dict[str, float] = {"font.size": 10.0, "axes.titlesize": 11.0, "axes.labelsize": 10.0,
                            "xtick.labelsize": 9.0, "ytick.labelsize": 9.0, "legend.fontsize": 9.0,
                            "legend.title_fontsize": 9.0, "figure.titlesize": 12.0}
CAPTION_SIZE = 9.0


@contextlib.contextmanager
def plot_style() -> Iterator[None]:
    """Seaborn's ``whitegrid`` style, its colorblind palette and this module's font sizes, for the
    duration of the block only (``matplotlib.rc_context``)."""
    import matplotlib as mpl
    import seaborn as sns
    from cycler import cycler

    rc: Any = {**sns.axes_style("whitegrid"), **sns.plotting_context("paper"), **_FONTS,
               "axes.prop_cycle": cycler(color=sns.color_palette("colorblind")), "savefig.dpi": DPI, "figure.dpi": DPI}
    with mpl.rc_context(rc):
        yield


def palette() -> list[Any]:
    """The colorblind palette (10 colours)."""
    import seaborn as sns

    return list(sns.color_palette("colorblind"))


def new_figure(width: float = 5.5, height: float = 4.0) -> Figure:
    """A ``Figure`` (size in inches, constrained layout) in this module's style, unknown to pyplot.

    Make its axes inside :func:`plot_style` (``with plot_style(): ax = fig.subplots()``) so the tick
    labels get this module's font sizes; :func:`fspkit.plots.make_figure` does.
    """
    from matplotlib.figure import Figure

    with plot_style():
        return Figure(figsize=(width, height), layout="constrained", dpi=DPI)


def add_caption(fig: Figure, context: Mapping[str, Any] | None, *, n: int, what: str = "candidates") -> Text:
    """Put the caption line (:func:`fspkit.plots.caption_text`) under the axes of ``fig``; returns its
    ``Text``. With constrained layout the axes move up to make room; without, the line sits on the
    bottom edge (saving with ``bbox_inches="tight"`` keeps it)."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    engine = fig.get_layout_engine()
    if isinstance(engine, ConstrainedLayoutEngine):
        room = (CAPTION_SIZE * 1.6 + 4.0) / (fig.get_figheight() * 72.0)
        engine.set(rect=(0.0, room, 1.0, 1.0 - room))
    return fig.text(0.5, 0.008, caption_text(context, n=n, what=what), ha="center", va="bottom",
                    fontsize=CAPTION_SIZE, color="0.25", wrap=True)


def save_figure(fig: Figure, path: str | Path, *, fmt: str | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically, in ``fmt`` (default: the suffix's format; Agg for png).

    Raises:
        ValueError: a format other than png, pdf or svg.
    """
    import matplotlib as mpl

    from robnet.io.files import atomic_write

    target = Path(path)
    fmt = fmt or target.suffix.lstrip(".") or "png"
    if fmt not in FORMATS:
        raise ValueError(f"figure format {fmt!r} is not supported: expected one of {', '.join(FORMATS)}")
    # pdf and svg embed the creation time unless told not to; without it reruns give identical files
    metadata: dict[str, Any] = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}[fmt]
    with mpl.rc_context({"svg.hashsalt": "fspkit"}):  # svg element ids: fixed instead of random
        atomic_write(target, lambda f: fig.savefig(f, format=fmt, dpi=DPI, metadata=metadata))
    return target


def legend(ax: Axes, *, title: str | None = None, loc: Any = "best", min_entries: int = 2) -> None:
    """A legend inside the axes when there are at least ``min_entries`` labelled artists."""
    handles, labels = ax.get_legend_handles_labels()
    if len(labels) >= min_entries:
        ax.legend(handles, labels, title=title, loc=loc, frameon=True, framealpha=0.9)


def legend_below(ax: Axes, *, title: str | None = None, handles: list[Any] | None = None, ncols: int = 1) -> None:
    """The legend under the axes, clear of the data, the tick labels and the x label; a title line
    wider than the figure wraps (continuation lines indented), so no line is cut at its edges; an arrow
    stays with the verdict that follows it."""
    import textwrap

    from matplotlib.transforms import ScaledTranslation

    if title is not None:
        width = max(40, int(ax.figure.get_size_inches()[0] * 13))  # type: ignore[union-attr]  # never a SubFigure here  # characters of ~10 pt text per line
        lines = (line.replace("→ ", "→\u00a0") for line in title.split("\n"))  # "→ verdict" stays one word
        title = "\n".join(textwrap.fill(line, width, subsequent_indent="  ") for line in lines)
    below = ax.transAxes + ScaledTranslation(0.0, -44.0 / 72.0, ax.figure.dpi_scale_trans)
    extra: dict[str, Any] = {} if handles is None else {"handles": handles}
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=below, title=title, frameon=False,
              ncols=ncols, **extra)


def note_panel(ax: Axes, text: str, title: str) -> None:
    """An empty panel that says why it is empty."""
    import textwrap

    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, textwrap.fill(text, 40), ha="center", va="center", fontsize=10, color="0.3",
            transform=ax.transAxes)
