"""Search spaces: labelled choices over architectures, loaded from YAML, torch-free.

``space`` holds the ``SearchSpace`` value (dimensions, decode/encode, sampling, extremes, references);
``loading`` reads and validates the YAML files (``load_space``, ``shipped_spaces``).
"""

from nasbench.spaces.loading import load_space, shipped_spaces
from nasbench.spaces.space import (
    BLOCK_SIZE_RANK,
    KERNELS,
    CompoundPoint,
    Dimension,
    SearchSpace,
    StageSpace,
    round_depth,
    round_width,
)

__all__ = [
    "BLOCK_SIZE_RANK",
    "KERNELS",
    "CompoundPoint",
    "Dimension",
    "SearchSpace",
    "StageSpace",
    "load_space",
    "round_depth",
    "round_width",
    "shipped_spaces",
]
