"""Building a latency lookup table: enumerate a space's layer configs, time each as a standalone module.

``space_configs`` lists every distinct ``LayerConfig`` that ``counting.decompose`` can return for an arch
of the space (per stage: the previous stage's widths x widths x blocks x kernels x expands for the
strided first layer, widths x blocks x kernels x expands for the others; input sizes follow from the
resolution and the strides; stem per width and head per last width and head width). ``build_table``
times each config in ``passes`` passes over the whole list, each pass in a fresh random order, saving
the file atomically every few seconds, so an interrupted build resumes where it stopped.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from nasbench.blocks import BLOCKS, ConvBNAct
from nasbench.counting import LayerConfig
from nasbench.errors import NasbenchError
from nasbench.latency.measure import Context, Stats, pinned, prepare, time_calls, warm_up
from nasbench.latency.table import Entry, LatencyTable, config_key, layer_fingerprint, load_table
from nasbench.seeds import fork
from nasbench.spaces import SearchSpace


def space_configs(
    space: SearchSpace, resolutions: Sequence[int] | None = None, num_classes: int = 1000
) -> list[LayerConfig]:
    """Every distinct layer config an arch of ``space`` at one of ``resolutions`` can contain, in order."""
    out: list[LayerConfig] = []
    for res in resolutions or space.resolutions:
        stems = [LayerConfig("stem", 3, w, 3, 1, space.stem_stride, 0.0, res, space.act) for w in space.stem_widths]
        out += stems
        size, prev_widths = stems[0].out_size, space.stem_widths
        for s in space.stages:
            firsts = [
                LayerConfig(x.block, wp, w, x.kernel, x.expand, s.stride, s.se, size, space.act)
                for wp, w, x in itertools.product(prev_widths, s.widths, s.layer_options(True))
            ]
            out += firsts
            size = firsts[0].out_size
            if max(s.depths) > 1:
                out += [
                    LayerConfig(x.block, w, w, x.kernel, x.expand, 1, s.se, size, space.act)
                    for w, x in itertools.product(s.widths, s.layer_options(False))
                ]
            prev_widths = s.widths
        out += [
            LayerConfig("head", wp, h, 1, 1, 1, 0.0, size, space.act, num_classes)
            for wp, h in itertools.product(prev_widths, space.head_widths)
        ]
    return list(dict.fromkeys(out))


class Head(nn.Module):
    """The network's head as ``build`` runs it: 1x1 conv + BN + act, global pool, linear (dropout is off)."""

    def __init__(self, in_ch: int, out_ch: int, act: str, num_classes: int):
        super().__init__()
        self.conv = ConvBNAct(in_ch, out_ch, 1, act=act)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(out_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.conv(x)).flatten(1))


def layer_module(cfg: LayerConfig) -> nn.Module:
    """The standalone module that runs ``cfg`` exactly as it runs inside ``build(arch)``."""
    if cfg.kind == "stem":
        return ConvBNAct(3, cfg.cout, cfg.kernel, cfg.stride, act=cfg.act)
    if cfg.kind == "head":
        return Head(cfg.cin, cfg.cout, cfg.act, cfg.num_classes)
    return BLOCKS[cfg.kind](
        in_ch=cfg.cin, out_ch=cfg.cout, kernel=cfg.kernel, expand=cfg.expand, stride=cfg.stride, se=cfg.se, act=cfg.act
    )


def measure_layer(cfg: LayerConfig, ctx: Context, *, warmup: int, repeats: int) -> Stats:
    """One pass over one config (call inside ``pinned(ctx)`` and ``torch.inference_mode()``)."""
    model, x = prepare(layer_module(cfg), (ctx.batch, cfg.cin, cfg.size, cfg.size), ctx)
    warm_up(model, x, ctx, warmup)
    return Stats.of(time_calls(model, x, ctx, repeats))


def open_table(
    space: SearchSpace, ctx: Context, path: Path, resolutions: Sequence[int], num_classes: int, settings: dict
) -> LatencyTable:
    """The table at ``path`` to resume (it must match space, context and settings), or a new one."""
    if not path.exists():
        return LatencyTable(
            space.name, layer_fingerprint(space), ctx, num_classes, list(resolutions), settings, path=path
        )
    table = load_table(path, space)
    diffs = table.context.differences(ctx)
    if table.num_classes != num_classes:
        diffs.append(f"num_classes: {table.num_classes} vs {num_classes}")
    # More (or fewer) passes extend a table consistently; other timing settings must match.
    diffs += [
        f"{k}: {table.settings.get(k)!r} vs {v!r}"
        for k, v in settings.items()
        if k != "passes" and table.settings.get(k) != v
    ]
    if diffs:
        raise NasbenchError(
            f"latency table {path} was measured differently, so it cannot be resumed ({'; '.join(diffs)});"
            " pass another --out path or use the same settings"
        )
    table.resolutions = sorted(set(table.resolutions) | set(resolutions))
    table.settings["passes"] = max(table.settings.get("passes", 1), settings["passes"])
    return table


def build_table(
    space: SearchSpace,
    ctx: Context,
    path: Path,
    *,
    resolutions: Sequence[int] | None = None,
    num_classes: int = 1000,
    passes: int = 3,
    repeats: int = 10,
    warmup: int = 2,
    seed: int = 0,
    save_every_s: float = 5.0,
    console: Console | None = None,
) -> LatencyTable:
    """Measure every layer config of ``space`` (at ``resolutions``) into the table file at ``path``.

    Resumes a partly built table: configs with all their passes are skipped. The file is replaced
    atomically every ``save_every_s`` seconds and at the end (also when interrupted).
    """
    resolutions = list(resolutions or space.resolutions)
    bad = [r for r in resolutions if r not in space.resolutions]
    if bad:
        raise NasbenchError(
            f"--resolution {bad[0]} is not a resolution of space {space.name}: {list(space.resolutions)}"
        )
    if passes < 1 or repeats < 1 or warmup < 0:
        raise NasbenchError(f"need passes >= 1, repeats >= 1 and warmup >= 0, got {passes}, {repeats}, {warmup}")
    settings = {"passes": passes, "repeats": repeats, "warmup": warmup}
    table = open_table(space, ctx, path, resolutions, num_classes, settings)
    configs = space_configs(space, resolutions, num_classes)
    todo = [
        (p, cfg)
        for p in range(passes)
        for cfg in _pass_order(configs, fork(seed, "latency-pass", p))
        if _missing_pass(table, cfg, p)
    ]
    last_save = time.monotonic()
    try:
        with _progress(console) as progress, pinned(ctx), torch.inference_mode():
            task = progress.add_task(f"{space.name} on {ctx.device_name}", total=len(configs) * passes)
            progress.advance(task, len(configs) * passes - len(todo))
            for p, cfg in todo:
                stats = measure_layer(cfg, ctx, warmup=warmup, repeats=repeats)
                _add_pass(table, cfg, p, stats)
                progress.advance(task)
                if time.monotonic() - last_save > save_every_s:
                    table.save(path)
                    last_save = time.monotonic()
    finally:
        table.save(path)
    return table


def _pass_order(configs: list[LayerConfig], seed: int) -> list[LayerConfig]:
    order = list(configs)
    random.Random(seed).shuffle(order)
    return order


def _missing_pass(table: LatencyTable, cfg: LayerConfig, p: int) -> bool:
    entry = table.entries.get(config_key(cfg))
    return entry is None or len(entry.passes) <= p


def _add_pass(table: LatencyTable, cfg: LayerConfig, p: int, stats: Stats) -> None:
    key = config_key(cfg)
    entry = table.entries.get(key)
    if entry is None:
        table.entries[key] = Entry([stats.median_ms], stats.iqr_ms)
    elif len(entry.passes) == p:
        # The entry's IQR is the mean of its passes' IQRs.
        entry.iqr_ms = (entry.iqr_ms * p + stats.iqr_ms) / (p + 1)
        entry.passes.append(stats.median_ms)


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )
