"""The sandwich's subnet sampler visits every choice of every dimension regularly, and the run records it."""

import json
from dataclasses import replace

import pytest

import nasbench
from nasbench.budget import parse_budget
from nasbench.data import load_dataset
from nasbench.training import TrainConfig, sandwich_archs, train_supernet
from nasbench.training.coverage import CoverageSampler, coverage_table, trained_choices


@pytest.mark.parametrize("name", nasbench.shipped_spaces())
def test_every_choice_is_drawn_once_per_cycle(name):
    space = nasbench.load_space(name)
    sampler = CoverageSampler(space, seed=0)
    draws = [sampler.draw() for _ in range(60)]
    for d in space.dimensions():
        seen = [draw[d.label] for draw in draws]
        per_choice = [seen.count(c) for c in d.choices]
        assert max(per_choice) - min(per_choice) <= 1, (d.label, per_choice)  # never more than a cycle apart
    assert len({space.decode(draw).id for draw in draws}) > 50  # the combinations stay random


def test_the_sampler_resumes_exactly_and_counts_only_trained_layers():
    space = nasbench.load_space("tiny")
    a, b = CoverageSampler(space, seed=3), CoverageSampler(space, seed=99)
    for _ in range(7):
        a.count(a.sample())
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))  # checkpoint-safe plain values
    assert [a.sample() for _ in range(9)] == [b.sample() for _ in range(9)] and a.counts == b.counts
    smallest = space.smallest()
    choices = trained_choices(space, smallest)
    depths = {s.name: len(st.layers) for s, st in zip(space.stages, smallest.stages, strict=True)}
    for label in choices:
        parts = label.split(".")
        if len(parts) == 3:
            assert int(parts[1][1:]) <= depths[parts[0]]  # a layer beyond the stage's depth trains nothing


def test_a_training_run_records_how_often_each_choice_was_trained(tmp_path):
    space = nasbench.load_space("tiny")
    config = TrainConfig(batch_size=16, num_random=2, bn_batches=2, checkpoint_every=50)
    train_supernet(space, load_dataset("digits"), parse_budget("6steps"), tmp_path, config=config, progress=False)
    coverage = json.loads((tmp_path / "train_result.json").read_text())["coverage"]
    assert coverage == coverage_table(coverage, space)  # every choice of every dimension, zeros included
    assert sum(coverage["resolution"].values()) == 6 * 4  # largest, smallest and 2 random subnets per step
    assert all(n >= 2 for n in coverage["resolution"].values())  # 12 random draws over 3 resolutions, at least


def test_the_teacher_takes_every_resolution_once_per_cycle_and_resumes():
    space = nasbench.load_space("tiny")
    sampler = CoverageSampler(space, seed=0)
    k = len(space.resolutions)
    for _ in range(3):
        archs = [sandwich_archs(space, sampler, 2, teacher_resolution="cycle")[0] for _ in range(k)]
        assert sorted(a.resolution for a in archs) == sorted(space.resolutions)
        assert all(a == replace(space.largest(), resolution=a.resolution) for a in archs)  # the largest otherwise
    twin = CoverageSampler(space, seed=99)
    twin.load_state_dict(json.loads(json.dumps(sampler.state_dict())))
    draws = [sandwich_archs(s, x, 2, teacher_resolution="cycle") for s, x in ((space, sampler), (space, twin))]
    assert draws[0] == draws[1]
    assert sandwich_archs(space, sampler, 2, teacher_resolution="largest")[0] == space.largest()
