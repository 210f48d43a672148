"""robnet.data.loader: seeded splits, the GPU-resident DeviceLoader, on-device augmentation, make_loader."""

import collections
import re

import pytest
import torch

from robnet.data import loader as loader_mod
from robnet.data.datasets import ArrayDataset
from robnet.data.folders import FolderDataset, ImageReadError
from robnet.data.loader import Augment, DeviceLoader, augment_batch, make_loader, train_val_split

# ------------------------------------------------------------------------------------------
# train_val_split


def test_train_val_split(ids_dataset):
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
def test_train_val_split_errors(val_size, exc, match, ids_dataset):
    with pytest.raises(exc, match=match):
        train_val_split(ids_dataset(10), val_size=val_size, seed=0)


def test_train_val_split_refuses_test_set(ids_dataset):
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


def test_device_loader_covers_every_sample_once(ids_dataset):
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
def test_device_loader_eval_sharding_is_exact(world_size, shuffle, ids_dataset):
    ds = ids_dataset(23)
    parts = [torch.cat(_epoch(DeviceLoader(ds, batch_size=4, shuffle=shuffle, seed=5, rank=r,
                                           world_size=world_size))[1]).tolist() for r in range(world_size)]
    flat = [v for part in parts for v in part]
    assert len(flat) == 23 and sorted(flat) == list(range(23))  # each sample exactly once, no padding
    # every rank reads the same permutation: interleaving the ranks' parts gives the 1-process order
    single = torch.cat(_epoch(DeviceLoader(ds, batch_size=4, shuffle=shuffle, seed=5))[1]).tolist()
    assert all(parts[r] == single[r::world_size] for r in range(world_size))


def test_device_loader_drop_last_keeps_ranks_in_lockstep(ids_dataset):
    ds = ids_dataset(23)
    loaders = [DeviceLoader(ds, batch_size=3, shuffle=True, seed=2, drop_last=True, rank=r, world_size=3)
               for r in range(3)]
    assert [len(loader) for loader in loaders] == [2, 2, 2]  # 23 // 3 = 7 per rank -> 2 full batches
    epochs = [_epoch(loader)[1] for loader in loaders]
    assert all(len(e) == 2 and all(len(b) == 3 for b in e) for e in epochs)
    flat = [v for e in epochs for b in e for v in b.tolist()]
    assert len(set(flat)) == 18
    assert len(DeviceLoader(ds, batch_size=5, drop_last=True)) == 4


def test_device_loader_epoch_determinism(ids_dataset):
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


def test_augmentation_independent_of_world_size(ids_dataset):
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
    params = loader_mod._AugParams(offsets=torch.tensor([[0, 0], [4, 4], [2, 2], [0, 3]]),
                             flips=torch.zeros(4, dtype=torch.bool),
                             centers=torch.zeros(4, 2, dtype=torch.long))
    img = ds.images[:4]
    out = loader_mod._apply_augment(img, aug, params)
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
    params = loader_mod._AugParams(offsets=torch.tensor([[1, 1], [1, 1]]), flips=torch.tensor([True, False]),
                             centers=torch.zeros(2, 2, dtype=torch.long))
    out = loader_mod._apply_augment(ds.images[:2], Augment(crop_padding=1, flip=True), params)
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
    params = loader_mod._AugParams(offsets=torch.zeros(2, 2, dtype=torch.long), flips=torch.zeros(2, dtype=bool),
                             centers=torch.tensor([[8, 5], [0, 15]]))
    out = loader_mod._apply_augment(ds.images[:2], aug, params)
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


def test_device_loader_argument_errors_and_channels_last(ids_dataset):
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
# make_loader (streamed folder datasets)


def _color_folder(tmp_path, save_image, colors, sizes=None):
    """A FolderDataset of one-colour PNGs: sample i has colour colors[i][0] and label colors[i][1]."""
    samples = []
    for i, (rgb, label) in enumerate(colors):
        size = sizes[i] if sizes else (8, 8)
        samples.append((save_image(tmp_path / f"img_{i}.png", rgb, size=size), label))
    return FolderDataset(samples, ("a", "b"), name="colors", split="train")


def test_make_loader_batches_and_seeded_shuffle(tmp_path, save_image):
    train = _color_folder(tmp_path, save_image, [((10, 20, 30), 0), ((40, 50, 60), 0), ((70, 80, 90), 1),
                                                 ((100, 110, 120), 1), ((5, 6, 7), 1)])
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


def test_make_loader_refuses_mixed_sizes(tmp_path, save_image):
    ds = _color_folder(tmp_path, save_image, [((0, 255, 0), 1), ((255, 255, 255), 0)], sizes=[(40, 30), (30, 50)])
    with pytest.raises(ValueError, match="make_loader: images of different sizes"):
        next(iter(make_loader(ds, batch_size=2, shuffle=False, num_workers=0, seed=0)))


@pytest.mark.parametrize("workers", [0, 2])
def test_unreadable_image_is_one_line_naming_the_file(tmp_path, save_image, workers):
    # a corrupt JPEG read by DataLoader workers gave a worker traceback, not the file
    good = save_image(tmp_path / "good.JPEG", (9, 9, 9), fmt="JPEG")
    truncated = tmp_path / "truncated.JPEG"
    truncated.write_bytes(good.read_bytes()[:200])
    garbage = tmp_path / "garbage.JPEG"
    garbage.write_bytes(b"\xff\xd8 definitely not a jpeg")
    for bad in (truncated, garbage):
        ds = FolderDataset([(good, 0), (good, 1), (bad, 0), (good, 1)], ("a", "b"), name="t", split="val")
        loader = make_loader(ds, batch_size=2, shuffle=False, num_workers=workers, seed=0)
        with pytest.raises(ImageReadError, match=rf"^cannot read image {re.escape(str(bad))}: .+\. Hint: replace "
                                                 r"or remove the file"):
            list(loader)
        try:
            list(loader)
        except ImageReadError as e:
            assert "\n" not in str(e) and "Traceback" not in str(e) and "worker" not in str(e)
        with pytest.raises(ImageReadError, match=re.escape(str(bad))):
            ds[2]  # direct access raises the same error
    assert isinstance(ImageReadError("x"), ValueError)
