"""``build(arch)``: an architecture value to a plain, static PyTorch model.

The result has no search machinery: the zoo ships exactly this module, and the supernet's ``export``
returns one with inherited weights copied in. ``build`` is a pure function of its arguments.
"""

from __future__ import annotations

import torch
from torch import nn

from nasbench.arch import Arch
from nasbench.blocks import BLOCKS, ConvBNAct
from nasbench.callable_module import make_callable


class Net(nn.Module):
    """stem -> stages of blocks -> 1x1 head conv -> global pool -> dropout -> linear classifier."""

    def __init__(self, arch: Arch, num_classes: int, drop_path: float = 0.0, dropout: float = 0.0):
        super().__init__()
        self.arch = arch
        self.num_classes = num_classes
        self.stem = ConvBNAct(3, arch.stem, 3, arch.stem_stride, act=arch.act)
        total, index = arch.depth, 0
        stages = []
        in_ch = arch.stem
        for stage in arch.stages:
            blocks = []
            for j, layer in enumerate(stage.layers):
                # Stochastic depth grows linearly with depth, as in EfficientNet.
                rate = drop_path * index / total
                block = BLOCKS[layer.block](
                    in_ch=in_ch,
                    out_ch=stage.width,
                    kernel=layer.kernel,
                    expand=layer.expand,
                    stride=stage.stride if j == 0 else 1,
                    se=stage.se,
                    act=arch.act,
                    drop_path=rate,
                )
                blocks.append(block)
                in_ch = stage.width
                index += 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = ConvBNAct(in_ch, arch.head, 1, act=arch.act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(arch.head, num_classes)
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.pool(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _init_weights(model: nn.Module) -> None:
    """EfficientNet's initialisation: fan-out normal for convs, uniform for the classifier."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.out_features**0.5
            nn.init.uniform_(m.weight, -bound, bound)
            nn.init.zeros_(m.bias)


def build(arch: Arch, num_classes: int = 1000, *, drop_path: float = 0.0, dropout: float = 0.0) -> Net:
    """The static model of ``arch``; ``drop_path`` and ``dropout`` are for training from scratch."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    return Net(arch, num_classes, drop_path=drop_path, dropout=dropout)


make_callable(__name__, build)  # nasbench.build(arch) is this function (see nasbench.callable_module)
