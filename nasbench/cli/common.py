"""What every command shares: the one error handler, the one JSON emitter, the --json option, and the one
rule for merging a resumed run's stored settings with the options given.

Commands raise ``NasbenchError`` for bad input and let ``KeyboardInterrupt`` and the machine's storage faults
(a full disk, a read-only or failing one) through; ``HandledGroup``, the root group of ``nasbench``, turns
each into one line on stderr and an exit code. None of them catches them.
"""

from __future__ import annotations

import errno
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
STORAGE_EXIT = 74  # EX_IOERR (sysexits.h): the machine's storage failed, not the input
STORAGE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
INTERRUPTED_EXIT = 130  # 128 + SIGINT, the shell's convention
_hint: ContextVar[str | None] = ContextVar("nasbench_interrupt_hint", default=None)


class HandledGroup(TyperGroup):
    """The root group: the one place where a command's error becomes a message and an exit code.

    ``NasbenchError`` (bad input) -> ``error: <message>`` on stderr, exit 2, no traceback.
    ``KeyboardInterrupt`` -> ``interrupted`` (plus the command's hint, see ``interrupt_hint``), exit 130.
    A storage fault (``STORAGE_ERRORS``: a full disk...) -> ``error: <cause> writing <file>`` plus the hint,
    exit 74: every write is atomic or an fsynced journal line, so what was completed is kept for the resume.
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
        except OSError as e:
            if e.errno not in STORAGE_ERRORS:
                raise
            hint, where = _hint.get(), f" writing {e.filename}" if e.filename else ""
            after = f"; once fixed, {hint}" if hint else ""
            print(f"error: {e.strerror or e}{where}; what was completed is kept{after}", file=sys.stderr)
            raise typer.Exit(STORAGE_EXIT) from None
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
