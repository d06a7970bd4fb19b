"""The model zoo: one folder per exported network, loaded without executing anything from the files.

::

    ZOO/NAME/arch.json            the architecture, num_classes, space, preprocessing, nasbench version
    ZOO/NAME/weights.safetensors  the weights of ``nasbench.build(arch, num_classes)`` (not folded)
    ZOO/NAME/card.json            the card's figures, machine-readable (card.md is rendered from it)
    ZOO/NAME/card.md              how the network was found and what it scores
    ZOO/NAME/model.onnx           optional: the inference form (BN folded), checked against PyTorch

Only JSON and safetensors are read. A pickle in an entry is refused before anything is read: loading one
can run arbitrary code. An entry whose card disagrees with its architecture (params, MACs, id) or whose
weights file does not hash to the recorded SHA-256 is reported as corrupt.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasbench.arch import Arch
from nasbench.build import Net, build
from nasbench.counting import count
from nasbench.errors import NasbenchError

DEFAULT_ZOO = Path("zoo")
FORMAT = 1
ARCH_FILE, WEIGHTS_FILE, CARD_JSON, CARD_MD, ONNX_FILE = (
    "arch.json",
    "weights.safetensors",
    "card.json",
    "card.md",
    "model.onnx",
)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    """A zoo entry name: letters, digits, ``-``, ``_`` and ``.``, starting with a letter or digit."""
    if not _NAME_RE.match(name or ""):
        raise NasbenchError(
            f"zoo name {name!r} is not valid; use 1-100 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (e.g. tiny-digits-a)"
        )
    return name


@dataclass(frozen=True)
class ZooEntry:
    """One checked zoo entry: where it is, what it builds, and its card's figures."""

    name: str
    path: Path
    arch: Arch
    num_classes: int
    card: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE

    def summary(self) -> dict[str, Any]:
        """The row ``nasbench zoo list`` shows."""
        acc = self.card.get("accuracy", {})
        split = next((k for k in ("test", "val_export", "val_search") if acc.get(k) is not None), None)
        return {
            "name": self.name,
            "arch_id": self.arch.id,
            "space": self.card.get("space"),
            "data": self.card.get("data"),
            "num_classes": self.num_classes,
            "resolution": self.arch.resolution,
            "params": self.card["params"],
            "macs": self.card["macs"],
            "weights": self.card.get("weights", {}).get("source"),
            "acc": acc.get(split) if split else None,
            "acc_split": {"test": "test", None: None}.get(split, "val"),
            "onnx": (self.path / ONNX_FILE).is_file(),
        }


def entry_path(name: str, zoo: str | Path = DEFAULT_ZOO) -> Path:
    return Path(zoo) / check_name(name)


def refuse_pickles(folder: Path) -> None:
    """Refuse a folder holding pickle files (``torch.load`` of those can execute code)."""
    found = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        raise NasbenchError(
            f"zoo entry {folder} holds {', '.join(found)}: pickle files can run code when loaded, so nasbench "
            f"refuses the entry; delete them (a zoo entry holds only {ARCH_FILE}, {WEIGHTS_FILE}, {CARD_JSON}, "
            f"{CARD_MD} and {ONNX_FILE})"
        )


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NasbenchError(f"zoo entry {path.parent} is incomplete: it has no {path.name}")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NasbenchError(f"{path} cannot be read as JSON ({e}); the zoo entry is corrupt") from None
    if not isinstance(data, dict):
        raise NasbenchError(f"{path} is not a JSON object; the zoo entry is corrupt")
    return data


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_entry(name: str, zoo: str | Path = DEFAULT_ZOO) -> ZooEntry:
    """Read and check ``ZOO/NAME``: no pickles, the arch parses, the card agrees with ``count(arch)``."""
    path = entry_path(name, zoo)
    if not path.is_dir():
        known = [e.name for e in _entry_dirs(Path(zoo))][:8]
        hint = f"entries there: {', '.join(known)}" if known else "it has no entries; make one with nasbench export"
        raise NasbenchError(f"no zoo entry {name!r} in {zoo}; {hint}")
    refuse_pickles(path)
    meta = _read_json(path / ARCH_FILE)
    try:
        arch = Arch.from_dict(meta["arch"])
        num_classes = int(meta["num_classes"])
    except (KeyError, TypeError, ValueError, NasbenchError) as e:
        raise NasbenchError(f"{path / ARCH_FILE} does not hold an architecture and num_classes ({e})") from None
    card = _read_json(path / CARD_JSON)
    check_card(path, arch, num_classes, card)
    return ZooEntry(name, path, arch, num_classes, card)


def check_card(path: Path, arch: Arch, num_classes: int, card: dict[str, Any]) -> None:
    """Raise ``NasbenchError`` naming the first card field that disagrees with the architecture."""
    cost = count(arch, num_classes)
    for field, actual in (
        ("arch_id", arch.id),
        ("num_classes", num_classes),
        ("params", cost.params),
        ("macs", cost.macs),
    ):
        if card.get(field) != actual:
            raise NasbenchError(
                f"zoo entry {path} is corrupt: {CARD_JSON} records {field} {card.get(field)!r} but its "
                f"architecture has {actual!r}"
            )


def _entry_dirs(zoo: Path) -> list[Path]:
    """Entry folders, without the hidden ones (exports in progress or interrupted)."""
    if not zoo.is_dir():
        return []
    return sorted(p for p in zoo.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_entries(zoo: str | Path = DEFAULT_ZOO) -> list[tuple[str, ZooEntry | None, str | None]]:
    """Every entry as ``(name, entry, None)``, or ``(name, None, why)`` for one that does not read."""
    zoo = Path(zoo)
    if zoo.exists() and not zoo.is_dir():
        raise NasbenchError(f"zoo {zoo} is a file, not a folder")
    out: list[tuple[str, ZooEntry | None, str | None]] = []
    for folder in _entry_dirs(zoo):
        try:
            out.append((folder.name, read_entry(folder.name, zoo), None))
        except NasbenchError as e:
            out.append((folder.name, None, str(e)))
    return out


def create_model(name: str, pretrained: bool = True, zoo: str | Path = DEFAULT_ZOO, *, fold_bn: bool = False) -> Net:
    """The plain PyTorch model of zoo entry ``name`` (``nasbench.build.Net``), in eval mode.

    With ``pretrained`` the weights are loaded from ``weights.safetensors`` (checked against the card's
    SHA-256 first); ``fold_bn`` returns the inference form (``nasbench.zoo.fold.inference_model``).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    entry = read_entry(name, zoo)
    model = build(entry.arch, entry.num_classes)
    if pretrained:
        if not entry.weights.is_file():
            raise NasbenchError(f"zoo entry {entry.path} has no {WEIGHTS_FILE}; use pretrained=False for a new model")
        recorded = entry.card.get("weights", {}).get("sha256")
        actual = sha256(entry.weights)
        if recorded != actual:
            raise NasbenchError(
                f"zoo entry {entry.path} is corrupt: {WEIGHTS_FILE} has SHA-256 {actual[:12]}..., "
                f"its card records {str(recorded)[:12]}..."
            )
        try:
            state = load_file(entry.weights)
        except (SafetensorError, OSError) as e:
            raise NasbenchError(f"{entry.weights} is not a readable safetensors file ({e})") from None
        load_weights(model, state, entry.weights)
    model.eval()
    if fold_bn:
        from nasbench.zoo.fold import inference_model

        return inference_model(model)
    return model


def load_weights(model: Net, state: dict[str, Any], source: Path | str) -> None:
    """``load_state_dict`` (strict) with a one-sentence error naming what does not match."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        if missing:
            what = f"missing {missing[:3]}"
        else:
            what = f"unexpected {unexpected[:3]}" if unexpected else f"shape of {wrong[:3]}"
        raise NasbenchError(f"weights {source} do not fit the architecture {model.arch.id} ({what})")
    model.load_state_dict(state, strict=True)


# --- the card -----------------------------------------------------------------------------------------


def _num(value: Any, fmt: str = "{:.4f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return fmt.format(value)


def render_card(card: dict[str, Any]) -> str:
    """``card.md`` from ``card.json``: the figures in prose and a table."""
    s, w, acc, lat = card["search"], card["weights"], card["accuracy"], card.get("latency") or {}
    lines = [
        f"# {card['name']}",
        "",
        f"`{card['arch']}`",
        "",
        f"Architecture `{card['arch_id']}` of the `{card['space']}` search space, {card['num_classes']} classes "
        f"at {card['resolution']}x{card['resolution']}, found on `{card['data']}` by search run `{s['run_id']}` "
        f"(searcher {s['searcher']}, trial {s['trial']}; budget {s.get('budget')}, seed {s.get('seed')}).",
        "",
        f"Weights: **{w['source']}** ({w['note']}).",
        "",
        "| figure | value |",
        "|---|---|",
        f"| validation top-1 in the search (inherited weights, BN recalibrated) | {_num(acc.get('val_search'))} |",
    ]
    if acc.get("val_export") is not None:
        lines.append(f"| validation top-1 re-measured at export (these weights) | {_num(acc['val_export'])} |")
    if acc.get("test") is not None:
        lines.append(f"| test top-1 (retrained from scratch) | {_num(acc['test'])} |")
    lines += [
        f"| MACs (multiply-accumulates, one image) | {card['macs']:,} |",
        f"| parameters | {card['params']:,} |",
        f"| latency predicted, ms | {_num(lat.get('predicted_ms'), '{:.3g}')} |",
        f"| latency measured, ms | {_num(lat.get('measured_ms'), '{:.3g}')} |",
    ]
    if lat.get("device"):
        lines += ["", f"Latency device: {lat['device']}" + (f" (table {lat['table']})" if lat.get("table") else "")]
    onnx = card.get("onnx")
    if onnx:
        lines += [
            "",
            f"ONNX: `{ONNX_FILE}` (opset {onnx['opset']}, dynamic batch, batch norm folded); onnxruntime vs "
            f"PyTorch max abs diff {onnx['max_abs_diff']:.3g} (tolerance {onnx['tolerance']:.3g}).",
        ]
    p = card["preprocess"]
    lines += [
        "",
        f"Input: RGB in [0, 1], normalised with mean {p['mean']} and std {p['std']}, at {p['resolution']}x"
        f"{p['resolution']}.",
        "",
        "```python",
        "from nasbench.zoo import create_model",
        f'model = create_model("{card["name"]}", pretrained=True)',
        "```",
        "",
        f"Exported by nasbench {card['nasbench_version']}; the figures are in {CARD_JSON}.",
        "",
    ]
    return "\n".join(lines)
