"""Objectives of a search beyond accuracy: expected MACs and latency of a distribution over a space."""

from nasbench.objectives.expected import ExpectedCost, expected_latency, expected_macs

__all__ = ["ExpectedCost", "expected_latency", "expected_macs"]
