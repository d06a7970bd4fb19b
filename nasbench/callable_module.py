"""Let ``nasbench.build(arch)`` and ``nasbench.search(...)`` be calls while ``nasbench.build`` and
``nasbench.search`` stay the modules they are (``from nasbench.build import Net`` keeps working).

Python sets a submodule as an attribute of its package on import, so a package-level function named like
a submodule would be replaced by the module the first time anyone imports it. Instead, the module itself
becomes callable: its class is swapped for a ``ModuleType`` subclass whose ``__call__`` is the function
(module ``__class__`` assignment is the documented way to customise a module's behaviour).
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any


def make_callable(module_name: str, function: Callable[..., Any]) -> None:
    """Calling the module ``module_name`` calls ``function`` (same arguments, same result)."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    CallableModule.__call__.__doc__ = function.__doc__
    sys.modules[module_name].__class__ = CallableModule
