import pytest

from nasbench.budget import (
    DEVICE_TIME,
    EPOCHS,
    STEPS,
    TRIALS,
    WALL_TIME,
    Budget,
    BudgetClock,
    after_first_phase,
    device_note,
    parse_budget,
    parse_shares,
    require_kind,
    split,
)
from nasbench.errors import NasbenchError


@pytest.mark.parametrize(
    "text, kind, amount",
    [
        ("10gpu-h", DEVICE_TIME, 36000.0),
        ("0.5gpu-h", DEVICE_TIME, 1800.0),
        ("90min", WALL_TIME, 5400.0),
        ("2h", WALL_TIME, 7200.0),
        ("45s", WALL_TIME, 45.0),
        ("10 min", WALL_TIME, 600.0),
        (" 2H ", WALL_TIME, 7200.0),
        ("300trials", TRIALS, 300),
        ("500steps", STEPS, 500),
        ("3epochs", EPOCHS, 3),
    ],
)
def test_parse_budget(text, kind, amount):
    b = parse_budget(text)
    assert (b.kind, b.amount) == (kind, amount)
    assert parse_budget(str(b)) == b


@pytest.mark.parametrize("text, shown", [("90min", "90min"), ("1.5h", "90min"), ("3600s", "1h"), ("10.5s", "10.5s")])
def test_budget_str_is_canonical(text, shown):
    assert str(parse_budget(text)) == shown


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("10 parsecs", "unknown unit 'parsecs'"),
        ("-5min", "must be positive"),
        ("0h", "must be positive"),
        ("", "empty"),
        ("   ", "empty"),
        ("min", "does not parse"),
        ("1.5steps", "whole numbers"),
        ("10", "does not parse"),
    ],
)
def test_bad_budgets_say_what_is_valid(text, phrase):
    with pytest.raises(NasbenchError) as e:
        parse_budget(text)
    message = str(e.value)
    assert phrase in message
    assert "10gpu-h" in message or "whole numbers" in message
    assert "\n" not in message


def test_budget_values_are_checked():
    with pytest.raises(ValueError):
        Budget(WALL_TIME, 0)
    with pytest.raises(ValueError):
        Budget("parsecs", 1)
    with pytest.raises(ValueError):
        Budget(TRIALS, 2.5)


def test_require_kind_names_the_purpose_and_valid_kinds():
    require_kind(parse_budget("5min"), (WALL_TIME, STEPS), "training")
    with pytest.raises(NasbenchError, match="cannot bound supernet training; give one like 90min, 500steps"):
        require_kind(parse_budget("300trials"), (WALL_TIME, STEPS), "supernet training")


def test_split_time_exactly():
    parts = split(parse_budget("10gpu-h"), {"supernet": 0.6, "search": 0.4})
    assert parts == {"supernet": Budget(DEVICE_TIME, 0.6 * 36000), "search": Budget(DEVICE_TIME, 0.4 * 36000)}
    assert str(parts["supernet"]) == "6gpu-h"


def test_split_counts_add_up():
    parts = split(parse_budget("301trials"), {"a": 0.5, "b": 0.5})
    assert sum(p.count for p in parts.values()) == 301
    assert sorted(p.count for p in parts.values()) == [150, 151]
    thirds = split(parse_budget("10steps"), {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    assert sum(p.count for p in thirds.values()) == 10


@pytest.mark.parametrize(
    "shares, phrase",
    [
        ({}, "empty"),
        ({"a": 0.5, "b": 0.6}, "add up to 1"),
        ({"a": 1.2, "b": -0.2}, "positive"),
        ({"a": 0.0, "b": 1.0}, "positive"),
    ],
)
def test_split_rejects_bad_shares(shares, phrase):
    with pytest.raises(NasbenchError, match=phrase):
        split(parse_budget("1h"), shares)


def test_split_refuses_a_phase_with_nothing():
    with pytest.raises(NasbenchError, match="too small"):
        split(parse_budget("1trials"), {"a": 0.5, "b": 0.5})


def test_parse_shares():
    assert parse_shares("supernet=0.7, search=0.3") == {"supernet": 0.7, "search": 0.3}
    with pytest.raises(NasbenchError, match="PHASE=FRACTION"):
        parse_shares("supernet:0.7")


class FakeTime:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_clock_counts_device_seconds_and_resumes():
    fake = FakeTime()
    clock = BudgetClock(parse_budget("1gpu-h"), devices=2, clock=fake).start()
    fake.now += 600
    assert clock.spent == 1200  # ten minutes on two devices
    assert clock.remaining == 2400
    clock.stop()
    fake.now += 1000  # stopped: nothing is spent
    assert clock.spent == 1200
    resumed = BudgetClock(parse_budget("1gpu-h"), devices=2, spent_before=clock.spent, clock=fake).start()
    assert resumed.spent == 1200 and not resumed.exhausted
    fake.now += 1200
    assert resumed.exhausted and resumed.remaining == 0
    assert resumed.describe_remaining() == "0.0s device left"


def test_wall_clock_ignores_devices():
    fake = FakeTime()
    clock = BudgetClock(parse_budget("10min"), devices=4, clock=fake).start()
    fake.now += 252
    assert clock.spent == 252
    assert clock.describe_remaining() == "5m 48s left"


def test_counted_clock_counts_only_what_it_is_told():
    fake = FakeTime()
    clock = BudgetClock(parse_budget("10steps"), clock=fake).start()
    fake.now += 1000
    clock.add(3)
    assert clock.spent == 3 and clock.remaining == 7
    assert clock.describe_remaining() == "7 steps left"
    with pytest.raises(ValueError):
        BudgetClock(parse_budget("1h")).add(1)


def test_gpu_hours_on_cpu_are_announced():
    assert "counts device-hours of the CPU" in device_note(parse_budget("10gpu-h"), "cpu")
    assert device_note(parse_budget("10gpu-h"), "cuda") is None
    assert device_note(parse_budget("10min"), "cpu") is None


def test_the_search_phase_gets_what_the_supernet_left_and_pays_what_it_overran():
    """A time budget's step plan is made early; when the load changes after it, the supernet phase ends
    early or late, and the search phase's share moves so that the run's total holds."""
    parts = split(parse_budget("30min"), {"supernet": 0.5, "search": 0.5})
    assert after_first_phase(parts["search"], parts["supernet"], 528.0) == Budget(WALL_TIME, 900 + 372)
    assert after_first_phase(parts["search"], parts["supernet"], 1404.0) == Budget(WALL_TIME, 900 - 504)
    assert after_first_phase(parts["search"], parts["supernet"], 5000.0) == Budget(WALL_TIME, 90)  # a tenth kept
    trials = parse_budget("100trials")
    assert after_first_phase(trials, parse_budget("10min"), 900.0) is trials  # counted: nothing moves
