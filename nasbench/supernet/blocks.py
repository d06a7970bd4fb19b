"""Elastic blocks: one per block type, holding the largest weights of every choice of a layer position.

Each block is configured once per subnet (``configure(cin, cout, kernel, expand)``), runs the same
computation as its static twin in ``nasbench.blocks``, and ``static_state()`` returns the sliced weights
under the static module's parameter names (built from the ops' ``active_weights``, the one slicing
function per op). For OFA's importance re-ordering, a block with hidden channels names their order
(``hidden_order()``, most important first) and every tensor they index (``hidden_tensors()``). Permuting
all of those by one order leaves unchanged every subnet that uses all of a block's hidden channels (or, at
expand 1, those tied to its input); a subnet with fewer now keeps the most important ones, which is the
point of the sort.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from nasbench.arch import ATTENTION_HEAD_DIM, DYNCONV_EXPERTS, se_channels
from nasbench.blocks import BN_EPS, make_act, mixed_depthwise_conv
from nasbench.supernet.ops import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLayerNorm,
    ElasticLinear,
    ElasticQKV,
    kernel_transforms,
    shrink_kernel,
)


def with_prefix(prefix: str, weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}.{k}": v for k, v in weights.items()}


def permute_(tensor: Tensor, order: Tensor, dim: int) -> None:
    """Reorder ``tensor`` along ``dim`` in place (parameters, buffers and optimizer state alike)."""
    with torch.no_grad():
        tensor.copy_(tensor.index_select(dim, order))


class ElasticConvBNAct(nn.Module):
    def __init__(
        self, in_max, out_max, kernels: Sequence[int], stride=1, *, depthwise=False, act=None, transform=False
    ):
        super().__init__()
        self.conv = ElasticConv2d(in_max, out_max, kernels, stride, depthwise=depthwise, transform=transform)
        self.bn = ElasticBatchNorm2d(out_max, eps=BN_EPS)
        self.act = make_act(act) if act else nn.Identity()

    def configure(self, cin: int, cout: int, kernel: int = 1) -> None:
        self.conv.configure(cin, cout, kernel)
        self.bn.configure(cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(self.conv(x)))

    def static_state(self) -> dict[str, Tensor]:
        return {**with_prefix("conv", self.conv.active_weights()), **with_prefix("bn", self.bn.active_weights())}

    def out_tensors(self) -> list[tuple[Tensor, int]]:
        """Every (tensor, dim) indexed by an output channel."""
        return [
            (t, 0) for t in (self.conv.weight, self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var)
        ]


class ElasticSE(nn.Module):
    def __init__(self, channels_max: int, reduced_max: int, act: str):
        super().__init__()
        self.reduce = ElasticConv2d(channels_max, reduced_max, [1], bias=True)
        self.act = make_act(act)
        self.expand = ElasticConv2d(reduced_max, channels_max, [1], bias=True)

    def configure(self, channels: int, reduced: int) -> None:
        self.reduce.configure(channels, reduced, 1)
        self.expand.configure(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))

    def static_state(self) -> dict[str, Tensor]:
        return {
            **with_prefix("reduce", self.reduce.active_weights()),
            **with_prefix("expand", self.expand.active_weights()),
        }


class ElasticDynamicConv(nn.Module):
    """Elastic twin of ``blocks.DynamicDepthwiseConv``: experts over the leading channels, centre kernels."""

    def __init__(self, channels_max: int, kernels: Sequence[int], stride: int):
        super().__init__()
        self.kernels, self.stride = tuple(sorted(kernels)), stride
        kmax = self.kernels[-1]
        self.fc1 = ElasticLinear(channels_max, max(4, channels_max // 4))
        self.fc2 = ElasticLinear(max(4, channels_max // 4), DYNCONV_EXPERTS)
        self.weight = nn.Parameter(torch.empty(DYNCONV_EXPERTS, channels_max, kmax, kmax))
        for k in range(DYNCONV_EXPERTS):
            nn.init.kaiming_uniform_(self.weight[k], a=5**0.5)
        self.transforms = kernel_transforms(self.kernels)
        self.temperature = 1.0
        self.configure(channels_max, kmax)

    def configure(self, channels: int, kernel: int) -> None:
        self.channels, self.kernel = channels, kernel
        self.fc1.configure(channels, max(4, channels // 4))
        self.fc2.configure(max(4, channels // 4), DYNCONV_EXPERTS)

    def active_weights(self) -> dict[str, Tensor]:
        w = shrink_kernel(self.weight[:, : self.channels], self.kernel, self.kernels, self.transforms or None)
        return {
            "weight": w,
            **with_prefix("fc1", self.fc1.active_weights()),
            **with_prefix("fc2", self.fc2.active_weights()),
        }

    def forward(self, x: Tensor) -> Tensor:
        logits = self.fc2(torch.relu(self.fc1(x.mean((2, 3)))))
        pi = torch.softmax(logits / self.temperature, dim=1)
        return mixed_depthwise_conv(x, pi, self.active_weights()["weight"], self.stride)


class ElasticDynConvBNAct(ElasticConvBNAct):
    """``ElasticConvBNAct`` whose conv is a dynamic depthwise conv (forward and export are inherited)."""

    def __init__(self, channels_max: int, kernels: Sequence[int], stride: int, act: str):
        nn.Module.__init__(self)
        self.conv = ElasticDynamicConv(channels_max, kernels, stride)
        self.bn = ElasticBatchNorm2d(channels_max, eps=BN_EPS)
        self.act = make_act(act)

    def configure(self, cin: int, cout: int, kernel: int = 1) -> None:
        self.conv.configure(cout, kernel)
        self.bn.configure(cout)

    def out_tensors(self) -> list[tuple[Tensor, int]]:
        norm = [(t, 0) for t in (self.bn.weight, self.bn.bias, self.bn.running_mean, self.bn.running_var)]
        return [(self.conv.weight, 1), (self.conv.fc1.weight, 1), *norm]


class ElasticMBConv(nn.Module):
    """MBConv (and, with ``dynamic``, the dynamic-conv MBConv) over every kernel, expand and width."""

    def __init__(self, *, in_max, out_max, kernels, expands, stride, se, act, dynamic=False):
        super().__init__()
        mid_max = in_max * max(expands)
        self.stride, self.se_ratio, self.in_max, self.has_expand_one = stride, se, in_max, 1 in expands
        self.expand = ElasticConvBNAct(in_max, mid_max, [1], act=act) if max(expands) > 1 else None
        if dynamic:
            self.dw = ElasticDynConvBNAct(mid_max, kernels, stride, act)
        else:
            self.dw = ElasticConvBNAct(mid_max, mid_max, kernels, stride, depthwise=True, act=act, transform=True)
        reduced = se_channels(in_max, se)
        self.se = ElasticSE(mid_max, reduced, act) if reduced else None
        self.project = ElasticConvBNAct(mid_max, out_max, [1])

    @torch.no_grad()
    def zero_init_residual(self) -> None:
        """Start as the identity behind a skip connection: the last batch norm's scale at zero (BigNAS)."""
        self.project.bn.weight.zero_()

    def configure(self, cin: int, cout: int, kernel: int, expand: int) -> None:
        mid = cin * expand
        self.has_expand, self.use_residual = expand != 1, self.stride == 1 and cin == cout
        if self.has_expand:
            self.expand.configure(cin, mid)
        self.dw.configure(mid, mid, kernel)
        if self.se is not None:
            self.se.configure(mid, se_channels(cin, self.se_ratio))
        self.project.configure(mid, cout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.expand(x) if self.has_expand else x
        y = self.dw(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.use_residual else y

    def static_state(self) -> dict[str, Tensor]:
        state = {**with_prefix("dw", self.dw.static_state()), **with_prefix("project", self.project.static_state())}
        if self.has_expand:
            state.update(with_prefix("expand", self.expand.static_state()))
        if self.se is not None:
            state.update(with_prefix("se", self.se.static_state()))
        return state

    def hidden_order(self) -> Tensor | None:
        """The hidden channels sorted by the L1 norm of the projection weights that read them.

        At expand 1 there is no expansion conv: the hidden channels *are* the block's input channels, so
        the first ``in_max`` hidden channels (dw, SE and projection weights alike) are tied to input
        channel indices that the previous layer fixes. Permuting them would feed input channel ``i``
        through the weights of channel ``order[i]``. So when the space allows expand 1, only channels
        past ``in_max`` are sorted; the tied ones keep their place. (Permuting the input consistently
        instead would mean permuting a whole stage's width dimension, shared by every block, residual and
        narrower width of the stage: a different re-ordering, and far more to keep straight.)
        """
        if self.expand is None:
            return None  # every hidden channel is an input channel
        importance = self.project.conv.weight.detach().abs().sum((0, 2, 3))
        tied = self.in_max if self.has_expand_one else 0
        order = torch.arange(len(importance), device=importance.device)
        order[tied:] = tied + importance[tied:].argsort(descending=True)
        return order

    def hidden_tensors(self) -> list[tuple[Tensor, int]]:
        """Every (tensor, dim) indexed by a hidden channel, parameters and buffers alike."""
        out = [*self.expand.out_tensors(), *self.dw.out_tensors(), (self.project.conv.weight, 1)]
        if self.se is not None:
            out += [(self.se.reduce.weight, 1), (self.se.expand.weight, 0), (self.se.expand.bias, 0)]
        return out


class ElasticFusedMBConv(nn.Module):
    """Fused-MBConv; expand 1 (a single kxk conv to the output) has its own weights, as its shape differs."""

    def __init__(self, *, in_max, out_max, kernels, expands, stride, se, act):
        super().__init__()
        self.stride = stride
        wide = [e for e in expands if e != 1]
        self.expand = ElasticConvBNAct(in_max, in_max * max(wide), kernels, stride, act=act) if wide else None
        self.project = ElasticConvBNAct(in_max * max(wide), out_max, [1]) if wide else None
        self.single = ElasticConvBNAct(in_max, out_max, kernels, stride, act=act) if 1 in expands else None

    @torch.no_grad()
    def zero_init_residual(self) -> None:
        """Both paths' last batch norm scale at zero (expand 1's single conv, the others' projection)."""
        for path in (self.project, self.single):
            if path is not None:
                path.bn.weight.zero_()

    def configure(self, cin: int, cout: int, kernel: int, expand: int) -> None:
        self.is_single, self.use_residual = expand == 1, self.stride == 1 and cin == cout
        if self.is_single:
            self.single.configure(cin, cout, kernel)
        else:
            self.expand.configure(cin, cin * expand, kernel)
            self.project.configure(cin * expand, cout)

    def forward(self, x: Tensor) -> Tensor:
        y = self.single(x) if self.is_single else self.project(self.expand(x))
        return x + y if self.use_residual else y

    def static_state(self) -> dict[str, Tensor]:
        if self.is_single:
            return with_prefix("expand", self.single.static_state())
        return {
            **with_prefix("expand", self.expand.static_state()),
            **with_prefix("project", self.project.static_state()),
        }

    def hidden_order(self) -> Tensor | None:
        """The expanded channels by importance; expand 1 has its own weights (``single``), so none is tied."""
        if self.expand is None:
            return None
        return self.project.conv.weight.detach().abs().sum((0, 2, 3)).argsort(descending=True)

    def hidden_tensors(self) -> list[tuple[Tensor, int]]:
        return [*self.expand.out_tensors(), (self.project.conv.weight, 1)]


class ElasticAttention(nn.Module):
    """Elastic twin of ``blocks.AttentionBlock``; width ``c`` keeps the leading ``c / head_dim`` heads."""

    def __init__(self, *, in_max, out_max, kernels, expands, stride, se, act):
        super().__init__()
        self.stride = stride
        self.local_dw = ElasticConvBNAct(in_max, in_max, kernels, stride, depthwise=True, transform=True)
        self.local_pw = ElasticConvBNAct(in_max, out_max, [1])
        self.norm1 = ElasticLayerNorm(out_max)
        self.qkv = ElasticQKV(out_max)
        self.proj = ElasticLinear(out_max, out_max)
        self.norm2 = ElasticLayerNorm(out_max)
        self.fc1 = ElasticLinear(out_max, out_max * max(expands))
        self.act = nn.GELU()
        self.fc2 = ElasticLinear(out_max * max(expands), out_max)

    @torch.no_grad()
    def zero_init_residual(self) -> None:
        """The local branch's batch norm scale, and the attention's and MLP's output projections, at zero."""
        self.local_pw.bn.weight.zero_()
        for linear in (self.proj, self.fc2):
            linear.weight.zero_()
            if linear.bias is not None:
                linear.bias.zero_()

    def configure(self, cin: int, cout: int, kernel: int, expand: int) -> None:
        self.use_residual = self.stride == 1 and cin == cout
        self.local_dw.configure(cin, cin, kernel)
        self.local_pw.configure(cin, cout)
        self.norm1.configure(cout)
        self.qkv.configure(cout)
        self.proj.configure(cout, cout)
        self.norm2.configure(cout)
        self.fc1.configure(cout, cout * expand)
        self.fc2.configure(cout * expand, cout)

    def attention(self, t: Tensor) -> Tensor:
        b, n, c = t.shape
        heads = c // ATTENTION_HEAD_DIM
        q, k, v = self.qkv(t).view(b, n, 3, heads, ATTENTION_HEAD_DIM).permute(2, 0, 3, 1, 4)
        y = nn.functional.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))

    def forward(self, x: Tensor) -> Tensor:
        y = self.local_pw(self.local_dw(x))
        y = x + y if self.use_residual else y
        b, c, h, w = y.shape
        t = y.flatten(2).transpose(1, 2)
        t = t + self.attention(self.norm1(t))
        t = t + self.fc2(self.act(self.fc1(self.norm2(t))))
        return t.transpose(1, 2).reshape(b, c, h, w)

    def static_state(self) -> dict[str, Tensor]:
        parts = {
            "local_dw": self.local_dw.static_state(),
            "local_pw": self.local_pw.static_state(),
            "norm1": self.norm1.active_weights(),
            "attn.qkv": self.qkv.active_weights(),
            "attn.proj": self.proj.active_weights(),
            "norm2": self.norm2.active_weights(),
            "mlp.fc1": self.fc1.active_weights(),
            "mlp.fc2": self.fc2.active_weights(),
        }
        return {k: v for prefix, w in parts.items() for k, v in with_prefix(prefix, w).items()}

    def hidden_order(self) -> Tensor:
        """The MLP's hidden features by importance; fc1 exists at every expand, so none is tied."""
        return self.fc2.weight.detach().abs().sum(0).argsort(descending=True)

    def hidden_tensors(self) -> list[tuple[Tensor, int]]:
        return [(self.fc1.weight, 0), (self.fc1.bias, 0), (self.fc2.weight, 1)]


class ElasticSkip(nn.Module):
    """Elastic twin of ``blocks.Skip``: the identity where a subnet keeps the shape, else a 1x1 conv + BN
    projection over the leading channels."""

    def __init__(self, *, in_max, out_max, kernels, expands, stride, se, act):
        super().__init__()
        self.stride = stride
        self.proj = ElasticConvBNAct(in_max, out_max, [1], stride)

    def zero_init_residual(self) -> None:
        """Nothing to do: behind a skip connection it is the identity already (no projection there)."""

    def configure(self, cin: int, cout: int, kernel: int, expand: int) -> None:
        self.projects = self.stride != 1 or cin != cout
        if self.projects:
            self.proj.configure(cin, cout)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x) if self.projects else x

    def static_state(self) -> dict[str, Tensor]:
        return with_prefix("proj", self.proj.static_state()) if self.projects else {}


def make_elastic_block(block: str, **shape: Any) -> nn.Module:
    """The elastic block of kind ``block`` (skip, mbconv, dynconv, fused_mbconv, attention) over ``shape``:
    in_max, out_max, kernels, expands, stride, se, act, as keywords."""
    if block == "skip":
        return ElasticSkip(**shape)
    if block in ("mbconv", "dynconv"):
        return ElasticMBConv(**shape, dynamic=block == "dynconv")
    if block == "fused_mbconv":
        return ElasticFusedMBConv(**shape)
    return ElasticAttention(**shape)
