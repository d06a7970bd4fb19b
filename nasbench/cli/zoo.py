"""``nasbench export RUN --arch ID --name NAME`` and ``nasbench zoo list|show``.

``export_app`` is merged into the main app without a name (the command stays ``nasbench export``), and
``zoo_app`` as ``nasbench zoo``. The zoo modules (torch) are imported inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from nasbench.cli.common import console, device_option, emit_json, json_option, parse_device
from nasbench.textfmt import human_count

export_app = typer.Typer()
zoo_app = typer.Typer(help="List the model zoo, or show one entry.", no_args_is_help=True)
DEFAULT_ZOO = Path("zoo")  # zoo.zoo.DEFAULT_ZOO (a test keeps them equal; that module imports torch)
ZOO_OPT = typer.Option(DEFAULT_ZOO, "--zoo", help="The zoo folder.")
JSON_OPT = json_option()


def _acc(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@export_app.command("export")
def export(
    run: str = typer.Argument(..., help="A search run folder, or a run id under results/runs/."),
    arch: str = typer.Option(..., "--arch", help="The architecture's id (see nasbench pareto RUN); a prefix will do."),
    name: str = typer.Option(..., "--name", help="The entry's name: letters, digits, '-', '_', '.'."),
    zoo: Path = ZOO_OPT,
    onnx: bool = typer.Option(False, "--onnx", help="Also write model.onnx, checked with onnxruntime."),
    force: bool = typer.Option(False, "--force", help="Replace an existing entry of that name."),
    device: str = device_option(),
    as_json: bool = JSON_OPT,
) -> None:
    """Export one architecture of a run to the zoo: arch.json, weights, card (and ONNX)."""
    from nasbench.zoo.export import export_arch

    dev = parse_device(device)
    entry = export_arch(run, arch, name, zoo=zoo, onnx=onnx, force=force, device=str(dev))
    if as_json:
        emit_json({"path": str(entry.path), **entry.summary(), "card": entry.card})
        return
    s = entry.summary()
    console.print(
        f"[bold]{entry.name}[/bold] -> {entry.path}: {s['weights']} weights, {human_count(s['params'])} params, "
        f"{human_count(s['macs'])} MACs, {s['acc_split']} top-1 {_acc(s['acc'])}"
        + (f", ONNX max abs diff {entry.card['onnx']['max_abs_diff']:.2g}" if entry.card.get("onnx") else "")
    )
    console.print(f'Load it with: nasbench.zoo.create_model("{entry.name}", zoo="{zoo}")')


@zoo_app.command("list")
def zoo_list(zoo: Path = ZOO_OPT, as_json: bool = JSON_OPT) -> None:
    """List the zoo's entries; an entry that does not read is listed with the reason."""
    from nasbench.zoo.zoo import list_entries

    rows = [entry.summary() if entry else {"name": name, "error": error} for name, entry, error in list_entries(zoo)]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        console.print(f"The zoo {zoo} has no entries; add one with: nasbench export RUN --arch ID --name NAME")
        return
    table = Table(title=f"Model zoo {zoo}")
    for col in ("name", "arch id", "space", "data", "res", "params", "MACs", "weights", "top-1", "onnx"):
        table.add_column(
            col,
            justify="right" if col in ("res", "params", "MACs", "top-1") else "left",
            no_wrap=col in ("name", "arch id"),  # never squeezed: they are what users copy
        )
    for r in rows:
        if "error" in r:
            table.add_row(r["name"], f"[red]unreadable: {r['error']}", *[""] * 8)
            continue
        top1 = f"{_acc(r['acc'])} ({r['acc_split']})" if r["acc"] is not None else ""
        table.add_row(
            r["name"],
            r["arch_id"],
            str(r["space"]),
            str(r["data"]),
            str(r["resolution"]),
            human_count(r["params"]),
            human_count(r["macs"]),
            str(r["weights"]),
            top1,
            "yes" if r["onnx"] else "",
        )
    console.print(table)


@zoo_app.command("show")
def zoo_show(
    name: str = typer.Argument(..., help="The entry's name."), zoo: Path = ZOO_OPT, as_json: bool = JSON_OPT
) -> None:
    """Show one entry's card (checked against its architecture first)."""
    from nasbench.zoo.zoo import CARD_MD, read_entry

    entry = read_entry(name, zoo)
    if as_json:
        emit_json({"path": str(entry.path), **entry.summary(), "card": entry.card})
        return
    card_md = entry.path / CARD_MD
    console.print(card_md.read_text() if card_md.is_file() else json.dumps(entry.card, indent=2), markup=False)
