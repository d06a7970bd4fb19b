"""Data-parallel supernet training on Ray Train (gloo on CPU): two ranks equal one device with their global
batch, a killed two-rank run resumes to the uninterrupted result, a failing rank fails the command cleanly.
The tests that start Ray in a child process of their own (kill and resume, Ctrl-C), time a budget or run
a whole search are ``slow`` (``make test-all`` runs them): the default suite keeps the equality, the
failing worker, the single all-reduce and the refusals.

Everything runs a copy of ``tiny`` at resolutions 12 and 16 on ``digits``, one CPU thread per rank.
"""

import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import replace

import psutil
import pytest
import torch

from nasbench import load_space
from nasbench.budget import parse_budget
from nasbench.data import load_dataset
from nasbench.errors import NasbenchError
from nasbench.training import TrainConfig, train_supernet
from nasbench.training.parallel import train_data_parallel
from nasbench.training.state import BatchStream, load_checkpoint

CONFIG = TrainConfig(batch_size=8, num_random=1, checkpoint_every=4, bn_batches=2, lr=0.01)  # lr: see the test below
STEPS = 20


@pytest.fixture(scope="module")
def space_path(tiny16_path):
    return tiny16_path


@pytest.fixture(scope="module")
def space(space_path):
    return load_space(space_path)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def ray_up(tmp_path_factory):
    """One local Ray for this module's in-process runs (each would otherwise start and stop its own)."""
    from nasbench.engines.ray_tune import ray_session

    with ray_session(tmp_path_factory.mktemp("ray")):
        yield


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, space_path, space, digits, ray_up):
    """Two ranks of batch 8, STEPS steps, never interrupted."""
    out = tmp_path_factory.mktemp("runs") / "two"
    origin = {"space": str(space_path), "data": "digits"}
    budget = parse_budget(f"{STEPS}steps")
    return train_data_parallel(
        space,
        digits,
        budget,
        out,
        workers=2,
        config=CONFIG,
        device="cpu",
        batch_norm="sync",
        progress=False,
        origin=origin,
    )


def test_a_shard_stream_gives_each_rank_its_rows_of_the_global_batch(digits):
    from nasbench.data import search_data

    train, _ = search_data(digits, 0.1, 0)
    whole = BatchStream(train, 16, 8, seed=3)
    halves = [BatchStream(train, 8, 8, seed=3, shard=(rank, 2)) for rank in range(2)]
    for _ in range(120):  # past an epoch boundary (101 global batches of 16 in an epoch)
        images, labels = whole.next()
        parts = [h.next() for h in halves]
        assert torch.equal(torch.cat([p[0] for p in parts]), images)
        assert torch.equal(torch.cat([p[1] for p in parts]), labels)


def test_two_ranks_train_what_one_device_trains_with_their_global_batch(tmp_path, space, digits, two_ranks):
    one = train_supernet(
        space,
        digits,
        parse_budget(f"{STEPS}steps"),
        tmp_path / "one",
        config=replace(CONFIG, batch_size=16),
        device="cpu",
        progress=False,
    )
    two = load_checkpoint(two_ranks.out_dir / "checkpoint.pt")
    ref = load_checkpoint(one.out_dir / "checkpoint.pt")
    assert two["step"] == ref["step"] == STEPS
    worst = max(
        float((two["model"][k].float() - v.float()).abs().max())
        for k, v in ref["model"].items()
        if v.is_floating_point()
    )
    assert worst < 1e-4, f"largest weight difference {worst:.2e}"
    changed = max(
        float((ref["model"][k].float() - v.float()).abs().max())
        for k, v in two_ranks.supernet.state_dict().items()
        if v.is_floating_point()
    )
    assert changed < 1e-4  # the driver's supernet is rank 0's last checkpoint
    assert two["sampler"] == ref["sampler"]  # the same subnets, step for step
    assert two_ranks.coverage == one.coverage


def test_local_batch_norm_is_a_different_run_and_recorded(tmp_path, space, digits, two_ranks):
    import json

    record = json.loads((two_ranks.out_dir / "train_config.json").read_text())
    assert record["identity"]["parallel"] == {"workers": 2, "batch_norm": "sync", "global_batch": 16}
    assert record["environment"]["workers"] == 2
    with pytest.raises(NasbenchError, match="different run"):
        train_data_parallel(
            space,
            digits,
            parse_budget(f"{STEPS}steps"),
            two_ranks.out_dir,
            workers=2,
            config=CONFIG,
            device="cpu",
            progress=False,
            resume=True,  # batch_norm: the default, local
        )
    with pytest.raises(NasbenchError, match="different run"):  # a resume with another worker count
        train_supernet(
            space,
            digits,
            parse_budget(f"{STEPS}steps"),
            two_ranks.out_dir,
            config=CONFIG,
            device="cpu",
            progress=False,
            resume=True,
        )


def cli(space_path, out, *extra):
    command = [sys.executable, "-m", "nasbench", "train-supernet", "--space", str(space_path), "--data", "digits"]
    command += ["--budget", f"{STEPS}steps", "--out", str(out), "--workers", "2", "--batch-size", "8"]
    command += ["--num-random", "1", "--checkpoint-every", "4", "--bn-batches", "2", "--lr", "0.01"]
    return command + ["--batch-norm", "sync", "--no-progress", *extra]


def descendants(pid: int) -> dict[int, float]:
    out = {}
    for p in psutil.Process(pid).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            out[p.pid] = p.create_time()
    return out


def alive_after(procs: dict[int, float], wait_s: float) -> list[int]:
    deadline = time.monotonic() + wait_s
    while True:
        alive = []
        for pid, started in procs.items():
            with contextlib.suppress(psutil.Error):
                if psutil.Process(pid).create_time() == started and psutil.Process(pid).status() != "zombie":
                    alive.append(pid)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


@pytest.mark.slow  # ~40-60 s: a second Ray start-up in the killed child
def test_a_killed_two_rank_run_resumes_to_the_uninterrupted_result(tmp_path, space_path, space, digits, two_ranks):
    run = tmp_path / "killed"
    log = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 - the child writes to it until killed
    child = subprocess.Popen(cli(space_path, run), stdout=subprocess.DEVNULL, stderr=log)
    checkpoint, deadline, seen = run / "checkpoint.pt", time.monotonic() + 240, {}
    try:
        while not checkpoint.exists():
            assert child.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "no checkpoint within 4 minutes"
            seen.update(descendants(child.pid))
            time.sleep(0.01)
        seen.update(descendants(child.pid))
        child.kill()  # SIGKILL: the driver only; its Ray processes must go with it
    finally:
        child.wait()
        log.close()
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 4 <= killed_at < STEPS and not (run / "train_result.json").exists()
    assert len(seen) >= 3 and not alive_after(seen, 30)  # raylet, GCS, workers: none outlives the driver

    resumed = train_data_parallel(
        space,
        digits,
        parse_budget(f"{STEPS}steps"),
        run,
        workers=2,
        config=CONFIG,
        device="cpu",
        batch_norm="sync",
        progress=False,
        resume=True,
    )
    assert resumed.resumed_at == killed_at and resumed.steps == STEPS
    final, reference = load_checkpoint(checkpoint), load_checkpoint(two_ranks.out_dir / "checkpoint.pt")
    assert final["step"] == reference["step"] == STEPS
    for key, value in reference["model"].items():
        assert torch.equal(final["model"][key], value), key
    assert final["sampler"] == reference["sampler"]


@pytest.mark.slow  # a Ray Train start-up in a child process: minutes on a loaded machine
def test_a_failing_rank_fails_the_command_with_its_error_and_leaves_no_process(tmp_path, space_path):
    """Rank 0 cannot write its first checkpoint (the path is taken by a folder): the command must exit
    non-zero with that rank's error on one line, and take every process it started with it."""
    run = tmp_path / "failing"
    child = subprocess.Popen(cli(space_path, run), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, seen = time.monotonic() + 240, {}
    while not (run / "train_config.json").exists():
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    (run / "checkpoint.pt").mkdir()
    while child.poll() is None:
        seen.update(descendants(child.pid))
        assert time.monotonic() < deadline, "the failing run did not end within 4 minutes"
        time.sleep(0.05)
    _, err = child.communicate()
    assert child.returncode != 0
    assert "worker 0 failed: IsADirectoryError" in err, err
    assert "Traceback" not in err
    assert len(seen) >= 3 and not alive_after(seen, 30)


def test_bad_parallel_settings_are_refused_before_anything_is_written(tmp_path, space, digits):
    budget = parse_budget("4steps")
    for kwargs, message in (
        ({"workers": 1}, "at least 2"),
        ({"workers": 2, "batch_norm": "ghost"}, "--batch-norm 'ghost'"),
        ({"workers": 2, "config": replace(CONFIG, reorder_every=2)}, "re-ordering"),
        ({"workers": 200, "config": replace(CONFIG, batch_size=32)}, "more than the"),
    ):
        with pytest.raises(NasbenchError, match=message):
            train_data_parallel(space, digits, budget, tmp_path / "run", **{"config": CONFIG, **kwargs})
        assert not (tmp_path / "run").exists()


def test_gradients_are_all_reduced_once_per_step_after_every_subnet(tmp_path, space, digits):
    """DDP's buckets are reduced only in the last subnet's backward: the others run under ``no_sync``."""
    import random

    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from nasbench.data import search_data
    from nasbench.supernet import Supernet
    from nasbench.training import make_optimizer, sandwich_archs, sandwich_step

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        net = Supernet(space, num_classes=digits.num_classes)
        ddp = DistributedDataParallel(net, find_unused_parameters=True)
        subnet, reduced = [0], []
        net.register_forward_pre_hook(lambda *_: subnet.__setitem__(0, subnet[0] + 1))

        def count(_state, bucket):
            reduced.append(subnet[0])
            done = torch.futures.Future()
            done.set_result(bucket.buffer())
            return done

        ddp.register_comm_hook(None, count)
        train, _ = search_data(digits, 0.1, 0)
        stream, optimizer = BatchStream(train, 8, 16, seed=0), make_optimizer(net, CONFIG)
        per_step = []
        for step in range(3):
            archs = sandwich_archs(space, random.Random(step), 2)
            subnet[0], reduced[:] = 0, []
            sandwich_step(net, archs, *stream.next(), optimizer=optimizer, model=ddp)
            assert reduced and set(reduced) == {len(archs)}, reduced  # all in the 4th (last) subnet's backward
            per_step.append(len(reduced))
        assert len(set(per_step)) == 1  # every bucket once a step
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_a_device_time_budget_is_charged_for_every_worker(tmp_path, space, digits, ray_up):
    budget = parse_budget("0.004gpu-h")  # 14.4 device-seconds: about 7 s of wall time on two workers
    result = train_data_parallel(
        space, digits, budget, tmp_path / "timed", workers=2, config=CONFIG, device="cpu", progress=False
    )
    assert result.steps >= 1 and "CPU" in result.note  # gpu-h on a machine without one: said so
    assert 2 * result.seconds <= result.spent <= 2 * result.wall_seconds  # wall x 2 devices, as clocked by rank 0


@pytest.mark.slow
def test_a_search_trains_its_supernet_on_two_workers(tmp_path, space_path, ray_up):
    import nasbench

    run = nasbench.search(
        str(space_path),
        "digits",
        "3trials",
        train_budget="8steps",
        searchers="random",
        concurrency=1,
        workers=2,
        batch_size=8,
        out=tmp_path / "search",
    )
    assert len(run.records) == 3 and run.config["workers"] == 2
    record = (tmp_path / "search" / "supernet" / "train_config.json").read_text()
    assert '"workers": 2' in record


@pytest.mark.slow
def test_ctrl_c_ends_a_two_rank_run_and_every_process_it_started(tmp_path, space_path):
    run = tmp_path / "interrupted"
    child = subprocess.Popen(cli(space_path, run), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline, seen = time.monotonic() + 240, {}
    while not (run / "checkpoint.pt").exists():
        assert child.poll() is None and time.monotonic() < deadline
        seen.update(descendants(child.pid))
        time.sleep(0.01)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "--resume" in err  # the hint to continue
    assert len(seen) >= 3 and not alive_after(seen, 30)


def test_more_workers_than_ray_has_are_refused_leaving_no_folder(tmp_path, space, digits, ray_up):
    from nasbench.engines.ray_tune import session_resources

    too_many = int(session_resources()["CPU"]) + 1
    with pytest.raises(NasbenchError, match=f"--workers {too_many}: Ray has"):
        train_data_parallel(
            space, digits, parse_budget("4steps"), tmp_path / "run", workers=too_many, config=CONFIG, device="cpu",
            progress=False,
        )  # fmt: skip
    assert not (tmp_path / "run").exists()


def test_the_command_refuses_a_bad_batch_norm_mode_before_writing(tmp_path, space_path):
    from typer.testing import CliRunner

    from nasbench.cli import app

    args = ["train-supernet", "--space", str(space_path), "--data", "digits", "--budget", "2steps"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run"), "--batch-norm", "ghost"])
    assert result.exit_code == 2 and "--batch-norm 'ghost': choose local or sync" in result.output
    assert not (tmp_path / "run").exists()
