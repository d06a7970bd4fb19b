"""Retraining from scratch: winner picking, recipe pieces, a tiny end-to-end run, resume after SIGKILL, CLI.

Models are the ``tiny`` space at 16 px on ``digits``, batch 32, a handful of steps, one CPU thread.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from typer.testing import CliRunner

from nasbench import load_space
from nasbench.budget import STEPS, Budget
from nasbench.build import build
from nasbench.cli import app
from nasbench.counting import count
from nasbench.data import load_dataset
from nasbench.errors import NasbenchError
from nasbench.retrain import (
    Job,
    RetrainConfig,
    WeightEma,
    mix_batch,
    pick_winners,
    resolve_budget,
    retrain_data,
    retrain_model,
    retrain_run,
)
from nasbench.runs import Record, RunDir, records_frame

SMALL = RetrainConfig(batch_size=32, checkpoint_every=4, timing_steps=2)


def make_run(path, n=8, seed=0):
    """A run folder of ``n`` hand-made records of tiny-space archs at 16 px (no search)."""
    space = load_space("tiny")
    run = RunDir.create({"space": "tiny", "data": "digits", "seed": 0, "budget": "1min"}, out=path)
    rng = np.random.default_rng(seed)
    for i in range(n):
        arch = space.sample(i).with_resolution(16)
        cost = count(arch, 10)
        acc = float(rng.uniform(0.3, 0.9))
        searcher = ("random", "nsga2")[i % 2]
        run.append(
            Record.for_arch(
                arch,
                trial=i,
                searcher=searcher,
                seed=0,
                status="ok",
                macs=cost.macs,
                params=cost.params,
                eval_seconds=0.1,
                acc=acc,
            )
        )
    run.close()
    return path


# --- picking ----------------------------------------------------------------------------------------------


def _frame(points):
    rows = []
    for i, (acc, macs) in enumerate(points):
        rows.append(
            {
                "run_id": "r",
                "trial": i,
                "searcher": "s",
                "seed": 0,
                "arch_id": f"a{i}",
                "arch": "",
                "arch_json": "",
                "resolution": 16,
                "status": "ok",
                "error": "",
                "acc": acc,
                "macs": macs,
                "params": 1,
                "latency_pred_ms": None,
                "latency_ms": None,
                "eval_seconds": 0.0,
                "finished_at": 0.0,
                "extra": "{}",
            }
        )
    return records_frame(rows)


def test_winners_spread_along_front_ends_included():
    front = [(0.1 * i, 10**i) for i in range(1, 10)]  # 9 points on the front, MACs spanning decades
    dominated = [(0.05, 10**5), (0.2, 10**8)]
    picked = pick_winners(_frame(front + dominated), 3)
    assert list(picked["arch_id"]) == ["a0", "a4", "a8"]  # both ends and the middle (log MACs)
    assert len(pick_winners(_frame(front), 20)) == 9


def test_winners_count_an_arch_once():
    records = _frame([(0.5, 100), (0.9, 1000)])
    records = pd.concat([records, records.assign(searcher="t", acc=[0.6, 0.8])], ignore_index=True)
    picked = pick_winners(records, 5)
    assert sorted(picked["arch_id"]) == ["a0", "a1"]
    assert list(picked.sort_values("macs")["acc"]) == [0.6, 0.9]  # the best accuracy of each


def test_pick_errors():
    with pytest.raises(NasbenchError, match="at least 1"):
        pick_winners(_frame([(0.5, 100)]), 0)
    with pytest.raises(NasbenchError, match="no successful"):
        pick_winners(_frame([(0.5, 100)]).assign(status="failed"), 1)


# --- recipe pieces ----------------------------------------------------------------------------------------


def test_ema_warms_up_and_tracks_floats_only():
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = WeightEma(model, decay=0.99)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.99
    before = ema.module[0].weight.clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked.fill_(7)
    ema.update(model, step=0)  # decay 0.1: 90% of the way to the model
    assert torch.allclose(ema.module[0].weight, before + 0.9)
    assert int(ema.module[1].num_batches_tracked) == 7
    assert not any(p.requires_grad for p in ema.module.parameters())


@pytest.mark.parametrize("mixup,cutmix", [(0.2, 0.0), (0.0, 1.0), (0.4, 0.4)])
def test_mixup_cutmix_keep_label_mass(mixup, cutmix):
    config = RetrainConfig(mixup_alpha=mixup, cutmix_alpha=cutmix)
    images = torch.randn(8, 3, 16, 16)
    targets = torch.nn.functional.one_hot(torch.arange(8) % 5, 5).float()
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        mixed, soft = mix_batch(images, targets, config, generator)
        assert mixed.shape == images.shape
        assert torch.allclose(soft.sum(1), torch.ones(8))  # each row is still a distribution
        assert torch.allclose(soft.sum(0), targets.sum(0))  # pairs with the reversed batch: no class gains mass
    again, _ = mix_batch(images, targets, config, torch.Generator().manual_seed(0))
    first, _ = mix_batch(images, targets, config, torch.Generator().manual_seed(0))
    assert torch.equal(again, first)  # only the given generator is drawn from


def test_mixing_off_is_identity():
    images, targets = torch.randn(4, 3, 8, 8), torch.eye(4)
    out, soft = mix_batch(images, targets, RetrainConfig(), torch.Generator())
    assert out is images and soft is targets


def test_recipe_and_budget_errors():
    with pytest.raises(NasbenchError, match="optimizer"):
        RetrainConfig(optimizer="lbfgs")
    with pytest.raises(NasbenchError, match="drop_path"):
        RetrainConfig(drop_path=1.5)
    with pytest.raises(NasbenchError, match="not both"):
        resolve_budget("10min", 3)
    assert str(resolve_budget(None, 3)) == "3epochs" and str(resolve_budget("20min", None)) == "20min"


# --- end to end ---------------------------------------------------------------------------------------------


def test_retrain_run_end_to_end(tmp_path, monkeypatch):
    run = make_run(tmp_path / "run")
    report = retrain_run(run, top=1, budget=Budget(STEPS, 6), baselines=["tiny_ref"], config=SMALL, progress=False)
    folders = sorted(p for p in (run / "retrain").iterdir() if p.is_dir())
    assert len(folders) == 2
    results = {json.loads((f / "result.json").read_text())["role"]: f for f in folders}
    assert set(results) == {"winner", "baseline"}
    for role, folder in results.items():
        result = json.loads((folder / "result.json").read_text())
        assert result["arch_id"] == folder.name and result["steps"] == 6 and result["recipe"] == SMALL.to_dict()
        assert 0.0 <= result["test_top1"] <= 1.0 and result["test_images"] == 360
        assert (result["supernet_acc"] is None) == (role == "baseline")
        assert (result["reference"] == "tiny_ref") == (role == "baseline")
        model = build(Job(json.dumps(result["arch_json"]), result["arch_id"], role).arch, 10)
        model.load_state_dict(load_file(folder / "weights.safetensors"))  # exactly build(arch)'s keys
        assert count(model.arch, 10).macs == result["macs"]
        assert not (folder / "checkpoint.pt").exists()
    assert "kendall_tau" in report and report["winners"] == 1
    assert (run / "retrain" / "report.csv").is_file() and "Kendall" in (run / "retrain" / "report.md").read_text()
    assert json.loads((run / "retrain" / "report.json").read_text())["equal_macs"][0]["baseline"] == "tiny_ref"
    finished = {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()}

    def no_training(*args, **kwargs):
        raise AssertionError("a finished model was trained again")

    with monkeypatch.context() as patch:  # finished models are skipped: nothing trains, no file is touched
        patch.setattr("nasbench.retrain.train.run_steps", no_training)
        again = retrain_run(run, top=1, budget=Budget(STEPS, 6), baselines=["tiny_ref"], config=SMALL, progress=False)
    assert again["rows"] == report["rows"]
    assert {p: p.stat().st_mtime_ns for f in folders for p in f.iterdir()} == finished
    with pytest.raises(NasbenchError, match="other settings"):  # the finished result is not reused for 7 steps
        retrain_run(run, top=1, budget=Budget(STEPS, 7), baselines=["tiny_ref"], config=SMALL, progress=False)
    assert (results["winner"] / "result.json").is_file()  # and nothing stored was deleted


# --- resume after SIGKILL -----------------------------------------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys, time, torch
    torch.set_num_threads(1)
    import nasbench.training.steps as steps
    from tests.test_retrain import resume_case
    save = steps.save_checkpoint
    def slow_save(*args, **kwargs):  # leaves the test time to kill it right after a checkpoint
        save(*args, **kwargs)
        time.sleep(30)
    steps.save_checkpoint = slow_save
    resume_case(sys.argv[1])
    """
)


def resume_case(out):
    """The model both the killed and the uninterrupted runs train (also run by the subprocess)."""
    dataset = load_dataset("digits")
    train, test = retrain_data(dataset)
    arch = load_space("tiny").reference("tiny_ref").with_resolution(16)
    job = Job(arch.to_json(), arch.id, "baseline", reference="tiny_ref")
    config = replace(SMALL, mixup_alpha=0.2, cutmix_alpha=0.2)  # every generator in play
    return retrain_model(job, train, test, 10, Budget(STEPS, 10), out, config=config, seed=3)


def test_resume_after_sigkill_matches_uninterrupted(tmp_path):
    killed = tmp_path / "killed"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(killed)], cwd=root)
    deadline = time.monotonic() + 180  # generous: the worker imports torch and loads data on a busy machine
    while not (killed / "checkpoint.pt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the worker never checkpointed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "result.json").exists()
    resumed = resume_case(killed)
    assert resumed["resumed_at"] == 4
    whole = resume_case(tmp_path / "whole")
    assert whole["resumed_at"] is None
    a, b = load_file(killed / "weights.safetensors"), load_file(tmp_path / "whole" / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_top1"] == whole["test_top1"]


# --- CLI ------------------------------------------------------------------------------------------------------


def _cli(*args):
    return CliRunner().invoke(app, ["retrain", *map(str, args)])


def test_cli_errors(tmp_path):
    result = _cli(tmp_path / "nope", "--top", 1)
    assert result.exit_code == 2 and "does not exist" in result.output
    empty = tmp_path / "empty"
    RunDir.create({"space": "tiny", "data": "digits", "seed": 0}, out=empty).close()
    result = _cli(empty, "--top", 1)
    assert result.exit_code == 2 and "no records" in result.output
    run = make_run(tmp_path / "run", n=3)
    result = _cli(run, "--top", 0)
    assert result.exit_code == 2 and "--top must be at least 1" in result.output
    result = _cli(run, "--top", 1, "--baselines", "b7")
    assert result.exit_code == 2 and "no reference 'b7'" in result.output and "tiny_ref" in result.output
    result = _cli(run, "--top", 1, "--epochs", 2, "--budget", "1min")
    assert result.exit_code == 2 and "not both" in result.output
    assert not (run / "retrain").exists() or not any((run / "retrain").glob("*/plan.json"))


@pytest.mark.slow
def test_parallel_ray_trials_match_the_report(tmp_path):
    run = make_run(tmp_path / "run", n=6)
    report = retrain_run(run, top=1, budget=Budget(STEPS, 3), config=SMALL, parallel=2, progress=False)
    assert {r["role"] for r in report["rows"]} == {"winner", "baseline"}
    assert all((run / "retrain" / r["arch_id"] / "weights.safetensors").is_file() for r in report["rows"])


def test_a_short_front_is_filled_from_the_next_layer():
    import pandas as pd

    from nasbench.retrain.pick import pick_winners

    rows = [("a", 0.9, 100), ("b", 0.5, 10), ("c", 0.8, 200), ("d", 0.4, 50), ("e", 0.3, 300)]
    records = pd.DataFrame([{"arch_id": i, "acc": acc, "macs": macs, "status": "ok"} for i, acc, macs in rows])
    picked = pick_winners(records, 3)
    assert list(picked.arch_id[:2]) == ["b", "a"]  # the front first
    assert len(picked) == 3 and picked.arch_id.iloc[2] in {"c", "d"}  # then the next layer
    assert len(pick_winners(records, 10)) == 5
