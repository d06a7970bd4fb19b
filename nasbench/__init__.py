"""nasbench: a neural-architecture-search workbench for image classification."""

from nasbench.arch import Arch, Layer, Stage
from nasbench.errors import NasbenchError
from nasbench.spaces import SearchSpace, load_space, shipped_spaces

__all__ = ["Arch", "Layer", "Stage", "NasbenchError", "SearchSpace", "load_space", "shipped_spaces"]
__version__ = "0.1.0"
