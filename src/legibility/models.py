"""Networks: the reference study's fusion design, beside a linear path.

One 3D CNN over the chosen images (stacked as channels), a feed-forward block for each vector
input (connectivity edges, MIND similarities, metadata features), concatenated into a head. A model is
built from the inputs it uses only: an unused branch is absent, not fed zeros. The image CNN is
the reference study's residual encoder (kind fusion) or SFCN (kind sfcn, Peng et al. 2021).

Beside the network runs the cell's linear baseline (images as atlas-region means, vectors as
they are), and the head's last layer starts at zero: the network adds to the linear model's
predictions, starting from them, so one that cannot learn on a small cohort falls back on the
linear model instead of a constant. It is given those predictions as `offset`: on training
subjects cross-fitted (each from a fit that left it out: the full fit interpolates a small
cohort, and would leave the network nothing to learn), elsewhere the full fit's. Its frozen
`linear` layer holds the full fit, for data given as features.
"""

import numpy as np
import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Two 3x3x3 convolutions (the first strided) with a projected shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv3d(in_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm3d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(out_channels, out_channels, 3, 1, 1, bias=False),
            nn.BatchNorm3d(out_channels),
        )
        self.shortcut = nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm3d(out_channels))

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class ImageEncoder(nn.Sequential):
    """A strided stem, then one residual stage per remaining channel count, then global pooling.

    `channels` are for 64³ inputs; at 128³ one more (half-width) stage comes first, so both
    resolutions end on the same grid.
    """

    def __init__(self, in_channels: int, channels, resolution: int = 64):
        channels = list(channels)
        if resolution == 128:
            channels = [max(channels[0] // 2, 1), *channels]
        layers = [nn.Conv3d(in_channels, channels[0], 3, 2, 1, bias=False), nn.BatchNorm3d(channels[0]), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(a, b) for a, b in zip(channels, channels[1:])]
        super().__init__(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.out_features = channels[-1]


class SFCNEncoder(nn.Sequential):
    """SFCN's feature extractor (Peng et al. 2021, as in their code): 3x3x3 conv, batch norm,
    2x max-pool, ReLU per stage; the last stage a 1x1x1 conv, batch norm, ReLU; then average
    pooling and dropout. Its 1x1x1 output conv becomes the fusion head."""

    def __init__(self, in_channels: int, channels, dropout: float):
        layers, width = [], in_channels
        for i, out in enumerate(channels):
            last = i == len(channels) - 1
            layers += [nn.Conv3d(width, out, 1 if last else 3, padding=0 if last else 1), nn.BatchNorm3d(out)]
            layers += [nn.ReLU()] if last else [nn.MaxPool3d(2), nn.ReLU()]
            width = out
        super().__init__(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Dropout(dropout))
        self.out_features = width


class MLP(nn.Sequential):
    def __init__(self, in_features: int, hidden, dropout: float):
        layers, width = [], in_features
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU(inplace=True), nn.Dropout(dropout)]
            width = size
        super().__init__(*layers)
        self.out_features = width


class FusionNet(nn.Module):
    """Branches for the inputs given: image channels, and vectors {input: length} (connectivity
    and MIND through blocks shaped by connectivity_hidden, metadata by metadata_hidden). The
    output adds inputs["offset"], the linear model's outputs, or with `linear` = (weight, bias)
    and no offset given, a frozen linear layer over inputs["linear"], the baseline's features."""

    def __init__(self, n_outputs: int, settings: dict, image_channels=0, resolution=64, vectors=None, linear=None):
        super().__init__()
        self.branches = nn.ModuleDict()
        if image_channels and settings["kind"] == "sfcn":
            self.branches["image"] = SFCNEncoder(image_channels, settings["sfcn_channels"], settings["dropout"])
        elif image_channels:
            self.branches["image"] = ImageEncoder(image_channels, settings["channels"], resolution)
        for name, length in (vectors or {}).items():
            hidden = settings["metadata_hidden" if name == "metadata" else "connectivity_hidden"]
            self.branches[name] = MLP(length, hidden, settings["dropout"])
        if not self.branches:
            raise ValueError("a model needs at least one input")
        width = sum(branch.out_features for branch in self.branches.values())
        self.head = nn.Sequential(
            nn.Linear(width, settings["head_hidden"]),
            nn.ReLU(inplace=True),
            nn.Dropout(settings["dropout"]),
            nn.Linear(settings["head_hidden"], n_outputs),
        )
        self.linear = None
        if linear is not None:
            weight, bias = (torch.as_tensor(v, dtype=torch.float32) for v in linear)
            self.linear = nn.Linear(weight.shape[1], weight.shape[0]).requires_grad_(False)
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)
            nn.init.zeros_(self.head[-1].weight)  # the network's contribution starts at zero
            nn.init.zeros_(self.head[-1].bias)

    def forward(self, inputs: dict):
        out = self.head(torch.cat([branch(inputs[name]) for name, branch in self.branches.items()], dim=1))
        if "offset" in inputs:
            return out + inputs["offset"]
        return out if self.linear is None else out + self.linear(inputs["linear"])


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class SoftLabelLoss(nn.Module):
    """Peng et al.'s soft-label regression: the target becomes a Gaussian over value bins (the
    probability mass of N(target, sigma) in each bin, renormalised over the bins) and the loss
    is the KL divergence from it to the softmax of the outputs. Targets, centres and sigma are
    in the same (standardised) units; the prediction is the expected bin centre."""

    def __init__(self, centres, sigma: float):
        super().__init__()
        centres = torch.as_tensor(centres, dtype=torch.float32)
        width = centres[1] - centres[0] if len(centres) > 1 else torch.tensor(1.0)
        self.register_buffer("centres", centres)
        self.register_buffer("edges", torch.cat([centres - width / 2, centres[-1:] + width / 2]))
        self.sigma = sigma

    def soft_labels(self, target):
        # a target beyond the bins (the bins span the training values) counts in the edge bin
        target = target.clamp(float(self.centres[0]), float(self.centres[-1]))
        mass = torch.special.ndtr((self.edges[None, :] - target[:, None]) / self.sigma).diff(dim=1)
        return mass / mass.sum(dim=1, keepdim=True).clamp_min(1e-12)

    def forward(self, output, target):
        return nn.functional.kl_div(torch.log_softmax(output.float(), dim=1), self.soft_labels(target.float()), reduction="batchmean")

    def expected(self, output):
        return torch.softmax(output.float(), dim=1) @ self.centres

    def logits_around(self, predicted, spread):
        """Bin logits whose softmax is a Gaussian of width `spread` centred on each prediction y:
        logit_k = (c_k y - c_k² / 2) / spread² (the y² term is the same for every bin, so the
        softmax drops it); linear in y, so a linear model's weights map the same way."""
        centres = self.centres.numpy()
        return (np.outer(predicted, centres) - centres**2 / 2) / spread**2
