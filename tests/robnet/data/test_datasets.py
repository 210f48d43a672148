"""robnet.data.datasets: load_dataset, ArrayDataset and the CIFAR-10/100, SVHN and digits readers.

The checksummed files (md5 checks, downloads, not-found messages) are tested in test_download.py,
the image folders (Tiny-ImageNet, ImageNet-val) in test_folders.py.
"""

import collections
import hashlib
import logging
import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from robnet.data.datasets import ArrayDataset, load_dataset
from robnet.data.download import DatasetNotFoundError
from robnet.io.files import file_md5
from tests._paths import SHARED_DATA

SHARED_CIFAR = SHARED_DATA


def _md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


# ------------------------------------------------------------------------------------------
# CIFAR from files


def test_cifar10_loads_official_format(tmp_path, make_cifar10):
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


def test_cifar_unpickler_refuses_code(tmp_path, make_cifar10):
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


def test_digits_embedded_split():

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


def test_array_dataset_validation_and_subset(ids_dataset):
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


# ------------------------------------------------------------------------------------------
# Real CIFAR-10


@pytest.mark.realdata
def test_real_cifar10(caplog):
    folder = SHARED_CIFAR / "cifar-10-batches-py"
    if not folder.is_dir():
        pytest.skip(f"real CIFAR-10 not found at {folder} (needs ../shared/data/cifar-10-batches-py)")
    with caplog.at_level(logging.INFO, logger="robnet.data.download"):  # md5 lines
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
