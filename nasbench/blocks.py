"""Static building blocks: plain ``nn.Module``s with a standard ``forward(x)`` and no search machinery.

Every block takes ``(in_ch, out_ch, kernel, expand, stride, se, act, drop_path)``. Parameter names are part
of the contract: the supernet's ``export`` copies sliced weights into exactly these modules.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasbench.arch import ATTENTION_HEAD_DIM, DYNCONV_EXPERTS, se_channels

BN_EPS = 1e-3  # as EfficientNet's reference implementation


def make_act(name: str) -> nn.Module:
    return {"silu": nn.SiLU, "relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish}[name]()


class ConvBNAct(nn.Module):
    """conv (no bias) -> batch norm -> optional activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = None):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=BN_EPS)
        self.act = make_act(act) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Channel attention: global mean -> reduce (act) -> expand (sigmoid) -> scale.

    The squeeze is ``x.mean`` (as in timm), so tracers count the head's pool but not these, which is what
    the standard EfficientNet-B0 figure (399.35 M with fvcore) assumes.
    """

    def __init__(self, channels: int, reduced: int, act: str):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = make_act(act)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (per sample); identity in eval mode or at rate 0."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class MBConv(nn.Module):
    """Inverted residual (MobileNetV2/EfficientNet): 1x1 expand, kxk depthwise, SE, 1x1 project."""

    def __init__(self, *, in_ch, out_ch, kernel, expand, stride, se, act, drop_path=0.0):
        super().__init__()
        mid = in_ch * expand
        self.use_residual = stride == 1 and in_ch == out_ch
        self.expand = ConvBNAct(in_ch, mid, 1, act=act) if expand != 1 else nn.Identity()
        self.dw = self.make_depthwise(mid, kernel, stride, act)
        reduced = se_channels(in_ch, se)
        self.se = SqueezeExcite(mid, reduced, act) if reduced else nn.Identity()
        self.project = ConvBNAct(mid, out_ch, 1)
        self.drop_path = DropPath(drop_path)

    def make_depthwise(self, ch: int, kernel: int, stride: int, act: str) -> nn.Module:
        return ConvBNAct(ch, ch, kernel, stride, groups=ch, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + self.drop_path(y) if self.use_residual else y


class FusedMBConv(nn.Module):
    """EfficientNetV2's fused block: kxk expand conv, 1x1 project (a single kxk conv when expand is 1).

    No squeeze-excitation, as in EfficientNetV2 (its fused stages have none).
    """

    def __init__(self, *, in_ch, out_ch, kernel, expand, stride, se, act, drop_path=0.0):
        super().__init__()
        self.use_residual = stride == 1 and in_ch == out_ch
        if expand != 1:
            self.expand = ConvBNAct(in_ch, in_ch * expand, kernel, stride, act=act)
            self.project = ConvBNAct(in_ch * expand, out_ch, 1)
        else:
            self.expand = ConvBNAct(in_ch, out_ch, kernel, stride, act=act)
            self.project = nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.expand(x))
        return x + self.drop_path(y) if self.use_residual else y


class DynamicDepthwiseConv(nn.Module):
    """Dynamic convolution (Chen et al. 2020) on a depthwise kxk conv.

    K expert kernels are mixed per sample by attention = softmax(fc2(relu(fc1(pool(x)))) / temperature),
    computed as the same mix of the K experts' outputs (``mixed_depthwise_conv``). Chen et al.
    anneal the temperature from 30 to 1 early in training; ``temperature`` is a plain attribute for that.
    """

    def __init__(self, channels: int, kernel: int, stride: int, experts: int = DYNCONV_EXPERTS):
        super().__init__()
        self.channels, self.kernel, self.stride = channels, kernel, stride
        hidden = max(4, channels // 4)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, experts)
        self.weight = nn.Parameter(torch.empty(experts, channels, kernel, kernel))  # rank 4: channels_last works
        for k in range(experts):
            nn.init.kaiming_uniform_(self.weight[k], a=5**0.5)
        self.temperature = 1.0

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.fc2(F.relu(self.fc1(x.mean((2, 3)))))
        return torch.softmax(logits / self.temperature, dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mixed_depthwise_conv(x, self.attention(x), self.weight, self.stride)


def mixed_depthwise_conv(x: torch.Tensor, pi: torch.Tensor, experts: torch.Tensor, stride: int) -> torch.Tensor:
    """Per-sample depthwise conv with kernels ``pi @ experts`` (pi: B x K, experts: K x C x k x k).

    A conv is linear in its kernel, so the conv with each sample's mix ``sum_k pi_k W_k`` equals the mix of
    the K experts' outputs: K plain depthwise convs (``groups=C``, one output per channel), each scaled per
    sample and summed. No shape depends on the batch (folding it into the groups, ``groups=B*C``, made cuDNN
    plan a new conv per batch size and the non-cuDNN CUDA path loop over groups), at K times the conv's MACs.
    K plain depthwise convs rather than one with K outputs per channel: oneDNN has no fast kernel for a
    channel multiplier above 1 (1.0-1.8x slower per layer), and a ``tiny`` sandwich step on CPU runs 1.15x
    faster this way (bench/dynconv_speed.py); the experts' convs also share the MBConv's shapes. A single
    sample mixes the kernels instead: one plain depthwise conv, the cost Chen et al. (and
    ``nasbench.counting``) give the layer. Shared by the static and the elastic dynamic conv; the output
    keeps the input's memory format.
    """
    c, size = x.shape[1], experts.shape[-1]
    if x.shape[0] == 1:
        weight = torch.mm(pi, experts.flatten(1)).view(c, 1, size, size)
        return F.conv2d(x, weight, None, stride, size // 2, groups=c)
    out = None
    kernels, shares = experts.unsqueeze(2).split(1), pi.split(1, dim=1)  # split, not a select per expert
    for kernel, share in zip(kernels, shares, strict=True):
        y = F.conv2d(x, kernel.squeeze(0), None, stride, size // 2, groups=c)
        y = y * share.view(-1, 1, 1, 1).to(y.dtype)  # the conv's dtype (bf16 under CUDA autocast)
        out = y if out is None else out + y
    return out


class DynamicConvBNAct(nn.Module):
    def __init__(self, channels: int, kernel: int, stride: int, act: str):
        super().__init__()
        self.conv = DynamicDepthwiseConv(channels, kernel, stride)
        self.bn = nn.BatchNorm2d(channels, eps=BN_EPS)
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class DynConvMBConv(MBConv):
    """MBConv whose depthwise conv is a dynamic convolution."""

    def make_depthwise(self, ch: int, kernel: int, stride: int, act: str) -> nn.Module:
        return DynamicConvBNAct(ch, kernel, stride, act)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention over tokens with heads of ``ATTENTION_HEAD_DIM`` channels."""

    def __init__(self, dim: int):
        super().__init__()
        self.heads = dim // ATTENTION_HEAD_DIM
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AttentionBlock(nn.Module):
    """A conv-stem transformer block (CoAtNet/MobileViT style), usable at any resolution.

    Local mixing and resampling: kxk depthwise conv (strided) + BN, then 1x1 conv to ``out_ch`` + BN,
    residual when the shape is kept. Then a pre-norm transformer layer over the H*W tokens: multi-head
    self-attention and an MLP of ratio ``expand``, each residual. The depthwise conv supplies position, so
    no fixed-size position embedding ties the block to one resolution.
    """

    def __init__(self, *, in_ch, out_ch, kernel, expand, stride, se, act, drop_path=0.0):
        super().__init__()
        self.use_residual = stride == 1 and in_ch == out_ch
        self.local_dw = ConvBNAct(in_ch, in_ch, kernel, stride, groups=in_ch)
        self.local_pw = ConvBNAct(in_ch, out_ch, 1)
        self.norm1 = nn.LayerNorm(out_ch)
        self.attn = MultiHeadSelfAttention(out_ch)
        self.norm2 = nn.LayerNorm(out_ch)
        self.mlp = Mlp(out_ch, out_ch * expand)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.local_pw(self.local_dw(x))
        y = x + self.drop_path(y) if self.use_residual else y
        b, c, h, w = y.shape
        t = y.flatten(2).transpose(1, 2)
        t = t + self.drop_path(self.attn(self.norm1(t)))
        t = t + self.drop_path(self.mlp(self.norm2(t)))
        return t.transpose(1, 2).reshape(b, c, h, w)


class Skip(nn.Module):
    """No block: the identity where the shape is kept, else a 1x1 conv + BN projection (no activation).

    A stage whose first layer is skipped still has to stride and change width; NAS-Bench-Macro's "identity"
    choice at a stage's first layer is exactly this projection. Elsewhere a skipped layer is a shallower
    stage, which elastic depth already expresses, so spaces offer ``skip`` at a stage's first layer only.
    """

    def __init__(self, *, in_ch, out_ch, kernel, expand, stride, se, act, drop_path=0.0):
        super().__init__()
        self.proj = ConvBNAct(in_ch, out_ch, 1, stride) if stride != 1 or in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


BLOCKS: dict[str, type[nn.Module]] = {
    "mbconv": MBConv,
    "fused_mbconv": FusedMBConv,
    "dynconv": DynConvMBConv,
    "attention": AttentionBlock,
    "skip": Skip,
}
