"""``nasbench latency ...``: measure end to end, build lookup tables, predict, validate and calibrate.

Progress bars go to stderr, so ``--json`` output on stdout stays clean. The latency modules (torch) are
imported inside the commands.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from nasbench.atomic import write_json
from nasbench.cli.common import console, emit_json, err_console, json_option
from nasbench.errors import NasbenchError
from nasbench.spaces import load_space

if TYPE_CHECKING:
    from nasbench.latency.measure import Context
    from nasbench.latency.table import Correction, LatencyTable
    from nasbench.spaces import SearchSpace

app = typer.Typer(
    help="Latency: measure models end to end, build per-layer lookup tables, predict, validate and calibrate.",
    no_args_is_help=True,
)
DEFAULT_DIR = "results/latency"  # latency.table.DEFAULT_DIR (a test keeps them equal; that module imports torch)

JSON_OPT = json_option()
SPACE_OPT = typer.Option(..., "--space", "-s", help="A shipped space name or a path to a YAML file.")
DEVICE_OPT = typer.Option("cpu", "--device", "-d", help="cpu or cuda (cuda without CUDA is an error).")
BATCH_OPT = typer.Option(1, "--batch", "-b", help="Images per forward pass.")
DTYPE_OPT = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16.")
CL_OPT = typer.Option(False, "--channels-last", help="Run in channels-last memory format.")
THREADS_OPT = typer.Option(None, "--threads", help="CPU intra-op threads (default 1; recorded).")
CLOCK_OPT = typer.Option(
    "wall",
    "--clock",
    help="wall, or cpu: the measuring thread's CPU time (one thread; for machines shared with other jobs).",
)
CLASSES_OPT = typer.Option(1000, "--num-classes", help="Classifier outputs.")
CALIBRATION_ROUNDS = 30
MIN_ROUNDS = 3  # latency.measure.MIN_ROUNDS (that module imports torch)


def ticker(progress: Progress, task: TaskID) -> Callable[[int], None]:
    """A per-round callback that moves a progress bar."""
    return lambda done: progress.update(task, completed=done)


def time_ticker(progress: Progress, task: TaskID, rounds: int, seconds: float) -> Callable[[int], None]:
    """A per-round callback for measuring that stops at ``rounds`` rounds or ``seconds``, whichever comes
    first: the bar shows the larger share, so its ETA holds either way."""
    start = time.monotonic()

    def tick(done: int) -> None:
        share = max(done / rounds, (time.monotonic() - start) / seconds)
        progress.update(task, completed=100 * min(1.0, share))

    return tick


def describe(ctx: Context) -> str:
    threads = f", {ctx.threads} thread(s)" if ctx.device == "cpu" else ""
    threads += ", CPU-time clock" if ctx.clock == "cpu" else ""
    where = f"{ctx.device_name} ({ctx.device}{threads})"
    return f"{where}, torch {ctx.torch}, {ctx.dtype}, batch {ctx.batch}, {ctx.memory_format}"


@app.command("measure")
def measure_cmd(
    arch: str = typer.Argument(..., help="ref:NAME, largest, smallest, sample:SEED, a compact string or a JSON file."),
    space: str = SPACE_OPT,
    device: str = DEVICE_OPT,
    batch: int = BATCH_OPT,
    resolution: int = typer.Option(None, "--resolution", "-r", help="Override the input resolution."),
    dtype: str = DTYPE_OPT,
    channels_last: bool = CL_OPT,
    threads: int = THREADS_OPT,
    clock: str = CLOCK_OPT,
    num_classes: int = CLASSES_OPT,
    warmup: int = typer.Option(10, "--warmup", help="Untimed calls before timing."),
    repeats: int = typer.Option(100, "--repeats", help="Timed calls."),
    as_json: bool = JSON_OPT,
) -> None:
    """Measure the end-to-end latency of one architecture's static model (median and spread)."""
    from nasbench.latency.measure import make_context, measure_arch

    s = load_space(space)
    a = s.resolve(arch, resolution)
    if warmup < 0 or repeats < 1 or num_classes < 1:
        raise NasbenchError("--warmup must be >= 0, --repeats and --num-classes >= 1")
    ctx = make_context(device, dtype, batch, channels_last, threads, clock)
    stats = measure_arch(a, ctx, num_classes=num_classes, warmup=warmup, repeats=repeats)
    info = {
        "space": s.name,
        "id": a.id,
        "arch": str(a),
        "resolution": a.resolution,
        "num_classes": num_classes,
        "context": ctx.to_dict(),
        "warmup": warmup,
        "latency": stats.to_dict(),
    }
    if as_json:
        emit_json(info)
        return
    console.print(f"[bold]{a.id}[/bold] at {a.resolution}x{a.resolution} on {describe(ctx)}")
    console.print(
        f"median [bold]{stats.median_ms:.3f} ms[/bold]  IQR {stats.q1_ms:.3f}-{stats.q3_ms:.3f}"
        f"  p10-p90 {stats.p10_ms:.3f}-{stats.p90_ms:.3f}  ({stats.n} calls after {warmup} warm-up)"
    )


@app.command("lut")
def lut_cmd(
    space: str = SPACE_OPT,
    device: str = DEVICE_OPT,
    batch: int = BATCH_OPT,
    resolution: list[int] = typer.Option(None, "--resolution", "-r", help="Table only these resolutions (repeat)."),
    dtype: str = DTYPE_OPT,
    channels_last: bool = CL_OPT,
    threads: int = THREADS_OPT,
    clock: str = CLOCK_OPT,
    num_classes: int = CLASSES_OPT,
    passes: int = typer.Option(3, "--passes", help="Passes over all configs, each in a fresh random order."),
    repeats: int = typer.Option(10, "--repeats", help="Timed calls per config and pass."),
    warmup: int = typer.Option(2, "--warmup", help="Untimed calls per config and pass."),
    calibrate_n: int = typer.Option(
        30, "--calibrate", help="Archs measured end to end to fit the correction (0: skip)."
    ),
    out: Path = typer.Option(
        None, "--out", "-o", help=f"Table file (default {DEFAULT_DIR}/SPACE_DEVICE_DTYPE_bB.json)."
    ),
    as_json: bool = JSON_OPT,
) -> None:
    """Measure every layer config the space can produce into one JSON table (resumes if interrupted)."""
    from nasbench.latency.lut import build_table
    from nasbench.latency.measure import make_context
    from nasbench.latency.predict import calibrate
    from nasbench.latency.table import table_path

    s = load_space(space)
    ctx = make_context(device, dtype, batch, channels_last, threads, clock)
    if num_classes < 1 or calibrate_n < 0:
        raise NasbenchError("--num-classes must be >= 1 and --calibrate >= 0")
    path = out or table_path(s, ctx)
    settings = {"passes": passes, "repeats": repeats, "warmup": warmup}
    table = build_table(
        s, ctx, path, resolutions=resolution or None, num_classes=num_classes, console=err_console, **settings
    )
    if calibrate_n and table.correction is None:
        with Progress(console=err_console) as progress:
            task = progress.add_task(f"calibrating on {calibrate_n} archs", total=CALIBRATION_ROUNDS)
            calibrate(table, s, ctx, n=calibrate_n, rounds=CALIBRATION_ROUNDS, on_round=ticker(progress, task))
        table.save()
    info = table.record()
    if as_json:
        emit_json(info)
        return
    console.print(f"wrote {path}: {len(table.entries)} layer configs of {s.name} on {describe(ctx)}")
    if table.correction:
        console.print(correction_line(table.correction))


def correction_line(c: Correction) -> str:
    return (
        f"correction: measured = {c.scale:.3f} x table sum + {c.per_layer_ms:.4f} ms x layers"
        f" + {c.offset_ms:.3f} ms (fit on {c.archs} archs, MAPE {100 * c.fit_mape:.1f}%)"
    )


@app.command("predict")
def predict_cmd(
    arch: str = typer.Argument(..., help="ref:NAME, largest, smallest, sample:SEED, a compact string or a JSON file."),
    space: str = SPACE_OPT,
    table: Path = typer.Option(..., "--table", "-t", help="A latency table file, measured on any machine."),
    resolution: int = typer.Option(None, "--resolution", "-r", help="Override the input resolution."),
    as_json: bool = JSON_OPT,
) -> None:
    """Predict an architecture's latency from a table, without the device the table was measured on."""
    from nasbench.latency.table import load_table

    s = load_space(space)
    t = load_table(table, s)
    a = s.resolve(arch, resolution)
    info = {
        "id": a.id,
        "arch": str(a),
        "table_sum_ms": t.table_sum(a),
        "predicted_ms": t.predict(a),
        "table": t.record(),
    }
    if as_json:
        emit_json(info)
        return
    console.print(
        f"[bold]{a.id}[/bold]: predicted [bold]{info['predicted_ms']:.3f} ms[/bold]"
        f" (layer sum {info['table_sum_ms']:.3f} ms) on {describe(t.context)}"
    )


@app.command("validate")
def validate_cmd(
    space: str = SPACE_OPT,
    device: str = DEVICE_OPT,
    batch: int = BATCH_OPT,
    dtype: str = DTYPE_OPT,
    channels_last: bool = CL_OPT,
    threads: int = THREADS_OPT,
    clock: str = CLOCK_OPT,
    n: int = typer.Option(50, "--n", help="Held-out archs to measure and score."),
    calibrate_n: int = typer.Option(30, "--calibrate", help="Calibration archs measured alongside them."),
    seed: int = typer.Option(100_000, "--seed", help="First seed of the held-out archs."),
    rounds: int = typer.Option(30, "--rounds", help="Interleaved rounds over all archs."),
    per_round: int = typer.Option(3, "--per-round", help="Timed calls per arch and round."),
    table: Path = typer.Option(None, "--table", "-t", help="Table file (default: this device's, by name)."),
    report: Path = typer.Option(None, "--report", help="Report file (default: TABLE.validate.json beside it)."),
    update_table: bool = typer.Option(False, "--update-table", help="Store the refitted correction in the table."),
    as_json: bool = JSON_OPT,
) -> None:
    """Score the table's predictions on held-out sampled archs: Kendall tau, MAPE, share within +-10%."""
    from nasbench.latency.measure import make_context
    from nasbench.latency.predict import validate
    from nasbench.latency.table import Correction, load_table, table_path

    s = load_space(space)
    ctx = make_context(device, dtype, batch, channels_last, threads, clock)
    if n < 2 or calibrate_n < 3 or rounds < 1 or per_round < 1:
        raise NasbenchError("need --n >= 2, --calibrate >= 3, --rounds >= 1 and --per-round >= 1")
    t = load_table(table or table_path(s, ctx), s)
    with Progress(console=err_console) as progress:
        task = progress.add_task(f"measuring {n} held-out + {calibrate_n} calibration archs", total=rounds)
        rep = validate(
            t,
            s,
            ctx,
            n=n,
            calibrate_n=calibrate_n,
            seed=seed,
            rounds=rounds,
            per_round=per_round,
            on_round=ticker(progress, task),
        )
    if update_table:
        t.correction = Correction.from_json(rep["correction"])
        t.save()
    out = report or t.path.with_suffix(".validate.json")
    write_json(out, rep, indent=1)
    if as_json:
        emit_json({k: v for k, v in rep.items() if k != "archs"} | {"report": str(out)})
        return
    print_report(rep, out)


def print_report(rep: dict, out: Path) -> None:
    from nasbench.latency.measure import Context

    sc, noise, c = rep["scores"], rep["noise"], rep["correction"]
    console.print(f"validated {rep['table']['path']} on {describe(Context.from_dict(rep['context']))}")
    table = Table(title=f"{sc['n']} held-out archs (correction refit on {c['archs']} calibration archs)")
    for col in ("Kendall tau", "MAPE", "within +-10%", "worst error", "noise (median rel. IQR)"):
        table.add_column(col, justify="right")
    table.add_row(
        f"{sc['kendall_tau']:.3f}",
        f"{100 * sc['mape']:.1f}%",
        f"{100 * sc['within_10pct']:.0f}%",
        f"{100 * sc['max_abs_pct_error']:.1f}%",
        f"{100 * noise['median_rel_iqr']:.1f}%",
    )
    console.print(table)
    if rep["stored_scores"]:
        st = rep["stored_scores"]
        console.print(
            f"with the table's stored correction: tau {st['kendall_tau']:.3f}, MAPE {100 * st['mape']:.1f}%,"
            f" within +-10% {100 * st['within_10pct']:.0f}%"
        )
    console.print(f"load average {noise['loadavg_1min_before']} -> {noise['loadavg_1min_after']}; report: {out}")


@app.command("calibrate")
def calibrate_cmd(
    table: Path = typer.Argument(..., help="A latency table file, measured on this machine or any other."),
    space: str = typer.Option(
        None, "--space", "-s", help="The table's space as a YAML path (default: the shipped space it names)."
    ),
    archs: int = typer.Option(12, "--archs", help="Sampled archs measured end to end (at least 3)."),
    seconds: float = typer.Option(60.0, "--seconds", help=f"Measuring time (at least {MIN_ROUNDS} rounds run)."),
    rounds: int = typer.Option(CALIBRATION_ROUNDS, "--rounds", help="Most interleaved rounds over the archs."),
    out: Path = typer.Option(None, "--out", "-o", help="Write the calibrated table here (default: over TABLE)."),
    as_json: bool = JSON_OPT,
) -> None:
    """Refit the table's end-to-end correction on this machine (about a minute), so that its predictions are
    milliseconds of this machine; the table records the machine (host, CPU/GPU, torch, threads)."""
    from nasbench.latency.measure import Machine
    from nasbench.latency.predict import calibrate
    from nasbench.latency.table import Correction

    if archs < 3 or seconds <= 0 or rounds < MIN_ROUNDS:
        raise NasbenchError(f"need --archs >= 3, --seconds > 0 and --rounds >= {MIN_ROUNDS}")
    t, s, ctx = _table_here(table, space)
    with Progress(console=err_console) as progress:
        task = progress.add_task(f"measuring {archs} archs end to end", total=100)
        tick = time_ticker(progress, task, rounds, seconds)
        rep = calibrate(t, s, ctx, n=archs, rounds=rounds, warmup=2, seconds=seconds, on_round=tick)
    path = t.save(out or t.path)
    if as_json:
        emit_json({k: v for k, v in rep.items() if k != "archs"} | {"path": str(path)})
        return
    machine = Machine.from_dict(rep["correction"]["machine"])
    console.print(f"calibrated {path} on {machine.describe()}: {archs} archs, {rep['rounds']} rounds")
    console.print(correction_line(Correction.from_json(rep["correction"])))
    if rep["previous_scores"]:
        prev, where = rep["previous_scores"], rep["previous"]["machine"]
        fitted = f"host {where['hostname']}" if where else "an unrecorded machine"
        console.print(
            f"the previous correction (fitted on {fitted}) predicted these archs here with MAPE"
            f" {100 * prev['mape']:.1f}%, Kendall tau {prev['kendall_tau']:.3f}"
        )


def _table_here(path: Path, space: str | None) -> tuple[LatencyTable, SearchSpace, Context]:
    """The table, its space, and a measuring context of this machine in the table's settings."""
    import torch

    from nasbench.latency.measure import make_context
    from nasbench.latency.table import load_table

    t = load_table(path)
    s = load_space(space or t.space)
    t.check_space(s)
    c = t.context
    if c.device == "cuda" and not torch.cuda.is_available():
        raise NasbenchError(
            f"latency table {path} times a CUDA device ({c.device_name}) and this machine has none; calibrate"
            f" it where the search will run, or build a table here with `nasbench latency lut --space {s.name}`"
        )
    threads = c.threads if c.device == "cpu" else None
    return t, s, make_context(c.device, c.dtype, c.batch, c.memory_format == "channels_last", threads, c.clock)
