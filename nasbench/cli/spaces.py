"""``nasbench spaces`` and ``nasbench spaces show SPACE``: the shipped search spaces."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from nasbench.cli.common import console, emit_json, json_option
from nasbench.counting import count
from nasbench.spaces import SearchSpace, load_space, shipped_spaces
from nasbench.textfmt import human_count

app = typer.Typer(help="List the shipped search spaces, or show one.", invoke_without_command=True)


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


@app.callback()
def spaces_list(ctx: typer.Context, as_json: bool = json_option()) -> None:
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
    if as_json:
        emit_json(rows)
        return
    table = Table(title="Shipped search spaces")
    for col in ("space", "size", "stages", "references", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        summary = r["description"].split(". ")[0].rstrip(".") + "."
        table.add_row(r["name"], f"10^{r['log10_size']:.1f}", str(r["stages"]), ", ".join(r["references"]), summary)
    console.print(table)


@app.command("show")
def spaces_show(
    space: str = typer.Argument(..., help="A shipped space name or a path to a YAML file."),
    as_json: bool = json_option(),
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
