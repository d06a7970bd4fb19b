"""``nasbench search`` end to end on the tiny space and digits: records, budget, outputs, resume, errors."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest

from nasbench.cli import main
from nasbench.errors import NasbenchError
from nasbench.runs import RunDir
from nasbench.search.base import NOT_EVALUATED

FAST = [
    "--calibration",
    "4",
    "--space",
    "tiny",
    "--data",
    "digits",
    "--train-budget",
    "4steps",
    "--batch-size",
    "16",
    "--proximal-steps",
    "4",
    "--targets",
    "2",
    "--concurrency",
    "1",
]


def nasbench(*args, **kw):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "nasbench", *args], capture_output=True, text=True, env=env, **kw)


def wait_for_records(journal: Path, n: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if journal.is_file() and len([x for x in journal.read_text().splitlines() if x.strip()]) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"search ended before {n} records: {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {n} records within {timeout} s")


def test_killed_search_resumes_without_losing_or_repeating_evaluations(tmp_path):
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "nasbench",
        "search",
        *FAST,
        "--budget",
        "6trials",
        "--searcher",
        "proximal,random",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    try:
        wait_for_records(out / "records.jsonl", 1, proc, timeout=300)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the search and any worker it started
        proc.wait()
    before = RunDir.open(out).records()
    resumed = nasbench("search", "--resume", str(out), timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = RunDir.open(out).records()
    key = ["searcher", "trial"]
    kept = before.merge(after, on=key, suffixes=("", "_after"))
    assert len(kept) == len(before), "a completed evaluation was lost"
    assert (kept.arch_id == kept.arch_id_after).all()
    assert not after.duplicated(key).any()
    ok = after[after.status == "ok"]
    assert not ok.duplicated(["searcher", "arch_id"]).any(), "an evaluation was repeated"
    # the finished run: both searchers within their share of the 6 trials, valid records, every output
    assert set(after.searcher) == {"proximal", "random"}
    assert (after.groupby("searcher").size() <= 3).all()
    assert ok.acc.between(0, 1).all() and (ok.macs > 0).all() and (ok.params > 0).all()
    for name in ("records.parquet", "pareto.csv", "pareto.png", "summary.md", "optuna.db"):
        assert (out / name).is_file(), name
    assert len(pd.read_parquet(out / "records.parquet")) == len(after)
    front = json.loads(nasbench("pareto", str(out), "--json", timeout=120).stdout)
    assert front and set(row["arch_id"] for row in front) <= set(ok.arch_id)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--budget", "10parsecs"], "budget"),
        (["--budget", "6trials", "--searcher", "grid"], "unknown searcher grid"),
        (["--budget", "2min", "--objectives", "acc,latency"], "--latency-table"),
        (["--budget", "6trials", "--train-budget", None], "--train-budget"),
        (["--budget", "6trials", "--device", "tpu"], "--device 'tpu' is not a device"),
        (["--budget", "6trials", "--device", "cpu:3"], "only cpu and cuda"),
        (["--budget", "6trials", "--gpus-per-trial", "1.5"], "--gpus-per-trial"),
    ],
)
def test_bad_search_input_exits_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    base = ["--space", "tiny", "--data", "digits", "--train-budget", "4steps"]
    if None in args:
        base = base[:4]
        args = args[:2]
    with pytest.raises(SystemExit) as e:
        main(["search", *base, *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_nsga2_receives_constraint_values_in_a_real_search(tmp_path):
    """``--max-macs`` reaches NSGA-II as constraint values; over-limit archs are infeasible records, not
    failures, never evaluated (their MACs are known), told with the quality floor: constrained domination
    ranks them by their violation."""
    out, limit = tmp_path / "run", 5e6
    args = ["search", *FAST, "--budget", "8trials", "--searcher", "nsga2", "--max-macs", str(limit)]
    with pytest.raises(SystemExit) as e:
        main([*args, "--out", str(out), "--json"])
    assert e.value.code == 0
    records = RunDir.open(out).records()
    study = optuna.load_study(study_name="nsga2-seed0-score+macs", storage=f"sqlite:///{out / 'optuna.db'}")
    trials = {t.number: t for t in study.trials}
    assert len(records) == 8 and set(records.status) <= {"ok", "infeasible", "failed"}
    assert (records.status == "infeasible").any() and (records.status == "ok").any()
    for r in records.itertuples():
        t = trials[r.trial]
        if r.status == "failed":
            assert t.state.name == "FAIL"
            continue
        assert t.state.name == "COMPLETE" and t.values[1] == r.macs
        assert t.constraints == {"macs": pytest.approx(r.macs / limit - 1.0)}
        assert (t.constraints["macs"] > 0) == (r.status == "infeasible") == (r.macs > limit)
        if r.status == "infeasible":
            assert t.values[0] == NOT_EVALUATED and r.error.startswith("macs over its limit")
            assert r.error.endswith("not evaluated")


def test_device_is_a_stored_setting_and_trials_share_a_gpu_on_cuda():
    import torch

    from nasbench.pipeline.config import SearchConfig, search_config
    from nasbench.pipeline.run import trial_resources

    config = search_config({"space": "tiny", "data": "digits", "budget": "6trials", "device": "cpu"})
    assert config.device == "cpu" and SearchConfig("tiny", "digits", "1min").device is None  # None: auto
    assert trial_resources(torch.device("cpu"), 4) == {"cpu": 1}
    assert trial_resources(torch.device("cuda"), 4) == {"cpu": 1, "gpu": 0.25}
    assert trial_resources(torch.device("cuda:1"), 4, 0.5) == {"cpu": 1, "gpu": 0.5}


def test_a_resumed_search_trains_its_supernet_with_the_recipe_it_was_started_with(tmp_path):
    """A search whose supernet predates a change of the defaults (here the teacher's resolution) continues
    and evaluates it as it was trained, instead of asking for today's default and being refused."""
    from nasbench.pipeline.config import SearchConfig
    from nasbench.pipeline.run import train_config
    from nasbench.training import TrainConfig
    from nasbench.training.rundir import CONFIG_FILE, RUN_KIND

    config = SearchConfig(space="tiny", data="digits", budget="2min", batch_size=16)
    fresh = train_config(config, tmp_path)  # no supernet yet: the default recipe at the search's batch size
    assert fresh == TrainConfig(batch_size=16) and fresh.teacher_resolution == "cycle"
    older = {k: v for k, v in TrainConfig(batch_size=16).to_dict().items() if k != "teacher_resolution"}
    (tmp_path / CONFIG_FILE).write_text(json.dumps({"identity": {"kind": RUN_KIND, "config": older}}))
    resumed = train_config(config, tmp_path)
    assert resumed.teacher_resolution == "largest" and resumed.batch_size == 16  # what that run did


def test_a_damaged_study_is_rebuilt_from_the_journal_on_resume(tmp_path, capsys):
    """The journal is the record of truth: a resumed run whose optuna.db is damaged says so in one line,
    moves it aside, rebuilds the study from its records (same trial numbers, values and constraints) and
    finishes with every completed record kept."""
    from nasbench.spaces import load_space

    out = tmp_path / "run"
    args = ["search", *FAST, "--budget", "8trials", "--searcher", "nsga2", "--max-macs", "5e6", "--out", str(out)]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0
    journal = out / "records.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-3]))  # killed before its last three records
    kept = RunDir.open(out).records()
    (out / "optuna.db").write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    for stale in ("optuna.db-wal", "optuna.db-shm"):
        (out / stale).unlink(missing_ok=True)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["search", "--resume", str(out)])
    assert e.value.code == 0
    err = " ".join(capsys.readouterr().err.split())
    assert "optuna.db was damaged" in err and "rebuilt from the run's records" in err
    assert (out / "optuna.db.damaged").is_file()
    after = RunDir.open(out).records()
    assert len(after) == 8 and after.iloc[: len(kept)][["trial", "arch_id", "status"]].equals(
        kept[["trial", "arch_id", "status"]]
    )
    study = optuna.load_study(study_name="nsga2-seed0-score+macs", storage=f"sqlite:///{out / 'optuna.db'}")
    trials = {t.number: t for t in study.get_trials()}
    for r in after.itertuples():
        t = trials[r.trial]
        assert t.params and load_space("tiny").decode(t.params).id == r.arch_id
        if r.status == "ok":
            assert t.state.name == "COMPLETE" and t.values == [r.score, r.macs]


def test_searchers_take_their_settings_as_constructor_arguments():
    """Settings parsed once, into the searcher's constructor (as Optuna's samplers take theirs), and a bad
    one refused in one line before anything runs."""
    from nasbench.pipeline.config import SearchConfig
    from nasbench.search.proximal import ProximalConfig
    from nasbench.search.proximal_searcher import TARGETS, ProximalSearcher
    from nasbench.search.trials import NSGA2Searcher

    built = SearchConfig("tiny", "digits", "1min", proximal_targets=3, proximal_steps=7).searcher("proximal")
    assert isinstance(built, ProximalSearcher) and (built.targets, built.steps) == (3, 7)
    default = SearchConfig("tiny", "digits", "1min").searcher("proximal")
    assert (default.targets, default.steps) == (TARGETS, ProximalConfig.steps)
    assert isinstance(SearchConfig("tiny", "digits", "1min").searcher("nsga2"), NSGA2Searcher)
    with pytest.raises(NasbenchError, match="--targets must be at least 1, got 0"):
        SearchConfig("tiny", "digits", "1min", proximal_targets=0).check()
