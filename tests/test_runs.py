"""The run folder: config, crash-safe records, resume helpers, outputs and ``nasbench pareto``."""

import ast
import dataclasses
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import nasbench
from nasbench.cli.runs import app as runs_app
from nasbench.errors import NasbenchError
from nasbench.runs import SCHEMA, Record, RunDir, make_run_id, outputs, run_front

CONFIG = {"space": "tiny", "data": "digits", "budget": "300trials", "searchers": ["random", "nsga2"], "seed": 0}


def rec(trial, searcher="random", acc=0.5, macs=1000, status="ok", **kw):
    fields = dict(
        trial=trial,
        searcher=searcher,
        seed=0,
        arch_id=kw.pop("arch_id", f"{searcher[:2]}{trial:04d}"),
        arch=f"arch-{trial}",
        arch_json="{}",
        resolution=32,
        status=status,
        macs=macs,
        params=macs // 10 if macs is not None else None,
        eval_seconds=0.1,
        acc=acc if status == "ok" else math.nan,
        error="" if status == "ok" else "boom",
    )
    fields.update(kw)
    return Record(**fields)


@pytest.fixture
def run(tmp_path):
    with RunDir.create(CONFIG, out=tmp_path / "run", run_id="test-run") as r:
        yield r


def fill(run):
    """Two searchers; the front over (acc, macs) is r0001, ns0002, r0003."""
    run.append(rec(0, acc=0.50, macs=200))
    run.append(rec(1, acc=0.60, macs=100))
    run.append(rec(2, acc=0.00, macs=50, status="failed"))
    run.append(rec(3, acc=0.90, macs=400, latency_ms=3.0))
    run.append(rec(0, "nsga2", acc=0.55, macs=300, latency_pred_ms=2.0))
    run.append(rec(1, "nsga2", acc=0.50, macs=500, extra={"target": 1e6}))
    run.append(rec(2, "nsga2", acc=0.70, macs=150))
    run.append(rec(3, "nsga2", acc=0.40, macs=10**9, status="infeasible"))


# --- records ----------------------------------------------------------------------------------------


def test_record_rejects_inconsistent_fields():
    with pytest.raises(ValueError, match="acc in"):
        rec(0, acc=1.5)
    with pytest.raises(ValueError, match="no accuracy"):
        dataclasses.replace(rec(0, status="failed"), acc=0.3)
    with pytest.raises(ValueError, match="status"):
        rec(0, status="done")
    with pytest.raises(ValueError, match="error saying why"):
        rec(0, status="failed", error="")
    with pytest.raises(ValueError, match="int"):
        rec(0, macs=1.5)


def test_costs_may_be_unknown_only_for_failed_records(run):
    with pytest.raises(ValueError, match="needs its macs"):
        rec(0, macs=None)
    run.append(rec(0, status="failed", macs=math.nan, params=None))
    run.append({**dataclasses.asdict(rec(1, macs=np.int64(7), acc=np.float32(0.5))), "params": np.int64(3)})
    df = run.records()
    assert df["macs"].isna().tolist() == [True, False] and df["params"].isna().tolist() == [True, False]
    assert (df.loc[1, "macs"], df.loc[1, "params"], df.loc[1, "acc"]) == (7, 3, 0.5)
    assert str(df["macs"].dtype) == "Int64"


def test_record_for_arch_fills_the_architecture():
    arch = nasbench.load_space("tiny").sample(3)
    r = Record.for_arch(
        arch, trial=0, searcher="random", seed=1, status="ok", macs=5, params=6, eval_seconds=0.0, acc=1
    )
    assert (r.arch_id, nasbench.Arch.parse(r.arch), r.resolution) == (arch.id, arch, arch.resolution)
    assert nasbench.Arch.from_json(r.arch_json) == arch


def test_run_id_and_config(tmp_path):
    run_id = make_run_id("efficientnet", "../data/cifar10", suffix="ab12")
    assert run_id.endswith("-efficientnet-cifar10-ab12") and len(run_id.split("-")[0]) == 8
    with RunDir.create(CONFIG, root=tmp_path) as r:
        assert r.path.parent == tmp_path and r.run_id.split("-")[2:4] == ["tiny", "digits"]
        assert json.loads((r.path / "config.json").read_text())["config"] == CONFIG


def test_run_dir_names_every_file_of_the_run(run):
    names = {
        "config_file": "config.json",
        "journal_file": "records.jsonl",
        "parquet_file": "records.parquet",
        "pareto_csv": "pareto.csv",
        "pareto_png": "pareto.png",
        "summary_file": "summary.md",
        "state_file": "search_state.json",
        "supernet_dir": "supernet",
        "ray_dir": "ray_tmp",
        "tune_dir": "tune",
        "optuna_db": "optuna.db",
        "retrain_dir": "retrain",
        "lock_file": ".lock",
    }
    assert {attr: getattr(run, attr).relative_to(run.path).as_posix() for attr in names} == names
    assert sorted(p.name for p in run.path.iterdir()) == [".lock", "config.json", "records.jsonl"]
    assert run.journal.path == run.journal_file
    fill(run)
    paths = run.write_outputs(["acc", "macs"])
    assert paths == {
        "records": run.parquet_file,
        "pareto_csv": run.pareto_csv,
        "pareto_png": run.pareto_png,
        "summary": run.summary_file,
    }
    assert all(p.is_file() for p in paths.values()) and not list(run.path.glob(".*.tmp"))


def test_search_state_round_trips_atomically(run):
    assert run.read_state() == {"spent": {}} and not run.state_file.exists()
    state = {"spent": {"random": 12.5, "nsga2": 3.0}, "note": "x"}
    run.write_state(state)
    assert run.read_state() == state and RunDir.open(run.path).read_state() == state
    run.write_state({"spent": {"random": 13.0}})
    assert run.read_state() == {"spent": {"random": 13.0}} and not list(run.path.glob(".*.tmp"))


def test_records_have_the_schema_also_when_empty(run):
    empty = run.records()
    assert list(empty.columns) == list(SCHEMA) and empty.empty
    assert {c: str(t) for c, t in empty.dtypes.items()} == SCHEMA
    fill(run)
    df = run.records()
    assert {c: str(t) for c, t in df.dtypes.items()} == SCHEMA
    assert len(df) == 8 and set(df["run_id"]) == {"test-run"}
    assert math.isnan(df.loc[2, "acc"]) and df.loc[2, "error"] == "boom"
    assert json.loads(df.loc[5, "extra"]) == {"target": 1e6}
    assert df.loc[3, "latency_ms"] == 3.0 and math.isnan(df.loc[3, "latency_pred_ms"])


def test_resume_helpers_neither_lose_nor_repeat(run):
    fill(run)
    with pytest.raises(ValueError, match="already recorded"):
        run.append(rec(1, "nsga2"))
    run.close()
    with RunDir.resume(run.path, CONFIG) as again:
        assert again.completed_trials("random") == {0, 1, 2, 3}
        assert again.next_trial("random") == 4 and again.next_trial("tpe") == 0
        assert again.has_evaluated("ns0002", "nsga2") and not again.has_evaluated("ns0002", "random")
        with pytest.raises(ValueError, match="already recorded"):
            again.append(rec(3, "random"))
        again.append(rec(4, "random"))
    assert len(RunDir.open(run.path).records()) == 9


def test_resume_refuses_a_different_config_and_a_second_writer(run):
    with pytest.raises(NasbenchError, match="budget: '300trials' there, '10gpu-h' now"):
        RunDir.resume(run.path, {**CONFIG, "budget": "10gpu-h"})
    with pytest.raises(NasbenchError, match="in use by another"):
        RunDir.resume(run.path)
    run.close()
    # Tuples and lists are the same configuration once written as JSON.
    RunDir.resume(run.path, {**CONFIG, "searchers": ("random", "nsga2")}).close()
    with pytest.raises(NasbenchError, match="not empty; pass --resume"):
        RunDir.create(CONFIG, out=run.path)
    with pytest.raises(RuntimeError, match="read-only"):
        RunDir.open(run.path).append(rec(0))


def test_torn_last_line_is_ignored_then_cut(run):
    fill(run)
    run.close()
    with open(run.journal.path, "ab") as f:
        f.write(b'{"run_id":"test-run","trial":9,"sear')
    with pytest.warns(UserWarning, match="torn last line"):
        assert len(RunDir.open(run.path).records()) == 8
    with pytest.warns(UserWarning, match="removing a torn"), RunDir.resume(run.path) as again:
        again.append(rec(9))
    assert RunDir.open(run.path).records()["trial"].tolist()[-1] == 9


def test_a_complete_last_record_without_its_newline_is_kept_and_resumed(run):
    """A process stopped between a record and its newline left a valid record: nothing may drop it."""
    import warnings

    fill(run)
    run.close()
    before = RunDir.open(run.path).records()[["searcher", "trial"]].values.tolist()
    data = run.journal.path.read_bytes()
    assert data.endswith(b"\n")
    run.journal.path.write_bytes(data[:-1])  # the last of the 8 records, whole, without its newline
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "torn line" warning either: the record is whole
        assert len(RunDir.open(run.path).records()) == 8
        with RunDir.resume(run.path) as again:
            again.append(rec(9))
    records = RunDir.open(run.path).records()
    assert len(records) == 9 and records[["searcher", "trial"]].values.tolist() == [*before, ["random", 9]]
    assert run.journal.path.read_bytes().count(b"\n") == 9


def test_damaged_middle_line_is_a_clear_error(run):
    fill(run)
    text = run.journal.path.read_text().splitlines()
    text[2] = text[2][:10]
    run.journal.path.write_text("\n".join(text) + "\n")
    with pytest.raises(NasbenchError, match="line 3 is not valid JSON"):
        run.records()


def test_checkpoint_writes_parquet_with_the_schema(run):
    assert pd.read_parquet(run.checkpoint()).empty
    fill(run)
    df = pd.read_parquet(run.checkpoint())
    pd.testing.assert_frame_equal(df, run.records())
    assert not list(run.path.glob(".*.tmp"))


JOURNAL_WRITER = textwrap.dedent(
    """
    import sys
    from nasbench.runs import Record, RunDir
    run = RunDir.resume(sys.argv[1])
    trial = run.next_trial("random")
    while True:
        run.append(Record(trial=trial, searcher="random", seed=0, arch_id=f"a{trial}", arch="x", arch_json="{}",
                          resolution=32, status="ok", macs=trial, params=1, eval_seconds=0.0, acc=0.5,
                          extra={"pad": "x" * 3000}))
        print(trial, flush=True)
        trial += 1
    """
)


def test_journal_survives_sigkill_at_any_moment(run):
    """A real process appends in a loop and is killed; every append that returned is there, none twice."""
    run.close()
    acknowledged: list[int] = []
    rng = random.Random(0)
    for _ in range(2):  # the second writer resumes after the first one's kill
        proc = subprocess.Popen(
            [sys.executable, "-c", JOURNAL_WRITER, str(run.path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(rng.randint(5, 25)):
            line = proc.stdout.readline()
            assert line, f"the writer died on its own: {proc.communicate()[1].decode()}"
            acknowledged.append(int(line))
        time.sleep(rng.uniform(0, 0.01))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        acknowledged += [int(line) for line in proc.stdout.read().split()]
        proc.stdout.close()
        proc.stderr.close()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the last kill may have torn the last line; that is allowed
        trials = RunDir.open(run.path).records()["trial"].tolist()
    assert len(trials) == len(set(trials)), "a record was written twice"
    assert set(acknowledged) <= set(trials), "an acknowledged record was lost"
    assert trials == list(range(len(trials))), "resumed writers continued where the journal ended"


# --- outputs ----------------------------------------------------------------------------------------


def test_front_uses_measured_else_predicted_latency(run):
    fill(run)
    assert run_front(run.records(), "acc,macs")["arch_id"].tolist() == ["ra0001", "ns0002", "ra0003"]
    front = run_front(run.records(), ["acc", "latency"])
    assert front["arch_id"].tolist() == ["ns0000", "ra0003"] and front["latency"].tolist() == [2.0, 3.0]


def test_write_outputs(run):
    fill(run)
    budget = {"budget": "300trials", "spent": {"supernet": "0 trials", "search": "8 trials"}}
    paths = run.write_outputs(["acc", "macs"], budget=budget)
    assert set(paths) == {"records", "pareto_csv", "pareto_png", "summary"}
    csv = pd.read_csv(paths["pareto_csv"])
    assert csv["arch_id"].tolist() == ["ra0001", "ns0002", "ra0003"]
    assert paths["pareto_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = paths["summary"].read_text()
    for text in ("tiny", "digits", "search: 8 trials", "| random | 3 | 1 | 0 | 4 |", "ns0002", "MACs = 550"):
        assert text in summary, text
    assert "| random | 2 |" in summary and "| nsga2 | 1 |" in summary and "| all | 3 |" in summary  # front sizes


def test_the_front_is_computed_once_and_read_back_until_a_record_comes_after_it(run, monkeypatch):
    """``RunDir.front`` (what ``nasbench pareto``, the search's last table and ``load_run`` show) reads the
    pareto.csv the outputs wrote, value for value as computed, and computes it again once the journal moved on."""
    fill(run)
    run.append(rec(5, acc=0.7, macs=120, arch_id="1234e56789"))  # an id pandas would read as a number
    run.write_outputs(["acc", "macs"])
    computed = run_front(run.records(), ["acc", "macs"])[outputs.FRONT_COLUMNS].reset_index(drop=True)
    with monkeypatch.context() as m:
        m.setattr(outputs, "pareto_front", lambda *a: pytest.fail("the stored front was computed again"))
        stored = run.front()
    pd.testing.assert_frame_equal(stored, computed, check_dtype=False)
    assert "1234e56789" in stored["arch_id"].tolist() and nasbench.load_run(run.path).front.equals(stored)
    run.append(rec(6, acc=0.95, macs=90))  # a record after the outputs: the front is computed from the journal
    assert run.front()["arch_id"].tolist()[0] == "ra0006"
    assert run.front(["acc", "params"]).columns.tolist() == outputs.FRONT_COLUMNS  # other objectives: computed


def test_outputs_are_functions_of_the_records(run, tmp_path):
    """No run folder needed: a DataFrame of records and three paths."""
    fill(run)
    records = run.records()
    paths = {"pareto_csv": tmp_path / "f.csv", "pareto_png": tmp_path / "f.png", "summary": tmp_path / "s.md"}
    written = outputs.write_outputs(
        records, paths, run_id="elsewhere", config=CONFIG, objectives="acc,macs", budget=None, reference=None
    )
    assert written == paths
    assert pd.read_csv(paths["pareto_csv"])["arch_id"].tolist() == ["ra0001", "ns0002", "ra0003"]
    assert paths["summary"].read_text().startswith("# Search run elsewhere")
    tree = ast.parse(Path(outputs.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not [m for m in imported if m and m.startswith("nasbench.runs")]  # storage -> outputs, never back


def test_infeasible_records_are_plotted_apart_and_never_on_the_front(run):
    fill(run)  # nsga2 trial 3 is infeasible without a measured accuracy (macs 1e9)
    # Over a limit, yet it would dominate the whole front if it counted: cheaper and more accurate.
    run.append(rec(4, "nsga2", macs=20, status="infeasible", error="macs over its limit", extra={"acc_measured": 0.99}))
    records = run.records()
    assert "ns0004" not in run_front(records, "acc,macs")["arch_id"].tolist()
    ax = outputs.fronts_figure(records).axes[0]
    crosses = [c for c in ax.collections if c.get_label() == outputs.INFEASIBLE_LABEL]
    assert len(crosses) == 1 and crosses[0].get_offsets().tolist() == [[20.0, 0.99]]
    (edge,) = [c for c in ax.collections if c.get_offsets().tolist() == [[1e9, 0.02]]]  # unmeasured: bottom edge
    assert edge.get_label().startswith("_")  # one legend entry for both
    (front_line,) = [line for line in ax.lines if line.get_label() == "Pareto front"]
    assert 20.0 not in front_line.get_xdata().tolist() and 0.99 not in front_line.get_ydata().tolist()
    assert outputs.INFEASIBLE_LABEL in [t.get_text() for t in ax.get_legend().get_texts()]
    summary = run.write_outputs(["acc", "macs"])["summary"].read_text()
    assert "| nsga2 | 3 | 0 | 2 | 5 |" in summary  # counted apart in the status table


def test_write_outputs_of_a_run_without_successes(run):
    run.append(rec(0, status="failed"))
    paths = run.write_outputs(["acc", "macs", "latency"])
    assert "No successful evaluations" in paths["summary"].read_text()
    assert pd.read_csv(paths["pareto_csv"]).empty


# --- nasbench pareto ----------------------------------------------------------------------------------


def invoke(*args):
    """Through a parent app, the way nasbench.cli merges cli.runs.app in."""
    parent = typer.Typer()
    parent.add_typer(runs_app)
    parent.command("other")(lambda: None)  # two commands, so "pareto" is looked up by name
    return CliRunner().invoke(parent, ["pareto", *map(str, args)])


def test_pareto_command_prints_table_json_and_plot(run, tmp_path):
    fill(run)  # still "running": nothing materialized, the journal is read
    result = invoke(run.path)
    assert result.exit_code == 0, result.output
    for arch_id in ("ra0001", "ns0002", "ra0003"):
        assert arch_id in result.output
    assert "nasbench export" in result.output
    plot = tmp_path / "front.png"
    result = invoke(run.path, "--json", "--plot", plot, "--objectives", "acc,latency")
    rows = json.loads(result.stdout)
    assert [r["arch_id"] for r in rows] == ["ns0000", "ra0003"] and rows[0]["latency_ms"] is None
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("case", ["missing", "not a run", "no ok records", "bad objective"])
def test_pareto_command_errors_are_one_sentence(run, tmp_path, case):
    target = {"missing": tmp_path / "nope", "not a run": tmp_path}.get(case, run.path)
    run.append(rec(0, status="failed"))
    extra = ["--objectives", "acc,flops"] if case == "bad objective" else []
    result = invoke(target, *extra)
    assert isinstance(result.exception, NasbenchError), result.output
    message = {"missing": "does not exist", "not a run": "is not a nasbench search run"}
    message.update({"no ok records": "no successful evaluations yet", "bad objective": "'flops' is not one of"})
    assert message[case] in str(result.exception)
