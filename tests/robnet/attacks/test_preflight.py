"""The refusals before any attack (robnet.attacks.preflight): non-finite weights, a model that does not fit
the data (channels, number of outputs), non-finite logits on the first samples; each also through evaluate()."""

import pytest
import torch
from torch import nn

import robnet
from robnet.attacks.evaluation import evaluate
from robnet.attacks.preflight import check_finite_outputs, check_finite_weights, check_model_data
from robnet.attacks.spec import parse_attack
from robnet.data.datasets import load_dataset
from tests.robnet.attacks._tiny import Overflow, digits_robnet


def test_nan_weights_are_refused_before_any_attack():
    model = digits_robnet()
    with torch.no_grad():
        model.stem[0].weight[0, 0, 0, 0] = float("inf")
    data = load_dataset("digits", split="test").subset(range(8))
    with pytest.raises(ValueError, match=r"^model has non-finite weights: 1 of \d+ tensors hold NaN or inf "
                                         r"\(first: stem\.0\.weight\)\. Hint: the checkpoint comes from a diverged "
                                         r"run"):
        evaluate(model, data, [("clean", parse_attack("clean"))], progress=False)
    with pytest.raises(ValueError, match="transfer source has non-finite weights"):
        evaluate(digits_robnet(), data, [("clean", parse_attack("clean"))], progress=False, source=model)
    check_finite_weights(digits_robnet())  # a healthy model passes


def test_class_count_and_channel_checks():
    data = load_dataset("digits", split="test").subset(range(8))
    assert check_model_data(digits_robnet(), data) == 10
    torch.manual_seed(0)
    wide = robnet.build_model("robnet_large", C=4, layers=3, in_channels=1, num_classes=100)
    with pytest.raises(ValueError, match=r"^model has 100 outputs but digits has 10 classes: wrong --data for this "
                                         r"checkpoint\? Hint: --allow-more-classes \(allow_more_classes=True\)"):
        check_model_data(wide, data)
    assert check_model_data(wide, data, allow_more_classes=True) == 100
    narrow = robnet.build_model("robnet_large", C=4, layers=3, in_channels=1, num_classes=5)
    for allow in (False, True):
        with pytest.raises(ValueError, match=r"^ckpt\.pt has 5 outputs but digits has 10 classes: labels 5\.\.9 "
                                             r"can never be predicted"):
            check_model_data(narrow, data, allow_more_classes=allow, what="ckpt.pt")
    rgb = robnet.build_model("robnet_large", C=4, layers=3, num_classes=10)
    with pytest.raises(ValueError, match=r"^model expects 3-channel images but digits has 1: wrong --data"):
        check_model_data(rgb, data)
    with pytest.raises(ValueError, match="the dataset is empty: nothing to evaluate"):
        check_model_data(digits_robnet(), data.subset([]))
    # through a torch Subset (streamed folder sets are cut that way)
    assert check_model_data(wide, torch.utils.data.Subset(data, range(3)), allow_more_classes=True) == 100
    # evaluate() refuses the mismatch itself (Python API), before its first attack
    with pytest.raises(ValueError, match="100 outputs but digits has 10 classes"):
        evaluate(wide, data, [("clean", parse_attack("clean"))], progress=False)


def test_non_finite_outputs_are_refused_before_evaluation():
    """Before: evaluate() ran every attack on an overflowing model and only warned afterwards."""
    data = load_dataset("digits", split="test").subset(range(16))
    calls = []

    class Spy(Overflow):
        def forward(self, x):
            calls.append(len(x))
            return super().forward(x)

    msg = (r"^model produces non-finite outputs: 16 of the first 16 samples have NaN or inf logits, so its accuracies "
           r"and attack gradients would mean nothing\. Hint: the model overflows")
    with pytest.raises(ValueError, match=msg):
        evaluate(Spy(digits_robnet()), data, [("pgd", parse_attack("pgd20"))], batch_size=16, progress=False)
    assert calls == [1, 16]  # the data check's one sample, then the first batch: no attack ran
    with pytest.raises(ValueError, match=r"^transfer source produces non-finite outputs"):
        evaluate(digits_robnet(), data, [("fgsm", parse_attack("fgsm"))], progress=False,
                 source=Overflow(digits_robnet()))
    nan_one = digits_robnet()

    class OneBad(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nan_one

        def forward(self, x):
            out = self.inner(x)
            return torch.where(torch.arange(len(x))[:, None] == 3, float("nan"), out)

    with pytest.raises(ValueError, match=r"^ckpt produces non-finite outputs: 1 of the first 10 samples"):
        check_finite_outputs(OneBad(), data, n=10, what="ckpt")
    check_finite_outputs(digits_robnet(), data)  # a healthy model passes
