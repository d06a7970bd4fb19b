"""Every command's CUDA path, end to end on the tiny space and digits (``-m gpu``; skipped without CUDA).

The CPU tests cover the same code; these check that nothing on the way mixes devices (the alphas of the
proximal searcher, the evaluator in Ray's workers, BN recalibration, export) and that a time budget holds
on a GPU, whose first steps are slow.
"""

import json
import os
import subprocess
import sys

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def nasbench(*args, timeout=900):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "nasbench", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A search on CUDA with the proximal searcher and random trials sharing the GPU through Ray."""
    out = tmp_path_factory.mktemp("gpu") / "run"
    args = ["--space", "tiny", "--data", "digits", "--budget", "6trials", "--train-budget", "20steps"]
    args += ["--searcher", "proximal,random", "--batch-size", "32", "--proximal-steps", "8", "--targets", "2"]
    nasbench("search", *args, "--concurrency", "2", "--device", "cuda", "--out", str(out), "--json")
    return out


def test_search_on_cuda_records_both_searchers(run):
    from nasbench.runs import RunDir

    handle = RunDir.open(run)
    records = handle.records()
    ok = records[records.status == "ok"]
    assert set(ok.searcher) == {"proximal", "random"}, records[["searcher", "status", "error"]]
    assert ok.acc.between(0, 1).all() and handle.config["device"] == "cuda"
    environment = json.loads((handle.supernet_dir / "train_config.json").read_text())["environment"]
    assert environment["device"].startswith("cuda") and environment["autocast"] == "bf16"


def test_export_and_retrain_on_cuda(run, tmp_path):
    from nasbench.runs import RunDir

    records = RunDir.open(run).records()
    arch = records[records.status == "ok"].iloc[0]["arch_id"]
    entry = json.loads(nasbench("export", str(run), "--arch", arch, "--name", "g", "--zoo", str(tmp_path), "--json",
                                "--device", "cuda").stdout)  # fmt: skip
    assert entry["card"]["weights"]["source"] == "inherited" and 0 <= entry["card"]["accuracy"]["val_export"] <= 1
    report = json.loads(nasbench("retrain", str(run), "--top", "1", "--budget", "3steps", "--device", "cuda",
                                 "--no-progress", "--json").stdout)  # fmt: skip
    assert report["rows"] and all(0 <= row["test_top1"] <= 1 for row in report["rows"])


def test_train_supernet_on_cuda_holds_a_time_budget(tmp_path):
    out = tmp_path / "supernet"
    args = ["--space", "tiny", "--data", "digits", "--budget", "20s", "--batch-size", "64", "--out", str(out)]
    summary = json.loads(nasbench("train-supernet", *args, "--device", "cuda", "--no-progress", "--json").stdout)
    assert summary["steps"] > 1 and 0 <= summary["largest"]["top1"] <= 1
    result = json.loads((out / "train_result.json").read_text())
    assert result["session_seconds"] <= result["session_spent"] <= 1.1 * 20
    assert abs(result["session_spent"] - result["session_wall_seconds"]) <= 0.1 * result["session_wall_seconds"]


def test_latency_measure_on_cuda():
    info = json.loads(nasbench("latency", "measure", "smallest", "--space", "tiny", "--device", "cuda",
                               "--repeats", "10", "--json").stdout)  # fmt: skip
    assert info["context"]["device"] == "cuda" and info["latency"]["median_ms"] > 0


def test_proximal_keeps_alphas_and_steps_on_the_supernet_device():
    import nasbench
    from nasbench.data import load_dataset, search_data
    from nasbench.objectives.expected import expected_macs
    from nasbench.search.proximal import ProximalConfig, ProximalSearch
    from nasbench.supernet import Supernet

    space = nasbench.load_space("tiny")
    net = Supernet(space, 10).cuda().to(memory_format=torch.channels_last)
    train, val = search_data(load_dataset("digits"), 0.1, 0, device=torch.device("cuda"))
    search = ProximalSearch(
        space, net, train, val, expected_macs(space, 10), config=ProximalConfig(steps=3, batch_size=16), seed=0
    )
    assert all(a.device.type == "cuda" for a in search.init_alpha(0).values())
    run = search.search_target(0, expected_macs(space, 10).exact(space.largest()) / 2, lambda: False)
    assert len(run.visits) == 3 and run.final is not None


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="data-parallel on CUDA needs two GPUs")
def test_train_supernet_on_two_gpus_with_nccl(tmp_path):
    """Issue 12's CUDA path: two ranks, one GPU each, DDP over NCCL, synchronised batch norm, bf16."""
    out = tmp_path / "two"
    args = ["--space", "tiny", "--data", "digits", "--budget", "20steps", "--batch-size", "32", "--out", str(out)]
    args += ["--workers", "2", "--batch-norm", "sync", "--device", "cuda", "--no-progress", "--json"]
    summary = json.loads(nasbench("train-supernet", *args).stdout)
    assert summary["steps"] == 20 and summary["workers"] == 2 and 0 <= summary["largest"]["top1"] <= 1
    record = json.loads((out / "train_config.json").read_text())
    assert record["identity"]["parallel"]["global_batch"] == 64 and record["environment"]["autocast"] == "bf16"
