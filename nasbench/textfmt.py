"""Small text formatting shared by the CLI and the run outputs."""

import math


def split_list(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` as ``("a", "b", "c")``: every comma-separated setting (searchers, objectives, proxies)."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def human_count(n: float) -> str:
    """``12.35 M``: counts (MACs, params) the way model cards write them; ``n/a`` for a missing value."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return str(int(n))
