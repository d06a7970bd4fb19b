"""The inference form of a ``nasbench.build.Net``: batch norm folded into convs.

``fold_bn(model)`` folds every ``ConvBNAct``'s batch norm into its convolution (a conv with a bias, the norm
replaced by ``Identity``). A dynamic conv's batch norm follows a kernel mixed per sample, so it is left as
it is; the dynamic conv itself needs no inference form (``nasbench.blocks.mixed_depthwise_conv`` has no
shape that depends on the batch). ``inference_model`` is the deployed form. Each returns a transformed copy
in eval mode and leaves its input alone.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from nasbench.blocks import ConvBNAct


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv (with bias) computing ``bn(conv(x))`` in eval mode: the norm's affine map moved into it."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,
    ).to(conv.weight.device, conv.weight.dtype)
    folded.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    folded.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
    return folded


def _replace(model: nn.Module, kind: type[nn.Module], make) -> int:
    """Replace every submodule of type ``kind`` by ``make(module)``, in place; returns how many."""
    targets = [(name, m) for name, m in model.named_modules() if isinstance(m, kind)]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(module))
    return len(targets)


def _fold_block(block: ConvBNAct) -> ConvBNAct:
    if isinstance(block.bn, nn.BatchNorm2d):
        block.conv = fold_conv_bn(block.conv, block.bn)
        block.bn = nn.Identity()
    return block


def fold_bn(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every ``ConvBNAct``'s batch norm folded into its conv."""
    out = copy.deepcopy(model).eval()
    _replace(out, ConvBNAct, _fold_block)
    return out


def inference_model(model: nn.Module) -> nn.Module:
    """The model as it is deployed (eval mode): batch norms folded where they can be. A dynamic conv stays as
    it is: its K plain depthwise convs, mixed per sample, have fixed shapes, which ONNX expresses with a
    dynamic batch."""
    return fold_bn(model)


def count_bn(model: nn.Module) -> int:
    """Batch norms left in ``model`` (what folding could not remove)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
