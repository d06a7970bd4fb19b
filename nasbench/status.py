"""A record's status, in a module of its own: records, searchers and outputs all read it, and the outputs
must not import the run storage (``nasbench.runs``)."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A record's status. A ``str``: records store and compare it as its value (``"ok"``)."""

    OK = "ok"  # evaluated, every objective a finite number, within every limit
    FAILED = "failed"  # the evaluation raised, or gave an objective that is not a finite number
    INFEASIBLE = "infeasible"  # evaluated, over a --max-* limit: never on a front


STATUSES = tuple(Status)  # in the order summaries show them
