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
    assert {r["name"] for r in json.loads(out)} == {"efficientnet", "efficientnetv2", "mobile", "tiny"}


def test_spaces_show_json(capsys):
    code, out, _ = run(["spaces", "show", "efficientnet", "--json"], capsys)
    info = json.loads(out)
    assert code == 0 and info["references"]["b0"]["params"] == 5_288_548
    assert info["stages"][5]["blocks"] == ["mbconv", "fused_mbconv", "dynconv", "attention"]


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
