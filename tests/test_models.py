"""Networks are built from the inputs a model uses; nothing else is in the graph."""

import torch
from torch import nn

from legibility.models import FusionNet, ImageEncoder, ResidualBlock

SETTINGS = {"channels": [4, 8, 8], "connectivity_hidden": [16], "metadata_hidden": [8], "head_hidden": 8, "dropout": 0.1}


def test_unused_inputs_are_absent_not_zeroed():
    model = FusionNet(1, SETTINGS, n_connectivity=10)
    assert list(model.branches) == ["connectivity"]
    assert not any(isinstance(m, nn.Conv3d) for m in model.modules())
    assert model({"connectivity": torch.randn(4, 10)}).shape == (4, 1)
    fused = FusionNet(3, SETTINGS, image_channels=2, n_metadata=5)
    assert list(fused.branches) == ["image", "metadata"]
    out = fused({"image": torch.randn(2, 2, 16, 16, 16), "metadata": torch.randn(2, 5)})
    assert out.shape == (2, 3)


def test_128_has_one_more_stage():
    at64, at128 = ImageEncoder(1, [4, 8, 8], 64), ImageEncoder(1, [4, 8, 8], 128)
    blocks = lambda m: sum(isinstance(x, ResidualBlock) for x in m.modules())  # noqa: E731
    assert blocks(at128) == blocks(at64) + 1
    assert at128(torch.randn(1, 1, 32, 32, 32)).shape == at64(torch.randn(1, 1, 16, 16, 16)).shape == (1, 8)
