"""``fspkit search STAGE``: ``robnet search`` with the FSP scorer, the proxies and the FSP filter."""

from __future__ import annotations

import argparse
from typing import Any

from fspkit.search import PROXIES, FSPSearchConfig, plugins
from robnet.cli.search import add_search_parser, folder_plugin, run_search

__all__ = ["add_fsp_search_parser", "cmd_search"]


def _fsp_flags(p: argparse.ArgumentParser) -> None:
    f = p.add_argument_group("FSP (fspkit)")
    f.add_argument("--fsp-keep", type=float, default=None,
                   help="finetune only this fraction of candidates, those with the smallest deep-cell FSP distance")
    f.add_argument("--fsp-threshold", type=float, default=None,
                   help="finetune only candidates whose deep-cell FSP distance is at most this")
    f.add_argument("--no-proxies", action="store_true", default=None,
                   help="skip the zero-cost proxies (grad-norm, SynFlow, NASWOT)")


def add_fsp_search_parser(sub: Any) -> None:
    add_search_parser(sub, "fspkit", extra=_fsp_flags)


def cmd_search(args: argparse.Namespace) -> int:
    """The FSP settings given as flags, or the run folder's own when none is given."""
    given = args.fsp_keep is not None or args.fsp_threshold is not None or args.no_proxies is not None
    plugin = folder_plugin(args) if not given else None
    if plugin is None and (given or args.stage in ("all", "supernet", "sample")):
        plugin = FSPSearchConfig(keep=args.fsp_keep, threshold=args.fsp_threshold,
                                 proxies=() if args.no_proxies else PROXIES).plugin()
    scorer, candidate_filter = plugins(plugin) if plugin is not None else (None, None)
    return run_search(args, prog="fspkit", plugin=plugin, scorer=scorer, candidate_filter=candidate_filter)
