"""The ``nasbench`` command line (typer + rich).

Every command takes ``--help`` and ``--json``. A ``NasbenchError`` (bad input) prints one line on stderr
and exits with code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from nasbench import runs_cli, search_cli, training_cli
from nasbench.counting import count
from nasbench.errors import NasbenchError
from nasbench.latency import cli as latency_cli
from nasbench.retrain import cli as retrain_cli
from nasbench.spaces import SearchSpace, load_space, shipped_spaces
from nasbench.textfmt import human_count
from nasbench.zoo import cli as zoo_cli

app = typer.Typer(
    help="nasbench: neural-architecture search for image classification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
spaces_app = typer.Typer(help="List the shipped search spaces, or show one.", invoke_without_command=True)
arch_app = typer.Typer(help="Inspect architectures.", no_args_is_help=True)
app.add_typer(spaces_app, name="spaces")
app.add_typer(arch_app, name="arch")
app.add_typer(runs_cli.app)  # nasbench pareto RUN
app.add_typer(training_cli.app)  # nasbench train-supernet ...
app.add_typer(search_cli.app)  # nasbench search ...
app.add_typer(latency_cli.app, name="latency")  # nasbench latency measure|lut|predict|validate
app.add_typer(zoo_cli.export_app)  # nasbench export RUN --arch ID --name NAME
app.add_typer(zoo_cli.zoo_app, name="zoo")  # nasbench zoo list|show
app.add_typer(retrain_cli.app)  # nasbench retrain RUN --top K

console = Console()
JSON_OPT = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables.")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


# --- spaces -------------------------------------------------------------------------------------------


def space_summary(space: SearchSpace) -> dict[str, Any]:
    refs = {}
    for name in space.references:
        arch = space.reference(name)
        cost = count(arch)
        refs[name] = {"id": arch.id, "arch": str(arch), "params": cost.params, "macs": cost.macs}
    return {
        "name": space.name,
        "description": space.description,
        "source": space.source,
        "activation": space.act,
        "log10_size": round(space.log10_size, 3),
        "resolution": list(space.resolutions),
        "stem": {"widths": list(space.stem_widths), "stride": space.stem_stride},
        "head": {"widths": list(space.head_widths)},
        "stages": [
            {
                "name": s.name,
                "stride": s.stride,
                "se": s.se,
                "blocks": list(s.blocks),
                "kernel": list(s.kernels),
                "expand": list(s.expands),
                "depth": list(s.depths),
                "width": list(s.widths),
            }
            for s in space.stages
        ],
        "dimensions": len(space.dimensions()),
        "references": refs,
    }


@spaces_app.callback()
def spaces_list(ctx: typer.Context, as_json: bool = JSON_OPT) -> None:
    """List the search spaces that ship with nasbench (``spaces show NAME`` for one)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = []
    for name in shipped_spaces():
        space = load_space(name)
        rows.append(
            {
                "name": name,
                "log10_size": round(space.log10_size, 2),
                "stages": len(space.stages),
                "references": list(space.references),
                "description": space.description,
            }
        )
    summary = {r["name"]: r["description"].split(". ")[0].rstrip(".") + "." for r in rows}
    if as_json:
        emit_json(rows)
        return
    table = Table(title="Shipped search spaces")
    for col in ("space", "size", "stages", "references", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(
            r["name"], f"10^{r['log10_size']:.1f}", str(r["stages"]), ", ".join(r["references"]), summary[r["name"]]
        )
    console.print(table)


@spaces_app.command("show")
def spaces_show(
    space: str = typer.Argument(..., help="A shipped space name or a path to a YAML file."), as_json: bool = JSON_OPT
) -> None:
    """Show a space's dimensions, choices, reference points and size."""
    s = load_space(space)
    info = space_summary(s)
    if as_json:
        emit_json(info)
        return
    console.print(f"[bold]{s.name}[/bold] ({s.source}): {s.description}")
    console.print(
        f"size 10^{s.log10_size:.1f} architectures over {info['dimensions']} dimensions; activation {s.act}; "
        f"resolution {list(s.resolutions)}; stem {list(s.stem_widths)} (stride {s.stem_stride}); "
        f"head {list(s.head_widths)}"
    )
    table = Table(title="Stages (per layer: block, kernel, expand; per stage: depth, width)")
    for col in ("stage", "stride", "se", "blocks", "kernel", "expand", "depth", "width"):
        table.add_column(col)
    for st in info["stages"]:
        table.add_row(
            st["name"],
            str(st["stride"]),
            f"{st['se']:g}",
            ", ".join(st["blocks"]),
            *(str(st[k]) for k in ("kernel", "expand", "depth", "width")),
        )
    console.print(table)
    refs = Table(title="Reference points")
    for col in ("name", "id", "params", "MACs", "architecture"):
        refs.add_column(col, overflow="fold")
    for name, r in info["references"].items():
        refs.add_row(name, r["id"], human_count(r["params"]), human_count(r["macs"]), r["arch"])
    console.print(refs)


# --- arch ---------------------------------------------------------------------------------------------


@arch_app.command("describe")
def arch_describe(
    arch: str = typer.Argument(..., help="ref:NAME, largest, smallest, sample:SEED, a compact string or a JSON file."),
    space: str = typer.Option(..., "--space", "-s", help="The space the architecture belongs to."),
    resolution: int = typer.Option(None, "--resolution", "-r", help="Override the input resolution."),
    num_classes: int = typer.Option(1000, "--num-classes", "-n", help="Classifier outputs."),
    as_json: bool = JSON_OPT,
) -> None:
    """Print an architecture's parameters and MACs, in total and per stage."""
    s = load_space(space)
    a = s.resolve(arch, resolution)
    if num_classes < 1:
        raise NasbenchError(f"--num-classes must be positive, got {num_classes}")
    cost = count(a, num_classes)
    info = {
        "space": s.name,
        "id": a.id,
        "string": str(a),
        "arch": a.to_dict(),
        "resolution": a.resolution,
        "num_classes": num_classes,
        "params": cost.params,
        "macs": cost.macs,
        "parts": {k: {"params": p, "macs": m} for k, (p, m) in cost.parts.items()},
        "macs_by_op": cost.by_op,
    }
    if as_json:
        emit_json(info)
        return
    console.print(f"[bold]{a.id}[/bold] in {s.name} at {a.resolution}x{a.resolution}, {num_classes} classes")
    console.print(str(a), soft_wrap=True)
    table = Table(title="Cost (MACs: multiply-accumulates, fvcore's convention)")
    for col in ("part", "layers", "params", "MACs", "share of MACs"):
        table.add_column(col, justify="right" if col != "part" else "left")
    depths = {f"s{i}": st.depth for i, st in enumerate(a.stages, 1)}
    for part, (p, m) in cost.parts.items():
        table.add_row(part, str(depths.get(part, "")), f"{p:,}", human_count(m), f"{100 * m / cost.macs:.1f}%")
    table.add_row("[bold]total", str(a.depth), f"[bold]{cost.params:,}", f"[bold]{human_count(cost.macs)}", "100%")
    console.print(table)


# --- entry point --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI. Click reports its own usage errors (exit 2); a ``NasbenchError`` prints one line on
    stderr and exits 2; anything else is a bug and keeps its traceback."""
    try:
        app(args=argv)
    except NasbenchError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def entry() -> None:
    main()
