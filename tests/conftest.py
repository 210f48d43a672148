"""Suite-wide settings and shared fixtures.

* One process for every in-process search (``one_process``).
* One intra-op thread for every test: the tests use tiny models, where OpenMP threads cost more
  than they give; on a loaded 2-core machine two spinning threads per process made some tests
  hundreds of times slower.
* ``tiny_robnet``: a factory for small RobNets with reproducible weights.
* ``digits_small``: small slices of the embedded digits set (no files, no network).
* ``ids_dataset``: an ArrayDataset whose content identifies each sample.
* ``make_cifar10`` / ``make_cifar10_archive``: tiny CIFAR-10 copies in the official formats.
* ``save_image``: write a one-colour image file (Pillow); ``http_server``: a local file server.

Keep the fixtures' signatures stable: every test module uses them.
"""

from __future__ import annotations

import hashlib
import http.server
import pickle
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from robnet.data.datasets import ArrayDataset, load_dataset
from robnet.models.genotype import ROBNET_LARGE
from robnet.models.network import GenotypeLike, RobNet, build_robnet

torch.set_num_threads(1)  # also covers work done while test modules are imported


@pytest.fixture(autouse=True, scope="session")
def one_process() -> Iterator[None]:
    """In-process searches run in this one process unless a test asks for more (``--procs 2``, or a
    subprocess): the default, one process per core, would spawn a child in every search test."""
    import robnet.search.runner

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(robnet.search.runner, "default_procs", lambda device=None: 1)
        yield


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



# --------------------------------------------------------------------------------------------
# Small datasets and files in official formats


def _ids_dataset(n: int, shape: tuple[int, ...] = (2, 4, 4), split: str = "train") -> ArrayDataset:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, *shape).contiguous()
    return ArrayDataset(name="ids", split=split, images=images, labels=torch.arange(n),
                        classes=tuple(str(i) for i in range(n)))


@pytest.fixture
def ids_dataset() -> Callable[..., ArrayDataset]:
    """``ids_dataset(n, shape=(2, 4, 4), split="train")``: sample i has label i and every pixel equal
    to i (so the content identifies the sample; n <= 256)."""
    return _ids_dataset


def _official_row(img_hwc: np.ndarray) -> np.ndarray:
    """One official CIFAR row: 1024 R values, then 1024 G, then 1024 B, each plane row-major."""
    return np.concatenate([img_hwc[:, :, 0].ravel(), img_hwc[:, :, 1].ravel(), img_hwc[:, :, 2].ravel()])


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _make_cifar10(folder: Path, n: int = 10, seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    base = folder / "cifar-10-batches-py"
    base.mkdir(parents=True, exist_ok=True)
    md5s, images, labels = {}, {}, {}
    names = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
    for k, fname in enumerate(names):
        hwc = rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, size=n)]
        d = {b"batch_label": f"batch {k}".encode(), b"labels": y,
             b"data": np.stack([_official_row(im) for im in hwc]),
             b"filenames": [f"img_{k}_{i}.png".encode() for i in range(n)]}
        raw = pickle.dumps(d, protocol=2)
        (base / fname).write_bytes(raw)
        md5s[fname], images[fname], labels[fname] = _md5(raw), hwc, y
    names_list = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship",
                  b"truck"]
    raw = pickle.dumps({b"num_cases_per_batch": n, b"label_names": names_list, b"num_vis": 3072}, protocol=2)
    (base / "batches.meta").write_bytes(raw)
    md5s["batches.meta"] = _md5(raw)
    return SimpleNamespace(base=base, md5s=md5s, images=images, labels=labels)


@pytest.fixture
def make_cifar10() -> Callable[..., SimpleNamespace]:
    """``make_cifar10(folder, n=10, seed=0)``: write a tiny ``cifar-10-batches-py/`` under ``folder``
    (n images per batch, official protocol-2 pickles); returns ``base``, ``md5s`` (per file),
    ``images`` (HWC uint8 per file) and ``labels`` (per file)."""
    return _make_cifar10


@pytest.fixture
def make_cifar10_archive() -> Callable[..., SimpleNamespace]:
    """``make_cifar10_archive(dest, n=10)``: a cifar-10-python.tar.gz in the official layout at
    ``dest``; returns what :func:`make_cifar10` returns, with the archive's md5 added."""

    def make(dest: Path, n: int = 10) -> SimpleNamespace:
        fake = _make_cifar10(dest.parent / "stage", n=n)
        with tarfile.open(dest, "w:gz") as tar:
            tar.add(fake.base, arcname="cifar-10-batches-py")
        fake.md5s["cifar-10-python.tar.gz"] = _md5(dest.read_bytes())
        return fake

    return make


@pytest.fixture
def save_image() -> Callable[..., Path]:
    """``save_image(path, rgb, size=(8, 8), fmt=None)``: a one-colour RGB image (folders created)."""

    def save(path: Path, rgb: tuple[int, int, int], size: tuple[int, int] = (8, 8), fmt: str | None = None) -> Path:
        from PIL import Image

        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, rgb).save(path, format=fmt)
        return path

    return save


@pytest.fixture
def http_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """A local HTTP server on 127.0.0.1 serving ``dir`` (tmp_path/served); ``url`` ends in ``/``;
    ``requests`` records the request paths."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield SimpleNamespace(dir=served, url=f"http://127.0.0.1:{server.server_address[1]}/", requests=requests)
    server.shutdown()
    server.server_close()
    thread.join()
