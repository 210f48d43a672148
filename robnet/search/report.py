"""What a search has done so far, in a few lines: progress with an ETA, the top candidates, the honest
re-measurement of the best one, and the command that trains it from scratch (``robnet search report``)."""

from __future__ import annotations

from typing import Any

from robnet.search import records as R
from robnet.search.rundir import SearchDir
from robnet.search.select import read_selection
from robnet.search.stages import supernet_progress

__all__ = ["header", "report_text"]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _fmt_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def header(sd: SearchDir) -> str:
    """The first line: the folder, its config hash and what the search is."""
    cfg = sd.config
    return (f"search {sd.path} (config {sd.config_hash}; {cfg.data}, C={cfg.C}, {cfg.layers} cells, "
            f"{'cell-free' if cfg.cell_free else 'cell-based'}, budget {cfg.budget}, attack {cfg.eval_attack}, "
            f"finetune {cfg.finetune.epochs} epoch(s) {cfg.finetune_schedule})")


def _progress(sd: SearchDir, n: int, scored: dict[int, Any], final: dict[int, Any]) -> list[str]:
    filtered = sum(1 for r in final.values() if r.get(R.FILTERED_OUT))
    per_score = _mean([r["seconds_first_pass"] for r in scored.values() if "seconds_first_pass" in r])
    per_ft = _mean([r["seconds_finetune"] for r in final.values() if r.get("seconds_finetune") is not None])
    world = sd.last_world_size()
    eta = (per_score or 0.0) * (n - len(scored)) / world + (per_ft or 0.0) * (n - len(final)) / world
    known = per_score is not None and (per_ft is not None or len(final) == n)
    lines = [f"scored     {len(scored)}/{n}",
             f"finished   {len(final)}/{n}" + (f" ({filtered} filtered out before finetuning)" if filtered else "")]
    if len(final) < n:
        lines.append(f"ETA        {_fmt_seconds(eta) if known else 'unknown until a candidate finishes'}"
                     f" at {world} process(es)")
    return lines


def _top(sd: SearchDir, final: dict[int, Any], top: int) -> list[str]:
    rows = sorted((r for r in final.values() if r.get(R.PGD_ACC) is not None),
                  key=lambda r: (-r[R.PGD_ACC], r[R.ID]))[:top]
    if not rows:
        return []
    lines = ["", f"top {len(rows)} by PGD accuracy after finetuning (validation split, {sd.config.eval_attack}):",
             f"{'id':>5} {'pgd':>6} {'clean':>6} {'pgd@0':>6} {'epochs':>6} {'density':>7} {'convs':>5} "
             f"{'params':>9}  genotype"]
    for r in rows:
        lines.append(f"{r[R.ID]:>5} {r[R.PGD_ACC]:6.3f} {r[R.CLEAN_ACC]:6.3f} {r[R.PGD_ACC_BEFORE]:6.3f} "
                     f"{r.get(R.FINETUNE_EPOCHS, sd.config.finetune.epochs):>6} {r[R.DENSITY]:7.3f} "
                     f"{r[R.CONVS]:5g} {r[R.PARAMS]:9,d}  {r[R.GENOTYPE]}")
    return lines


def _selection(sd: SearchDir) -> list[str]:
    sel = read_selection(sd)
    if sel is None:
        return []
    val, test = sel["validation"], sel["test"]
    lo, hi = test["pgd_acc_ci95"]
    return ["", f"best candidate {sel[R.ID]}, chosen on the validation split: PGD accuracy {val[R.PGD_ACC]:.3f} "
                f"(n={val['n']}; the maximum of many noisy estimates, biased upward)",
            f"  re-measured on the test split, never used for any choice: PGD accuracy {test[R.PGD_ACC]:.3f} "
            f"[95% CI {lo:.3f}, {hi:.3f}], clean {test[R.CLEAN_ACC]:.3f} (n={test['n']})"]


def report_text(sd: SearchDir, *, top: int = 10) -> str:
    """Progress (done/total, ETA), the top-``top`` candidates by PGD accuracy after finetuning, the
    best one's test-split re-measurement, and the command that trains it from scratch."""
    cfg = sd.config
    ep_done, ep_total = supernet_progress(sd)
    lines = [header(sd), f"supernet   {ep_done}/{ep_total} epochs"]
    if not sd.has_candidates():
        lines.append(f"candidates not sampled yet (next: robnet search sample --out {sd.path})")
        return "\n".join(lines)
    final = sd.read_shards("records")
    lines += _progress(sd, len(sd.read_candidates()), sd.read_shards("scores"), final)
    table = _top(sd, final, top)
    if not table:
        return "\n".join(lines)
    lines += table + _selection(sd)
    best = min((r for r in final.values() if r.get(R.PGD_ACC) is not None), key=lambda r: (-r[R.PGD_ACC], r[R.ID]))
    arch = "robnet_free" if cfg.cell_free else "robnet_large"
    lines += ["", "train the best genotype from scratch (the paper's protocol; add --data-dir, and torchrun for "
                  "several GPUs):",
              f"  robnet train --arch {arch} --genotype '{best[R.GENOTYPE]}' --C {cfg.C} --layers {cfg.layers} "
              f"--data {cfg.data} --out runs/search_best"]
    return "\n".join(lines)
