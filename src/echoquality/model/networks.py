"""The quality network's architectures, built fresh (never downloads weights).

Two architectures share one layout of named children (``stem``, ``layer1``..``layer4``, ``avgpool``,
``fc``) so that training (which unfreezes layers by name) and Grad-CAM (which hooks ``layer4``) work on
both:

- ``r2plus1d_18``: torchvision's R(2+1)D-18 with a single-logit head, the reference quality model
  (31.3 M parameters). Never downloads anything (``weights=None``).
- ``tiny``: a ~0.3 M-parameter (2+1)D residual network for tests and CPU demos (~50x faster).
"""

from __future__ import annotations

import torch
from torch import nn

ARCHITECTURES = ("r2plus1d_18", "tiny")


class _Conv2Plus1D(nn.Sequential):
    """A factorised 3D convolution: spatial 1xkxk, BN+ReLU, then temporal kx1x1 (as in R(2+1)D)."""

    def __init__(self, cin: int, cout: int, mid: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(cin, mid, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, (3, 1, 1), stride=(stride, 1, 1), padding=(1, 0, 0), bias=False),
        )


class _TinyBlock(nn.Module):
    """Residual block of two (2+1)D convolutions; a 1x1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        mid = max(8, cout // 2)
        self.conv1 = nn.Sequential(_Conv2Plus1D(cin, cout, mid, stride), nn.BatchNorm3d(cout), nn.ReLU(True))
        self.conv2 = nn.Sequential(_Conv2Plus1D(cout, cout, mid), nn.BatchNorm3d(cout))
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class TinyR2Plus1D(nn.Module):
    """A small (2+1)D ResNet with the same child names as torchvision's VideoResNet."""

    WIDTHS = (24, 48, 96, 128)

    def __init__(self, num_classes: int = 1) -> None:
        super().__init__()
        w = self.WIDTHS
        # Aggressive spatial downsampling in the stem keeps a 16x112x112 clip at ~0.02 s on CPU.
        self.stem = nn.Sequential(
            nn.Conv3d(3, 12, (1, 7, 7), stride=(1, 4, 4), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(12),
            nn.ReLU(inplace=True),
            nn.Conv3d(12, w[0], (3, 1, 1), stride=(1, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(w[0]),
            nn.ReLU(inplace=True),
        )
        self.layer1 = _TinyBlock(w[0], w[0], 1)
        self.layer2 = _TinyBlock(w[0], w[1], 2)
        self.layer3 = _TinyBlock(w[1], w[2], 2)
        self.layer4 = _TinyBlock(w[2], w[3], 2)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(w[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def build_model(architecture: str = "r2plus1d_18") -> nn.Module:
    """A freshly initialised quality network (single-logit head); never downloads weights."""
    if architecture == "r2plus1d_18":
        from torchvision.models.video import r2plus1d_18

        return r2plus1d_18(weights=None, num_classes=1)
    if architecture == "tiny":
        return TinyR2Plus1D(num_classes=1)
    raise ValueError(f"unknown architecture {architecture!r}; choose one of: {', '.join(ARCHITECTURES)}")


_SHAPES_CACHE: dict[str, dict[str, tuple[int, ...]]] = {}


def expected_shapes(architecture: str) -> dict[str, tuple[int, ...]]:
    """Parameter/buffer name -> shape of *architecture* (built on the meta device: no memory, fast)."""
    if architecture not in _SHAPES_CACHE:
        with torch.device("meta"):
            model = build_model(architecture)
        _SHAPES_CACHE[architecture] = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    return _SHAPES_CACHE[architecture]
