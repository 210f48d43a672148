"""Suite-wide settings and shared fixtures.

* One intra-op thread for every test: the tests use tiny models, where OpenMP threads cost more
  than they give; on a loaded 2-core machine two spinning threads per process made some tests
  hundreds of times slower.
* ``tiny_robnet``: a factory for small RobNets with reproducible weights.
* ``digits_small``: small slices of the embedded digits set (no files, no network).

Keep the fixtures' signatures stable: every test module uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

import pytest
import torch

from robnet.data import ArrayDataset, load_dataset
from robnet.genotype import ROBNET_LARGE
from robnet.network import GenotypeLike, RobNet, build_robnet

torch.set_num_threads(1)  # also covers work done while test modules are imported


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """Pin torch to one intra-op thread for the whole session (restored at the end)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TinyRobNet = Callable[..., RobNet]


def make_tiny_robnet(genotype: GenotypeLike | None = None, C: int = 4, layers: int = 3, in_channels: int = 1,
                     num_classes: int = 10, *, seed: int = 0, imagenet_stem: bool = False,
                     denoise: Iterable[int] = ()) -> RobNet:
    """A small RobNet (default: RobNet-large's cell, C=4, 3 cells, 1-channel input, 10 classes).

    The weights are those of ``torch.manual_seed(seed)`` followed by the build, drawn inside
    ``torch.random.fork_rng`` so the global RNG state of the test is left as it was. Returned in
    train mode, like any freshly built module.
    """
    g: GenotypeLike = ROBNET_LARGE if genotype is None else genotype
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_robnet(g, C=C, layers=layers, num_classes=num_classes, in_channels=in_channels,
                            imagenet_stem=imagenet_stem, denoise=denoise)


@pytest.fixture
def tiny_robnet() -> TinyRobNet:
    """``tiny_robnet(genotype=None, C=4, layers=3, in_channels=1, num_classes=10, *, seed=0,
    imagenet_stem=False, denoise=())`` -> a fresh :class:`RobNet` (see :func:`make_tiny_robnet`)."""
    return make_tiny_robnet


class DigitsSmall(NamedTuple):
    """Slices of the embedded digits set (1x8x8 uint8 images, 10 classes)."""

    train: ArrayDataset  # the first 128 images of the fixed training split
    test: ArrayDataset  # the first 64 images of the fixed test split


DIGITS_SMALL_TRAIN = 128
DIGITS_SMALL_TEST = 64


@pytest.fixture(scope="session")
def digits_small() -> DigitsSmall:
    """``DigitsSmall(train, test)``: the first 128 training and 64 test digits (read once per session;
    the datasets are frozen, treat their tensors as read-only)."""
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    assert isinstance(train, ArrayDataset) and isinstance(test, ArrayDataset)
    return DigitsSmall(train=train.subset(range(DIGITS_SMALL_TRAIN)), test=test.subset(range(DIGITS_SMALL_TEST)))

