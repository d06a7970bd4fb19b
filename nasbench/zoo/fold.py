"""The inference form of a ``nasbench.build.Net``: batch norm folded into convs, dynamic convs made static.

``fold_bn(model)`` folds every ``ConvBNAct``'s batch norm into its convolution (a conv with a bias, the norm
replaced by ``Identity``). A dynamic conv's batch norm follows a kernel mixed per sample, so it is left as
it is. ``static_dynamic_convs(model)`` swaps each ``DynamicDepthwiseConv`` for ``ExpertDepthwiseConv``,
which computes the same function with a fixed group count, the form ONNX can express with a dynamic batch.
``inference_model`` does both. Each returns a transformed copy in eval mode and leaves its input alone.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nasbench.blocks import ConvBNAct, DynamicDepthwiseConv


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


class ExpertDepthwiseConv(nn.Module):
    """``DynamicDepthwiseConv`` with the batch out of the group count.

    A conv is linear in its kernel, so convolving with the per-sample mix ``sum_k pi_k W_k`` equals mixing
    the K outputs of the fixed experts: one depthwise conv with K outputs per channel (``groups=C``), then
    a weighted sum over the experts. Same function, K times the conv's MACs, and no shape that depends on
    the batch.
    """

    def __init__(self, dynamic: DynamicDepthwiseConv):
        super().__init__()
        self.channels, self.kernel, self.stride = dynamic.channels, dynamic.kernel, dynamic.stride
        self.fc1, self.fc2 = copy.deepcopy(dynamic.fc1), copy.deepcopy(dynamic.fc2)
        self.temperature = dynamic.temperature
        self.experts = dynamic.weight.shape[0]
        # (K, C, k, k) -> (C*K, 1, k, k): group c's K output channels are the K experts of channel c.
        weight = dynamic.weight.detach().permute(1, 0, 2, 3).reshape(-1, 1, self.kernel, self.kernel)
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x: Tensor) -> Tensor:
        pi = torch.softmax(self.fc2(F.relu(self.fc1(x.mean((2, 3))))) / self.temperature, dim=1)  # (B, K)
        y = F.conv2d(x, self.weight, None, self.stride, self.kernel // 2, groups=self.channels)
        y = y.unflatten(1, (self.channels, self.experts))  # (B, C, K, H, W)
        return (y * pi[:, None, :, None, None]).sum(2)


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


def static_dynamic_convs(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with each dynamic conv as an ``ExpertDepthwiseConv``."""
    out = copy.deepcopy(model).eval()
    _replace(out, DynamicDepthwiseConv, ExpertDepthwiseConv)
    return out


def inference_model(model: nn.Module) -> nn.Module:
    """The model as it is deployed: batch norms folded where they can be, dynamic convs static (eval mode)."""
    return static_dynamic_convs(fold_bn(model))


def count_bn(model: nn.Module) -> int:
    """Batch norms left in ``model`` (what folding could not remove)."""
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
