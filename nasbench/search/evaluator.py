"""Evaluating an architecture with the trained supernet's weights: the one evaluation every searcher uses.

``SupernetEvaluator(arch)`` returns the record fields: validation top-1 and loss after BN recalibration on a
fixed, seeded set of training batches (the same batches for every arch, so accuracies compare), the analytic
MACs and parameters, and the predicted latency when a latency predictor is given. Given a ``Ranker``
(``nasbench.search.ranker``), it also scores the architecture's NASWOT and gives the ranker's ``score``, the
objective a search chooses by. Feasibility is not its
business: the record sink applies the one constraint rule (``nasbench.objectives.table``) to its result.

``evaluate_outcome`` wraps any evaluator so that an exception becomes a failed outcome, not a failed run.
``EvaluatorFactory`` is the evaluator's picklable recipe for worker processes: it carries the space,
handles to the shared supernet weights and dataset (placed once in a shared store by the pipeline)
and the settings, and each worker calls it once to build its own evaluator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nasbench.arch import Arch
from nasbench.counting import count
from nasbench.data import DeviceData, ImageDataset, search_data
from nasbench.runs.records import Status
from nasbench.search.ranker import PROXY_BATCH, Ranker, naswot_of
from nasbench.spaces import SearchSpace
from nasbench.supernet import Supernet
from nasbench.training.evaluate import EvalSettings, evaluate

Evaluator = Callable[[Arch], dict[str, Any]]
__all__ = ["EvalSettings", "Evaluator", "EvaluatorFactory", "SupernetEvaluator", "evaluate_outcome"]


class SupernetEvaluator:
    """Callable ``arch -> dict`` of record fields, over one supernet and one train/val split."""

    def __init__(
        self,
        supernet: Supernet,
        train: DeviceData,
        val: DeviceData,
        settings: EvalSettings,
        predict_latency: Callable[[Arch], float] | None = None,
        ranker: Ranker | None = None,
    ):
        self.supernet, self.train = supernet.eval(), train
        self.val = val.head(settings.images) if settings.images is not None else val
        self.settings, self.predict_latency, self.ranker = settings, predict_latency, ranker

    def __call__(self, arch: Arch) -> dict[str, Any]:
        cost = count(arch, self.supernet.num_classes)
        latency = float(self.predict_latency(arch)) if self.predict_latency else math.nan
        result = self._evaluate(arch)
        fields = {
            "acc": result.top1,
            "macs": cost.macs,
            "params": cost.params,
            "latency_pred_ms": latency,
            "val_loss": result.loss,  # kept in the record's extra: a ranker of its own (nasbench benchmark rank)
        }
        if self.ranker is not None:
            fields["naswot"] = self.naswot(arch)
            fields["score"] = self.ranker.score(result.loss, fields["naswot"])
        return fields

    def measure(self, arch: Arch) -> tuple[float, float]:
        """(validation loss, NASWOT) of ``arch``: what the ranker's calibration needs."""
        return self._evaluate(arch).loss, self.naswot(arch)

    def naswot(self, arch: Arch) -> float:
        """NASWOT of ``arch`` untrained, on the first training images, under the run's seed."""
        images, _ = next(self.train.eval_batches(PROXY_BATCH, arch.resolution))
        return naswot_of(arch, images, self.supernet.num_classes, self.settings.data_seed)

    def _evaluate(self, arch: Arch) -> Any:
        return evaluate(self.supernet, arch, self.train, self.val, **self.settings.evaluate_options())


class TableEvaluator:
    """Callable ``arch -> dict`` of record fields from a benchmark's table instead of a supernet: the true
    accuracy (as a fraction, like a supernet's), with nasbench's analytic MACs and parameters. This is how
    search strategies are compared apart from weight sharing (``nasbench search --evaluator table``)."""

    def __init__(self, truth: Any, num_classes: int = 10, predict_latency: Callable[[Arch], float] | None = None):
        self.truth, self.num_classes, self.predict_latency = truth, num_classes, predict_latency

    def __call__(self, arch: Arch) -> dict[str, Any]:
        cost = count(arch, self.num_classes)
        latency = float(self.predict_latency(arch)) if self.predict_latency else math.nan
        acc = self.truth.accuracy(arch) / 100.0
        return {"acc": acc, "macs": cost.macs, "params": cost.params, "latency_pred_ms": latency}


def evaluate_outcome(evaluator: Evaluator, arch: Arch) -> dict[str, Any]:
    """``evaluator(arch)`` as an outcome: ``status`` ok with its fields, or failed with the exception in
    ``error``; ``eval_seconds`` either way. One failed evaluation is a failed record, not a failed run."""
    start = time.perf_counter()
    try:
        outcome = {"status": Status.OK, "error": "", **evaluator(arch)}
    except Exception as e:  # noqa: BLE001 - see the docstring
        outcome = {"status": Status.FAILED, "error": f"{type(e).__name__}: {e}"}
    outcome.setdefault("eval_seconds", time.perf_counter() - start)
    return outcome


def identity(obj: Any) -> Any:
    return obj


@dataclass(frozen=True)
class EvaluatorFactory:
    """Builds a ``SupernetEvaluator`` in a worker from shared handles (see the module docstring)."""

    space: SearchSpace
    num_classes: int
    weights: Any  # a handle that ``get`` resolves to the supernet's state dict
    dataset: Any  # a handle that ``get`` resolves to the ImageDataset
    settings: EvalSettings
    get: Callable[[Any], Any] = identity  # resolves handles (e.g. ray_tune.get_shared); picklable
    predictor: Any = None  # a picklable latency predictor with ``predict(arch) -> ms``, or None
    device: str = "cpu"  # where the worker evaluates; "cuda" is the GPU Ray gave the worker (its cuda:0)
    ranker: Ranker | None = None  # the run's calibrated ranker when a search chooses by score

    def __call__(self) -> SupernetEvaluator:
        device = torch.device(self.device)
        net = Supernet(self.space, self.num_classes)
        net.load_state_dict(self.get(self.weights))
        net.to(device)
        if self.settings.channels_last:
            net.to(memory_format=torch.channels_last)
        dataset: ImageDataset = self.get(self.dataset)
        train, val = search_data(dataset, self.settings.val_fraction, self.settings.data_seed, device=device)
        predict = self.predictor.predict if self.predictor is not None else None
        return SupernetEvaluator(net, train, val, self.settings, predict, self.ranker)
