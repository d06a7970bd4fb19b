"""``Supernet``: the largest weights for every choice of a space; any subnet runs or exports from them.

Layout: an elastic stem, then per stage ``max(depths)`` layer positions, each holding one elastic block
per block type the stage allows (weights shared within a type, separate across types), then an elastic
head and classifier. ``set_active(arch)`` configures the modules once, top-down; ``forward`` then runs
exactly that subnet (the first ``depth`` layers of each stage, leading channels, centre kernels, at
whatever resolution the input has); ``export(arch)`` returns ``nasbench.build(arch)`` with the same
weights, sliced by the same functions.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nasbench.arch import Arch
from nasbench.build import Net, build
from nasbench.spaces import SearchSpace
from nasbench.supernet.blocks import ElasticConvBNAct, make_elastic_block, permute_, with_prefix
from nasbench.supernet.ops import ElasticLinear

Move = tuple[Tensor, Tensor, int]  # (tensor permuted in place, the order applied, the dim it indexes)


class Supernet(nn.Module):
    def __init__(self, space: SearchSpace, num_classes: int):
        super().__init__()
        self.space, self.num_classes = space, num_classes
        stem_max = max(space.stem_widths)
        self.stem = ElasticConvBNAct(3, stem_max, [3], space.stem_stride, act=space.act)
        stages, in_max = [], stem_max
        for s in space.stages:
            positions = []
            for j in range(max(s.depths)):
                cin = in_max if j == 0 else max(s.widths)
                stride = s.stride if j == 0 else 1
                position = {
                    b: make_elastic_block(
                        b,
                        in_max=cin,
                        out_max=max(s.widths),
                        kernels=kernels,
                        expands=expands,
                        stride=stride,
                        se=s.se,
                        act=space.act,
                    )
                    for b, (kernels, expands) in s.position_blocks(first=j == 0).items()
                }
                positions.append(nn.ModuleDict(position))
            stages.append(nn.ModuleList(positions))
            in_max = max(s.widths)
        self.stages = nn.ModuleList(stages)
        self.head = ElasticConvBNAct(in_max, max(space.head_widths), [1], act=space.act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = ElasticLinear(max(space.head_widths), num_classes)
        self.active: Arch | None = None
        self.set_active(space.largest())

    def set_active(self, arch: Arch) -> None:
        """Select the subnet ``arch`` (checked against the space); configures every module once."""
        self.space.check(arch)
        self.stem.configure(3, arch.stem, 3)
        blocks, cin = [], arch.stem
        for stage, positions in zip(arch.stages, self.stages, strict=True):
            for layer, position in zip(stage.layers, positions, strict=False):
                block = position[layer.block]
                block.configure(cin, stage.width, layer.kernel, layer.expand)
                blocks.append(block)
                cin = stage.width
        self.head.configure(cin, arch.head)
        self.classifier.configure(arch.head, self.num_classes)
        self.active_blocks = blocks  # a plain list: the modules stay registered in self.stages
        self.active = arch

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x)
        for block in self.active_blocks:
            x = block(x)
        return self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.forward_features(x)).flatten(1))

    def export(self, arch: Arch | None = None) -> Net:
        """The static model of ``arch`` (default: the active one) with the inherited weights copied in."""
        previous = self.active
        if arch is not None:
            self.set_active(arch)
        arch = self.active
        state = {
            **with_prefix("stem", self.stem.static_state()),
            **with_prefix("head", self.head.static_state()),
            **with_prefix("classifier", self.classifier.active_weights()),
        }
        index = 0
        for i, stage in enumerate(arch.stages):
            for j in range(stage.depth):
                state.update(with_prefix(f"stages.{i}.{j}", self.active_blocks[index].static_state()))
                index += 1
        with torch.device("meta"):  # no initialisation work: every tensor is replaced just below
            net = build(arch, self.num_classes)
        net.load_state_dict({k: v.detach().clone() for k, v in state.items()}, strict=True, assign=True)
        temperatures = [m.temperature for m in self.active_blocks_modules() if hasattr(m, "temperature")]
        for m, t in zip((m for m in net.modules() if hasattr(m, "temperature")), temperatures, strict=True):
            m.temperature = t
        if previous is not None and previous != arch:
            self.set_active(previous)
        return net.train(self.training)

    def active_blocks_modules(self):
        for block in self.active_blocks:
            yield from block.modules()

    def hidden_blocks(self) -> dict[str, nn.Module]:
        """Every block with re-orderable hidden channels, by module name (a stable key for orders)."""
        return {name: m for name, m in self.named_modules() if hasattr(m, "hidden_order")}

    @torch.no_grad()
    def channel_orders(self) -> dict[str, Tensor]:
        """OFA's importance order of each block's hidden channels (most important first), by block name."""
        orders = {name: block.hidden_order() for name, block in self.hidden_blocks().items()}
        return {name: order for name, order in orders.items() if order is not None}

    def permute_channels(self, orders: dict[str, Tensor]) -> list[Move]:
        """Permute each named block's hidden channels by its order; returns every (tensor, order, dim) moved.

        Each order moves every tensor its hidden channels index, together; the moves let a caller permute
        whatever else follows those tensors (the optimizer's state).
        """
        blocks, moves = self.hidden_blocks(), []
        for name, order in orders.items():
            for tensor, dim in blocks[name].hidden_tensors():
                permute_(tensor, order, dim)
                moves.append((tensor, order, dim))
        return moves

    def reorder_channels(self) -> list[Move]:
        """Importance re-ordering (OFA): sort every block's hidden channels, most important first.

        What a subnet computes changes only where it chooses channels: every subnet that uses all of each
        block's hidden channels (the largest among them) computes the same function before and after, and
        so does every expand-1 MBConv, whose hidden channels are its input (see ``ElasticMBConv.hidden_order``).
        A smaller expand ratio or width, which keeps the leading hidden channels, keeps the most important
        ones after the sort: the change the sort exists for.
        """
        return self.permute_channels(self.channel_orders())
