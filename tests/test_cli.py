import json
import subprocess
import sys

import pytest

from nasbench.cli import main


def run(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_spaces_json(capsys):
    code, out, _ = run(["spaces", "--json"], capsys)
    assert code == 0
    rows = json.loads(out)
    assert {r["name"] for r in rows} == {"efficientnet", "efficientnetv2", "mobile", "nas-bench-macro", "tiny"}
    for r in rows:
        span = r["macs_range"]
        assert span["smallest"]["macs"] < span["largest"]["macs"]
        assert span["largest"]["resolution"] >= span["smallest"]["resolution"]


def test_spaces_show_json(capsys):
    code, out, _ = run(["spaces", "show", "efficientnet", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["references"]["b0"]["params"] == 5_288_548
    assert info["stages"][5]["blocks"] == ["mbconv", "dynconv", "attention"]
    span, refs = info["macs_range"], info["references"]
    assert span["largest"]["resolution"] == 300 and span["smallest"]["resolution"] == 64
    assert span["largest_over_reference"]["reference"] == "b3"
    assert span["largest_over_reference"]["ratio"] == round(span["largest"]["macs"] / refs["b3"]["macs"], 3) <= 2
    positions = [refs[name]["log_position"] for name in ("b0", "b1", "b2", "b3")]
    assert 0 < positions[0] < positions[1] < positions[2] < positions[3] < 1  # b0..b3 climb the range
    assert all(0 <= refs[name]["percentile"] <= 100 for name in refs)
    assert refs["b3"]["percentile"] >= refs["b0"]["percentile"]


def test_spaces_show_counts_with_the_classes_asked(capsys):
    """A CIFAR-10 space's figures at 10 classes: nas-bench-macro's largest network is the table's
    all-k5e6 one, whose nasbench MACs are 107,770,368 at 10 classes (a 1000-class head adds 1.27 M)."""
    code, out, _ = run(["spaces", "show", "nas-bench-macro", "--num-classes", "10", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["num_classes"] == 10 and info["macs_range"]["largest"]["macs"] == 107_770_368
    code, out, _ = run(["spaces", "show", "nas-bench-macro"], capsys)
    assert code == 0 and "at 1000 classes" in " ".join(out.split())
    code, _, err = run(["spaces", "show", "tiny", "--num-classes", "0"], capsys)
    assert code == 2 and "--num-classes must be at least 1" in err


def test_spaces_show_prints_the_range_and_the_references_in_it(capsys):
    from nasbench.counting import count
    from nasbench.spaces import load_space
    from nasbench.textfmt import human_count

    tiny = load_space("tiny")
    low, high, ref = (count(a).macs for a in (tiny.smallest(), tiny.largest(), tiny.reference("tiny_ref")))
    code, out, _ = run(["spaces", "show", "tiny"], capsys)
    text = " ".join(out.split())  # undo rich's wrapping
    assert code == 0
    assert f"MACs {human_count(low)} @16px (smallest) .. {human_count(high)} @32px (largest)" in text
    assert f"the largest costs {high / ref:.2f}x tiny_ref" in text
    assert "percentile" in text and "position" in text


def test_arch_describe_json_and_overrides(capsys):
    code, out, _ = run(["arch", "describe", "ref:b0", "--space", "efficientnet", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["params"] == 5_288_548 and round(info["macs"] / 1e6, 2) == 399.35
    assert set(info["parts"]) == {"stem", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "head"}
    code, out, _ = run(
        [
            "arch",
            "describe",
            "ref:b0",
            "--space",
            "efficientnet",
            "--json",
            "--num-classes",
            "10",
            "--resolution",
            "112",
        ],
        capsys,
    )
    info = json.loads(out)
    assert info["params"] == 4_020_358 and info["resolution"] == 112 and info["macs"] < 110e6


def test_arch_describe_table(capsys):
    code, out, _ = run(["arch", "describe", "ref:b0", "--space", "efficientnet"], capsys)
    assert code == 0 and "5,288,548" in out and "399.35 M" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["spaces", "show", "nope"], "unknown search space 'nope'"),
        (["arch", "describe", "ref:b9", "--space", "efficientnet"], "has no reference 'b9'"),
        (
            ["arch", "describe", "r224_stem32s2_head1280_silu|c16s1se0.25:mb4e1", "--space", "tiny"],
            "kernel must be odd",
        ),
        (["arch", "describe", "largest", "--space", "tiny", "--num-classes", "0"], "--num-classes must be positive"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, args, message):
    code, out, err = run(args, capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_installed_entry_point_exits_2_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nresolution: [32]\nstem: {base: 8}\nhead: {base: 8}\nstages: [{stride: 3}]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "nasbench", "spaces", "show", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and str(bad) in proc.stderr
    help_ = subprocess.run(
        [sys.executable, "-m", "nasbench", "arch", "describe", "--help"], capture_output=True, text=True
    )
    assert help_.returncode == 0 and "--json" in help_.stdout


# --- the command package: light to import, one error handler, one resume rule ---------------------------

HEAVY = ("torch", "pandas", "matplotlib", "ray", "optuna")


def test_import_and_help_leave_torch_and_the_engines_out():
    script = (
        "import sys\n"
        "from nasbench.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "train-supernet" in proc.stdout and "HEAVY []" in proc.stdout


def test_help_texts_match_the_constants_of_the_modules_they_describe():
    """The command modules repeat a few constants of torch-importing modules; they must agree."""
    from nasbench.cli import latency, retrain, train, zoo
    from nasbench.latency.table import DEFAULT_DIR
    from nasbench.retrain.run import DEFAULT_EPOCHS
    from nasbench.training.config import OPTIMIZERS, TEACHER_RESOLUTIONS
    from nasbench.zoo.zoo import DEFAULT_ZOO

    assert str(DEFAULT_DIR) == latency.DEFAULT_DIR
    assert retrain.DEFAULT_EPOCHS == DEFAULT_EPOCHS
    assert zoo.DEFAULT_ZOO == DEFAULT_ZOO
    assert train.RECIPE["optimizer"].help == f"One of {', '.join(OPTIMIZERS)}."
    assert all(name in train.RECIPE["teacher_resolution"].help for name in TEACHER_RESOLUTIONS)


def test_every_command_takes_help_and_json():
    from typer.testing import CliRunner

    from nasbench.cli import app

    commands = ["spaces", "spaces show", "arch describe", "pareto", "train-supernet", "search", "export"]
    commands += ["latency measure", "latency lut", "latency predict", "latency validate", "zoo list", "zoo show"]
    for command in [*commands, "retrain", "benchmark show", "benchmark rank"]:
        result = CliRunner().invoke(app, [*command.split(), "--help"])
        assert result.exit_code == 0 and "--json" in result.stdout, command


@pytest.fixture
def handled():
    """A root app with the one error handler and commands that fail in each way it handles."""
    import typer

    from nasbench.cli.common import HandledGroup, interrupt_hint
    from nasbench.errors import NasbenchError

    app = typer.Typer(cls=HandledGroup)

    @app.command("bad")
    def bad() -> None:
        raise NasbenchError("--x 3 is not valid; give 1 or 2")

    @app.command("stop")
    def stop(hint: bool = False) -> None:
        if hint:
            interrupt_hint("continue with: --out RUN --resume")
        raise KeyboardInterrupt

    @app.command("bug")
    def bug() -> None:
        raise ZeroDivisionError

    return app


def test_one_handler_for_bad_input_and_interrupts(handled):
    from typer.testing import CliRunner

    runner = CliRunner()
    bad = runner.invoke(handled, ["bad"])
    assert bad.exit_code == 2 and bad.stderr == "error: --x 3 is not valid; give 1 or 2\n" and not bad.stdout
    stop = runner.invoke(handled, ["stop"])
    assert stop.exit_code == 130 and stop.stderr == "interrupted\n"
    hinted = runner.invoke(handled, ["stop", "--hint"])
    assert hinted.exit_code == 130 and hinted.stderr == "interrupted; continue with: --out RUN --resume\n"
    bug = runner.invoke(handled, ["bug"])
    assert isinstance(bug.exception, ZeroDivisionError)  # a bug keeps its traceback


def test_merge_resumed_takes_stored_settings_and_refuses_a_different_one():
    from nasbench.diffing import merge_resumed
    from nasbench.errors import NasbenchError

    stored = {"seed": 0, "searchers": ["random", "nsga2"], "shares": {"supernet": 0.5, "search": 0.5}}
    given = {"searchers": ("random", "nsga2"), "budget": "6trials"}  # tuples match the stored (JSON) lists
    assert merge_resumed(stored, given, where="--resume RUN") == {**stored, **given}
    with pytest.raises(NasbenchError) as e:
        merge_resumed(stored, {"seed": 1}, where="--out RUN")
    assert str(e.value) == "--out RUN holds a different run (seed: 0 there, 1 now); drop --seed to use the stored value"
    with pytest.raises(
        NasbenchError, match=r"\(searchers: \['random', 'nsga2'\] there, \['tpe'\] now\); drop --searcher"
    ):
        merge_resumed(stored, {"searchers": ("tpe",)}, where="--resume RUN", flags={"searchers": "--searcher"})
    with pytest.raises(NasbenchError, match=r"shares.search: 0.5 there, 0.7 now\); drop --shares"):
        merge_resumed(stored, {"shares": {"supernet": 0.5, "search": 0.7}}, where="--resume RUN")


def test_json_is_standard_json(capsys):
    from nasbench.cli.common import emit_json

    emit_json({"tau": float("nan"), "rows": [1.5, float("inf")], "pair": (1, 2)})
    assert json.loads(capsys.readouterr().out) == {"tau": None, "rows": [1.5, None], "pair": [1, 2]}
