"""nasbench: a neural-architecture-search workbench for image classification.

The public API, imported lazily (``import nasbench`` imports neither torch nor pandas)::

    nasbench.load_space(name_or_path) -> SearchSpace       # torch-free: Arch, Layer, Stage, SearchSpace
    nasbench.build(arch, num_classes=1000) -> nn.Module    # a plain static model
    nasbench.count(arch, num_classes=1000) -> Cost         # analytic params and MACs
    nasbench.Supernet(space, num_classes)                  # every arch of a space, one set of weights
    nasbench.create_model(name, pretrained=True, zoo="zoo")  # a model from the zoo
    nasbench.search(space, data, budget, **settings) -> Run   # the main job (``nasbench search``)
    nasbench.load_run(path) -> Run                         # .records (DataFrame), .front, .config
    nasbench.load_benchmark("nas-bench-macro")             # ground truth: .space, .accuracy(arch), .front()

``nasbench.build`` and ``nasbench.search`` are also the modules of those names, made callable (see
``nasbench.callable_module``).
"""

from __future__ import annotations

import importlib
from typing import Any

from nasbench.arch import Arch, Layer, Stage
from nasbench.errors import NasbenchError
from nasbench.spaces import SearchSpace, load_space, shipped_spaces

__version__ = "0.1.0"

_LAZY = {
    "build": ("nasbench.build", None),  # the module, callable
    "search": ("nasbench.search", None),  # the package, callable
    "count": ("nasbench.counting", "count"),
    "Supernet": ("nasbench.supernet", "Supernet"),
    "create_model": ("nasbench.zoo", "create_model"),
    "load_run": ("nasbench.api", "load_run"),
    "Run": ("nasbench.api", "Run"),
    "load_benchmark": ("nasbench.benchmarks.truth", "load_benchmark"),
}

__all__ = ["Arch", "Layer", "NasbenchError", "SearchSpace", "Stage", "load_space", "shipped_spaces", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'nasbench' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    return value if attr is None else getattr(value, attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
