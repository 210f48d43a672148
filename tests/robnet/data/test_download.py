"""robnet.data.download: md5-checked official files, downloads and the not-found messages."""

import hashlib
import re

import numpy as np
import pytest

from robnet.data.datasets import load_dataset
from robnet.data.download import CHECKSUMS, DatasetNotFoundError
from robnet.io.files import file_md5

CIFAR_HOME = "https://www.cs.toronto.edu/~kriz/cifar.html"


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def test_cifar_default_checksums_reject_non_official_files(tmp_path, make_cifar10):
    fake = make_cifar10(tmp_path, n=2)
    got = fake.md5s["test_batch"]
    official = CHECKSUMS["cifar10"]["test_batch"]
    msg = (f"md5 mismatch for {fake.base / 'test_batch'}: got {got}, expected {official}; "
           "the file is damaged or not the official batch: delete it and download again")
    with pytest.raises(ValueError, match=re.escape(msg)):
        load_dataset("cifar10", tmp_path, "test")


def test_cifar_damaged_file_message(tmp_path, make_cifar10):
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


def test_cifar_missing_file_message(tmp_path, make_cifar10):
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


def test_svhn_download_single_file(tmp_path, http_server):
    from scipy.io import savemat

    x = np.full((32, 32, 3, 2), 7, dtype=np.uint8)
    savemat(http_server.dir / "train_32x32.mat", {"X": x, "y": np.array([[3], [10]])})
    md5 = file_md5(http_server.dir / "train_32x32.mat")
    ds = load_dataset("svhn", tmp_path / "svhn", "train", download=True, url=http_server.url,
                      checksums={"train_32x32.mat": md5}, progress=False)
    assert ds.labels.tolist() == [3, 0] and int(ds.images.sum()) == 7 * 2 * 3 * 32 * 32
    assert http_server.requests == ["/train_32x32.mat"]
