"""A latency table as a search uses it: over the resolutions it covers, honest about whose milliseconds.

A search under a latency objective predicts every architecture it considers (proximal's expected latency
and cost range, each trial's record), so its space is restricted to the resolutions the table covers;
none covered is an error naming them. A table's figures are milliseconds of the machine its correction
was fitted on; elsewhere they still rank architectures (the layer sums keep their order), so a search
may use them with a note saying so, but a ``--max-latency`` limit in another machine's milliseconds
would be a wrong promise and is refused until ``nasbench latency calibrate`` has refitted it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasbench.errors import NasbenchError
from nasbench.latency.table import LatencyTable, load_table
from nasbench.spaces import SearchSpace


@dataclass(frozen=True)
class SearchTable:
    """What ``table_for_search`` gives a search."""

    table: LatencyTable  # restricted to the resolutions it shares with the space
    space: SearchSpace  # the search space, its resolution dimension restricted to those
    dropped: tuple[int, ...]  # the space's resolutions the table lacks: not searched
    foreign: str | None  # why the table's figures are not this machine's milliseconds; None when they are

    def notes(self) -> list[str]:
        """One line per way this search differs from what the user asked (for the console and the run)."""
        where = self.table.where
        out = []
        if self.dropped:
            out.append(
                f"latency: searching resolutions {list(self.space.resolutions)} only, those latency table"
                f" {where} covers; it lacks {list(self.dropped)}"
            )
        if self.foreign:
            out.append(
                f"latency: table {where} {self.foreign}, so its latency figures rank architectures but are not"
                f" milliseconds of this machine; `nasbench latency calibrate {where}` makes them so"
            )
        return out

    def record(self) -> dict[str, Any]:
        """What the run stores about its latency table."""
        correction = self.table.require_correction()
        return {
            "table": self.table.where,
            "resolutions": list(self.space.resolutions),
            "dropped_resolutions": list(self.dropped),
            "milliseconds_of_this_machine": self.foreign is None,
            "calibrated_on": correction.machine.to_dict() if correction.machine else None,
            "notes": self.notes(),
        }


def table_for_search(path: Path | str, space: SearchSpace, *, max_latency: float | None = None) -> SearchTable:
    """Load the table at ``path`` for a search of ``space`` (see the module doc for what is refused)."""
    table = load_table(path, space)
    foreign = table.calibration_mismatch()  # also refuses a table without a fitted correction
    if foreign and max_latency:
        raise NasbenchError(
            f"--max-latency {max_latency:g} needs milliseconds of this machine, but latency table {table.where}"
            f" {foreign}; run `nasbench latency calibrate {table.where}` here first"
        )
    restricted, covered = table.covering(space)
    dropped = tuple(r for r in space.resolutions if r not in restricted.resolutions)
    return SearchTable(covered, restricted, dropped, foreign)
