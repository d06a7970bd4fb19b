"""``nasbench arch describe ARCH --space SPACE``: an architecture's parameters and MACs."""

from __future__ import annotations

import typer
from rich.table import Table

from nasbench.cli.common import console, emit_json, json_option
from nasbench.counting import count
from nasbench.errors import NasbenchError
from nasbench.spaces import load_space
from nasbench.textfmt import human_count

app = typer.Typer(help="Inspect architectures.", no_args_is_help=True)


@app.command("describe")
def arch_describe(
    arch: str = typer.Argument(..., help="ref:NAME, largest, smallest, sample:SEED, a compact string or a JSON file."),
    space: str = typer.Option(..., "--space", "-s", help="The space the architecture belongs to."),
    resolution: int = typer.Option(None, "--resolution", "-r", help="Override the input resolution."),
    num_classes: int = typer.Option(1000, "--num-classes", "-n", help="Classifier outputs."),
    as_json: bool = json_option(),
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
