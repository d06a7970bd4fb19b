"""Supernet training: the sandwich step, weight decay groups, BN recalibration, checkpoints and resume, CLI.

Everything runs the real ``Supernet`` of a copy of the ``tiny`` space restricted to resolutions 12 and 16,
on ``digits``, batch 32, a dozen steps, one CPU thread (bitwise-reproducible and fast on busy cores).
"""

import copy
import json
import random
import subprocess
import sys
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

from nasbench import load_space
from nasbench.budget import BudgetClock, parse_budget
from nasbench.cli import app
from nasbench.data import DeviceData, load_dataset
from nasbench.data.augment import resize
from nasbench.errors import NasbenchError
from nasbench.supernet import Supernet
from nasbench.training import (
    TrainConfig,
    distillation_loss,
    evaluate,
    make_optimizer,
    param_groups,
    recalibrate_bn,
    sandwich_archs,
    sandwich_step,
    steps,
    train_supernet,
    warmup_cosine,
)
from nasbench.training.evaluate import accuracy
from nasbench.training.optim import dynconv_temperature, set_temperature
from nasbench.training.rundir import TrainingRecord
from nasbench.training.state import BatchStream, capture_rng, load_checkpoint, restore_rng, save_checkpoint
from nasbench.training.steps import plan_steps

CONFIG = TrainConfig(batch_size=32, num_random=1, checkpoint_every=3, bn_batches=4, reorder_every=4)
STEPS = 9
CLI_RECIPE = ["--batch-size", "32", "--num-random", "1", "--checkpoint-every", "3", "--bn-batches", "4"]
CLI_RECIPE += ["--reorder-every", "4"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
def uninterrupted(tmp_path_factory, space_path, space, digits):
    """A whole run of STEPS steps, never interrupted: the reference for resume and the CLI tests."""
    out = tmp_path_factory.mktemp("runs") / "uninterrupted"
    origin = {"space": str(space_path), "data": "digits"}  # what the CLI records, so --resume needs no more
    budget = parse_budget(f"{STEPS}steps")
    return train_supernet(space, digits, budget, out, config=CONFIG, seed=0, progress=False, origin=origin)


# --- recipe pieces ----------------------------------------------------------------------------------------


def test_config_resolves_optimizer_defaults_and_rejects_bad_values():
    assert TrainConfig().lr == 0.1 and TrainConfig(optimizer="adamw").lr == 2e-3
    assert TrainConfig(optimizer="adamw", lr=1e-2).lr == 1e-2
    with pytest.raises(NasbenchError, match="valid are sgd-nesterov, adamw"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(NasbenchError, match="student_label_weight must be in"):
        TrainConfig(student_label_weight=1.5)
    with pytest.raises(NasbenchError, match="batch_size must be a positive integer"):
        TrainConfig(batch_size=0)
    with pytest.raises(NasbenchError, match="unknown fields"):
        TrainConfig.from_dict({"batch_size": 8, "learning_rate": 1})
    assert TrainConfig.from_dict(CONFIG.to_dict()) == CONFIG


def test_weight_decay_spares_norms_and_biases(space):
    net = Supernet(space, num_classes=10)
    decay, no_decay = param_groups(net, 5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    ids = {id(p): name for name, p in net.named_parameters()}
    decayed = {ids[id(p)] for p in decay["params"]}
    spared = {ids[id(p)] for p in no_decay["params"]}
    assert decayed.isdisjoint(spared) and decayed | spared == set(ids.values())
    for name, module in net.named_modules():
        for pname, _ in module.named_parameters(recurse=False):
            full = f"{name}.{pname}"
            norm = isinstance(module, (nn.BatchNorm2d, nn.LayerNorm))
            assert (full in spared) == (norm or pname == "bias"), full
    assert any("bn" in n for n in spared) and any(n.endswith("conv.weight") for n in decayed)
    assert isinstance(make_optimizer(net, CONFIG), torch.optim.SGD)
    assert isinstance(make_optimizer(net, replace(CONFIG, optimizer="adamw", lr=None)), torch.optim.AdamW)


def test_warmup_then_cosine():
    lrs = [warmup_cosine(s, warmup=10, total=100) for s in range(101)]
    assert lrs[0] < lrs[5] < lrs[9] < 1.0 == lrs[10]
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[100] == pytest.approx(0.0) and lrs[55] == pytest.approx(0.5)


def test_dynconv_temperature_anneals_from_30_to_1(space):
    assert dynconv_temperature(0, total=100, start=30.0, anneal=0.1) == 30.0
    assert dynconv_temperature(5, total=100, start=30.0, anneal=0.1) == pytest.approx(15.5)
    assert dynconv_temperature(10, total=100, start=30.0, anneal=0.1) == 1.0
    net = Supernet(space, num_classes=10)
    assert set_temperature(net, 7.0) == 4  # two dynconv positions in each of s2 and s3
    assert {m.temperature for m in net.modules() if hasattr(m, "temperature")} == {7.0}


def test_distillation_targets_are_detached():
    student = torch.randn(4, 10, requires_grad=True)
    teacher = torch.randn(4, 10, requires_grad=True)
    loss = distillation_loss(student, teacher)
    loss.backward()
    assert teacher.grad is None and student.grad is not None
    expected = F.cross_entropy(student, F.softmax(teacher.detach(), dim=1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


class RecordingSGD(torch.optim.SGD):
    """Counts steps and keeps the gradients it was asked to apply (and applies nothing)."""

    def step(self, closure=None):
        self.calls = getattr(self, "calls", 0) + 1
        self.seen = [None if p.grad is None else p.grad.clone() for g in self.param_groups for p in g["params"]]


def test_sandwich_step_accumulates_every_subnet_before_one_update(space):
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10)
    archs = sandwich_archs(space, random.Random(0), 1)
    assert archs[:2] == [space.largest(), space.smallest()] and len(archs) == 3
    lean = sandwich_archs(space, random.Random(0), 2, smallest=False)  # train_smallest=False
    rng = random.Random(0)
    assert lean == [space.largest(), space.sample(rng), space.sample(rng)]
    images, labels = torch.randn(8, 3, 16, 16), torch.randint(0, 10, (8,))
    opt = RecordingSGD(net.parameters(), lr=0.1)
    sandwich_step(net, archs, images, labels, optimizer=opt, label_smoothing=0.1)
    assert opt.calls == 1

    params = list(net.parameters())
    net.set_active(archs[0])
    with torch.no_grad():
        teacher = net(images)
    expected = [torch.zeros_like(p) for p in params]
    largest_only = []
    for i, arch in enumerate(archs):  # each subnet's gradient on its own, summed
        net.zero_grad(set_to_none=True)
        net.set_active(arch)
        logits = net(resize(images, arch.resolution))
        loss = F.cross_entropy(logits, labels, label_smoothing=0.1) if i == 0 else distillation_loss(logits, teacher)
        loss.backward()
        if i == 0:
            largest_only = [None if p.grad is None else p.grad.clone() for p in params]
        for e, p in zip(expected, params, strict=True):
            if p.grad is not None:
                e += p.grad
    for seen, e in zip(opt.seen, expected, strict=True):
        torch.testing.assert_close(seen if seen is not None else torch.zeros_like(e), e, atol=1e-6, rtol=1e-5)
    differs = [
        s is not None and (g is None or not torch.allclose(s, g)) for s, g in zip(opt.seen, largest_only, strict=True)
    ]
    assert any(differs)  # the smaller subnets did contribute


# --- BN recalibration and evaluation ----------------------------------------------------------------------


def test_recalibrate_bn_is_an_exact_average_and_restores_momentum():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3))
    model[1].running_mean.fill_(5.0)
    batches = [torch.randn(8, 3, 6, 6) * (i + 1) for i in range(3)]
    used = recalibrate_bn(model, iter([(b, None) for b in batches] + [(batches[0] * 100, None)]), 3)
    assert used == 3 and not model.training and model[1].momentum == 0.3
    with torch.no_grad():
        feats = [model[0](b) for b in batches]
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in feats]).mean(0)
    torch.testing.assert_close(model[1].running_mean, mean)
    torch.testing.assert_close(model[1].running_var, var)
    assert int(model[1].num_batches_tracked) == 3


def test_recalibrated_subnets_beat_stale_statistics_and_are_deterministic(uninterrupted, space):
    net = copy.deepcopy(uninterrupted.supernet)
    for arch in (space.largest(), space.smallest()):
        net.set_active(arch)
        _, stale_loss = accuracy(net, uninterrupted.val, arch.resolution)
        first = evaluate(net, arch, uninterrupted.train, uninterrupted.val, bn_batches=4, batch_size=32, seed=1)
        again = evaluate(net, arch, uninterrupted.train, uninterrupted.val, bn_batches=4, batch_size=32, seed=1)
        assert first == again
        if arch == space.largest():  # trained on labels every step; the smallest may still sit at chance here
            assert first.loss < stale_loss
        assert first.images == len(uninterrupted.val) and first.bn_batches == 4


# --- resumable state --------------------------------------------------------------------------------------


def test_batch_stream_resumes_mid_epoch():
    rng = np.random.default_rng(0)
    data = DeviceData(
        rng.integers(0, 255, (20, 8, 8, 3), dtype=np.uint8), np.arange(20) % 3, mean=(0.5,) * 3, std=(0.2,) * 3
    )
    whole = BatchStream(data, 6, 8, seed=3)
    expected = [whole.next() for _ in range(8)]  # 3 batches an epoch: crosses two epoch boundaries
    first = BatchStream(data, 6, 8, seed=3)
    for _ in range(4):
        first.next()
    resumed = BatchStream(data, 6, 8, seed=99)
    resumed.load_state_dict(first.state_dict())
    for (x, y), (ex, ey) in zip([resumed.next() for _ in range(4)], expected[4:], strict=True):
        assert torch.equal(x, ex) and torch.equal(y, ey)


def test_checkpoints_round_trip_rng_and_refuse_garbage(tmp_path):
    state = capture_rng()
    draws = (random.random(), np.random.rand(), torch.rand(1))
    save_checkpoint(tmp_path / "c.pt", {"rng": state})
    restore_rng(load_checkpoint(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1)) == draws
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(NasbenchError, match="cannot be read") as bad:
        load_checkpoint(tmp_path / "bad.pt")
    assert "damaged or foreign" in str(bad.value) and "\n" not in str(bad.value)
    (tmp_path / "cut.pt").write_bytes((tmp_path / "c.pt").read_bytes()[:300])  # a checkpoint cut short
    with pytest.raises(NasbenchError, match="cannot be read"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "dir.pt").mkdir()  # an I/O error keeps its cause, and says it is not about the content
    with pytest.raises(NasbenchError, match="cannot be read: ") as io:
        load_checkpoint(tmp_path / "dir.pt")
    assert isinstance(io.value.__cause__, OSError) and "damaged" not in str(io.value)


def test_killed_training_resumes_to_the_uninterrupted_result(tmp_path, space_path, space, digits, uninterrupted):
    run = tmp_path / "killed"
    command = [sys.executable, "-m", "nasbench", "train-supernet", "--space", str(space_path)]
    command += ["--data", "digits", "--budget", f"{STEPS}steps", "--out", str(run), "--threads", "1", "--no-progress"]
    log = open(tmp_path / "stderr.txt", "w")  # noqa: SIM115 - the child writes to it until killed
    child = subprocess.Popen(command + CLI_RECIPE, stdout=subprocess.DEVNULL, stderr=log)
    checkpoint, deadline = run / "checkpoint.pt", time.monotonic() + 180
    try:
        while not checkpoint.exists():
            assert child.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "no checkpoint within 3 minutes"
            time.sleep(0.01)
        child.kill()  # SIGKILL: no cleanup, no final checkpoint
    finally:
        child.wait()
        log.close()
    killed_at = load_checkpoint(checkpoint)["step"]
    assert 3 <= killed_at < STEPS and not (run / "train_result.json").exists()

    resumed = train_supernet(
        space, digits, parse_budget(f"{STEPS}steps"), run, config=CONFIG, resume=True, progress=False
    )
    assert resumed.resumed_at == killed_at and resumed.steps == STEPS
    final = load_checkpoint(run / "checkpoint.pt")
    reference = load_checkpoint(uninterrupted.out_dir / "checkpoint.pt")
    assert final["step"] == reference["step"] == STEPS
    for key, value in reference["model"].items():
        assert torch.equal(final["model"][key], value), key
    assert final["optimizer"]["state"].keys() == reference["optimizer"]["state"].keys()
    for index, buffers in reference["optimizer"]["state"].items():
        assert torch.equal(final["optimizer"]["state"][index]["momentum_buffer"], buffers["momentum_buffer"])
    assert final["sampler"] == reference["sampler"]  # the coverage sampler's generator, cycles and counts
    assert final["stream"]["position"] == reference["stream"]["position"]


def test_time_budget_becomes_a_saved_step_count(tmp_path, space, digits):
    config, budget = replace(CONFIG, timing_steps=2), parse_budget("0.001gpu-h")  # 3.6 device-seconds
    result = train_supernet(space, digits, budget, tmp_path / "timed", config=config, device="cpu", progress=False)
    record = json.loads((tmp_path / "timed" / "train_config.json").read_text())
    plan, environment = record["plan"], record["environment"]
    assert plan["total_steps"] == result.steps >= 1 and plan["step_seconds"] > 0
    assert environment["channels_last"] is True and environment["autocast"] == "off (float32)"
    assert "device-hours of the CPU" in result.note
    # what the budget was charged covers the steps, and is the session's wall time, not more or less
    spent = json.loads((tmp_path / "timed" / "train_result.json").read_text())
    assert spent["session_seconds"] <= spent["session_spent"] <= spent["spent"]
    assert abs(spent["session_spent"] - spent["session_wall_seconds"]) <= 0.1 * spent["session_wall_seconds"]
    assert "warm-up steps" in plan["how"]
    again = train_supernet(space, digits, budget, tmp_path / "timed", config=config, resume=True, progress=False)
    assert again.steps == result.steps and again.resumed_at == result.steps


def test_epochs_budget_plans_whole_passes(uninterrupted):
    budget = parse_budget("2epochs")
    per_epoch = uninterrupted.train.batches_per_epoch(CONFIG.batch_size)
    plan = plan_steps(SimpleNamespace(config=CONFIG), budget, BudgetClock(budget), per_epoch)
    assert per_epoch == len(uninterrupted.train) // CONFIG.batch_size
    assert plan.total_steps == 2 * per_epoch and plan.budget_per_step == pytest.approx(1 / per_epoch)
    assert plan.step_seconds is None and plan.how == f"2 x {per_epoch} batches"


# --- the shared step loop, on a tiny task -----------------------------------------------------------------


class TinyTask:
    """A linear regression as a ``StepTask``: its own batch generator, plus a draw from torch's global one
    (as dropout would), so resuming must restore both."""

    def __init__(self, seed=0, config=replace(CONFIG, checkpoint_every=3, timing_steps=2)):
        torch.manual_seed(seed)
        self.config, self.device = config, torch.device("cpu")
        self.model = nn.Linear(3, 1)
        self.optimizer = make_optimizer(self.model, config)
        self.batches = torch.Generator().manual_seed(seed)
        self.steps_made = 0

    def step(self, i, total):
        x = torch.randn(4, 3, generator=self.batches)
        noise = torch.rand(4, 1)  # the global generator
        loss = F.mse_loss(self.model(x), x.sum(1, keepdim=True) + noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.steps_made += 1
        return loss.detach()

    def state_dict(self):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "batches": self.batches.get_state(),
        }

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.batches.set_state(state["batches"])

    def throwaway(self):
        twin = copy.copy(self)
        twin.optimizer = make_optimizer(self.model, self.config)
        twin.batches = torch.Generator().manual_seed(steps.TIMING_SEED)
        return twin


def test_step_plans_from_steps_epochs_and_time_leave_the_task_untouched():
    task, clock = TinyTask(), BudgetClock(parse_budget("1min"))
    assert plan_steps(task, parse_budget("7steps"), clock, 5) == steps.StepPlan(7, None, 1.0, "the budget in steps")
    assert plan_steps(task, parse_budget("3epochs"), clock, 5).total_steps == 15
    before, draw_state = copy.deepcopy(task.state_dict()), torch.get_rng_state()
    timed = plan_steps(task, parse_budget("1min"), clock, 5)
    assert timed.step_seconds > 0 and timed.total_steps == max(1, int(60 * 0.95 / timed.step_seconds))
    assert timed.budget_per_step == 0.0 and "timing 2 steps" in timed.how
    after = task.state_dict()
    assert all(torch.equal(after["model"][k], v) for k, v in before["model"].items())
    assert torch.equal(after["batches"], before["batches"]) and torch.equal(torch.get_rng_state(), draw_state)
    assert after["optimizer"]["state"] == {} and all(p.grad is None for p in task.model.parameters())


def test_a_time_budget_is_planned_from_warm_steps_not_cold_ones(monkeypatch):
    """A GPU's first steps pay per-shape set-up: 10 s, 6 s, then 1 s a step. The warm-up runs them untimed
    until two steps' time matches the two before's, so the plan divides by 1 s, not by a cold mean."""
    scripted = iter([10.0, 6.0, 1.0, 1.0, 1.0, 1.0] + [1.0] * 10)
    monkeypatch.setattr(steps, "_timed_step", lambda task, device, i, total: next(scripted))
    clock = BudgetClock(parse_budget("1min"))
    plan = plan_steps(TinyTask(), parse_budget("1min"), clock, 5)
    assert plan.step_seconds == 1.0 and plan.total_steps == int(60 * 0.95)
    assert "after 6 warm-up steps and timing 2 steps, at their mean" in plan.how


def test_a_plan_says_whose_step_time_it_was_made_from(monkeypatch):
    """Data-parallel ranks plan from the slowest rank's step time; the consensus names it in the plan."""

    class Slowest(steps.Consensus):
        step_time = "at the mean of the slowest of 2 ranks"

        def max(self, value: float) -> float:
            return 2 * value  # the other rank took twice as long

    monkeypatch.setattr(steps, "_timed_step", lambda task, device, i, total: 1.0)
    plan = plan_steps(TinyTask(), parse_budget("1min"), BudgetClock(parse_budget("1min")), 5, Slowest())
    assert plan.how.count("at the mean of the slowest of 2 ranks") == 1 and "at their mean" not in plan.how
    assert plan.step_seconds == 2.0 and plan.total_steps == int(60 * 0.95 / 2)  # the slowest rank's figure


class CostlyTask(TinyTask):
    """A TinyTask whose every step costs ``cost`` seconds of a fake clock (what a budget's clock reads)."""

    def __init__(self, now, cost):
        super().__init__()
        self.now, self.cost = now, cost

    def step(self, i, total):
        self.now[0] += self.cost
        return super().step(i, total)


@pytest.mark.parametrize(
    ("cost", "expected_total"), [(2.0, 10 + int(80 * 0.95 / 2.0)), (0.5, 10 + int(95 * 0.95 / 0.5))]
)
def test_a_time_budget_is_re_planned_once_from_what_its_steps_cost(cost, expected_total):
    """Planned at 1 s a step, the steps cost 2 s (a GPU still meeting new shapes) or 0.5 s: after step 10 the
    count is planned again from the clock, so the run ends within its budget, its schedule too."""
    now = [0.0]
    clock = BudgetClock(parse_budget("100s"), clock=lambda: now[0]).start()
    recorded = []
    task = CostlyTask(now, cost)
    session = steps.run_steps(task, None, total=100, warmup=5, clock=clock, replan_at=10, on_replan=recorded.append)
    assert recorded == [expected_total] and session.total == expected_total == task.steps_made
    assert 0.9 * 100 <= clock.spent <= 100  # without the re-plan: 200 s, or 50 s
    assert task.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)  # the cosine ends at the new end


def test_a_supernet_run_records_its_re_planned_step_count(tmp_path, space, digits, monkeypatch):
    monkeypatch.setattr(steps, "REPLAN_SHARE", 0.5)
    result = train_supernet(space, digits, parse_budget("4s"), tmp_path / "run", config=CONFIG, progress=False)
    plan = json.loads((tmp_path / "run" / "train_config.json").read_text())["plan"]
    assert plan["replan_at"] >= 1 and plan["total_steps"] == result.steps
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["step"] == result.steps
    if "planned_steps" in plan:  # re-planned to another count (the usual case): the first one is kept
        assert plan["planned_steps"] != plan["total_steps"]


def test_step_loop_checkpoints_on_the_interval_and_at_the_end(tmp_path, monkeypatch):
    saved = []
    save = steps.save_checkpoint
    monkeypatch.setattr(steps, "save_checkpoint", lambda path, state: (saved.append(state["step"]), save(path, state)))
    task = TinyTask()
    with steps.progress_bar(True) as bar:
        session = steps.run_steps(task, tmp_path / "c.pt", total=7, warmup=1, bar=bar, description="tiny")
    assert saved == [3, 6, 7] and task.steps_made == 7 and session.resumed_at is None
    assert session.images == 7 * task.config.batch_size and session.run_seconds == session.seconds > 0
    shown = bar.tasks[0]
    assert shown.completed == 7 and shown.description == "tiny" and shown.fields["loss"] != "-"
    state = load_checkpoint(tmp_path / "c.pt")
    assert state["step"] == 7 and state["config"] == task.config.to_dict() and "spent" not in state


def test_step_loop_resumed_from_a_checkpoint_equals_an_uninterrupted_run(tmp_path):
    whole = TinyTask()
    clock = BudgetClock(parse_budget("7steps")).start()
    steps.run_steps(whole, tmp_path / "whole.pt", total=7, warmup=2, clock=clock, budget_per_step=1.0)
    assert clock.spent == 7 and load_checkpoint(tmp_path / "whole.pt")["spent"] == 7

    class Killed(Exception):
        pass

    class DiesAtStep5(TinyTask):
        def step(self, i, total):
            if i == 5:
                raise Killed
            return super().step(i, total)

    with pytest.raises(Killed):  # the checkpoint of step 3 survives
        steps.run_steps(DiesAtStep5(), tmp_path / "killed.pt", total=7, warmup=2)
    torch.rand(100)  # another session's draws from the global generator, which the restore puts back
    state = load_checkpoint(tmp_path / "killed.pt")
    resumed = TinyTask(seed=1)  # other initial weights and batches: the checkpoint decides
    session = steps.run_steps(resumed, tmp_path / "killed.pt", total=7, warmup=2, state=state)
    assert session.resumed_at == 3 and resumed.steps_made == 4 and session.run_seconds > session.seconds
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert resumed.optimizer.param_groups[0]["lr"] == whole.optimizer.param_groups[0]["lr"]  # the schedule too
    assert torch.equal(resumed.batches.get_state(), whole.batches.get_state())


# --- the command ------------------------------------------------------------------------------------------


def invoke(*args):
    return CliRunner().invoke(app, ["train-supernet", *args])


@pytest.mark.parametrize(
    "args, phrase",
    [
        (["--space", "nosuchspace"], "unknown search space 'nosuchspace'"),
        (["--budget", "10 parsecs"], "unknown unit 'parsecs'"),
        (["--budget", "300trials"], "cannot bound supernet training"),
        (["--data", "/nonexistent/data"], "Unknown dataset"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--teacher-resolution", "smallest"], "teacher_resolution must be one of cycle, largest"),
        (["--device", "cuda:7" if not torch.cuda.is_available() else "tpu"], "--device"),
    ],
)
def test_cli_rejects_bad_input_before_writing_anything(tmp_path, space_path, args, phrase):
    out = tmp_path / "run"
    base = {"--space": str(space_path), "--data": "digits", "--budget": "2steps", "--out": str(out)}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = invoke(*[x for pair in base.items() for x in pair])
    assert result.exit_code == 2, result.output
    assert phrase in result.stderr and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert not out.exists()


def test_cli_refuses_an_out_dir_holding_something_else(tmp_path, space_path, uninterrupted):
    run = uninterrupted.out_dir
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    common = ["--space", str(space_path), "--data", "digits", "--budget", f"{STEPS}steps", *CLI_RECIPE]
    cases = [
        (["--out", str(run), "--seed", "1", "--resume"], "holds a different run (seed: 0 there, 1 now)"),
        (["--out", str(run)], "pass --resume to continue it"),
        (["--out", str(tmp_path / "empty"), "--resume"], "holds no training run to resume"),
        (["--out", str(tmp_path)], "is not empty and holds no supernet training run"),
    ]
    (tmp_path / "notes.txt").write_text("someone else's")
    for args, phrase in cases:
        result = invoke(*common, *args)
        assert result.exit_code == 2 and phrase in result.stderr, result.stderr
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before
    assert not (tmp_path / "empty").exists()


def test_cli_resumes_a_finished_run_from_its_record_and_evaluates(uninterrupted):
    result = invoke("--out", str(uninterrupted.out_dir), "--resume", "--json", "--no-progress")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == STEPS and summary["bn_batches"] == 4
    for name in ("largest", "smallest"):
        assert 0.0 <= summary[name]["top1"] <= 1.0 and summary[name]["images"] == len(uninterrupted.val)
    assert json.loads((uninterrupted.out_dir / "supernet_eval.json").read_text()) == summary


@pytest.mark.parametrize("name", ["tiny", "mobile", "efficientnetv2"])  # MBConv, dynamic conv, Fused, attention
def test_zero_initialised_residual_blocks_make_every_depth_start_alike(name):
    """BigNAS's zero-init, which each block owns (``zero_init_residual``): at the start, a layer after a
    stage's first adds nothing to its skip connection, so the largest subnet and the largest with every stage
    at its smallest depth compute the same logits."""
    from nasbench import load_space
    from nasbench.training.loop import zero_init_residuals

    space = load_space(name)
    torch.manual_seed(0)
    net = Supernet(space, num_classes=10).eval()
    zero_init_residuals(net)
    resolution = min(space.resolutions)
    largest = space.decode(space.encode(space.largest()) | {"resolution": resolution})
    shallow = space.encode(largest) | {f"{s.name}.depth": min(s.depths) for s in space.stages}
    x = torch.randn(2, 3, resolution, resolution)
    outputs = []
    for arch in (largest, space.decode(shallow)):
        net.set_active(arch)
        with torch.no_grad():
            outputs.append(net(x))
    assert space.decode(shallow) != largest and torch.allclose(outputs[0], outputs[1], atol=1e-5)


def check_a_record_without(field, value, old, new, tmp_path, space, digits):
    """A run trained with ``old`` whose record lacks ``field`` (it predates it) reads it back as ``value``,
    resumes with that recipe, and refuses ``new`` (today's choice) rather than switch to it mid-run."""
    run, budget = tmp_path / "old", parse_budget("2steps")
    train_supernet(space, digits, budget, run, config=old, progress=False)
    record = json.loads((run / "train_config.json").read_text())
    del record["identity"]["config"][field]
    (run / "train_config.json").write_text(json.dumps(record))
    assert getattr(TrainingRecord.read(run).config, field) == value
    again = train_supernet(space, digits, budget, run, config=old, resume=True, progress=False)
    assert again.steps == 2 and again.resumed_at == 2
    with pytest.raises(NasbenchError, match=f"{field}: {value!r} there, {getattr(new, field)!r} now"):
        train_supernet(space, digits, budget, run, config=new, resume=True, progress=False)


def test_a_run_recorded_before_the_teacher_cycled_resumes_as_it_was_trained(tmp_path, space, digits):
    """Records without ``teacher_resolution`` trained their teacher at the largest resolution; they say so
    when read, resume with that recipe, and refuse the new default rather than switch to it mid-run."""
    old = replace(CONFIG, teacher_resolution="largest")
    check_a_record_without("teacher_resolution", "largest", old, CONFIG, tmp_path, space, digits)


def test_a_run_recorded_before_uniform_sampling_reads_as_the_sandwich(tmp_path, space, digits):
    """Records without ``sampling`` were trained with the sandwich: they resume (and are read back) as such."""
    new = replace(CONFIG, sampling="uniform")
    check_a_record_without("sampling", "sandwich", CONFIG, new, tmp_path, space, digits)


def test_the_training_record_gives_the_settings_its_subnets_are_evaluated_with(tmp_path, space, digits):
    """The one reader of a trained supernet's record: its recipe, plan and evaluation settings (bn_batches
    included, which the readers it replaced did not copy)."""
    from nasbench.training.evaluate import EvalSettings

    config = replace(CONFIG, bn_batches=3, val_fraction=0.2)
    train_supernet(space, digits, parse_budget("2steps"), tmp_path / "run", config=config, seed=5, progress=False)
    record = TrainingRecord.read(tmp_path / "run")
    assert record.config == config and record.seed == 5 and record.total_steps == 2 and record.budget == "2steps"
    expected = EvalSettings(bn_batches=3, val_fraction=0.2, data_seed=5, channels_last=config.channels_last,
                            bf16=config.bf16, images=100)  # fmt: skip
    assert record.eval_settings(images=100) == expected
    assert TrainingRecord.find(tmp_path) is None
    with pytest.raises(NasbenchError, match="holds no supernet training .* give a train-supernet --out"):
        TrainingRecord.read(tmp_path, what="a train-supernet --out")
