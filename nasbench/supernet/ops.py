"""Elastic operators: the largest weights of one op, and ONE slicing function per op.

Each op is configured top-down (``configure``) before a forward pass; ``active_weights`` is the slicing
function that both ``forward`` and the export to a static module use, so the exported subnet computes
exactly what the supernet computed (the invariant the tests check).

Slicing conventions (once-for-all, Cai et al. 2020): channels are the *leading* ones; a smaller kernel is
the centre of the largest, passed through a learned per-op linear kernel transformation (identity at
initialisation) for depthwise convs, where OFA found it helps; full convs use the plain centre.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def shrink_kernel(weight: Tensor, kernel: int, kernels: Sequence[int], transforms: nn.ParameterDict | None) -> Tensor:
    """Centre-crop ``weight`` (…, K, K) down the ladder of ``kernels`` to ``kernel``, transforming each step."""
    size = weight.shape[-1]
    for smaller in sorted((k for k in kernels if kernel <= k < size), reverse=True):
        start = (size - smaller) // 2
        weight = weight[..., start : start + smaller, start : start + smaller]
        if transforms is not None:
            shape = weight.shape
            weight = (weight.reshape(-1, smaller * smaller) @ transforms[f"{size}to{smaller}"]).reshape(shape)
        size = smaller
    return weight


def kernel_transforms(kernels: Sequence[int]) -> nn.ParameterDict:
    """OFA's learned kernel transformations, one per step down the kernel ladder, identity at first."""
    ladder = sorted(set(kernels), reverse=True)
    return nn.ParameterDict(
        {f"{a}to{b}": nn.Parameter(torch.eye(b * b)) for a, b in zip(ladder, ladder[1:], strict=False)}
    )


class ElasticConv2d(nn.Module):
    """A conv with elastic input/output channels and kernel; depthwise convs have groups == channels."""

    def __init__(
        self,
        in_max: int,
        out_max: int,
        kernels: Sequence[int],
        stride: int = 1,
        *,
        depthwise: bool = False,
        bias: bool = False,
        transform: bool = False,
    ):
        super().__init__()
        self.kernels = tuple(sorted(set(kernels)))
        kmax = self.kernels[-1]
        self.stride, self.depthwise = stride, depthwise
        self.weight = nn.Parameter(torch.empty(out_max, 1 if depthwise else in_max, kmax, kmax))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bias = nn.Parameter(torch.zeros(out_max)) if bias else None
        self.transforms = kernel_transforms(self.kernels) if transform and len(self.kernels) > 1 else None
        self.configure(in_max, out_max, kmax)

    def configure(self, cin: int, cout: int, kernel: int) -> None:
        self.cin, self.cout, self.kernel = cin, cout, kernel

    def active_weights(self) -> dict[str, Tensor]:
        w = self.weight[: self.cout] if self.depthwise else self.weight[: self.cout, : self.cin]
        out = {"weight": shrink_kernel(w, self.kernel, self.kernels, self.transforms)}
        if self.bias is not None:
            out["bias"] = self.bias[: self.cout]
        return out

    def forward(self, x: Tensor) -> Tensor:
        w = self.active_weights()
        groups = self.cout if self.depthwise else 1
        return F.conv2d(x, w["weight"], w.get("bias"), self.stride, self.kernel // 2, groups=groups)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the leading channels; running statistics are updated in place through slices.

    With ``synchronised`` set (``synchronise_batch_norm``; data-parallel training), training batches are
    normalised with the statistics of the global batch, all-reduced over the default process group, so
    N ranks with batch B compute what one device with batch N x B would."""

    synchronised = False  # an attribute, not state: a checkpoint does not say how it was trained

    def __init__(self, num_features: int, eps: float):
        super().__init__(num_features, eps=eps)
        self.channels = num_features

    def active_weights(self) -> dict[str, Tensor]:
        c = self.channels
        return {
            "weight": self.weight[:c],
            "bias": self.bias[:c],
            "running_mean": self.running_mean[:c],
            "running_var": self.running_var[:c],
            "num_batches_tracked": self.num_batches_tracked,
        }

    def configure(self, channels: int) -> None:
        self.channels = channels

    def forward(self, x: Tensor) -> Tensor:
        # nn.BatchNorm2d.forward's bookkeeping, on slices; momentum None (a cumulative average) without its sync.
        w = self.active_weights()
        updating = self.training and self.track_running_stats
        if updating:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                return self.cumulative_average(x, w)
        if self.training and self.synchronised:
            return self.global_batch_norm(x, w, self.momentum if updating else 0.0)
        return F.batch_norm(
            x,
            w["running_mean"],
            w["running_var"],
            w["weight"],
            w["bias"],
            self.training or not self.track_running_stats,
            self.momentum if updating else 0.0,
            self.eps,
        )

    def cumulative_average(self, x: Tensor, w: dict[str, Tensor]) -> Tensor:
        """Normalise with the batch's statistics and fold them into the running ones with weight
        1 / batches, kept a tensor: ``nn.BatchNorm2d`` reads it into Python, a host sync per norm per batch
        on a GPU (BN recalibration runs this way)."""
        with torch.no_grad():
            var, mean = torch.var_mean(x.float(), dim=(0, 2, 3), correction=1)  # unbiased, as batch_norm keeps
            factor = 1.0 / self.num_batches_tracked
            w["running_mean"].lerp_(mean, factor)
            w["running_var"].lerp_(var, factor)
        return F.batch_norm(x, None, None, w["weight"], w["bias"], True, 0.0, self.eps)

    def global_batch_norm(self, x: Tensor, w: dict[str, Tensor], momentum: float) -> Tensor:
        """Normalise with the mean and variance of every rank's batch together (equal batch sizes): the
        per-channel sums of x and x^2 in one all-reduce that autograd differentiates through (one more in
        the backward pass), so the gradient is the global batch's too."""
        from torch.distributed import get_world_size
        from torch.distributed.nn.functional import all_reduce

        xf = x.float()
        count = xf.numel() // xf.shape[1] * get_world_size()
        sums = all_reduce(torch.cat([xf.sum(dim=(0, 2, 3)), xf.square().sum(dim=(0, 2, 3))]))
        mean, mean_square = (sums / count).chunk(2)
        var = (mean_square - mean.square()).clamp_min(0.0)
        if momentum:
            with torch.no_grad():
                w["running_mean"].lerp_(mean.detach(), momentum)
                w["running_var"].lerp_(var.detach() * (count / max(count - 1, 1)), momentum)
        scale = torch.rsqrt(var + self.eps) * w["weight"].float()
        shift = w["bias"].float() - mean * scale
        out = xf * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
        return out.to(x.dtype)


def synchronise_batch_norm(net: nn.Module, on: bool = True) -> None:
    """Switch every ``ElasticBatchNorm2d`` of ``net`` to global-batch statistics (``on``) or back to local."""
    for module in net.modules():
        if isinstance(module, ElasticBatchNorm2d):
            module.synchronised = on


class ElasticLinear(nn.Module):
    """A linear layer over the leading input and output features."""

    def __init__(self, in_max: int, out_max: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_max, in_max))
        bound = 1.0 / out_max**0.5
        nn.init.uniform_(self.weight, -bound, bound)
        self.bias = nn.Parameter(torch.zeros(out_max))
        self.configure(in_max, out_max)

    def configure(self, fin: int, fout: int) -> None:
        self.fin, self.fout = fin, fout

    def active_weights(self) -> dict[str, Tensor]:
        return {"weight": self.weight[: self.fout, : self.fin], "bias": self.bias[: self.fout]}

    def forward(self, x: Tensor) -> Tensor:
        w = self.active_weights()
        return F.linear(x, w["weight"], w["bias"])


class ElasticQKV(ElasticLinear):
    """The fused q/k/v projection: width ``c`` takes the leading ``c`` rows of each of q, k and v."""

    def __init__(self, dim_max: int):
        super().__init__(dim_max, 3 * dim_max)
        self.dim_max = dim_max

    def configure(self, fin: int, fout: int | None = None) -> None:
        self.fin, self.fout = fin, 3 * fin

    def active_weights(self) -> dict[str, Tensor]:
        c, m = self.fin, self.dim_max
        weight = self.weight.view(3, m, m)[:, :c, :c].reshape(3 * c, c)
        return {"weight": weight, "bias": self.bias.view(3, m)[:, :c].reshape(3 * c)}


class ElasticLayerNorm(nn.LayerNorm):
    def __init__(self, channels: int):
        super().__init__(channels)
        self.channels = channels

    def configure(self, channels: int) -> None:
        self.channels = channels

    def active_weights(self) -> dict[str, Tensor]:
        return {"weight": self.weight[: self.channels], "bias": self.bias[: self.channels]}

    def forward(self, x: Tensor) -> Tensor:
        w = self.active_weights()
        return F.layer_norm(x, (self.channels,), w["weight"], w["bias"], self.eps)
