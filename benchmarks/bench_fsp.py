"""FSP scoring cost: overhead of the streaming scorer, and streaming vs a naive implementation.

1. Overhead: ``fspkit.score`` (attack + one hooked forward of cat([x, x_adv]) with the fused
   per-cell einsum) over the same attack + the same forward without hooks. Target <= 1.10.
2. Streaming vs naive on a fixed adversarial batch (the attack is precomputed, so only the scoring
   is compared): the naive way stores every cell's input and output for the clean and the
   adversarial batch, then loops over cells and samples computing each G with a matmul. Time
   ratio and peak-memory ratio, each measured in a fresh process (CPU: growth of the peak RSS,
   VmHWM, after resetting it; CUDA: ``max_memory_allocated`` growth).

Usage::

    python benchmarks/bench_fsp.py [--C 36] [--layers 20] [--batch-size 64] [--steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from _machine import describe

from fspkit import capture_cells, score
from robnet import build_model
from robnet.attacks.gradient import pgd


def naive_fsp(model: torch.nn.Module, x: torch.Tensor, x_adv: torch.Tensor) -> list[float]:
    """Store all maps of both passes, then loop over cells and samples."""
    with torch.no_grad(), capture_cells(model) as cap_clean:
        model(x)
    with torch.no_grad(), capture_cells(model) as cap_adv:
        model(x_adv)
    out = []
    for (_, ci, co), (_, ai, ao) in zip(cap_clean.features, cap_adv.features, strict=True):
        total = 0.0
        for i in range(len(x)):
            gs = []
            for f_in, f_out in ((ci[i], co[i]), (ai[i], ao[i])):
                h = min(f_in.shape[1], f_out.shape[1])
                w = min(f_in.shape[2], f_out.shape[2])
                a = F.adaptive_avg_pool2d(f_in, (h, w)).reshape(f_in.shape[0], -1)
                b = F.adaptive_avg_pool2d(f_out, (h, w)).reshape(f_out.shape[0], -1)
                gs.append(a @ b.T / (h * w))
            total += float((gs[0] - gs[1]).square().sum())
        out.append(total / len(x))
    return out


def _status_gib(field: str) -> float:
    """VmRSS / VmHWM of this process from /proc (getrusage's ru_maxrss would include the parent's
    RSS at fork time, which survives exec on Linux and hides the child's own peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> float:
    """Reset VmHWM to the current RSS (Linux >= 4.0) and return the baseline to measure from."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_gib("VmRSS")
    except OSError:
        return _status_gib("VmHWM")  # cannot reset: measure growth above the old peak


def worker(args: argparse.Namespace) -> int:
    """Run one scoring method on the saved batch; print seconds and peak-memory growth as JSON."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    blob = torch.load(args.batch_file, weights_only=True)
    torch.manual_seed(0)
    model = build_model("robnet_large", C=args.C, layers=args.layers).to(device).eval()
    model.load_state_dict(blob["state_dict"])
    x, y, x_adv = (blob[k].to(device) for k in ("x", "y", "x_adv"))
    with torch.no_grad():
        model(torch.cat([x, x_adv]))  # warm-up: allocator and kernels, before the baseline
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.max_memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base_rss = _reset_peak_rss()
    t0 = time.perf_counter()
    if args.worker == "ours":
        report = score(model, [(x, y)], lambda m, xx, yy: x_adv)
        values = [c.fsp_mean for c in report.cells]
    else:
        values = naive_fsp(model, x, x_adv)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / 2**30
    else:
        peak = _status_gib("VmHWM") - base_rss
    print(json.dumps({"seconds": seconds, "peak_gib": peak, "values": values}))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--C", type=int, default=36)
    p.add_argument("--layers", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="PGD steps of the attack in the overhead test")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--worker", choices=["ours", "naive"], default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch-file", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model("robnet_large", C=args.C, layers=args.layers).to(device).eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=g).to(device)
    gen = torch.Generator(device=device).manual_seed(0)

    def attack(m: torch.nn.Module, xx: torch.Tensor, yy: torch.Tensor) -> torch.Tensor:
        return pgd(m, xx, yy, eps=8 / 255, step_size=2 / 255, steps=args.steps, generator=gen)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def plain() -> None:
        x_adv = attack(model, x, y)
        with torch.no_grad():
            model(torch.cat([x, x_adv]))
        sync()

    def ours() -> None:
        score(model, [(x, y)], attack)
        sync()

    print(describe(device))
    params = sum(q.numel() for q in model.parameters())
    print(f"robnet_large-shaped network C={args.C}, {args.layers} cells ({params:,} params), eval mode, "
          f"batch {args.batch_size}x3x32x32, PGD-{args.steps}")
    plain()
    ours()
    t_plain, t_ours = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        plain()
        t_plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ours()
        t_ours.append(time.perf_counter() - t0)
    mp, mo = statistics.median(t_plain), statistics.median(t_ours)
    print("\n1. overhead (median of interleaved repeats)\n")
    print("| | s/batch | samples/s |\n|---|---:|---:|")
    print(f"| attack + forward of cat([x, x_adv]), no hooks | {mp:.3f} | {args.batch_size / mp:.1f} |")
    print(f"| fspkit.score (same attack, fused FSP hooks) | {mo:.3f} | {args.batch_size / mo:.1f} |")
    print(f"\noverhead ratio score / plain = {mo / mp:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        batch_file = Path(tmp) / "batch.pt"
        torch.save({"state_dict": model.state_dict(), "x": x.cpu(), "y": y.cpu(),
                    "x_adv": attack(model, x, y).cpu()}, batch_file)
        results = {}
        for method in ("ours", "naive"):
            cmd = [sys.executable, __file__, "--worker", method, "--batch-file", str(batch_file), "--C", str(args.C),
                   "--layers", str(args.layers), "--device", args.device]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results[method] = json.loads(out.strip().splitlines()[-1])
    o, n = results["ours"], results["naive"]
    agree = max(abs(a - b) / max(abs(b), 1e-30) for a, b in zip(o["values"], n["values"], strict=True))
    print("\n2. streaming vs naive, scoring only (fresh process each)\n")
    print("| | s | peak memory growth GiB |\n|---|---:|---:|")
    print(f"| naive (store all maps, loop cells x samples) | {n['seconds']:.3f} | {n['peak_gib']:.3f} |")
    print(f"| fspkit streaming (fused einsum in the hook) | {o['seconds']:.3f} | {o['peak_gib']:.3f} |")
    print(f"\nspeed ratio naive/ours = {n['seconds'] / o['seconds']:.2f}x; peak memory ratio naive/ours = "
          f"{n['peak_gib'] / max(o['peak_gib'], 1e-9):.2f}x; max relative difference of L_l = {agree:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
