"""Process body for the 2-process gloo tests (imported by the spawned children)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TinyCNN(nn.Module):
    """A BatchNorm-free CNN: DDP keeps BatchNorm statistics per rank, so only a BN-free model can
    match a single process bit-for-bit up to float reduction order."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return self.fc(x.mean((2, 3)))


def register() -> None:
    from robnet.models import zoo

    zoo.register("tiny_cnn", TinyCNN, replace=True)


def make_model(seed: int = 0) -> nn.Module:
    register()
    torch.manual_seed(seed)
    from robnet import build_model

    return build_model("tiny_cnn", in_channels=1)


def data(n: int = 192) -> Any:
    from robnet.data.datasets import load_dataset

    return load_dataset("digits", split="train").subset(range(n))


def config() -> Any:
    from robnet.train.config import TrainConfig

    return TrainConfig(epochs=2, warmup_epochs=1, batch_size=32, lr=0.05, crop_padding=1, flip=False, eps=0.1,
                       step_size=0.03, attack_steps=3, attack_bn="eval", val_attack_steps=2, seed=5)


def train_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import torch.distributed as dist

    from robnet.attacks.evaluation import evaluate
    from robnet.attacks.spec import parse_attack
    from robnet.data.datasets import load_dataset
    from robnet.train.run import train

    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://127.0.0.1:{port}")
    try:
        model = make_model()
        train(model, data(), config=config(), out_dir=out_dir, arch={"name": "tiny_cnn", "in_channels": 1},
              val_data=data(40), device="cpu", progress=False)
        test = load_dataset("digits", split="test").subset(range(101))
        report = evaluate(model, test, [("clean", parse_attack("clean")), ("fgsm", parse_attack("fgsm:eps=0.1"))],
                          batch_size=16, masking_checks=False, progress=False)
        from dataclasses import replace

        sync_bn_error = ""
        try:  # SyncBatchNorm has no CPU implementation: the option must refuse clearly
            train(make_model(), data(), config=replace(config(), sync_bn=True), out_dir=f"{out_dir}/sbn",
                  arch={"name": "tiny_cnn", "in_channels": 1}, device="cpu", progress=False)
        except ValueError as err:
            sync_bn_error = str(err)
        if rank == 0:
            torch.save({"state_dict": model.state_dict(), "eval": [(r.correct, r.n) for r in report.results],
                        "sync_bn_error": sync_bn_error}, f"{out_dir}/rank0.pt")
    finally:
        dist.destroy_process_group()
