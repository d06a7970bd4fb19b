"""The zoo: export from a run, safe loading, the card's checks, BN folding, ONNX parity, the CLI."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
import typer
from safetensors.torch import save_file
from typer.testing import CliRunner

from nasbench.arch import Arch
from nasbench.blocks import ConvBNAct
from nasbench.budget import parse_budget
from nasbench.build import build
from nasbench.cli.zoo import export_app, zoo_app
from nasbench.counting import count
from nasbench.data import load_dataset
from nasbench.errors import NasbenchError
from nasbench.runs import Record, RunDir
from nasbench.search.evaluator import EvalSettings, SupernetEvaluator
from nasbench.spaces import load_space
from nasbench.training import TrainConfig, train_supernet
from nasbench.zoo import create_model, export_arch, fold_bn, inference_model, list_entries, read_entry
from nasbench.zoo import export as export_mod
from nasbench.zoo.fold import count_bn
from nasbench.zoo.onnx_export import onnx_bytes

# Every block type: fused, dynamic conv, attention, MBConv (all in the tiny space).
ALL_BLOCKS = Arch.parse(
    "r16_stem8s1_head64_silu|c8s1se0.25:fu3e3|c16s2se0.25:dy3e3|c32s2se0.25:at3e3|c48s2se0.25:mb3e3"
)
PLAIN = load_space("tiny").smallest()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A search run folder without a search: a 2-step supernet and two records, evaluated as a search would."""
    root = tmp_path_factory.mktemp("zoo")
    config = {"space": "tiny", "data": "digits", "budget": "2trials", "searchers": ["random"], "seed": 0}
    with RunDir.create(config, out=root / "run") as rundir:
        trained = train_supernet(
            load_space("tiny"),
            load_dataset("digits"),
            parse_budget("2steps"),
            rundir.supernet_dir,
            config=TrainConfig(batch_size=16),
            progress=False,
        )
        settings = EvalSettings(val_fraction=TrainConfig().val_fraction, data_seed=0)
        evaluator = SupernetEvaluator(trained.supernet, trained.train, trained.val, settings)
        for trial, arch in enumerate((ALL_BLOCKS, PLAIN)):
            cost = count(arch, 10)
            rundir.append(
                Record.for_arch(
                    arch,
                    trial=trial,
                    searcher="random",
                    seed=0,
                    status="ok",
                    acc=evaluator(arch)["acc"],
                    macs=cost.macs,
                    params=cost.params,
                    eval_seconds=0.1,
                    latency_pred_ms=1.5,
                )
            )
    return root / "run"


def random_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every batch norm non-trivial statistics and affine terms, so folding has work to do."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


def images(n: int = 3, res: int = 16) -> torch.Tensor:
    return torch.randn(n, 3, res, res, generator=torch.Generator().manual_seed(42))


# --- round trips -----------------------------------------------------------------------------------------


def test_inherited_export_round_trip(run, tmp_path):
    zoo = tmp_path / "zoo"
    entry = export_arch(run, PLAIN.id, "plain", zoo=zoo)
    assert sorted(p.name for p in entry.path.iterdir()) == ["arch.json", "card.json", "card.md", "weights.safetensors"]
    card = entry.card
    assert card["weights"]["source"] == "inherited" and card["accuracy"]["test"] is None
    # The exported weights score exactly what the search measured (same BN recalibration batches).
    assert card["accuracy"]["val_export"] == card["accuracy"]["val_search"]
    assert (card["params"], card["macs"]) == (count(PLAIN, 10).params, count(PLAIN, 10).macs)
    assert card["search"]["searcher"] == "random" and card["latency"]["predicted_ms"] == 1.5
    assert "inherited" in (entry.path / "card.md").read_text()
    rundir = RunDir.open(run)
    expected = export_mod._inherited_model(rundir, PLAIN, load_space("tiny"), load_dataset("digits"))[0]
    loaded = create_model("plain", pretrained=True, zoo=zoo)
    assert type(loaded).__name__ == "Net" and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(images()), expected(images()))
    with torch.no_grad():
        folded = create_model("plain", zoo=zoo, fold_bn=True)
        torch.testing.assert_close(folded(images()), expected(images()), atol=1e-5, rtol=1e-5)
    fresh = create_model("plain", pretrained=False, zoo=zoo)
    assert not torch.equal(fresh.classifier.weight, loaded.classifier.weight)


def test_retrained_weights_preferred_and_round_trip(run, tmp_path):
    folder = run / "retrain" / ALL_BLOCKS.id
    folder.mkdir(parents=True)
    try:
        torch.manual_seed(3)
        model = random_bn(build(ALL_BLOCKS, 10))
        save_file(model.state_dict(), folder / "weights.safetensors")
        unfinished = export_arch(run, ALL_BLOCKS.id, "unfinished", zoo=tmp_path)  # no result.json yet
        result = {"arch_id": ALL_BLOCKS.id, "num_classes": 10, "test_top1": 0.875, "epochs": 3, "weights": "ema"}
        (folder / "result.json").write_text(json.dumps(result))
        entry = export_arch(run, ALL_BLOCKS.id[:6], "all-blocks", zoo=tmp_path)  # a unique prefix will do
    finally:
        shutil.rmtree(run / "retrain")
    assert unfinished.card["weights"]["source"] == "inherited" and "not finished" in unfinished.card["weights"]["note"]
    assert entry.card["weights"]["source"] == "retrained" and entry.card["accuracy"]["test"] == 0.875
    assert entry.card["retrain"]["epochs"] == 3
    card_md = (entry.path / "card.md").read_text()
    assert "**retrained** (trained from scratch (epochs 3), ema weights)" in card_md and "| test top-1" in card_md
    with torch.no_grad():
        assert torch.equal(create_model("all-blocks", zoo=tmp_path)(images()), model(images()))


# --- ONNX ------------------------------------------------------------------------------------------------


def test_onnx_parity_with_attention_and_dynamic_conv(run, tmp_path):
    import onnxruntime as ort

    entry = export_arch(run, ALL_BLOCKS.id, "onnx-net", zoo=tmp_path, onnx=True)
    onnx = entry.card["onnx"]
    assert onnx["opset"] >= 17 and onnx["max_abs_diff"] <= onnx["tolerance"]
    assert entry.card["accuracy"]["val_export"] == entry.card["accuracy"]["val_search"]  # dynconv + attention too
    assert "max abs diff" in (entry.path / "card.md").read_text()
    session = ort.InferenceSession(str(entry.path / "model.onnx"), providers=["CPUExecutionProvider"])
    model = create_model("onnx-net", zoo=tmp_path)
    for batch in (1, 4):  # the batch axis is dynamic
        x = images(batch)
        with torch.no_grad():
            np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], model(x).numpy(), atol=1e-4)


class Unexportable(torch.nn.Module):
    def forward(self, x):
        return torch.special.bessel_j0(x)  # no ONNX symbolic at any opset


def test_onnx_failure_names_the_block(monkeypatch):
    raw = build(ALL_BLOCKS, 10).eval()
    assert onnx_bytes(raw, ALL_BLOCKS.resolution)  # the dynamic conv exports as it is (K plain depthwise convs)
    raw.stages[1][0].dw.act = Unexportable()
    with pytest.raises(NasbenchError, match=r"ONNX export failed in the model: .*bessel_j0"):
        onnx_bytes(raw, ALL_BLOCKS.resolution)  # the exporter names no scope here: no block is guessed

    def fail(*args, **kwargs):  # the exporter's shape errors name the failing value's module scope
        raise RuntimeError("Unsupported: ONNX export of convolution. scope: Net::/Sequential::stages.1/X::stages.1.0")

    monkeypatch.setattr(torch.onnx, "export", fail)
    with pytest.raises(NasbenchError, match=r"stage 2 layer 1 \(dynconv block\)"):
        onnx_bytes(raw, ALL_BLOCKS.resolution)


# --- folding ---------------------------------------------------------------------------------------------


def test_folded_model_gives_the_same_outputs():
    torch.manual_seed(0)
    model = random_bn(build(ALL_BLOCKS, 10))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, deployed = fold_bn(model), inference_model(model)
    assert count_bn(folded) == 1  # only the dynamic conv's norm stays
    assert all(isinstance(m.bn, torch.nn.Identity) for m in folded.modules() if isinstance(m, ConvBNAct))
    x = images(4)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(folded(x), ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(deployed(x), ref, atol=1e-5, rtol=1e-5)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # the input is untouched


# --- safe loading ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def entry_zoo(run, tmp_path_factory):
    zoo = tmp_path_factory.mktemp("entries")
    export_arch(run, PLAIN.id, "good", zoo=zoo)
    return zoo


def copy_entry(entry_zoo, tmp_path, name="copy"):
    shutil.copytree(entry_zoo / "good", tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("pickle_name", ["weights.pt", "extra.pkl", "pytorch_model.bin"])
def test_pickle_in_entry_is_refused(entry_zoo, tmp_path, pickle_name):
    folder = copy_entry(entry_zoo, tmp_path)
    (folder / pickle_name).write_bytes(b"\x80\x04not really")
    with pytest.raises(NasbenchError, match=f"{pickle_name}: pickle files can run code"):
        create_model("copy", zoo=tmp_path)


@pytest.mark.parametrize("field", ["params", "macs"])
def test_card_disagreeing_with_arch_is_corrupt(entry_zoo, tmp_path, field):
    folder = copy_entry(entry_zoo, tmp_path)
    card = json.loads((folder / "card.json").read_text())
    true = card[field]
    card[field] = true + 1
    (folder / "card.json").write_text(json.dumps(card))
    with pytest.raises(NasbenchError, match=f"corrupt: card.json records {field} {true + 1} but .* has {true}"):
        read_entry("copy", tmp_path)
    name, entry, error = list_entries(tmp_path)[0]
    assert name == "copy" and entry is None and "corrupt" in error


def test_tampered_weights_are_corrupt(entry_zoo, tmp_path):
    folder = copy_entry(entry_zoo, tmp_path)
    model = build(PLAIN, 10)
    save_file(model.state_dict(), folder / "weights.safetensors")
    with pytest.raises(NasbenchError, match="corrupt: weights.safetensors has SHA-256"):
        create_model("copy", zoo=tmp_path)
    assert create_model("copy", pretrained=False, zoo=tmp_path) is not None


# --- atomic writes ---------------------------------------------------------------------------------------


def test_failed_export_leaves_no_entry_and_keeps_the_old_one(run, entry_zoo, tmp_path, monkeypatch):
    zoo = tmp_path / "zoo"
    shutil.copytree(entry_zoo / "good", zoo / "kept")
    old_card = (zoo / "kept" / "card.json").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export_mod, "export_onnx", broken)  # fails after the weights and arch.json are written
    for name, force in (("new", False), ("kept", True)):
        with pytest.raises(RuntimeError, match="disk full"):
            export_arch(run, PLAIN.id, name, zoo=zoo, onnx=True, force=force)
    assert sorted(p.name for p in zoo.iterdir()) == ["kept"]  # no "new", no hidden temporary folders
    assert (zoo / "kept" / "card.json").read_text() == old_card


def test_existing_name_needs_force(run, entry_zoo, tmp_path):
    shutil.copytree(entry_zoo / "good", tmp_path / "good")
    with pytest.raises(NasbenchError, match="already exists; .* --force"):
        export_arch(run, ALL_BLOCKS.id, "good", zoo=tmp_path)
    entry = export_arch(run, ALL_BLOCKS.id, "good", zoo=tmp_path, force=True)
    assert entry.arch == ALL_BLOCKS and sorted(p.name for p in tmp_path.iterdir()) == ["good"]


# --- CLI -------------------------------------------------------------------------------------------------


def cli() -> typer.Typer:
    """The apps wired as the main CLI wires them: ``export`` nameless, ``zoo`` as a group."""
    app = typer.Typer()
    app.callback()(lambda: None)
    app.add_typer(export_app)
    app.add_typer(zoo_app, name="zoo")
    return app


def invoke(*args: str):
    return CliRunner().invoke(cli(), [str(a) for a in args])


def test_cli_export_list_show(run, tmp_path):
    out = invoke("export", run, "--arch", PLAIN.id, "--name", "cli-net", "--zoo", tmp_path, "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["name"] == "cli-net"
    rows = json.loads(invoke("zoo", "list", "--zoo", tmp_path, "--json").output)
    assert [r["name"] for r in rows] == ["cli-net"] and rows[0]["weights"] == "inherited"
    assert rows[0]["params"] == count(PLAIN, 10).params and rows[0]["acc_split"] == "val"
    shown = json.loads(invoke("zoo", "show", "cli-net", "--zoo", tmp_path, "--json").output)
    assert shown["card"]["arch"] == str(PLAIN)
    table = invoke("zoo", "list", "--zoo", tmp_path)
    assert table.exit_code == 0 and "cli-net" in table.output
    card = invoke("zoo", "show", "cli-net", "--zoo", tmp_path)
    assert card.exit_code == 0 and "# cli-net" in card.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("export", "{tmp}/nowhere", "--arch", "abc", "--name", "x"), "does not exist"),
        (("export", "{run}", "--arch", "ffffffffff", "--name", "x"), "arch id 'ffffffffff' is not in run .*e.g. "),
        (("export", "{run}", "--arch", PLAIN.id, "--name", "../evil"), "zoo name '../evil' is not valid"),
        (("zoo", "show", "missing"), "no zoo entry 'missing'"),
        (("zoo", "show", "bad name!"), "is not valid"),
    ],
)
def test_cli_errors_are_one_sentence(run, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, run=run) for a in args] + ["--zoo", str(tmp_path)]
    out = invoke(*args)
    assert isinstance(out.exception, NasbenchError), out.output
    assert len(str(out.exception).splitlines()) == 1
    assert re.search(message, str(out.exception))


def test_zoo_list_empty(tmp_path):
    out = invoke("zoo", "list", "--zoo", tmp_path / "none")
    assert out.exit_code == 0 and "no entries" in " ".join(out.output.split())  # rich wraps long paths
    assert json.loads(invoke("zoo", "list", "--zoo", tmp_path, "--json").output) == []
