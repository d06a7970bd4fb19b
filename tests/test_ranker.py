"""The ranker a search chooses by: the supernet's loss and NASWOT standardised on a seeded calibration
sample, added, and squashed into (0, 1); calibrated once per run and kept in the run's state."""

from __future__ import annotations

import json
import math

import pytest

from nasbench.errors import NasbenchError
from nasbench.runs import RunDir
from nasbench.search.ranker import Ranker, calibrate, calibration_archs
from nasbench.spaces import load_space


def test_score_rises_with_naswot_and_falls_with_loss():
    ranker = Ranker.fit([1.0, 2.0, 3.0], [10.0, 20.0, 30.0], seed=0)
    assert ranker.score(2.0, 20.0) == pytest.approx(0.5)  # the calibration's mean: a typical architecture
    assert ranker.score(1.0, 20.0) > 0.5 > ranker.score(3.0, 20.0)
    assert ranker.score(2.0, 30.0) > 0.5 > ranker.score(2.0, 10.0)
    # one spread of loss is worth one spread of NASWOT: the two signals weigh the same
    assert ranker.score(1.0, 10.0) == pytest.approx(0.5)
    assert 0.0 <= ranker.score(50.0, -1e3) < 0.01 and 0.99 < ranker.score(-50.0, 1e3) <= 1.0
    assert Ranker.from_dict(json.loads(json.dumps(ranker.to_dict()))) == ranker


def test_a_calibration_without_spread_is_refused():
    with pytest.raises(NasbenchError, match="no spread in naswot"):
        Ranker.fit([1.0, 2.0], [5.0, 5.0], seed=0)
    with pytest.raises(NasbenchError, match="at least 2"):
        Ranker.fit([1.0], [5.0], seed=0)


def test_calibration_is_seeded_and_skips_non_finite_measurements():
    space = load_space("tiny")
    assert calibration_archs(space, 5, 3) == calibration_archs(space, 5, 3) != calibration_archs(space, 5, 4)
    seen = []

    def measure(arch):
        seen.append(arch)
        return (math.nan, 1.0) if len(seen) == 1 else (float(len(seen)), float(len(seen) ** 2))

    ranker = calibrate(measure, space, seed=3, n=6)
    assert seen == calibration_archs(space, 6, 3) and ranker.n == 5 and ranker.seed == 3


def test_a_search_chooses_by_score_by_default_and_keeps_its_calibration(tmp_path, capsys):
    from tests.test_cli import run

    out = tmp_path / "run"
    args = [
        "search",
        "--space",
        "tiny",
        "--data",
        "digits",
        "--budget",
        "6trials",
        "--train-budget",
        "3steps",
        "--calibration",
        "5",
    ]
    args += ["--searcher", "random", "--concurrency", "1", "--eval-images", "50", "--max-macs", "3e6"]
    code, _, err = run([*args, "--out", str(out), "--json"], capsys)
    assert code == 0, err
    rundir = RunDir.open(out)
    assert rundir.config["objectives"] == ["score", "macs"]
    stored = rundir.read_state()["ranker"]
    assert stored["n"] == 5 and stored["seconds"] >= 0
    records = rundir.records()
    ok = records[records.status == "ok"]
    assert len(ok) and ok["score"].between(0, 1).all() and ok["acc"].between(0, 1).all()
    extras = [json.loads(e) for e in ok["extra"]]
    ranker = Ranker.from_dict(stored)
    for (_, row), extra in zip(ok.iterrows(), extras, strict=True):
        assert row["score"] == pytest.approx(ranker.score(extra["val_loss"], extra["naswot"]))
    over = records[records.status == "infeasible"]
    assert len(over) and over["error"].str.endswith("not evaluated").all()  # its MACs are known: no evaluation
    assert over["score"].isna().all() and not any("score_measured" in e for e in over["extra"])
    assert "score" in (out / "pareto.csv").read_text().splitlines()[0].split(",")
    # a run killed before its last two records resumes with the stored calibration: it does not calibrate again
    journal = out / "records.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-2]))
    rundir.write_state({**rundir.read_state(), "ranker": {**stored, "loss_mean": stored["loss_mean"] + 1.0}})
    code, _, err = run(["search", "--resume", str(out), "--json"], capsys)
    assert code == 0, err
    again = RunDir.open(out).records()
    new = again.iloc[len(lines) - 2 :]
    new = new[new.status == "ok"]
    assert len(again) == len(lines) and len(new)
    shifted = Ranker.from_dict({**stored, "loss_mean": stored["loss_mean"] + 1.0})
    for _, row in new.iterrows():
        extra = json.loads(row["extra"])
        assert row["score"] == pytest.approx(shifted.score(extra["val_loss"], extra["naswot"]))


def test_bad_ranker_settings_are_refused(tmp_path, capsys):
    from tests.test_cli import run

    args = ["search", "--space", "tiny", "--data", "digits", "--budget", "4trials", "--train-budget", "2steps"]
    code, _, err = run([*args, "--eval-images", "0"], capsys)
    assert code == 2 and "--eval-images must be at least 1" in err
    code, _, err = run([*args, "--objectives", "acc,score"], capsys)
    assert code == 2 and "must start with one of acc or score" in err
    table = ["search", "--space", "nas-bench-macro", "--evaluator", "table", "--budget", "5trials"]
    code, _, err = run([*table, "--objectives", "score,macs", "--out", str(tmp_path / "t")], capsys)
    assert code == 2 and "gives the true accuracy" in err and not (tmp_path / "t").exists()
