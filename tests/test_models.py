"""Networks are built from the inputs a model uses; nothing else is in the graph."""

import numpy as np
import torch
from scipy import stats
from torch import nn

from legibility.models import FusionNet, ImageEncoder, ResidualBlock, SFCNEncoder, SoftLabelLoss

SETTINGS = {"kind": "fusion", "channels": [4, 8, 8], "sfcn_channels": [4, 8, 4], "connectivity_hidden": [16],
            "metadata_hidden": [8], "head_hidden": 8, "dropout": 0.1}  # fmt: skip


def test_unused_inputs_are_absent_not_zeroed():
    model = FusionNet(1, SETTINGS, vectors={"connectivity": 10})
    assert list(model.branches) == ["connectivity"]
    assert not any(isinstance(m, nn.Conv3d) for m in model.modules())
    assert model({"connectivity": torch.randn(4, 10)}).shape == (4, 1)
    fused = FusionNet(3, SETTINGS, image_channels=2, vectors={"metadata": 5})
    assert list(fused.branches) == ["image", "metadata"]
    out = fused({"image": torch.randn(2, 2, 16, 16, 16), "metadata": torch.randn(2, 5)})
    assert out.shape == (2, 3)
    vectors = FusionNet(1, SETTINGS, vectors={"connectivity": 10, "mind": 6, "metadata": 5})
    assert [vectors.branches[n][0].in_features for n in vectors.branches] == [10, 6, 5]
    assert vectors.branches["mind"][0].out_features == SETTINGS["connectivity_hidden"][0]  # MIND is shaped like connectivity


def test_128_has_one_more_stage():
    at64, at128 = ImageEncoder(1, [4, 8, 8], 64), ImageEncoder(1, [4, 8, 8], 128)
    blocks = lambda m: sum(isinstance(x, ResidualBlock) for x in m.modules())  # noqa: E731
    assert blocks(at128) == blocks(at64) + 1
    assert at128(torch.randn(1, 1, 32, 32, 32)).shape == at64(torch.randn(1, 1, 16, 16, 16)).shape == (1, 8)


def test_sfcn_is_pengs_network():
    # Peng et al.'s SFCN (their code: 40 age bins from one channel) has 2,952,936 parameters;
    # our encoder plus their 1x1x1 output convolution must have exactly as many
    encoder = SFCNEncoder(1, [32, 64, 128, 256, 256, 64], dropout=0.5)
    output = nn.Conv3d(64, 40, 1)
    assert sum(p.numel() for m in (encoder, output) for p in m.parameters()) == 2_952_936
    assert sum(isinstance(m, nn.MaxPool3d) for m in encoder.modules()) == 5
    model = FusionNet(1, {**SETTINGS, "kind": "sfcn"}, image_channels=2)
    assert isinstance(model.branches["image"], SFCNEncoder)
    assert model({"image": torch.randn(2, 2, 16, 16, 16)}).shape == (2, 1)


def test_soft_labels_are_pengs_gaussian_bins():
    centres = np.arange(42.5, 82, 1.0)  # 1-year bins over 42..82, as Peng et al. for UK Biobank
    loss = SoftLabelLoss(centres, sigma=1.0)
    ages = np.array([50.3, 61.0, 79.9])
    labels = loss.soft_labels(torch.tensor(ages)).numpy()
    edges = np.r_[centres - 0.5, centres[-1] + 0.5]
    expected = np.diff(stats.norm.cdf(edges[None, :], loc=ages[:, None], scale=1.0), axis=1)  # their num2vect
    assert np.allclose(labels, expected / expected.sum(axis=1, keepdims=True), atol=1e-6)
    logits = torch.log(torch.tensor(labels) + 1e-12)
    assert float(loss(logits, torch.tensor(ages))) < 1e-5  # KL of a distribution to itself
    assert np.allclose(loss.expected(logits).numpy(), ages, atol=0.05)  # the mean of the bins
