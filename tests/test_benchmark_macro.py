"""NAS-Bench-Macro: the shipped space is exactly the benchmark's networks, counted as it counts them; the table
evaluator runs through ``nasbench search``; the rank report runs on a small trained supernet."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import nasbench
from nasbench.benchmarks.macro import arch_key, key_arch, read_table
from nasbench.benchmarks.truth import benchmark_for, load_benchmark
from nasbench.cli import main
from nasbench.errors import NasbenchError
from tests.test_cli import run  # the CLI in-process: (exit code, stdout, stderr)


@pytest.fixture(scope="module")
def truth():
    return load_benchmark("nas-bench-macro")


def test_space_is_exactly_the_benchmarks_networks(truth):
    raw = read_table()
    assert len(raw) == 3**8 and truth.space.size == len(truth.table) == 3969
    archs = {key: key_arch(key) for key in raw}
    assert len({a.id for a in archs.values()}) == 3969
    assert all(truth.space.contains(a) for a in archs.values())
    # keys that name the same network (a zero moved within a stage) share one record, and one canonical key
    for key, arch in archs.items():
        canonical = arch_key(arch)
        assert raw[canonical] == raw[key] and key_arch(canonical) == arch
    for seed in range(50):  # every arch of the space has a key, and it maps back
        arch = truth.space.sample(seed)
        assert key_arch(arch_key(arch)) == arch


def test_counts_equal_the_table_for_all_3969_networks(truth):
    table = truth.table
    params, flops = [], []
    for key in table.index:
        cost = nasbench.count(key_arch(key), num_classes=10)
        params.append(cost.params)
        flops.append(cost.by_op["conv"] + cost.by_op["linear"])  # the table's convention: no BN, no pool
    assert (table["params"].to_numpy() == params).all()
    assert (table["flops"].to_numpy() == flops).all()
    assert (table["macs"] > table["flops"]).all()  # nasbench's own convention adds batch norm and pooling


def test_built_models_have_the_tables_parameters(truth):
    for key in ("00000000", "11111111", "22222222", "01202100"):
        model = nasbench.build(key_arch(key), num_classes=10)
        assert sum(p.numel() for p in model.parameters()) == truth.table.loc[arch_key(key_arch(key)), "params"]
    with torch.no_grad():
        assert nasbench.build(key_arch("02010211"), num_classes=10)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_ground_truth_lookups(truth):
    best, k3e3 = truth.best(), truth.space.reference("k3e3")
    assert best["key"] == "22212220" and round(best["acc"], 2) == 93.13 and best["rank"] == 1
    assert truth.key(k3e3) == "11111111" and round(truth.accuracy(k3e3), 2) == 91.93
    assert truth.key(truth.space.largest()) == "22222222" and truth.key(truth.space.smallest()) == "00000000"
    under = truth.best(truth.table.loc["11111111", "flops"])
    assert round(under["acc"], 2) == 92.31 and under["flops"] <= 53_246_464
    front = truth.front()
    assert front["flops"].is_monotonic_increasing and front["acc"].is_monotonic_increasing
    assert front.iloc[-1]["key"] == "22212220" and truth.rank(key_arch("00000000")) == 3969
    with pytest.raises(NasbenchError, match="8 digits"):
        key_arch("1234")
    assert benchmark_for(nasbench.load_space("tiny")) is None
    assert nasbench.load_benchmark("nas-bench-macro") is truth


def test_a_copy_of_the_space_with_other_choices_has_no_ground_truth(tmp_path):
    from importlib import resources

    text = (resources.files("nasbench.search_spaces") / "nas-bench-macro.yaml").read_text()
    path = tmp_path / "macro.yaml"
    path.write_text(text.replace("resolution: [32]", "resolution: [32, 40]"))
    assert benchmark_for(nasbench.load_space(path)) is None
    path.write_text(text)
    assert benchmark_for(nasbench.load_space(path)) is not None


@pytest.mark.parametrize(
    "edit, message",
    [
        ("ops: [mb3e3, mb5e6], first_ops", "blocks: [mbconv], ops: [mb3e3, mb5e6], first_ops"),
        ("ops: [mb3e3, mb5e6], first_ops", "ops: [mb3e3, zz5e6], first_ops"),
        ("ops: [mb3e3, mb5e6], first_ops", "ops: [mb5e6], first_ops"),
        ("first_ops: [sk1e1, mb3e3, mb5e6]", "first_ops: [sk3e1, mb3e3, mb5e6]"),
    ],
)
def test_coupled_choices_are_validated(tmp_path, edit, message):
    from importlib import resources

    text = (resources.files("nasbench.search_spaces") / "nas-bench-macro.yaml").read_text()
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(edit, message, 1))
    with pytest.raises(NasbenchError) as e:
        nasbench.load_space(path)
    assert str(e.value).startswith(f"search space {path}: stages[0].") and "\n" not in str(e.value)


def test_spaces_show_documents_coupled_choices(capsys):
    code, out, _ = run(["spaces", "show", "nas-bench-macro", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["size"] == 3969
    assert info["stages"][0]["first_ops"] == ["sk1e1", "mb3e3", "mb5e6"] and info["stages"][0]["ops"] == [
        "mb3e3",
        "mb5e6",
    ]


def test_table_evaluator_through_nasbench_search(tmp_path, capsys, truth):
    k3e3_macs = nasbench.count(truth.space.reference("k3e3"), num_classes=10).macs
    out = tmp_path / "run"
    args = ["search", "--space", "nas-bench-macro", "--evaluator", "table", "--budget", "24trials"]
    code, _, err = run([*args, "--searcher", "random,tpe", "--max-macs", str(k3e3_macs), "--out", str(out)], capsys)
    assert code == 0, err
    run_ = nasbench.load_run(out)
    records = run_.records
    assert len(records) == 24 and set(records["searcher"]) == {"random", "tpe"}
    extra = pd.DataFrame([json.loads(e) for e in records["extra"]])
    for (_, row), true_acc in zip(records.iterrows(), extra["true_acc"], strict=True):
        assert true_acc == truth.accuracy(nasbench.Arch.parse(row["arch"]))
        if row["status"] == "ok":
            assert row["acc"] == pytest.approx(true_acc / 100) and row["macs"] <= k3e3_macs
    assert (records["status"] == "infeasible").any()  # the limit is one the space crosses
    summary = (out / "summary.md").read_text()
    assert "## Ground truth" in summary and "true rank" in summary
    assert not (out / "supernet").exists() or not any((out / "supernet").iterdir())


def test_evolution_proposes_new_networks_within_the_limit(tmp_path, capsys, truth):
    """Regularized evolution on the table: every query a new network (no repeats, none over the limit, known
    from its analytic MACs before it is queried); after its first 10 uniform draws, each proposal is one
    decision away from an earlier network."""
    k3e3_macs = nasbench.count(truth.space.reference("k3e3"), num_classes=10).macs
    out = tmp_path / "run"
    args = ["search", "--space", "nas-bench-macro", "--evaluator", "table", "--budget", "30trials"]
    code, _, err = run([*args, "--searcher", "evolution", "--max-macs", str(k3e3_macs), "--out", str(out)], capsys)
    assert code == 0, err
    records = nasbench.load_run(out).records.sort_values("trial")
    assert len(records) == 30 and (records["status"] == "ok").all() and records["arch_id"].is_unique
    assert (records["macs"] <= k3e3_macs).all()
    import optuna

    study = optuna.load_study(study_name="evolution-seed0-acc+macs", storage=f"sqlite:///{out / 'optuna.db'}")
    proposals = [t.params for t in sorted(study.get_trials(), key=lambda t: t.number)]
    assert len(proposals) == 30
    for i, child in enumerate(proposals[10:], 10):  # a mutation of one of the 10 before it
        assert min(sum(child[k] != parent[k] for k in child) for parent in proposals[i - 10 : i]) == 1


def test_table_evaluator_refuses_what_it_cannot_do(tmp_path, capsys):
    base = ["search", "--space", "nas-bench-macro", "--evaluator", "table", "--out", str(tmp_path / "r")]
    code, _, err = run([*base, "--budget", "5min"], capsys)
    assert code == 2 and "trials" in err and not (tmp_path / "r").exists()
    code, _, err = run([*base, "--budget", "10trials", "--searcher", "proximal"], capsys)
    assert code == 2 and "evolution), not proximal" in err
    code, _, err = run(["search", "--space", "tiny", "--evaluator", "table", "--budget", "9trials"], capsys)
    assert code == 2 and "no table" in err


@pytest.fixture(scope="module")
def tiny_macro_supernet(tmp_path_factory):
    """A nas-bench-macro supernet trained a few uniform steps on digits: the report's mechanics, not its figures."""
    out = tmp_path_factory.mktemp("macro") / "supernet"
    args = ["train-supernet", "--space", "nas-bench-macro", "--data", "digits", "--budget", "4steps"]
    args += ["--sampling", "uniform", "--num-random", "1", "--out", str(out), "--no-progress", "--bn-batches", "1"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0
    return out


def test_rank_report_on_a_small_supernet(tiny_macro_supernet, tmp_path, capsys):
    out = tmp_path / "report"
    args = ["benchmark", "rank", str(tiny_macro_supernet), "--n", "10", "--val-images", "40", "--bootstrap", "50"]
    args += ["--calibration", "4"]
    code, stdout, err = run([*args, "--out", str(out), "--json"], capsys)
    assert code == 0, err
    report = pd.read_csv(out / "report.csv").set_index("ranker")
    expected = {"supernet_acc", "supernet_loss", "synflow", "naswot", "score", "flops", "params", "table_run1"}
    assert set(report.index) == expected
    # score is the search's ranker, calibrated on the architectures a seed-0 search calibrates on
    calibration = pd.read_csv(out / "calibration" / "scores.csv", dtype={"key": str})
    assert len(calibration) >= 1 and {"supernet_loss", "naswot"} <= set(calibration.columns)
    assert report.loc["table_run1", "tau"] > 0.5  # the benchmark's own runs agree, whatever the supernet learned
    assert {"tau", "tau_lo", "tau_hi", "spearman", "top5", "tau_within", "tau_q1"} <= set(report.columns)
    scores = pd.read_csv(out / "scores.csv", dtype={"key": str})
    assert len(scores) == 10 and scores["key"].is_unique
    # evaluated as a search of this supernet evaluates: its training record's settings (--bn-batches 1)
    stamp = json.loads((out / "settings.json").read_text())
    assert stamp["settings"]["bn_batches"] == 1 and stamp["settings"]["images"] == 40
    # scores made with other settings are refused, not mixed, and nothing of the folder is touched
    before = (out / "scores.csv").read_bytes()
    code, _, err = run([*args, "--val-images", "30", "--out", str(out), "--json"], capsys)
    assert code == 2 and "other settings (settings.images: 40 there, 30 now)" in err
    assert (out / "scores.csv").read_bytes() == before
    # a report killed mid-row resumes: the torn row is recomputed, the complete ones are kept
    lines = (out / "scores.csv").read_text().splitlines()
    (out / "scores.csv").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:8])
    code, _, err = run([*args, "--out", str(out), "--json"], capsys)
    assert code == 0, err
    again = pd.read_csv(out / "scores.csv", dtype={"key": str}, on_bad_lines="skip").dropna()
    assert set(again["key"]) == set(scores["key"]) and len(again) == 10


def test_rank_report_refuses_bad_input(tiny_macro_supernet, tmp_path, capsys):
    code, _, err = run(["benchmark", "rank", str(tmp_path), "--n", "10"], capsys)
    assert code == 2 and "no supernet training" in err
    code, _, err = run(["benchmark", "rank", str(tiny_macro_supernet), "--proxies", "magic"], capsys)
    assert code == 2 and "unknown proxy" in err
    import shutil

    unfinished = tmp_path / "unfinished"
    shutil.copytree(tiny_macro_supernet, unfinished)
    record = json.loads((unfinished / "train_config.json").read_text())
    record["plan"]["total_steps"] = 100  # it trained 4: a report must not train the other 96
    (unfinished / "train_config.json").write_text(json.dumps(record))
    code, _, err = run(["benchmark", "rank", str(unfinished), "--n", "10"], capsys)
    assert code == 2 and "trained 4 of 100 steps" in err and not (unfinished / "rank-report").exists()


def test_uniform_sampling_trains_one_random_subnet_per_step():
    import random

    from nasbench.training import TrainConfig, sandwich_archs

    space = nasbench.load_space("nas-bench-macro")
    archs = sandwich_archs(space, random.Random(0), 1, teacher=False)
    assert len(archs) == 1 and archs != [space.largest()]
    assert len(sandwich_archs(space, random.Random(0), 2)) == 4  # the sandwich: largest, smallest, two random
    with pytest.raises(NasbenchError, match="sampling"):
        TrainConfig(sampling="greedy")
    with pytest.raises(NasbenchError, match="num_random"):
        TrainConfig(sampling="uniform", num_random=0)


def test_readme_tells_how_to_benchmark():
    text = (Path(__file__).parents[1] / "README.md").read_text()
    assert "--evaluator table" in text and "nasbench benchmark rank" in text


def test_a_full_disk_ends_a_search_in_one_line_and_resume_keeps_every_record(tmp_path, capsys, monkeypatch):
    """The journal's 7th append finds the disk full (after a torn partial write): one line, exit 74, and
    ``--resume`` finishes the run with the 6 completed records as they were."""
    import errno
    import os

    from nasbench.runs import records as journal

    real_write, appends = os.write, []

    def full_disk(fd, data):
        appends.append(len(data))
        if len(appends) == 7:
            real_write(fd, bytes(data)[:20])  # part of the line reached the disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    out = tmp_path / "run"
    args = ["search", "--space", "nas-bench-macro", "--evaluator", "table", "--budget", "12trials", "--searcher"]
    monkeypatch.setattr(journal.os, "write", full_disk)
    code, _, err = run([*args, "random", "--out", str(out)], capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 74 and len(errors) == 1 and "Traceback" not in err, err
    assert f"No space left on device writing {out / 'records.jsonl'}" in errors[0] and f"--resume {out}" in errors[0]
    monkeypatch.setattr(journal.os, "write", real_write)
    before = nasbench.load_run(out).records
    assert len(before) == 6
    code, _, err = run(["search", "--resume", str(out)], capsys)
    assert code == 0, err
    after = nasbench.load_run(out).records
    assert len(after) == 12 and after.head(6).equals(before)


def test_a_checkpoint_that_cannot_be_written_is_an_os_error_naming_it(tmp_path, monkeypatch):
    import errno

    from nasbench.training import state

    def fails(obj, f):
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(state.torch, "save", fails)
    monkeypatch.setattr(state, "WRITE_ROOM", float("inf"))  # as if the disk had no room left
    with pytest.raises(OSError) as e:
        state.save_checkpoint(tmp_path / "checkpoint.pt", {"step": 1})
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "checkpoint.pt")
    assert not list(tmp_path.iterdir())  # no temporary file left behind
