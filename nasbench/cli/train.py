"""``nasbench train-supernet``: train a space's supernet on a dataset within a budget, then validate the
largest and smallest subnets (after BN recalibration)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from nasbench.budget import parse_budget
from nasbench.cli.common import console, device_option, emit_json, interrupt_hint, json_option, parse_device
from nasbench.diffing import merge_resumed
from nasbench.errors import NasbenchError

if TYPE_CHECKING:
    from nasbench.spaces import SearchSpace
    from nasbench.training import TrainConfig
    from nasbench.training.loop import TrainResult

app = typer.Typer()

# Recipe options: None means "not given" (the TrainConfig default, or the resumed run's value). The names are
# TrainConfig's fields; the optimizer names are training.config.OPTIMIZERS (a test keeps them equal: that
# module's package imports torch, which `nasbench --help` must not).
RECIPE = {
    "batch_size": typer.Option(None, "--batch-size", help="Images per step (every subnet sees the batch)."),
    "lr": typer.Option(None, "--lr", help="Peak learning rate (default: 0.1 SGD, 2e-3 AdamW)."),
    "optimizer": typer.Option(None, "--optimizer", help="One of sgd-nesterov, adamw."),
    "weight_decay": typer.Option(None, "--weight-decay", help="On conv/linear weights; norms and biases get none."),
    "warmup_steps": typer.Option(None, "--warmup-steps", help="Linear warm-up steps (default: 5% of the run)."),
    "num_random": typer.Option(None, "--num-random", help="Random subnets per step besides largest and smallest."),
    "teacher_resolution": typer.Option(
        None, "--teacher-resolution", help="cycle (the teacher at every resolution in turn, the default) or largest."
    ),
    "sampling": typer.Option(
        None, "--sampling", help="sandwich (largest teaches, the default) or uniform (single-path, labels only)."
    ),
    "label_smoothing": typer.Option(None, "--label-smoothing", help="On the largest subnet's label loss."),
    "kd_temperature": typer.Option(None, "--kd-temperature", help="Softening of the distilled soft labels."),
    "student_label_weight": typer.Option(
        None, "--student-label-weight", help="Label share of the other subnets' loss, the rest distilled (0.5)."
    ),
    "zero_init_residual": typer.Option(
        None, "--zero-init-residual/--no-zero-init-residual", help="Residual blocks start as identities (BigNAS)."
    ),
    "reorder_every": typer.Option(None, "--reorder-every", help="Steps between channel re-orderings; 0 = never."),
    "channels_last": typer.Option(None, "--channels-last/--no-channels-last", help="NHWC memory format."),
    "bf16": typer.Option(None, "--bf16/--no-bf16", help="bf16 autocast on CUDA (CPU is always float32)."),
    "checkpoint_every": typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    "bn_batches": typer.Option(None, "--bn-batches", help="Training batches for BN recalibration."),
    "val_fraction": typer.Option(None, "--val-fraction", help="Share of training images held out for validation."),
}


WORKERS_HELP = "Data-parallel ranks (Ray Train, PyTorch DDP), one device each; --batch-size is per rank (default 1)."
BATCH_NORM_HELP = "With --workers: local (each rank's own batch statistics, the default) or sync (the global batch's)."


@app.command("train-supernet")
def train_supernet_command(
    space: str = typer.Option(None, "--space", "-s", help="A shipped space name or a YAML file."),
    data: str = typer.Option(None, "--data", "-d", help="digits, cifar10, cifar100, an ImageFolder tree or .npz."),
    budget: str = typer.Option(None, "--budget", "-b", help="Time (10min, 2h, 1gpu-h), 500steps or 3epochs."),
    out: Path = typer.Option(..., "--out", "-o", help="The run folder (created; --resume continues it)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last checkpoint."),
    seed: int = typer.Option(None, "--seed", help="Seeds weights, data order, augmentation, subnets (default 0)."),
    batch_size: int = RECIPE["batch_size"],
    lr: float = RECIPE["lr"],
    optimizer: str = RECIPE["optimizer"],
    weight_decay: float = RECIPE["weight_decay"],
    warmup_steps: int = RECIPE["warmup_steps"],
    num_random: int = RECIPE["num_random"],
    teacher_resolution: str = RECIPE["teacher_resolution"],
    sampling: str = RECIPE["sampling"],
    label_smoothing: float = RECIPE["label_smoothing"],
    kd_temperature: float = RECIPE["kd_temperature"],
    student_label_weight: float = RECIPE["student_label_weight"],
    zero_init_residual: bool = RECIPE["zero_init_residual"],
    reorder_every: int = RECIPE["reorder_every"],
    channels_last: bool = RECIPE["channels_last"],
    bf16: bool = RECIPE["bf16"],
    checkpoint_every: int = RECIPE["checkpoint_every"],
    bn_batches: int = RECIPE["bn_batches"],
    val_fraction: float = RECIPE["val_fraction"],
    device: str = device_option(),
    threads: int = typer.Option(None, "--threads", help="CPU threads for torch (default: torch's choice)."),
    workers: int = typer.Option(None, "--workers", help=WORKERS_HELP),
    batch_norm: str = typer.Option(None, "--batch-norm", help=BATCH_NORM_HELP),
    ray_address: str = typer.Option(None, "--ray-address", help="An existing Ray cluster for --workers."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show the progress bar (on stderr)."),
    as_json: bool = json_option("Print the evaluation as JSON."),
) -> None:
    """Train a supernet (sandwich rule, in-place distillation), then validate its largest and smallest subnets.

    With --resume, options left out are taken from the run in --out; options given must match it.
    """
    recipe = {k: v for k, v in locals().items() if k in RECIPE and v is not None}
    interrupt_hint(f"continue with: --out {out} --resume")
    args = _resolve_args(out, resume, space, data, budget, seed, recipe)
    args["parallel"] = _resolve_parallel(out, resume, workers, batch_norm)
    args["ray_address"] = ray_address
    summary = _train_and_evaluate(out, resume, args, device, threads, progress)
    if as_json:
        emit_json(summary)
    else:
        _print_summary(summary)


def _resolve_args(
    out: Path, resume: bool, space: str | None, data: str | None, budget: str | None, seed: int | None, recipe: dict
) -> dict[str, Any]:
    """The run's settings: those given, and with --resume those of the run being resumed for the rest.

    Space and data are taken from the resumed run when left out but not compared here: the run's identity
    compares them by content (``training.rundir.open_run``), so a name and a path to the same space both do.
    """
    from nasbench.training import TrainConfig
    from nasbench.training.rundir import TrainingRecord

    given = {k: v for k, v in {"budget": budget, "seed": seed, **recipe}.items() if v is not None}
    record = TrainingRecord.find(out) if resume else None
    origin = record.origin if record else {}
    if record:
        identity = record.identity
        if "budget" in given:
            given["budget"] = str(parse_budget(given["budget"]))  # stored in its canonical spelling
        stored = {"budget": identity["budget"], "seed": identity["seed"], **identity.get("config", {})}
        given = merge_resumed(stored, given, where=f"--out {out}")
    args = {
        "space": space or origin.get("space"),
        "data": data or origin.get("data"),
        "budget": given.pop("budget", None),
        "seed": given.pop("seed", 0),
    }
    for name in ("space", "data", "budget"):
        if args[name] is None:
            raise NasbenchError(f"--{name} is required (or --resume a run in --out that records it)")
    args["config"] = TrainConfig.from_dict(given)
    return args


def _resolve_parallel(out: Path, resume: bool, workers: int | None, batch_norm: str | None) -> dict[str, Any]:
    """--workers and --batch-norm: given, or with --resume the resumed run's (which must match)."""
    from nasbench.training.rundir import TrainingRecord

    record = TrainingRecord.find(out) if resume else None
    stored = (record.identity if record else {}).get("parallel", {"workers": 1, "batch_norm": "local"})
    given = {k: v for k, v in {"workers": workers, "batch_norm": batch_norm}.items() if v is not None}
    if record:
        given = merge_resumed({k: stored.get(k) for k in ("workers", "batch_norm")}, given, where=f"--out {out}")
    chosen = {"workers": 1, "batch_norm": "local", **given}
    if chosen["workers"] < 1:
        raise NasbenchError(f"--workers must be at least 1, got {chosen['workers']}")
    if chosen["batch_norm"] not in ("local", "sync"):
        raise NasbenchError(f"--batch-norm {chosen['batch_norm']!r}: choose local or sync")
    return chosen


def _train_and_evaluate(
    out: Path, resume: bool, args: dict[str, Any], device: str | None, threads: int | None, progress: bool
) -> dict[str, Any]:
    import torch

    from nasbench.atomic import write_json
    from nasbench.data import load_dataset
    from nasbench.spaces import load_space
    from nasbench.training.parallel import train_on_workers
    from nasbench.training.rundir import EVAL_FILE

    space = load_space(args["space"])
    budget = parse_budget(args["budget"])
    dev = parse_device(device)
    if threads is not None:
        if threads < 1:
            raise NasbenchError(f"--threads must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    dataset = load_dataset(args["data"])
    config: TrainConfig = args["config"]
    parallel = args["parallel"]
    result = train_on_workers(
        space,
        dataset,
        budget,
        out,
        **parallel,
        ray_address=args["ray_address"],
        config=config,
        seed=args["seed"],
        device=dev,
        resume=resume,
        progress=progress,
        origin={"space": args["space"], "data": args["data"]},
    )
    summary = _evaluate_extremes(result, space, config, args["seed"])
    summary.update(run=str(out), space=space.name, data=dataset.name, budget=str(budget), steps=result.steps)
    summary.update(workers=parallel["workers"], batch_norm=parallel["batch_norm"] if parallel["workers"] > 1 else None)
    summary["note"] = result.note
    write_json(out / EVAL_FILE, summary)
    return summary


def _evaluate_extremes(result: TrainResult, space: SearchSpace, config: TrainConfig, seed: int) -> dict[str, Any]:
    """Largest and smallest subnets, each after BN recalibration on the same seeded training batches."""
    from nasbench.training import evaluate

    summary: dict[str, Any] = {"bn_batches": config.bn_batches, "val_images": len(result.val)}
    for name, arch in (("largest", space.largest()), ("smallest", space.smallest())):
        figures = evaluate(
            result.supernet,
            arch,
            result.train,
            result.val,
            bn_batches=config.bn_batches,
            batch_size=config.batch_size,
            seed=seed,
            channels_last=config.channels_last,
            bf16=config.bf16,
        )
        summary[name] = figures.to_dict()
    return summary


def _print_summary(summary: dict[str, Any]) -> None:
    from nasbench.training.rundir import EVAL_FILE

    table = Table(
        title=f"{summary['space']} supernet on {summary['data']}, {summary['steps']} steps: validation "
        f"({summary['val_images']} images) after BN recalibration on {summary['bn_batches']} batches"
    )
    for col in ("subnet", "resolution", "top-1", "loss", "id"):
        table.add_column(col, justify="left" if col in ("subnet", "id") else "right")
    for name in ("largest", "smallest"):
        r = summary[name]
        table.add_row(name, str(r["resolution"]), f"{100 * r['top1']:.2f}%", f"{r['loss']:.3f}", r["arch_id"])
    console.print(table)
    if summary.get("note"):
        console.print(summary["note"])
    console.print(f"run folder: {summary['run']} ({EVAL_FILE})")
