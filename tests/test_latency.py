"""Latency: honest measurement, complete and portable tables, the correction, and the clear errors.

Real timings use the tiny space at 16 px with one or two repeats; table mechanics (resume, interruption)
use a fake per-layer timer so they are exact and instant.
"""

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

import nasbench
from nasbench.budget import parse_budget
from nasbench.cli.latency import app
from nasbench.counting import decompose
from nasbench.errors import NasbenchError
from nasbench.latency import lut as lut_mod
from nasbench.latency.lut import build_table, space_configs
from nasbench.latency.measure import Context, Machine, Stats, make_context, measure_arch, measure_interleaved
from nasbench.latency.predict import fit_correction, sample_archs, scores, validate
from nasbench.latency.table import Correction, config_key, load_table, space_fingerprint, table_path
from nasbench.latency.use import table_for_search
from nasbench.objectives.expected import expected_latency
from nasbench.pipeline.config import SearchConfig
from nasbench.pipeline.run import load_predictor, search_context
from nasbench.runs import RunDir
from nasbench.search.proximal import cost_range
from nasbench.supernet import Supernet
from nasbench.training import TrainConfig, rundir

TINY = nasbench.load_space("tiny")
CPU = make_context("cpu", batch=1)


def fake_stats(cfg, ctx, *, warmup, repeats):
    """A deterministic 'timing': proportional to the layer's input size and width."""
    ms = 0.01 * cfg.size + 0.001 * cfg.cout + (0.5 if cfg.kind == "attention" else 0.0)
    return Stats(ms, ms, ms, ms, ms, repeats)


@pytest.fixture
def fake_timer(monkeypatch):
    monkeypatch.setattr(lut_mod, "measure_layer", fake_stats)


@pytest.fixture(scope="module")
def real_table(tmp_path_factory):
    """A really measured tiny table at 16 px: one pass, one timed call per config."""
    path = tmp_path_factory.mktemp("lut") / "tiny.json"
    return build_table(TINY, CPU, path, resolutions=[16], passes=1, repeats=1, warmup=0)


# --- measuring ------------------------------------------------------------------------------------------


def test_stats_median_and_spread():
    s = Stats.of([float(x) for x in range(1, 101)])
    assert s.median_ms == 50.5 and s.n == 100
    assert s.q1_ms < s.median_ms < s.q3_ms and s.p10_ms < s.q1_ms and s.p90_ms > s.q3_ms
    assert s.iqr_ms == pytest.approx(49.5)
    assert s.to_dict()["iqr_ms"] == pytest.approx(49.5)


def test_measure_records_context_and_restores_threads():
    before = torch.get_num_threads()
    ctx = make_context("cpu", batch=2, threads=1)
    assert ctx.device_name and ctx.torch == torch.__version__ and ctx.threads == 1 and ctx.batch == 2
    stats = measure_arch(TINY.smallest().with_resolution(16), ctx, warmup=1, repeats=3)
    assert stats.n == 3 and 0 < stats.p10_ms <= stats.median_ms <= stats.p90_ms
    assert torch.get_num_threads() == before
    assert "cpu-" in ctx.slug and ctx.slug.endswith("_float32_b2")


def test_cpu_clock_times_the_thread_and_needs_one_thread():
    ctx = make_context("cpu", clock="cpu")
    assert ctx.clock == "cpu" and "-cputime_" in ctx.slug
    stats = measure_arch(TINY.smallest().with_resolution(16), ctx, warmup=1, repeats=3)
    assert stats.n == 3 and stats.median_ms > 0
    with pytest.raises(NasbenchError, match="--threads 1"):
        make_context("cpu", threads=2, clock="cpu")


def test_interleaved_measures_every_arch():
    archs = sample_archs(TINY, [16], range(3))
    stats = measure_interleaved(archs, CPU, rounds=2, per_round=1, warmup=1)
    assert [s.n for s in stats] == [2, 2, 2]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    with pytest.raises(NasbenchError, match="no CUDA device"):
        make_context("cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_measurement_uses_events():
    ctx = make_context("cuda", dtype="float16", channels_last=True)
    stats = measure_arch(TINY.smallest().with_resolution(32), ctx, warmup=3, repeats=10)
    assert stats.n == 10 and stats.median_ms > 0 and "cuda-" in ctx.slug


def test_bad_options_are_clear_errors():
    bad = [({"device": "tpu"}, "--device"), ({"dtype": "int8"}, "--dtype"), ({"batch": 0}, "--batch")]
    for kwargs, match in bad + [({"clock": "sundial"}, "--clock")]:
        with pytest.raises(NasbenchError, match=match):
            make_context(**kwargs)


# --- tables: completeness, resume, portability ------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny", "efficientnet"])
def test_enumerated_configs_cover_every_sampled_arch(name):
    space = nasbench.load_space(name)
    configs = set(space_configs(space))
    for seed in range(30):
        arch = space.sample(seed)
        for _, cfg in decompose(arch):
            assert cfg in configs, (str(arch), config_key(cfg))
    assert len({config_key(c) for c in configs}) == len(configs)  # keys are unique


def test_measured_table_is_complete(real_table):
    entries = set(real_table.entries)
    assert entries == {config_key(c) for c in space_configs(TINY, [16])}
    for arch in sample_archs(TINY, [16], range(50)):
        assert all(config_key(cfg) in entries for _, cfg in decompose(arch)), str(arch)
        assert real_table.table_sum(arch) > 0


def test_table_resumes_after_interruption(tmp_path, fake_timer, monkeypatch):
    path = tmp_path / "t.json"
    calls = []

    def interrupted(cfg, ctx, **kw):
        if len(calls) == 40:
            raise KeyboardInterrupt
        calls.append(cfg)
        return fake_stats(cfg, ctx, **kw)

    monkeypatch.setattr(lut_mod, "measure_layer", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_table(TINY, CPU, path, resolutions=[16], passes=2)
    saved = load_table(path, TINY)  # saved on the way out, whole
    assert len(saved.entries) == 40
    monkeypatch.setattr(lut_mod, "measure_layer", fake_stats)
    table = build_table(TINY, CPU, path, resolutions=[16], passes=2)
    n = len(space_configs(TINY, [16]))
    assert len(table.entries) == n and all(len(e.passes) == 2 for e in table.entries.values())
    assert not list(tmp_path.glob(".*tmp"))  # no temp files left behind


def test_resume_refuses_another_context_but_extends(tmp_path, fake_timer):
    path = tmp_path / "t.json"
    build_table(TINY, CPU, path, resolutions=[16], passes=1)
    with pytest.raises(NasbenchError, match="batch"):
        build_table(TINY, make_context("cpu", batch=4), path, resolutions=[16], passes=1)
    with pytest.raises(NasbenchError, match="repeats"):
        build_table(TINY, CPU, path, resolutions=[16], passes=1, repeats=3)
    table = build_table(TINY, CPU, path, resolutions=[16, 24], passes=2)  # more passes, another resolution
    assert table.settings["passes"] == 2 and table.resolutions == [16, 24]
    assert all(len(e.passes) == 2 for e in table.entries.values())


def gpu_table(tmp_path) -> Path:
    """A table as if measured on a GPU elsewhere (fake timings), with a correction."""
    gpu = Context("cuda", "NVIDIA H100 80GB HBM3", "2.13.0", "float16", 8, "channels_last", 16, "wall")
    path = tmp_path / "gpu.json"
    table = build_table(TINY, gpu, path, resolutions=[16, 24], passes=1)
    table.correction = Correction(1.2, 0.01, 0.3, 10, 0.02)
    table.save()
    return path


def test_table_is_portable_to_a_fresh_cpu_process(tmp_path, fake_timer):
    path = gpu_table(tmp_path)
    assert path.name == "gpu.json" and table_path(TINY, make_context()).parent.name == "latency"
    here = load_table(path, TINY)
    arch = sample_archs(TINY, [24], [7])[0]
    script = textwrap.dedent(f"""
        import json, torch, nasbench
        from nasbench.latency.table import load_table
        space = nasbench.load_space("tiny")
        table = load_table({str(path)!r}, space)
        arch = nasbench.Arch.parse({str(arch)!r})
        print(json.dumps([table.predict(arch), table.table_sum(arch), torch.cuda.is_initialized()]))
    """)
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    predicted, summed, cuda_touched = json.loads(out.stdout)
    assert summed == pytest.approx(here.table_sum(arch))
    assert predicted == pytest.approx(1.2 * summed + 0.01 * len(decompose(arch)) + 0.3)
    assert not cuda_touched


def test_missing_table_is_a_clear_error(tmp_path):
    with pytest.raises(NasbenchError, match="does not exist"):
        load_table(tmp_path / "nope.json", TINY)


def test_table_for_another_space_is_a_clear_error(tmp_path, fake_timer):
    path = gpu_table(tmp_path)
    with pytest.raises(NasbenchError, match="measured for space 'tiny'"):
        load_table(path, nasbench.load_space("mobile"))
    # Same name, other dimensions: caught by the fingerprint.
    text = (Path(nasbench.__file__).parent.parent / "search_spaces" / "tiny.yaml").read_text()
    other = tmp_path / "tiny2.yaml"
    other.write_text(text.replace("head: {base: 128, width: [64, 128]}", "head: {base: 128, width: [128]}"))
    changed = nasbench.load_space(other)
    assert changed.name == "tiny" and space_fingerprint(changed) != space_fingerprint(TINY)
    with pytest.raises(NasbenchError, match="fingerprint"):
        load_table(path, changed)


def test_config_missing_from_table_is_a_clear_error(tmp_path, fake_timer):
    table = load_table(gpu_table(tmp_path), TINY)
    arch = sample_archs(TINY, [16], [3])[0]
    with pytest.raises(NasbenchError, match="covers resolutions"):
        table.table_sum(arch.with_resolution(32))
    key = config_key(decompose(arch)[2][1])
    del table.entries[key]
    with pytest.raises(NasbenchError, match=key):
        table.predict(arch)


def test_uncalibrated_table_cannot_predict(tmp_path, fake_timer):
    table = build_table(TINY, CPU, tmp_path / "t.json", resolutions=[16], passes=1)
    with pytest.raises(NasbenchError, match="no fitted correction"):
        table.predict(sample_archs(TINY, [16], [0])[0])


# --- correction and validation ------------------------------------------------------------------------


def test_fit_correction_recovers_an_affine_law():
    sums, layers = [5.0, 8.0, 11.0, 13.0, 20.0], [9, 11, 10, 14, 12]
    measured = [1.3 * s + 0.05 * n + 0.7 for s, n in zip(sums, layers, strict=True)]
    c = fit_correction(sums, layers, measured)
    assert (c.scale, c.per_layer_ms, c.offset_ms) == pytest.approx((1.3, 0.05, 0.7))
    back = Correction.from_json(c.to_json())
    assert c.fit_mape < 1e-9 and (back.scale, back.offset_ms) == pytest.approx((c.scale, c.offset_ms), rel=1e-5)
    s = scores(measured, measured)
    assert s["kendall_tau"] == 1 and s["mape"] == 0 and s["within_10pct"] == 1


def test_validate_on_held_out_archs(real_table):
    rep = validate(real_table, TINY, CPU, n=4, calibrate_n=3, rounds=2, per_round=1)
    held = [r for r in rep["archs"] if r["role"] == "held-out"]
    assert len(held) == 4 and {r["arch"] for r in held}.isdisjoint(r["arch"] for r in rep["archs"][:3])
    assert set(rep["scores"]) >= {"kendall_tau", "mape", "within_10pct"}
    assert rep["noise"]["median_rel_iqr"] >= 0 and rep["context"]["threads"] == 1


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_measure_json_and_errors(tmp_path):
    runner = CliRunner()
    args = ["measure", "smallest", "--space", "tiny", "-r", "16", "--warmup", "1", "--repeats", "3", "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["latency"]["n"] == 3 and info["context"]["threads"] == 1 and info["resolution"] == 16
    if not torch.cuda.is_available():
        res = runner.invoke(app, ["measure", "smallest", "--space", "tiny", "--device", "cuda"])
        assert isinstance(res.exception, NasbenchError)
    res = runner.invoke(app, ["predict", "smallest", "--space", "tiny", "--table", str(tmp_path / "none.json")])
    assert isinstance(res.exception, NasbenchError) and "does not exist" in str(res.exception)
    for cmd in ("measure", "lut", "predict", "validate", "calibrate"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0 and "--json" in res.stdout


# --- latency in a search: covered resolutions only, and whose milliseconds ------------------------------------


def here_table(tmp_path, resolutions=(16,), machine: Machine | None = None) -> Path:
    """A CPU table (fake timings) at ``resolutions`` whose correction was fitted on ``machine`` (default: here)."""
    path = tmp_path / "here.json"
    table = build_table(TINY, CPU, path, resolutions=list(resolutions), passes=1)
    table.correction = Correction(1.1, 0.01, 0.2, 5, 0.01, machine or Machine.here("cpu", CPU.threads))
    table.save()
    return path


def uniform(space) -> dict:
    return {d.label: torch.full((len(d.choices),), 1 / len(d.choices)) for d in space.dimensions()}


def test_search_space_is_restricted_to_the_tables_resolutions(tmp_path, fake_timer):
    path = here_table(tmp_path)
    full = load_table(path, TINY)
    with pytest.raises(NasbenchError, match="covers resolutions"):
        cost_range(TINY, full.predict, 4)  # the failure this restriction removes: largest() is at 32 px
    use = table_for_search(path, TINY)
    assert use.space.resolutions == (16,) and use.dropped == (24, 32) and use.foreign is None
    assert use.table.resolutions == [16] and use.space.stages == TINY.stages
    assert any("lacks [24, 32]" in line for line in use.notes())
    # Every searcher's view works: the cost range, the expected latency and sampled proposals.
    low, *_, high = cost_range(use.space, use.table.predict, 4)
    assert 0 < low < high
    assert float(expected_latency(use.space, use.table)(uniform(use.space))) > 0
    assert {use.space.sample(seed).resolution for seed in range(20)} == {16}


def test_search_context_searches_covered_resolutions_and_says_so(tmp_path, fake_timer, capsys):
    path = here_table(tmp_path, resolutions=(16, 24))
    config = SearchConfig(
        space="tiny", data="digits", budget="1min", objectives=("acc", "macs", "latency"), latency_table=str(path)
    )
    with RunDir.create({"space": "tiny", "data": "digits"}, out=tmp_path / "run") as run:
        trained = SimpleNamespace(supernet=Supernet(TINY, 10), train=None, val=None, out_dir=run.supernet_dir)
        run.supernet_dir.mkdir(parents=True, exist_ok=True)  # the record a trained supernet leaves
        identity = rundir.run_identity(TINY, {"name": "digits"}, parse_budget("1steps"), 0, TrainConfig())
        rundir.write_json(run.supernet_dir / rundir.CONFIG_FILE, {"identity": identity})
        ctx = search_context(config, trained, run)
        stored = run.read_state()["latency"]
    assert ctx.evaluate.settings.bn_batches == TrainConfig().bn_batches and ctx.evaluate.settings.data_seed == 0
    assert ctx.space.resolutions == (16, 24) and ctx.predictor.resolutions == [16, 24]
    assert stored["resolutions"] == [16, 24] and stored["dropped_resolutions"] == [32]
    assert stored["milliseconds_of_this_machine"] and stored["notes"] and "lacks [32]" in stored["notes"][0]
    assert "it lacks [32]" in " ".join(capsys.readouterr().err.split())  # and on the console


def test_table_covering_no_resolution_is_refused_naming_them(tmp_path, fake_timer):
    path = here_table(tmp_path, resolutions=(16,))
    text = (Path(nasbench.__file__).parent.parent / "search_spaces" / "tiny.yaml").read_text()
    other = tmp_path / "tiny_big.yaml"
    other.write_text(text.replace("resolution: [16, 24, 32]", "resolution: [24, 32]"))
    big = nasbench.load_space(other)
    with pytest.raises(NasbenchError, match=r"none of space tiny's resolutions \[24, 32\].*--resolution 24"):
        table_for_search(path, big)


def test_calibrate_refits_the_correction_for_this_machine(real_table, tmp_path):
    path = tmp_path / "calibrated.json"
    shutil.copy(real_table.path, path)
    args = ["calibrate", str(path), "--archs", "3", "--rounds", "3", "--seconds", "0.01", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["rounds"] == 3 and info["previous"] is None and info["path"] == str(path)
    table = load_table(path, TINY)
    c = table.correction
    assert c is not None and c.archs == 3 and c.machine == Machine.here("cpu", 1)
    assert c.machine.hostname == socket.gethostname() and table.calibration_mismatch() is None
    assert info["correction"]["machine"]["hostname"] == socket.gethostname()
    assert table_for_search(path, TINY, max_latency=5.0).foreign is None  # a limit in these ms is allowed


def test_table_from_another_machine_ranks_but_is_refused_under_max_latency(tmp_path, fake_timer):
    elsewhere = Machine("elsewhere", "cpu", "Same CPU model", torch.__version__, 1)
    path = here_table(tmp_path, resolutions=(16, 24, 32), machine=elsewhere)
    use = table_for_search(path, TINY)
    assert "elsewhere" in use.foreign and not use.record()["milliseconds_of_this_machine"]
    assert any("rank architectures but are not milliseconds of this machine" in line for line in use.notes())
    with pytest.raises(NasbenchError, match="--max-latency 5 needs milliseconds of this machine.*latency calibrate"):
        table_for_search(path, TINY, max_latency=5.0)
    config = SearchConfig(space="tiny", data="digits", budget="1min", max_latency=5.0, latency_table=str(path))
    with pytest.raises(NasbenchError, match="nasbench latency calibrate"):
        load_predictor(config, TINY)
    # A table from before machines were recorded cannot say whose milliseconds it predicts.
    old = json.loads(path.read_text())
    old["correction"].pop("machine")
    path.write_text(json.dumps(old))
    assert "does not record the machine" in table_for_search(path, TINY).foreign


def test_a_foreign_table_validates_here_once_calibrated_here(tmp_path, fake_timer):
    """validate refuses a table measured on another machine and names `latency calibrate`; after that
    calibration (its correction fitted here) validate accepts it, in the same measuring settings only."""
    from dataclasses import replace

    from nasbench.latency.predict import check_validation_context

    elsewhere = Machine("elsewhere", "cpu", "Another CPU", "0.0", CPU.threads)
    path = here_table(tmp_path, machine=elsewhere)
    data = json.loads(path.read_text())
    data["context"].update(device_name="Another CPU", torch="0.0")
    path.write_text(json.dumps(data))
    table = load_table(path, TINY)
    with pytest.raises(NasbenchError, match="another context.*nasbench latency calibrate"):
        check_validation_context(table, CPU)
    table.correction = replace(table.correction, machine=Machine.here("cpu", CPU.threads))  # what calibrate stores
    check_validation_context(table, CPU)
    with pytest.raises(NasbenchError, match="batch"):  # other measuring settings stay refused
        check_validation_context(table, make_context("cpu", batch=4))


def test_correction_round_trips_its_machine():
    c = Correction(1.0, 0.1, 0.2, 4, 0.05, Machine("h", "cuda", "GPU", "2.13", 8))
    assert Correction.from_json(json.loads(json.dumps(c.to_json()))) == c
    assert not c.machine.differences(Machine("h", "cuda", "GPU", "2.13", 16))  # host threads: not a GPU's


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_calibrating_a_cuda_table_without_cuda_is_a_clear_error(tmp_path, fake_timer):
    res = CliRunner().invoke(app, ["calibrate", str(gpu_table(tmp_path))])
    assert isinstance(res.exception, NasbenchError) and "CUDA device" in str(res.exception)
