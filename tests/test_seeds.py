"""The one seed-forking helper: every use of a run's seed gets its own stream, the same in every process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nasbench.seeds import SEED_SPACE, fork

USES = [("random",), ("tpe",), ("nsga2",), ("evolution",), ("resume", 1), ("resume", 2), ("retrain-mix",),
        ("proximal-alpha", 0), ("proximal-alpha", 1), ("proximal-batches", 0), ("proximal-decisions",),
        ("ranker-calibration",), ("latency-pass", 0), ("latency-pass", 1)]  # fmt: skip


def test_uses_of_one_seed_never_share_a_stream():
    for seed in range(200):
        forked = [fork(seed, *labels) for labels in USES]
        assert len(set(forked)) == len(forked)
        assert seed not in forked  # nor the run's own seed, which plain samplers take


def test_fork_is_deterministic_across_processes_and_in_range():
    here = [fork(s, "tpe") for s in (0, 1, 2**31 - 1, 10**12)]
    code = "from nasbench.seeds import fork; print([fork(s, 'tpe') for s in (0, 1, 2**31 - 1, 10**12)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert other.strip() == str(here)  # no hash(): PYTHONHASHSEED differs between processes
    assert all(0 <= s < SEED_SPACE for s in here)
    assert fork(5, "proximal-alpha", 2) == fork(5, "proximal-alpha", "2") != fork(5, "proximal-alpha", 3)


def test_trial_samplers_keep_the_seeds_their_benchmarks_were_measured_with():
    """bench/macro_searchers.py's figures were drawn with (seed + crc32(sampler)) mod 2**31: fork is that."""
    from nasbench.search.trials import searcher_seed

    assert [searcher_seed("tpe", s) for s in (0, 7)] == [1046410687, 1046410694]


@pytest.mark.parametrize("bad", [[], [1.5, "tpe"], [True, "tpe"]])
def test_fork_refuses_a_missing_label_or_a_non_integer_seed(bad):
    seed, *labels = bad or [3]
    with pytest.raises((ValueError, TypeError)):
        fork(seed, *labels)
