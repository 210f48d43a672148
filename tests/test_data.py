"""robnet.data: checksummed loaders, download, splits, the device loader and folder datasets."""

import collections
import hashlib
import http.server
import io
import logging
import os
import pickle
import re
import tarfile
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from robnet import data
from robnet.data import (
    CHECKSUMS,
    ArrayDataset,
    Augment,
    DatasetNotFoundError,
    DeviceLoader,
    FolderDataset,
    augment_batch,
    file_md5,
    load_dataset,
    make_loader,
    train_val_split,
)

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR_HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"


# ------------------------------------------------------------------------------------------
# Fake datasets in the official formats


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def _official_row(img_hwc: np.ndarray) -> np.ndarray:
    """One official CIFAR row: 1024 R values, then 1024 G, then 1024 B, each plane row-major."""
    return np.concatenate([img_hwc[:, :, 0].ravel(), img_hwc[:, :, 1].ravel(), img_hwc[:, :, 2].ravel()])


def make_cifar10(folder: Path, n: int = 10, seed: int = 0) -> SimpleNamespace:
    """Write a tiny cifar-10-batches-py/ under ``folder`` (n images per batch, official pickles)."""
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


def make_cifar10_archive(dest: Path, n: int = 10) -> SimpleNamespace:
    """A cifar-10-python.tar.gz in the official layout; returns md5s of the archive and its files."""
    stage = dest.parent / "stage"
    fake = make_cifar10(stage, n=n)
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(fake.base, arcname="cifar-10-batches-py")
    fake.md5s["cifar-10-python.tar.gz"] = file_md5(dest)
    return fake


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving tmp_path/served; records request paths."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield SimpleNamespace(dir=served, url=f"http://127.0.0.1:{server.server_address[1]}/", requests=requests)
    server.shutdown()
    server.server_close()
    thread.join()


# ------------------------------------------------------------------------------------------
# CIFAR from files


def test_cifar10_loads_official_format(tmp_path):
    fake = make_cifar10(tmp_path, n=10)
    train = load_dataset("cifar10", tmp_path, "train", checksums=fake.md5s)
    test = load_dataset("cifar10", tmp_path, "test", checksums=fake.md5s)
    assert isinstance(train, ArrayDataset) and (train.name, train.split) == ("cifar10", "train")
    assert len(train) == 50 and len(test) == 10
    assert train.images.shape == (50, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.shape == (50,) and train.labels.dtype == torch.int64
    assert train.image_shape == (3, 32, 32) and train.num_classes == 10
    assert train.classes[:3] == ("airplane", "automobile", "bird") and train.classes[-1] == "truck"
    # label order: data_batch_1 .. data_batch_5
    expected = [v for k in range(1, 6) for v in fake.labels[f"data_batch_{k}"]]
    assert train.labels.tolist() == expected
    assert test.labels.tolist() == fake.labels["test_batch"]
    # channel layout: images[i, c, h, w] == the HWC image's [h, w, c]
    hwc = np.concatenate([fake.images[f"data_batch_{k}"] for k in range(1, 6)])
    assert torch.equal(train.images, torch.from_numpy(hwc).permute(0, 3, 1, 2))
    assert torch.equal(test.images[3], torch.from_numpy(fake.images["test_batch"][3]).permute(2, 0, 1))


def test_cifar_default_checksums_reject_non_official_files(tmp_path):
    fake = make_cifar10(tmp_path, n=2)
    got = fake.md5s["test_batch"]
    official = CHECKSUMS["cifar10"]["test_batch"]
    msg = (f"md5 mismatch for {fake.base / 'test_batch'}: got {got}, expected {official}; "
           "the file is damaged or not the official batch: delete it and download again")
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_dataset("cifar10", tmp_path, "test")


def test_cifar_damaged_file_message(tmp_path):
    fake = make_cifar10(tmp_path, n=4)
    path = fake.base / "data_batch_3"
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0xFF
    path.write_bytes(bytes(raw))
    msg = (f"md5 mismatch for {path}: got {_md5(bytes(raw))}, expected {fake.md5s['data_batch_3']}; the file "
           "is damaged or not the official batch: delete it and download again")
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_dataset("cifar10", tmp_path, "train", checksums=fake.md5s)
    # the test split does not need data_batch_3
    assert len(load_dataset("cifar10", tmp_path, "test", checksums=fake.md5s)) == 4


def test_cifar_missing_file_message(tmp_path):
    fake = make_cifar10(tmp_path, n=2)
    (fake.base / "data_batch_2").unlink()
    msg = (f"CIFAR-10 not found: {fake.base / 'data_batch_2'} is missing. Hint: pass download=True (or "
           f"`--download`), or put the official python batches (cifar-10-python.tar.gz from {CIFAR_HOME}) "
           f"under {tmp_path}")
    with pytest.raises(DatasetNotFoundError, match=re.escape(msg)):
        load_dataset("cifar10", tmp_path, "train", checksums=fake.md5s)
    # usable as a FileNotFoundError and as a ValueError
    with pytest.raises(FileNotFoundError):
        load_dataset("cifar10", tmp_path / "nowhere", "test")
    with pytest.raises(ValueError, match="CIFAR-10 not found"):
        load_dataset("cifar10", tmp_path / "nowhere", "test")
    # root pointing at the batches folder itself
    with pytest.raises(DatasetNotFoundError, match=r"looks like the cifar-10-batches-py/ folder itself: "
                                                   "pass its parent"):
        load_dataset("cifar10", fake.base, "test", checksums=fake.md5s)


def test_cifar_unpickler_refuses_code(tmp_path):
    fake = make_cifar10(tmp_path, n=2)

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    raw = pickle.dumps({b"label_names": Evil()}, protocol=2)
    (fake.base / "batches.meta").write_bytes(raw)
    with pytest.raises(ValueError, match=r"cannot read .*batches.meta: forbidden global (posix|nt)\.getcwd"):
        load_dataset("cifar10", tmp_path, "test", checksums={**fake.md5s, "batches.meta": _md5(raw)})


def test_cifar100_loads_fine_labels(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    rng = np.random.default_rng(1)
    md5s = {}
    fine = {}
    for split, n in (("train", 6), ("test", 3)):
        y = [int(v) for v in rng.integers(0, 100, size=n)]
        d = {b"filenames": [b"f"] * n, b"batch_label": b"x", b"fine_labels": y,
             b"coarse_labels": [v // 5 for v in y], b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        raw = pickle.dumps(d, protocol=2)
        (base / split).write_bytes(raw)
        md5s[split], fine[split] = _md5(raw), y
    raw = pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                        b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}, protocol=2)
    (base / "meta").write_bytes(raw)
    md5s["meta"] = _md5(raw)
    ds = load_dataset("cifar100", tmp_path, "train", checksums=md5s)
    assert len(ds) == 6 and ds.num_classes == 100 and ds.classes[7] == "c7"
    assert ds.labels.tolist() == fine["train"]
    assert load_dataset("cifar100", tmp_path, "test", checksums=md5s).labels.tolist() == fine["test"]


# ------------------------------------------------------------------------------------------
# Download


def test_download_from_local_server(tmp_path, http_server):
    fake = make_cifar10_archive(http_server.dir / "cifar-10-python.tar.gz", n=10)
    root = tmp_path / "datasets"
    ds = load_dataset("cifar10", root, "test", download=True, url=http_server.url, checksums=fake.md5s,
                      progress=False)
    assert http_server.requests == ["/cifar-10-python.tar.gz"]
    assert file_md5(root / "cifar-10-python.tar.gz") == fake.md5s["cifar-10-python.tar.gz"]
    for name, md5 in fake.md5s.items():
        if name != "cifar-10-python.tar.gz":
            assert file_md5(root / "cifar-10-batches-py" / name) == md5
    assert ds.labels.tolist() == fake.labels["test_batch"]
    assert torch.equal(ds.images, torch.from_numpy(fake.images["test_batch"]).permute(0, 3, 1, 2))
    # verified files are not fetched again; a full URL (not a base) works too
    train = load_dataset("cifar10", root, "train", download=True, checksums=fake.md5s, progress=False,
                         url=http_server.url + "cifar-10-python.tar.gz")
    assert len(train) == 50 and len(http_server.requests) == 1
    assert sorted(p.name for p in root.iterdir()) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]


def test_download_repairs_damaged_file(tmp_path, http_server):
    fake = make_cifar10_archive(http_server.dir / "cifar-10-python.tar.gz", n=3)
    root = tmp_path / "datasets"
    load_dataset("cifar10", root, "test", download=True, url=http_server.url, checksums=fake.md5s,
                 progress=False)
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    ds = load_dataset("cifar10", root, "test", download=True, url=http_server.url, checksums=fake.md5s,
                      progress=False)
    assert ds.labels.tolist() == fake.labels["test_batch"]
    assert len(http_server.requests) == 1  # the verified archive on disk was reused


def test_download_bad_md5_is_rejected_and_nothing_left(tmp_path, http_server):
    fake = make_cifar10_archive(http_server.dir / "cifar-10-python.tar.gz", n=2)
    root = tmp_path / "datasets"
    wrong = {**fake.md5s, "cifar-10-python.tar.gz": "0" * 32}
    msg = (f"md5 mismatch for the download of {http_server.url}cifar-10-python.tar.gz: got "
           f"{fake.md5s['cifar-10-python.tar.gz']}, expected {'0' * 32}")
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_dataset("cifar10", root, "test", download=True, url=http_server.url, checksums=wrong,
                     progress=False)
    assert http_server.requests == ["/cifar-10-python.tar.gz"]
    assert list(root.iterdir()) == []  # no archive, no .part file, no extracted folder


def test_download_unreachable_server(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()  # nothing listens there any more
    with pytest.raises(ConnectionError, match=r"could not download http://127\.0\.0\.1:\d+/cifar-10-python"):
        load_dataset("cifar10", tmp_path, "test", download=True, url=f"http://127.0.0.1:{port}/",
                     progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_missing_file_on_server(tmp_path, http_server):
    with pytest.raises(ConnectionError, match=r"could not download .*cifar-10-python.tar.gz: HTTP 404"):
        load_dataset("cifar10", tmp_path / "d", "test", download=True, url=http_server.url, progress=False)
    assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize("kind", ["escape", "symlink"])
def test_download_refuses_unsafe_archive(tmp_path, http_server, kind):
    archive = http_server.dir / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        if kind == "escape":
            info = tarfile.TarInfo("cifar-10-batches-py/../../evil.txt")
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
        else:
            info = tarfile.TarInfo("cifar-10-batches-py/test_batch")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)
    root = tmp_path / "datasets"
    with pytest.raises(ValueError, match=r"refusing to extract .*cifar-10-python.tar.gz: member "):
        load_dataset("cifar10", root, "test", download=True, url=http_server.url,
                     checksums={"cifar-10-python.tar.gz": file_md5(archive)}, progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert not (root / "cifar-10-batches-py").exists()
    assert [p.name for p in root.iterdir()] == ["cifar-10-python.tar.gz"]  # no extraction leftovers


# ------------------------------------------------------------------------------------------
# SVHN, digits, argument errors


def test_svhn_mat(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(32, 32, 3, 5), dtype=np.uint8)  # (H, W, C, N) as in the official files
    y = np.array([[10], [1], [2], [10], [9]], dtype=np.uint8)
    savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})
    md5 = file_md5(tmp_path / "test_32x32.mat")
    ds = load_dataset("svhn", tmp_path, "test", checksums={"test_32x32.mat": md5})
    assert ds.images.shape == (5, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.tolist() == [0, 1, 2, 0, 9] and ds.labels.dtype == torch.int64
    assert ds.classes == tuple("0123456789")
    assert torch.equal(ds.images[4, 1], torch.from_numpy(x[:, :, 1, 4]))
    with pytest.raises(ValueError, match=r"md5 mismatch for .*test_32x32.mat: .*not the official file"):
        load_dataset("svhn", tmp_path, "test")
    with pytest.raises(DatasetNotFoundError, match=r"SVHN not found: .*train_32x32.mat is missing. Hint: "
                                                   r"pass download=True .*ufldl.stanford.edu/housenumbers"):
        load_dataset("svhn", tmp_path, "train")


def test_svhn_download_single_file(tmp_path, http_server):
    from scipy.io import savemat

    x = np.full((32, 32, 3, 2), 7, dtype=np.uint8)
    savemat(http_server.dir / "train_32x32.mat", {"X": x, "y": np.array([[3], [10]])})
    md5 = file_md5(http_server.dir / "train_32x32.mat")
    ds = load_dataset("svhn", tmp_path / "svhn", "train", download=True, url=http_server.url,
                      checksums={"train_32x32.mat": md5}, progress=False)
    assert ds.labels.tolist() == [3, 0] and int(ds.images.sum()) == 7 * 2 * 3 * 32 * 32
    assert http_server.requests == ["/train_32x32.mat"]


def test_digits_embedded_split():
    from sklearn.datasets import load_digits

    train = load_dataset("digits")
    test = load_dataset("digits", "ignored/root", "test")
    assert (len(train), len(test)) == (1437, 360)
    assert train.images.shape == (1437, 1, 8, 8) and train.images.dtype == torch.uint8
    assert test.labels.dtype == torch.int64 and train.classes == tuple("0123456789")
    assert int(train.images.max()) == 255 and int(train.images.min()) == 0
    # train + test is exactly the scaled set (values 0..16 times 16, clipped to 255)
    raw = load_digits().images
    scaled = np.clip(raw * 16, 0, 255).astype(np.uint8)
    full = collections.Counter(im.tobytes() for im in scaled)
    split = collections.Counter(im.tobytes() for im in torch.cat([train.images, test.images]).numpy())
    assert split == full
    assert torch.equal(load_dataset("digits", split="test").labels, test.labels)  # fixed split
    assert sorted(torch.bincount(test.labels, minlength=10).tolist())[0] > 20  # every class in test


def test_load_dataset_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar1'; expected one of .*Did you mean "
                                         "'cifar10'"):
        load_dataset("cifar1", tmp_path)
    with pytest.raises(ValueError, match=r"dataset 'cifar10': unknown split 'val'; expected one of "
                                         "train, test"):
        load_dataset("cifar10", tmp_path, "val")
    with pytest.raises(ValueError, match=r"only the ImageNet validation set"):
        load_dataset("imagenet", tmp_path, "train")
    with pytest.raises(ValueError, match=r"dataset 'cifar10' is read from files: pass root.*--data-dir"):
        load_dataset("cifar10")
    with pytest.raises(ValueError, match=r"download=True is not supported for 'tinyimagenet'"):
        load_dataset("tinyimagenet", tmp_path, download=True)
    assert len(load_dataset("DIGITS", split="test")) == 360


# ------------------------------------------------------------------------------------------
# ArrayDataset and train_val_split


def ids_dataset(n: int, shape=(2, 4, 4), split="train") -> ArrayDataset:
    """Sample i has label i and every pixel equal to i (so content identifies the sample)."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, *shape).contiguous()
    return ArrayDataset(name="ids", split=split, images=images, labels=torch.arange(n),
                        classes=tuple(str(i) for i in range(n)))


def test_array_dataset_validation_and_subset():
    ds = ids_dataset(6)
    sub = ds.subset([4, 1, -1])
    assert sub.labels.tolist() == [4, 1, 5] and sub.images[:, 0, 0, 0].tolist() == [4, 1, 5]
    assert (sub.name, sub.split, sub.classes) == ("ids", "train", ds.classes)
    assert ds.subset(torch.tensor([2])).labels.tolist() == [2] and len(ds.subset([])) == 0
    img, label = ds[3]
    assert label == 3 and img.shape == (2, 4, 4)
    assert "n=6" in repr(ds)
    with pytest.raises(ValueError, match=r"indices must lie in \[-6, 6\), got \[0, 6\]"):
        ds.subset([0, 6])
    with pytest.raises(TypeError, match="expected a 1-D sequence of integer indices"):
        ds.subset(torch.tensor([True, False]))
    with pytest.raises(TypeError, match="images must be a uint8 tensor"):
        ArrayDataset(name="x", split="train", images=torch.zeros(2, 1, 4, 4),
                     labels=torch.zeros(2, dtype=torch.long), classes=("a",))
    with pytest.raises(TypeError, match="labels must be an int64 tensor"):
        ArrayDataset(name="x", split="train", images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
                     labels=torch.zeros(2, dtype=torch.int32), classes=("a",))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\), got \[0, 2\]"):
        ArrayDataset(name="x", split="train", images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
                     labels=torch.tensor([0, 2]), classes=("a", "b"))
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        ArrayDataset(name="x", split="train", images=torch.zeros(2, 1, 4, 4, dtype=torch.uint8),
                     labels=torch.zeros(3, dtype=torch.long), classes=("a",))


def test_train_val_split():
    ds = ids_dataset(100)
    train, val = train_val_split(ds, val_size=20, seed=3)
    assert (len(train), len(val)) == (80, 20) and (train.split, val.split) == ("train", "val")
    t, v = set(train.labels.tolist()), set(val.labels.tolist())
    assert not t & v and t | v == set(range(100))
    assert train.labels.tolist() == sorted(t)  # original order kept
    assert torch.equal(train.images[:, 0, 0, 0].long(), train.labels)  # images travel with labels
    again_t, again_v = train_val_split(ds, val_size=20, seed=3)
    assert torch.equal(again_v.labels, val.labels) and torch.equal(again_t.images, train.images)
    assert not torch.equal(train_val_split(ds, val_size=20, seed=4)[1].labels, val.labels)
    assert len(train_val_split(ds, val_size=0.1, seed=0)[1]) == 10
    # version-independent: the split is a fixed hash permutation of the seed
    assert train_val_split(ids_dataset(10), val_size=3, seed=0)[1].labels.tolist() == [2, 4, 6]


@pytest.mark.parametrize(("val_size", "exc", "match"), [
    (0, ValueError, "gives 0 validation samples out of 10; expected between 1 and 9"),
    (10, ValueError, "gives 10 validation samples"),
    (1.5, ValueError, r"must lie in \(0, 1\)"),
    (True, TypeError, "val_size must be an int or a float"),
])
def test_train_val_split_errors(val_size, exc, match):
    with pytest.raises(exc, match=match):
        train_val_split(ids_dataset(10), val_size=val_size, seed=0)


def test_train_val_split_refuses_test_set():
    with pytest.raises(ValueError, match="refusing to carve a validation set out of the test split"):
        train_val_split(ids_dataset(10, split="test"), val_size=2, seed=0)


# ------------------------------------------------------------------------------------------
# DeviceLoader


def _epoch(loader: DeviceLoader) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(y)
    return xs, ys


def test_device_loader_covers_every_sample_once():
    ds = ids_dataset(23)
    loader = DeviceLoader(ds, batch_size=5, shuffle=True, seed=1)
    xs, ys = _epoch(loader)
    assert len(loader) == len(xs) == 5 and [len(y) for y in ys] == [5, 5, 5, 5, 3]
    labels = torch.cat(ys)
    assert sorted(labels.tolist()) == list(range(23)) and labels.tolist() != list(range(23))
    x = torch.cat(xs)
    assert x.dtype == torch.float32 and x.shape == (23, 2, 4, 4) and labels.dtype == torch.int64
    assert torch.equal(x, ds.images[labels].float() / 255)
    plain = torch.cat(_epoch(DeviceLoader(ds, batch_size=5))[1])
    assert plain.tolist() == list(range(23))  # shuffle=False keeps dataset order


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("shuffle", [False, True])
def test_device_loader_eval_sharding_is_exact(world_size, shuffle):
    ds = ids_dataset(23)
    parts = [torch.cat(_epoch(DeviceLoader(ds, batch_size=4, shuffle=shuffle, seed=5, rank=r,
                                           world_size=world_size))[1]).tolist() for r in range(world_size)]
    flat = [v for part in parts for v in part]
    assert len(flat) == 23 and sorted(flat) == list(range(23))  # each sample exactly once, no padding
    # every rank reads the same permutation: interleaving the ranks' parts gives the 1-process order
    single = torch.cat(_epoch(DeviceLoader(ds, batch_size=4, shuffle=shuffle, seed=5))[1]).tolist()
    assert all(parts[r] == single[r::world_size] for r in range(world_size))


def test_device_loader_drop_last_keeps_ranks_in_lockstep():
    ds = ids_dataset(23)
    loaders = [DeviceLoader(ds, batch_size=3, shuffle=True, seed=2, drop_last=True, rank=r, world_size=3)
               for r in range(3)]
    assert [len(loader) for loader in loaders] == [2, 2, 2]  # 23 // 3 = 7 per rank -> 2 full batches
    epochs = [_epoch(loader)[1] for loader in loaders]
    assert all(len(e) == 2 and all(len(b) == 3 for b in e) for e in epochs)
    flat = [v for e in epochs for b in e for v in b.tolist()]
    assert len(set(flat)) == 18
    assert len(DeviceLoader(ds, batch_size=5, drop_last=True)) == 4


def test_device_loader_epoch_determinism():
    ds = ids_dataset(40)
    aug = Augment(crop_padding=1, flip=True, cutout=2)

    def run(seed, epoch, loader=None):
        loader = loader or DeviceLoader(ds, batch_size=8, shuffle=True, augment=aug, seed=seed)
        loader.set_epoch(epoch)
        xs, ys = _epoch(loader)
        return torch.cat(xs), torch.cat(ys)

    x1, y1 = run(0, 3)
    x2, y2 = run(0, 3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(run(0, 4)[1], y1)  # another epoch, another order
    assert not torch.equal(run(1, 3)[1], y1)  # another seed, another order
    # resuming: a loader that ran epochs 0..2 yields the same epoch 3 as a fresh one
    loader = DeviceLoader(ds, batch_size=8, shuffle=True, augment=aug, seed=0)
    for e in range(3):
        loader.set_epoch(e)
        _epoch(loader)
    x3, y3 = run(0, 3, loader)
    assert torch.equal(x3, x1) and torch.equal(y3, y1)
    # without set_epoch the loader repeats its epoch (as DistributedSampler does)
    assert torch.equal(run(0, 3, loader)[0], x1)
    with pytest.raises(ValueError, match="epoch must be an int >= 0"):
        loader.set_epoch(-1)


def test_augmentation_independent_of_world_size():
    ds = ids_dataset(12, shape=(1, 6, 6))
    aug = Augment(crop_padding=2, flip=True, cutout=3)
    single = torch.cat(_epoch(DeviceLoader(ds, batch_size=4, shuffle=True, augment=aug, seed=9))[0])
    for r in range(2):
        part = torch.cat(_epoch(DeviceLoader(ds, batch_size=4, shuffle=True, augment=aug, seed=9, rank=r,
                                             world_size=2))[0])
        assert torch.equal(part, single[r::2])


def _hand_image(n: int, h: int = 8, w: int = 8) -> ArrayDataset:
    """n copies of a 1-channel image with values 1..h*w (no zeros), labels 0..n-1."""
    img = torch.arange(1, h * w + 1, dtype=torch.uint8).view(1, 1, h, w).expand(n, 1, h, w).contiguous()
    return ArrayDataset(name="hand", split="train", images=img, labels=torch.arange(n),
                        classes=tuple(str(i) for i in range(n)))


def _shift(img: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """img (C, H, W) moved down by dy and right by dx, zeros where nothing moves in."""
    _, h, w = img.shape
    out = torch.zeros_like(img)
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        img[:, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def test_crop_shifts_content_exactly():
    ds = _hand_image(64)
    src = ds.images[0].float() / 255
    aug = Augment(crop_padding=2, flip=False)
    loader = DeviceLoader(ds, batch_size=16, shuffle=True, augment=aug, seed=0)
    xs, _ = _epoch(loader)
    x = torch.cat(xs)
    assert x.shape == (64, 1, 8, 8) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    seen = collections.Counter()
    for out in x:
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(out, _shift(src, dy, dx))]
        assert len(matches) == 1
        seen[matches[0]] += 1
    assert len(seen) >= 15  # 64 draws over 25 offsets: content really moves, in many ways
    # explicit offsets: (0, 0) reads the top-left of the padded image = content moved down-right by 2
    params = data._AugParams(offsets=torch.tensor([[0, 0], [4, 4], [2, 2], [0, 3]]),
                             flips=torch.zeros(4, dtype=torch.bool),
                             centers=torch.zeros(4, 2, dtype=torch.long))
    img = ds.images[:4]
    out = data._apply_augment(img, aug, params)
    assert torch.equal(out[0], _shift(img[0], 2, 2)) and torch.equal(out[1], _shift(img[0], -2, -2))
    assert torch.equal(out[2], img[0]) and torch.equal(out[3], _shift(img[0], 2, -1))
    assert out[0, 0, :2].sum() == 0 and out[0, 0, 2, 2] == 1


def test_flip_really_flips():
    ds = _hand_image(32)
    src = ds.images[0].float() / 255
    aug = Augment(crop_padding=0, flip=True)
    x = torch.cat(_epoch(DeviceLoader(ds, batch_size=8, augment=aug, seed=3))[0])
    flipped = [bool(torch.equal(o, src.flip(-1))) for o in x]
    kept = [bool(torch.equal(o, src)) for o in x]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 4 <= sum(flipped) <= 28
    params = data._AugParams(offsets=torch.tensor([[1, 1], [1, 1]]), flips=torch.tensor([True, False]),
                             centers=torch.zeros(2, 2, dtype=torch.long))
    out = data._apply_augment(ds.images[:2], Augment(crop_padding=1, flip=True), params)
    assert torch.equal(out[0], ds.images[0].flip(-1)) and torch.equal(out[1], ds.images[1])


def test_cutout_zeros_a_clipped_square():
    n = 48
    ds = ArrayDataset(name="white", split="train", images=torch.full((n, 3, 16, 16), 255, dtype=torch.uint8),
                      labels=torch.zeros(n, dtype=torch.long), classes=("w",))
    aug = Augment(crop_padding=0, flip=False, cutout=4)
    x = torch.cat(_epoch(DeviceLoader(ds, batch_size=16, augment=aug, seed=0))[0])
    full_squares = 0
    for out in x:
        zero = out == 0  # (3, 16, 16)
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # same square in every channel
        rows = zero[0].any(1).nonzero().flatten()
        cols = zero[0].any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert 1 <= h <= 4 and 1 <= w <= 4 and int(zero[0].sum()) == h * w  # one axis-aligned rectangle
        assert rows.tolist() == list(range(int(rows[0]), int(rows[0]) + h))
        full_squares += (h, w) == (4, 4)
    assert full_squares >= n // 2  # most centers are away from the border
    # explicit centers: inside -> rows/cols [c - 2, c + 2); at a corner -> clipped to 2x2
    params = data._AugParams(offsets=torch.zeros(2, 2, dtype=torch.long), flips=torch.zeros(2, dtype=bool),
                             centers=torch.tensor([[8, 5], [0, 15]]))
    out = data._apply_augment(ds.images[:2], aug, params)
    expect = torch.full((2, 3, 16, 16), 255, dtype=torch.uint8)
    expect[0, :, 6:10, 3:7] = 0
    expect[1, :, 0:2, 13:16] = 0
    assert torch.equal(out, expect)


def test_augment_batch_and_config_validation():
    x = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    out = augment_batch(x, Augment(cutout=3), generator=torch.Generator().manual_seed(0))
    again = augment_batch(x, Augment(cutout=3), generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8 and torch.equal(out, again)
    with pytest.raises(ValueError, match="crop_padding must be >= 0, got -1"):
        Augment(crop_padding=-1)
    with pytest.raises(TypeError, match="cutout must be an int"):
        Augment(cutout=1.5)
    with pytest.raises(TypeError, match="flip must be a bool"):
        Augment(flip=1)


def test_device_loader_argument_errors_and_channels_last():
    ds = ids_dataset(4)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        DeviceLoader(ds, batch_size=0)
    with pytest.raises(ValueError, match="0 <= rank < world_size, got rank 2, world_size 2"):
        DeviceLoader(ds, batch_size=2, rank=2, world_size=2)
    with pytest.raises(TypeError, match=r"expected an ArrayDataset.*make_loader"):
        DeviceLoader([1, 2], batch_size=2)
    x, _ = next(iter(DeviceLoader(ds, batch_size=4, channels_last=True)))
    assert x.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.gpu
def test_device_loader_on_cuda_matches_cpu():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA: no GPU on this machine")
    ds = _hand_image(50)
    aug = Augment(crop_padding=2, flip=True, cutout=3)
    cpu = _epoch(DeviceLoader(ds, batch_size=16, shuffle=True, augment=aug, seed=4))
    gpu = _epoch(DeviceLoader(ds, batch_size=16, shuffle=True, augment=aug, seed=4, device="cuda"))
    assert gpu[0][0].device.type == "cuda" and gpu[1][0].device.type == "cuda"
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu[0], gpu[0], strict=True))
    assert all(torch.equal(a, b.cpu()) for a, b in zip(cpu[1], gpu[1], strict=True))


# ------------------------------------------------------------------------------------------
# Folder datasets


def _save(path: Path, rgb: tuple[int, int, int], size=(8, 8), fmt=None):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, format=fmt)


def test_tinyimagenet_layout_and_loader(tmp_path):
    base = tmp_path / "tiny-imagenet-200"
    base.mkdir()
    (base / "wnids.txt").write_text("n02\nn01\n")  # classes are the sorted wnids
    colors = {"n01": [(10, 20, 30), (40, 50, 60)], "n02": [(70, 80, 90), (100, 110, 120), (5, 6, 7)]}
    for wnid, cs in colors.items():
        for i, c in enumerate(cs):
            _save(base / "train" / wnid / "images" / f"{wnid}_{i}.png", c)
    _save(base / "val" / "images" / "val_0.JPEG", (200, 0, 0), fmt="JPEG")
    _save(base / "val" / "images" / "val_1.JPEG", (0, 0, 200), fmt="JPEG")
    (base / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn02\t0\t0\t8\t8\n"
                                                      "val_1.JPEG\tn01\t0\t0\t8\t8\n")

    train = load_dataset("tinyimagenet", tmp_path, "train")
    assert isinstance(train, FolderDataset) and train.classes == ("n01", "n02") and len(train) == 5
    assert train.labels.tolist() == [0, 0, 1, 1, 1]
    img, label = train[3]
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 8) and label == 1
    assert img[:, 0, 0].tolist() == [100, 110, 120] and bool((img == img[:, :1, :1]).all())

    val = load_dataset("tinyimagenet", tmp_path, "val")
    assert load_dataset("tinyimagenet", tmp_path, "test").samples == val.samples
    assert val.labels.tolist() == [1, 0]
    red = val[0][0].int()
    assert abs(int(red[0].float().mean()) - 200) <= 3 and int(red[1:].max()) <= 6  # JPEG: near-exact

    loader = make_loader(train, batch_size=2, shuffle=True, num_workers=0, seed=0)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [2, 2, 1]
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and sorted(y.tolist()) == [0, 0, 1, 1, 1]
    ref = torch.stack([train[i][0] for i in range(5)]).float() / 255
    # each batch image equals some dataset image /255 (order shuffled by the seeded generator)
    assert all(any(torch.equal(a, b) for b in ref) for a in x)
    again = torch.cat([b[1] for b in make_loader(train, batch_size=2, shuffle=True, num_workers=0, seed=0)])
    assert torch.equal(again, y)

    with pytest.raises(DatasetNotFoundError, match=r"looks like tiny-imagenet-200/ itself: pass its parent"):
        load_dataset("tinyimagenet", base, "train")
    with pytest.raises(DatasetNotFoundError, match=r"Tiny-ImageNet not found: .*wnids.txt is missing.*unzip"):
        load_dataset("tinyimagenet", tmp_path / "none", "train")


def test_imagenet_val_layout_resize_and_crop(tmp_path):
    val = tmp_path / "imagenet" / "val"
    _save(val / "n0002" / "ILSVRC2012_val_00000001.JPEG", (0, 255, 0), size=(40, 30), fmt="JPEG")
    _save(val / "n0001" / "ILSVRC2012_val_00000002.JPEG", (255, 255, 255), size=(30, 50), fmt="JPEG")
    ds = load_dataset("imagenet", tmp_path, "val")
    assert isinstance(ds, FolderDataset) and ds.classes == ("n0001", "n0002") and ds.labels.tolist() == [0, 1]
    img, label = ds[1]
    assert img.shape == (3, 224, 224) and label == 1 and abs(int(img[1].float().mean()) - 255) <= 3
    assert load_dataset("imagenet", tmp_path, "test").samples == ds.samples

    # resize: shorter side -> 5 (20x10 -> 10x5), then center crop 4: columns 3..6 of the resized image
    from PIL import Image

    arr = np.zeros((10, 20, 3), dtype=np.uint8)
    arr[:, :10] = 255  # left half white
    Image.fromarray(arr).save(tmp_path / "half.png")
    small = FolderDataset([(tmp_path / "half.png", 0)], ("a",), name="t", split="val", resize=5, crop=4)
    out = small[0][0]
    assert out.shape == (3, 4, 4)
    assert out[:, :, 0].min() == 255 and out[:, :, 3].max() == 0  # columns 3, 4 white; 5, 6 black
    with pytest.raises(ValueError, match="smaller than the crop 16"):
        FolderDataset([(tmp_path / "half.png", 0)], ("a",), name="t", split="val", crop=16)[0]
    with pytest.raises(DatasetNotFoundError, match=r"ImageNet not found: .*imagenet/val is missing"):
        load_dataset("imagenet", tmp_path / "none", "val")
    with pytest.raises(ValueError, match="make_loader: images of different sizes"):
        next(iter(make_loader(FolderDataset(ds.samples, ds.classes, name="i", split="val"), batch_size=2,
                              shuffle=False, num_workers=0, seed=0)))


# ------------------------------------------------------------------------------------------
# Real CIFAR-10


@pytest.mark.realdata
def test_real_cifar10(caplog):
    folder = SHARED_CIFAR / "cifar-10-batches-py"
    if not folder.is_dir():
        pytest.skip(f"real CIFAR-10 not found at {folder} (needs ../shared/data/cifar-10-batches-py)")
    with caplog.at_level(logging.INFO, logger="robnet.data"):
        train = load_dataset("cifar10", SHARED_CIFAR, "train")
        test = load_dataset("cifar10", SHARED_CIFAR, "test")
    assert "CIFAR-10: md5 verified for 6 files" in caplog.text
    assert "CIFAR-10: md5 verified for 2 files" in caplog.text
    assert (len(train), len(test)) == (50000, 10000)
    assert train.images.shape == (50000, 3, 32, 32) and test.images.shape == (10000, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.classes == ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                            "truck")
    assert test.labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]  # official test order
    first_batch = [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]  # data_batch_1 label counts
    assert torch.bincount(train.labels[:10000]).tolist() == first_batch
