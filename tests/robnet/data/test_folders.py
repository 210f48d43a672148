"""robnet.data.folders: Tiny-ImageNet and ImageNet-val folder layouts, resize and crop, standard labels."""

import numpy as np
import pytest
import torch

from robnet.data.datasets import load_dataset
from robnet.data.download import DatasetNotFoundError
from robnet.data.folders import FolderDataset


def test_tinyimagenet_layout(tmp_path, save_image):
    base = tmp_path / "tiny-imagenet-200"
    base.mkdir()
    (base / "wnids.txt").write_text("n02\nn01\n")  # classes are the sorted wnids
    colors = {"n01": [(10, 20, 30), (40, 50, 60)], "n02": [(70, 80, 90), (100, 110, 120), (5, 6, 7)]}
    for wnid, cs in colors.items():
        for i, c in enumerate(cs):
            save_image(base / "train" / wnid / "images" / f"{wnid}_{i}.png", c)
    save_image(base / "val" / "images" / "val_0.JPEG", (200, 0, 0), fmt="JPEG")
    save_image(base / "val" / "images" / "val_1.JPEG", (0, 0, 200), fmt="JPEG")
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

    with pytest.raises(DatasetNotFoundError, match=r"looks like tiny-imagenet-200/ itself: pass its parent"):
        load_dataset("tinyimagenet", base, "train")
    with pytest.raises(DatasetNotFoundError, match=r"Tiny-ImageNet not found: .*wnids.txt is missing.*unzip"):
        load_dataset("tinyimagenet", tmp_path / "none", "train")


def test_imagenet_val_layout_resize_and_crop(tmp_path, save_image):
    val = tmp_path / "imagenet" / "val"
    save_image(val / "n01443537" / "ILSVRC2012_val_00000001.JPEG", (0, 255, 0), size=(40, 30), fmt="JPEG")
    save_image(val / "n01440764" / "ILSVRC2012_val_00000002.JPEG", (255, 255, 255), size=(30, 50), fmt="JPEG")
    ds = load_dataset("imagenet", tmp_path, "val")
    assert isinstance(ds, FolderDataset) and ds.classes[:2] == ("n01440764", "n01443537")
    assert ds.labels.tolist() == [0, 1]
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


def test_imagenet_val_subset_keeps_the_standard_labels(tmp_path, save_image):
    # a val folder holding some of the 1,000 classes is labelled with the standard
    # ILSVRC-2012 indices (sorted wnids), not renumbered among the folders present
    val = tmp_path / "imagenet" / "val"
    for wnid in ("n15075141", "n01443537", "n02123045"):  # the last class, goldfish, tabby
        save_image(val / wnid / f"ILSVRC2012_val_{wnid}.JPEG", (1, 2, 3), fmt="JPEG")
    (val / "LOC_val_solution.csv").write_text("not a class folder\n")
    (val / ".cache").mkdir()
    ds = load_dataset("imagenet", tmp_path, "val")
    assert ds.num_classes == 1000 and len(ds.classes) == len(set(ds.classes)) == 1000
    assert list(ds.classes) == sorted(ds.classes) and ds.classes[0] == "n01440764" and ds.classes[-1] == "n15075141"
    assert [ds.classes[y] for y in ds.labels.tolist()] == ["n01443537", "n02123045", "n15075141"]
    assert ds.labels.tolist() == [1, 281, 999]
    save_image(val / "n0144076" / "x.JPEG", (1, 2, 3), fmt="JPEG")
    with pytest.raises(ValueError, match=r"^ImageNet: .*val/n0144076 is not one of the 1,000 ILSVRC-2012 class folders "
                                         r"\(wnids such as n01440764\)\. Did you mean n01440764\? Hint: "):
        load_dataset("imagenet", tmp_path, "val")
