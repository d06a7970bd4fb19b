"""NAS-Bench-Macro (Su et al., CVPR 2021; Apache-2.0): 3,969 MBConv networks, each trained three times for
50 epochs on CIFAR-10, and their exact mapping to the shipped space ``nas-bench-macro``.

A key is 8 digits, one per searchable layer, in three stages of 2, 3 and 3: ``0`` identity, ``1`` MBConv k3
e3, ``2`` MBConv k5 e6. A stage's first ``0`` is a 1x1 conv + BN projection (``sk1e1``); a later ``0`` is a
plain pass-through, so it shortens the stage (the benchmark moves such zeros to the stage's end, and keys
that differ only there share one record). ``arch_key`` writes that canonical key; ``key_arch`` reads any key.
The table (``data/nas-bench-macro_cifar10.json.gz``, the benchmark's own file, byte for byte once unzipped)
ships with its license and README beside it.
"""

from __future__ import annotations

import gzip
import json
from importlib import resources

import pandas as pd

from nasbench.arch import Arch, Layer, Stage
from nasbench.benchmarks.truth import GroundTruth, ranked
from nasbench.counting import count
from nasbench.errors import NasbenchError
from nasbench.spaces import load_space

NAME = "nas-bench-macro"
STAGE_LAYERS = (2, 3, 3)  # searchable layers per stage
DIGIT_LAYER = {"0": Layer("skip", 1, 1), "1": Layer("mbconv", 3, 3), "2": Layer("mbconv", 5, 6)}
LAYER_DIGIT = {layer: digit for digit, layer in DIGIT_LAYER.items()}
DATA = "data/nas-bench-macro_cifar10.json.gz"
SOURCE = (
    "NAS-Bench-Macro, Su et al., 'Prioritized Architecture Sampling with Monte-Carlo Tree Search', CVPR 2021;"
    " public repository xiusu/NAS-Bench-Macro, Apache-2.0 (nasbench/benchmarks/data/nas-bench-macro.LICENSE)"
)


def arch_key(arch: Arch) -> str:
    """The canonical 8-digit key of an architecture of the ``nas-bench-macro`` space."""
    digits = []
    for stage, n in zip(arch.stages, STAGE_LAYERS, strict=True):
        try:
            digits += [LAYER_DIGIT[layer] for layer in stage.layers]
        except KeyError as e:
            raise NasbenchError(
                f"layer {e.args[0].code} is not a NAS-Bench-Macro choice (sk1e1, mb3e3, mb5e6)"
            ) from None
        digits += ["0"] * (n - stage.depth)
    return "".join(digits)


def key_arch(key: str) -> Arch:
    """The architecture of any NAS-Bench-Macro key (8 digits over 0, 1, 2)."""
    key = str(key).strip()
    if len(key) != sum(STAGE_LAYERS) or set(key) - set(DIGIT_LAYER):
        raise NasbenchError(f"NAS-Bench-Macro key {key!r} is not 8 digits over 0, 1 and 2 (e.g. 11111111)")
    stages, start = [], 0
    for width, n in zip((64, 128, 256), STAGE_LAYERS, strict=True):
        digits = key[start : start + n]
        start += n
        layers = [DIGIT_LAYER[digits[0]]] + [DIGIT_LAYER[d] for d in digits[1:] if d != "0"]
        stages.append(Stage(width=width, stride=2, se=0.0, layers=tuple(layers)))
    return Arch(resolution=32, stem=32, stem_stride=1, head=1280, act="relu", stages=tuple(stages))


def read_table() -> dict[str, dict]:
    """The benchmark's file as published: every key (6,561) to its record."""
    raw = (resources.files("nasbench.benchmarks") / DATA).read_bytes()
    return json.loads(gzip.decompress(raw))


def load() -> GroundTruth:
    space = load_space(NAME)
    rows = {}
    for key, rec in read_table().items():
        arch = key_arch(key)
        canonical = arch_key(arch)
        if canonical in rows:
            continue
        runs = [float(a) for a in rec["test_acc"]]
        rows[canonical] = {
            "key": canonical,
            "arch": str(arch),
            "arch_id": arch.id,
            "acc": float(rec["mean_acc"]),
            "acc_runs": runs,
            "std": float(rec["std"]),
            "params": int(rec["params"]),
            "flops": int(rec["flops"]),
            "macs": count(arch, num_classes=10).macs,
        }
    table = ranked(pd.DataFrame.from_dict(rows, orient="index").sort_index())
    return GroundTruth(NAME, space, table, arch_key, key_arch, SOURCE)
