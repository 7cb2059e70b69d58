"""ResNets (He et al. 2016). ``resnet18`` gets the CIFAR stem (3x3 conv, stride 1, no max-pool) for inputs up to
64 px, as is standard for 32x32 data; larger inputs get the ImageNet stem (7x7 conv stride 2 + max-pool)."""

from __future__ import annotations

from torch import nn

from ..data import SMALL_SIDE
from . import Normalize, register_model


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x):
        return (self.body(x) + self.shortcut(x)).relu_()


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x):
        return (self.body(x) + self.shortcut(x)).relu_()


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    def __init__(self, block, depths, *, num_classes: int, image_size: int, base_width: int = 64):
        super().__init__()
        small = image_size <= SMALL_SIDE
        stem = (
            [nn.Conv2d(3, base_width, 3, 1, 1, bias=False)]
            if small
            else [nn.Conv2d(3, base_width, 7, 2, 3, bias=False)]
        )
        layers = [Normalize(), *stem, nn.BatchNorm2d(base_width), nn.ReLU(inplace=True)]
        if not small:
            layers.append(nn.MaxPool2d(3, 2, 1))
        cin = base_width
        for i, depth in enumerate(depths):
            width = base_width * 2**i
            for j in range(depth):
                layers.append(block(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * block.expansion
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each residual branch: each block starts as identity
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.body[-1].weight)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


@register_model
def resnet18(**kwargs) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), **kwargs)


@register_model
def resnet50(**kwargs) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), **kwargs)


@register_model
def resnet8(**kwargs) -> ResNet:
    """Four basic blocks of width 16-128 (0.3 M parameters): the CPU-sized model of the demo and the tests."""
    return ResNet(BasicBlock, (1, 1, 1, 1), base_width=16, **kwargs)
