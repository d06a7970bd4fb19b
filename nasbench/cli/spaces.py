"""``nasbench spaces`` and ``nasbench spaces show SPACE``: the shipped search spaces."""

from __future__ import annotations

import math
from typing import Any

import typer
from rich.table import Table

from nasbench.arch import Arch
from nasbench.cli.common import console, emit_json, json_option
from nasbench.counting import count
from nasbench.errors import NasbenchError
from nasbench.spaces import SearchSpace, load_space, shipped_spaces
from nasbench.textfmt import human_count

app = typer.Typer(help="List the shipped search spaces, or show one.", invoke_without_command=True)


RANGE_SAMPLES = 200  # seeded samples a reference's percentile is taken among


NUM_CLASSES = 1000  # the classifier the counts assume unless told (ImageNet's, as papers quote them)


def _point(arch: Arch, num_classes: int = NUM_CLASSES) -> dict[str, Any]:
    cost = count(arch, num_classes)
    return {"macs": cost.macs, "params": cost.params, "resolution": arch.resolution}


def macs_range(space: SearchSpace, num_classes: int = NUM_CLASSES) -> dict[str, Any]:
    """The space's cost range: its smallest and largest subnets (each at its own resolution)."""
    return {"smallest": _point(space.smallest(), num_classes), "largest": _point(space.largest(), num_classes)}


def reference_positions(
    space: SearchSpace, span: dict[str, Any], num_classes: int = NUM_CLASSES
) -> dict[str, dict[str, Any]]:
    """Each reference's cost and where it sits in the range: ``log_position`` is 0 at the smallest subnet's
    MACs and 1 at the largest's, on a log scale; ``percentile`` is the share of ``RANGE_SAMPLES`` seeded
    samples (seeds 0, 1, ...) that cost fewer MACs."""
    low, high = math.log(span["smallest"]["macs"]), math.log(span["largest"]["macs"])
    sampled = [count(space.sample(seed), num_classes).macs for seed in range(RANGE_SAMPLES)]
    refs = {}
    for name in space.references:
        arch = space.reference(name)
        point = _point(arch, num_classes)
        refs[name] = {
            "id": arch.id,
            "arch": str(arch),
            **point,
            "log_position": round((math.log(point["macs"]) - low) / (high - low), 3) if high > low else 0.0,
            "percentile": round(100 * sum(m < point["macs"] for m in sampled) / len(sampled), 1),
        }
    return refs


def space_summary(space: SearchSpace, num_classes: int = NUM_CLASSES) -> dict[str, Any]:
    """Everything ``spaces show`` prints: choices, size, the MACs range (with how many times the dearest
    reference the largest subnet costs) and each reference's place in that range, counted with a classifier
    of ``num_classes`` (a CIFAR space's own figures need 10 or 100)."""
    span = macs_range(space, num_classes)
    refs = reference_positions(space, span, num_classes)
    if refs:  # how far the largest subnet (the sandwich's teacher) reaches above the dearest reference
        dearest = max(refs, key=lambda name: refs[name]["macs"])
        span["largest_over_reference"] = {
            "reference": dearest,
            "ratio": round(span["largest"]["macs"] / refs[dearest]["macs"], 3),
        }
    return {
        "name": space.name,
        "description": space.description,
        "source": space.source,
        "activation": space.act,
        "log10_size": round(space.log10_size, 3),
        "size": space.size,
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
                **(
                    {
                        "ops": [x.code for x in s.layer_options(False)],
                        "first_ops": [x.code for x in s.layer_options(True)],
                    }
                    if s.coupled
                    else {}
                ),
                "depth": list(s.depths),
                "width": list(s.widths),
            }
            for s in space.stages
        ],
        "dimensions": len(space.dimensions()),
        "num_classes": num_classes,
        "macs_range": span,
        "references": refs,
    }


def _span_text(point: dict[str, Any]) -> str:
    return f"{human_count(point['macs'])} @{point['resolution']}px"


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
                "macs_range": macs_range(space),
                "description": space.description,
            }
        )
    if as_json:
        emit_json(rows)
        return
    table = Table(title="Shipped search spaces")
    for col in ("space", "size", "stages", "MACs range", "references", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        summary = r["description"].split(". ")[0].rstrip(".") + "."
        span = f"{_span_text(r['macs_range']['smallest'])} .. {_span_text(r['macs_range']['largest'])}"
        size = f"10^{r['log10_size']:.1f}"
        table.add_row(r["name"], size, str(r["stages"]), span, ", ".join(r["references"]), summary)
    console.print(table)


@app.command("show")
def spaces_show(
    space: str = typer.Argument(..., help="A shipped space name or a path to a YAML file."),
    num_classes: int = typer.Option(
        NUM_CLASSES, "--num-classes", help="Classes the MACs and params are counted with (10 for CIFAR-10)."
    ),
    as_json: bool = json_option(),
) -> None:
    """Show a space's dimensions, choices, reference points and size."""
    if num_classes < 1:
        raise NasbenchError(f"--num-classes must be at least 1, got {num_classes}")
    s = load_space(space)
    info = space_summary(s, num_classes)
    if as_json:
        emit_json(info)
        return
    console.print(f"[bold]{s.name}[/bold] ({s.source}): {s.description}")
    console.print(
        f"size 10^{s.log10_size:.1f} architectures over {info['dimensions']} dimensions; activation {s.act}; "
        f"resolution {list(s.resolutions)}; stem {list(s.stem_widths)} (stride {s.stem_stride}); "
        f"head {list(s.head_widths)}"
    )
    _print_range(info["macs_range"], num_classes)
    _print_stages(info["stages"])
    _print_references(info["references"])


def _print_range(span: dict[str, Any], num_classes: int) -> None:
    line = (
        f"at {num_classes} classes: MACs {_span_text(span['smallest'])} (smallest) .. "
        f"{_span_text(span['largest'])} (largest); "
        f"params {human_count(span['smallest']['params'])} .. {human_count(span['largest']['params'])}"
    )
    if "largest_over_reference" in span:
        above = span["largest_over_reference"]
        line += f"; the largest costs {above['ratio']:.2f}x {above['reference']}"
    console.print(line)


def _print_stages(stages: list[dict[str, Any]]) -> None:
    title = "Stages (per layer: block, kernel, expand, or one coupled op; per stage: depth, width)"
    table = Table(title=title)
    for col in ("stage", "stride", "se", "blocks", "kernel", "expand", "depth", "width"):
        table.add_column(col)
    for st in stages:
        if "ops" in st:  # coupled: whole layers, the first layer's list apart
            choices = [
                f"layer 1: {', '.join(st['first_ops'])}; later: {', '.join(st['ops'])}",
                "(coupled)",
                "(coupled)",
            ]
        else:
            choices = [", ".join(st["blocks"]), str(st["kernel"]), str(st["expand"])]
        table.add_row(st["name"], str(st["stride"]), f"{st['se']:g}", *choices, str(st["depth"]), str(st["width"]))
    console.print(table)
    if any("ops" in st for st in stages):
        console.print(
            "Coupled ops are <block><kernel>e<expand> (mb MBConv, fu Fused-MBConv, dy dynamic conv, at attention,"
            " sk skip: identity, or a 1x1 conv + BN projection where the layer strides or changes width)."
        )


def _print_references(references: dict[str, dict[str, Any]]) -> None:
    table = Table(
        title=f"Reference points (position: 0 = smallest, 1 = largest MACs, log scale; percentile among"
        f" {RANGE_SAMPLES} seeded samples)"
    )
    for col in ("name", "id", "params", "MACs", "position", "percentile", "architecture"):
        table.add_column(col, overflow="fold")
    for name, r in references.items():
        table.add_row(
            name,
            r["id"],
            human_count(r["params"]),
            human_count(r["macs"]),
            f"{r['log_position']:.2f}",
            f"{r['percentile']:.0f}%",
            r["arch"],
        )
    console.print(table)
