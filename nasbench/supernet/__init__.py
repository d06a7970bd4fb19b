"""The weight-shared supernet: every architecture of a space runs with one set of weights."""

from nasbench.supernet.supernet import Supernet

__all__ = ["Supernet"]
