"""What every command shares: the one error handler, the one JSON emitter, the --json option, and the one
rule for merging a resumed run's stored settings with the options given.

Commands raise ``NasbenchError`` for bad input and let ``KeyboardInterrupt`` through; ``HandledGroup``, the
root group of ``nasbench``, turns both into one line on stderr and an exit code. None of them catches either.
"""

from __future__ import annotations

import json
import math
import sys
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from nasbench.errors import NasbenchError

if TYPE_CHECKING:
    import torch

console = Console()
err_console = Console(stderr=True)  # progress bars: stdout stays clean for --json

BAD_INPUT_EXIT = 2  # as click's own usage errors
INTERRUPTED_EXIT = 130  # 128 + SIGINT, the shell's convention
_hint: ContextVar[str | None] = ContextVar("nasbench_interrupt_hint", default=None)


class HandledGroup(TyperGroup):
    """The root group: the one place where a command's error becomes a message and an exit code.

    ``NasbenchError`` (bad input) -> ``error: <message>`` on stderr, exit 2, no traceback.
    ``KeyboardInterrupt`` -> ``interrupted`` (plus the command's hint, see ``interrupt_hint``), exit 130.
    Anything else is a bug and keeps its traceback.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        token = _hint.set(None)
        try:
            return super().invoke(ctx)
        except NasbenchError as e:
            print(f"error: {e}", file=sys.stderr)
            raise typer.Exit(BAD_INPUT_EXIT) from None
        except KeyboardInterrupt:
            hint = _hint.get()
            print("interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
            raise typer.Exit(INTERRUPTED_EXIT) from None
        finally:
            _hint.reset(token)


def interrupt_hint(hint: str) -> None:
    """Tell the user how to continue should this command be interrupted: the handler prints it after
    ``interrupted; ``. Called outside the command line (a command function from Python), it has no effect."""
    _hint.set(hint)


def json_option(help: str = "Print machine-readable JSON instead of tables.") -> Any:
    """The ``--json`` option every command takes."""
    return typer.Option(False, "--json", help=help)


def device_option() -> Any:
    """The ``--device`` option of every command that trains or evaluates (None: CUDA when there is one)."""
    return typer.Option(None, "--device", help="cpu or cuda[:N] (default: cuda when there is one, else cpu).")


def parse_device(text: str | None) -> torch.device:
    """``--device`` as a torch device, checked (``nasbench.training.state.resolve_device``: the one rule,
    which the Python API applies too). Imports torch, so call it inside a command."""
    from nasbench.training.state import resolve_device

    return resolve_device(text)


def emit_json(data: Any) -> None:
    """Print ``data`` as standard JSON on stdout (NaN and infinities become null)."""
    sys.stdout.write(json.dumps(_finite(data), indent=2) + "\n")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
