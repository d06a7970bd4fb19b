"""nasbench's trial searchers (random, tpe, nsga2, evolution) on the NAS-Bench-Macro table: how good, how fast.

Each run is what ``nasbench search --space nas-bench-macro --evaluator table --searcher S --budget Ntrials
[--max-macs M] --seed K`` does: nasbench's own ``TrialDriver`` (its seeding, population size, proposal
decoding, repeat handling and constraint values), nasbench's ``RecordSink`` (its feasibility rule) and its
``TableEvaluator``. Only the Optuna study is held in memory instead of ``<run>/optuna.db`` and the records
in a list instead of the run's journal; ``--verify`` checks that this changes nothing, by comparing the
architectures queried with those of real ``nasbench search`` runs (seed 0, 50 queries, with the limit).

For every searcher, limit (none; ``--max-macs`` = nasbench's MACs of the all-MB-k3e3 network 11111111) and
query budget (25, 50, 100, 200; a separate run for each, as nasbench would run it), seeds 0..N-1, it
scores the TRUE table figures of what was queried: the best accuracy among the feasible networks, and the
hypervolume of their (accuracy up, table FLOPs down) points over one fixed reference point, divided by the
hypervolume of the table's own front of the feasible networks. Random search's exact expectation (from the
sorted accuracies, no simulation) and the table's best are printed beside them. ``--variants`` adds Optuna
sampler settings that nasbench does not use (labelled so), driven the same way.

    .venv/bin/python bench/macro_searchers.py --seeds 50 --variants all --verify \
        [--out results/search/macro-table/runs.csv]     # about 15 min of one core; summary.md beside --out
"""

from __future__ import annotations

import argparse
import math
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from unittest import mock

import numpy as np
import optuna  # the bench builds the variant samplers itself; nasbench's own ones come from its adapter
import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import nasbench
from nasbench.benchmarks.macro import read_table
from nasbench.benchmarks.truth import GroundTruth
from nasbench.budget import TRIALS, Budget, BudgetClock
from nasbench.engines import optuna_study
from nasbench.pareto import hypervolume
from nasbench.search.base import RecordSink, SearchContext
from nasbench.search.evaluator import TableEvaluator, evaluate_outcome
from nasbench.search.trials import TrialDriver, searcher_seed

SEARCHERS = ("random", "tpe", "nsga2", "evolution")
QUERIES = (25, 50, 100, 200)
OBJECTIVES = ("acc", "macs")
REFERENCE_ACC = 40.0  # percent; below the table's worst network (45.4%), so every point counts
REFERENCE_FLOPS_FACTOR = 1.05  # x the table's largest FLOPs
OUT = Path("results/search/macro-table/runs.csv")
err = Console(stderr=True)


def quiet(make: Callable, **kwargs):
    """``make(**kwargs)`` without Optuna's ExperimentalWarning (``group`` is experimental)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return make(**kwargs)


@dataclass(frozen=True)
class Variant:
    """An Optuna sampler setting nasbench does NOT use, run through nasbench's driver in place of its own."""

    base: str  # the nasbench searcher whose driver runs it
    make: Callable[[int], optuna.samplers.BaseSampler]  # seed -> sampler
    what: str


VARIANTS = {
    "tpe+group": Variant(
        "tpe",
        lambda s: quiet(optuna.samplers.TPESampler, seed=s, multivariate=True, group=True, n_startup_trials=10),
        "TPESampler(multivariate=True, group=True, n_startup_trials=10)",
    ),
    "nsga2-pop8": Variant(
        "nsga2", lambda s: optuna.samplers.NSGAIISampler(population_size=8, seed=s), "NSGAIISampler(population_size=8)"
    ),
    "nsga2-pop16": Variant(
        "nsga2",
        lambda s: optuna.samplers.NSGAIISampler(population_size=16, seed=s),
        "NSGAIISampler(population_size=16)",
    ),
}


@dataclass(frozen=True)
class Limit:
    name: str  # "none" or "k3e3"
    max_macs: float | None  # nasbench's MACs (what --max-macs limits)

    @property
    def limits(self) -> dict[str, float]:
        return {"macs": self.max_macs} if self.max_macs else {}


@dataclass(frozen=True)
class Setting:
    """The table, the two limits, and the one hypervolume reference point with each limit's table hypervolume."""

    truth: GroundTruth
    limits: dict[str, Limit]
    reference: tuple[float, float]  # (acc %, FLOPs), the same for every run and limit
    table_hv: dict[str, float]  # limit -> hypervolume of all the table's feasible networks (= of its front)

    @classmethod
    def load(cls) -> Setting:
        truth = nasbench.load_benchmark("nas-bench-macro")
        k3e3 = float(truth.row(truth.space.reference("k3e3"))["macs"])
        limits = {"none": Limit("none", None), "k3e3": Limit("k3e3", k3e3)}
        reference = (REFERENCE_ACC, float(truth.table["flops"].max()) * REFERENCE_FLOPS_FACTOR)
        table_hv = {
            lim: hv(truth.feasible(limit.max_macs, column="macs")[["acc", "flops"]].to_numpy(float), reference)
            for lim, limit in limits.items()
        }
        return cls(truth, limits, reference, table_hv)


class MemoryRun:
    """What ``RecordSink`` needs of a ``RunDir`` (no earlier records; ``append``), with the records kept in a
    list instead of a journal on disk."""

    def __init__(self) -> None:
        self.rows: list = []

    def records(self) -> pd.DataFrame:
        return pd.DataFrame({"searcher": [], "arch_id": [], "status": []})

    def append(self, record) -> None:
        self.rows.append(record)


class CachedTable:
    """nasbench's ``TableEvaluator``, each architecture's outcome computed once (it is a pure lookup)."""

    def __init__(self, truth) -> None:
        self.evaluate, self.cache = TableEvaluator(truth, 10), {}

    def __call__(self, arch) -> dict:
        if arch.id not in self.cache:
            self.cache[arch.id] = self.evaluate(arch)
        return dict(self.cache[arch.id])


def run_search(truth, evaluate, searcher: str, seed: int, queries: int, limit: Limit) -> list:
    """One search as ``nasbench search --evaluator table --searcher S --budget {queries}trials`` runs it;
    returns its records in trial order. ``searcher`` may name a variant (run by its base's driver)."""
    variant = VARIANTS.get(searcher)
    sampler = variant.base if variant else searcher
    ctx = SearchContext(
        space=truth.space, num_classes=10, objectives=OBJECTIVES, limits=limit.limits, seed=seed,
        evaluate=evaluate, study_file=Path("in-memory"),
    )  # fmt: skip
    clock = BudgetClock(Budget(TRIALS, queries)).start()
    run = MemoryRun()
    sink = RecordSink(
        run, searcher, seed=seed, num_classes=10, objectives=OBJECTIVES, limits=ctx.limits, clock=clock, truth=truth
    )
    with mock.patch.object(optuna_study, "storage", lambda _file: optuna.storages.InMemoryStorage()):
        driver = TrialDriver(ctx, sampler, clock, sink)
    if variant:
        driver.study.sampler = variant.make(searcher_seed(searcher, seed))
    while (proposal := driver.ask()) is not None:  # nasbench's InProcessWorkers.run, verbatim
        outcome = None if proposal.stored is not None else evaluate_outcome(evaluate, proposal.arch)
        driver.tell(proposal, outcome)
    return run.rows


def queried_points(truth, records: list) -> pd.DataFrame:
    """The queried networks in order: true accuracy (percent), table FLOPs, and whether nasbench found them
    feasible (status ok; an over-limit one is 'infeasible')."""
    keys = [r.extra["bench_key"] for r in records]
    rows = truth.table.loc[keys, ["acc", "flops"]].reset_index(drop=True)
    return rows.assign(feasible=[r.status == "ok" for r in records])


def hv(points: np.ndarray, reference: Sequence[float]) -> float:
    return hypervolume(points, reference, ["max", "min"]) if len(points) else 0.0


def anytime_best(points: pd.DataFrame) -> np.ndarray:
    """Best true accuracy among the feasible networks after each query (NaN before the first feasible one)."""
    acc = np.where(points["feasible"], points["acc"], -np.inf)
    best = np.maximum.accumulate(acc)
    return np.where(np.isfinite(best), best, np.nan)


def expected_random_best(accs: np.ndarray, k: int) -> float:
    """E[max of k uniform draws without replacement from ``accs``], exactly: the i-th smallest of N is the
    maximum with probability C(i-1, k-1) / C(N, k)."""
    values = np.sort(np.asarray(accs, dtype=float))
    n = len(values)
    total = math.comb(n, k)
    weights = np.array([math.comb(i - 1, k - 1) / total for i in range(1, n + 1)])
    return float(weights @ values)


def plan(limits: Sequence[str], searchers: Sequence[str], seeds: int) -> list[tuple[str, str, int, int]]:
    return [(lim, s, q, seed) for lim in limits for s in searchers for q in QUERIES for seed in range(seeds)]


def run_all(setting: Setting, searchers: Sequence[str], seeds: int) -> tuple[pd.DataFrame, dict]:
    """Every (limit, searcher, queries, seed) run: one row each, and each run's anytime best curve."""
    truth = setting.truth
    evaluate, rows, curves = CachedTable(truth), [], {}
    todo = plan(list(setting.limits), searchers, seeds)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=err) as bar:
        task = bar.add_task("runs", total=sum(q for *_, q, _ in todo))
        for lim, searcher, queries, seed in todo:
            bar.update(task, description=f"{lim} {searcher} {queries}q seed {seed}")
            points = queried_points(truth, run_search(truth, evaluate, searcher, seed, queries, setting.limits[lim]))
            curves[lim, searcher, queries, seed] = anytime_best(points)
            ok = points[points["feasible"]]
            rows.append(
                {"searcher": searcher, "in_nasbench": searcher in SEARCHERS, "limit": lim, "queries": queries,
                 "seed": seed, "queried": len(points), "feasible": len(ok), "best_true_acc": ok["acc"].max(),
                 "hv": hv(ok[["acc", "flops"]].to_numpy(float), setting.reference)}
            )  # fmt: skip
            bar.advance(task, queries)
    return pd.DataFrame(rows), curves


def first_reaching(curve: np.ndarray, threshold: float) -> float:
    """1-based query at which the anytime best first reaches ``threshold`` (NaN: never)."""
    hit = np.flatnonzero(np.nan_to_num(curve, nan=-np.inf) >= threshold)
    return float(hit[0] + 1) if len(hit) else math.nan


def add_scores(runs: pd.DataFrame, curves: dict, table_hv: dict[str, float]) -> tuple[pd.DataFrame, dict[str, float]]:
    """hv_norm, and queries_to_random100 against random search's measured 100-query mean best per limit."""
    random100 = {
        lim: runs.query("searcher == 'random' and queries == 100 and limit == @lim")["best_true_acc"].mean()
        for lim in runs["limit"].unique()
    }
    runs = runs.assign(hv_norm=runs["hv"] / runs["limit"].map(table_hv))
    runs["queries_to_random100"] = [
        first_reaching(curves[r.limit, r.searcher, r.queries, r.seed], random100[r.limit]) for r in runs.itertuples()
    ]
    return runs, random100


def _fmt(v: float, spec: str = ".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def markdown(df: pd.DataFrame) -> str:
    # Hand-written: DataFrame.to_markdown needs tabulate, which nasbench does not depend on.
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "|".join("---" for _ in df.columns) + "|"]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)])


def score_table(runs: pd.DataFrame, lim: str) -> str:
    rows = []
    for (searcher, queries), g in runs[runs["limit"] == lim].groupby(["searcher", "queries"], sort=False):
        best = g["best_true_acc"]
        rows.append(
            {"searcher": searcher if g["in_nasbench"].iat[0] else f"{searcher} (variant)", "queries": queries,
             "seeds": len(g), "best true acc % (mean ± sd)": f"{best.mean():.2f} ± {best.std():.2f}",
             "hv / table hv (mean)": f"{g['hv_norm'].mean():.4f}",
             "feasible queried (mean)": f"{g['feasible'].mean():.1f}", "queried (mean)": f"{g['queried'].mean():.1f}"}
        )  # fmt: skip
    return markdown(pd.DataFrame(rows))


def reach_table(runs: pd.DataFrame, lim: str, random100: float, uniform100: float) -> tuple[str, list[str]]:
    """Per searcher: mean best at 25 and 50 against random's measured 100-query mean (and the uniform
    expectation), and queries to reach the measured one; also the list of searchers that reach it."""
    rows, reaching = [], []
    for searcher, g in runs[runs["limit"] == lim].groupby("searcher", sort=False):
        label = searcher if g["in_nasbench"].iat[0] else f"{searcher} (variant)"
        mean = g.groupby("queries")["best_true_acc"].mean()
        q200 = g[g["queries"] == 200]["queries_to_random100"]
        reached = next((q for q in (25, 50) if mean[q] >= random100), None)
        uniform = next((q for q in (25, 50) if mean[q] >= uniform100), None)
        if reached and searcher != "random":
            reaching.append(f"{label} at {reached}")
        rows.append(
            {"searcher": label, "mean best @25": _fmt(mean[25]), "mean best @50": _fmt(mean[50]),
             f"reaches random's {random100:.2f} in <= 50?": "(itself)" if searcher == "random" else
             (f"yes, at {reached}" if reached else "no"),
             f"reaches uniform E {uniform100:.2f} in <= 50?": f"yes, at {uniform}" if uniform else "no",
             "queries to reach random's (mean, seeds that do)": _fmt(q200.mean(), ".1f"),
             "median (201 = never)": _fmt(q200.fillna(201).median(), ".0f"),
             "seeds reaching it in 200": f"{q200.notna().sum()}/{len(q200)}"}
        )  # fmt: skip
    return markdown(pd.DataFrame(rows)), reaching


def feasible_accs(setting: Setting, lim: str) -> np.ndarray:
    return setting.truth.feasible(setting.limits[lim].max_macs, column="macs")["acc"].to_numpy(float)


def random_expectation(setting: Setting) -> list[str]:
    """Uniform random search's exact expected best, per limit; and the benchmark's raw keys' figure."""
    rows = []
    for lim in setting.limits:
        accs = feasible_accs(setting, lim)
        row = {"limit": lim, "networks": len(accs), "table best": f"{accs.max():.2f}"}
        row.update({f"E[best] k={k}": f"{expected_random_best(accs, k):.2f}" for k in (10, *QUERIES)})
        rows.append(row)
    raw = np.array([float(np.mean(r["test_acc"])) for r in read_table().values()])
    note = (
        f"Uniform over the distinct networks, k queries without replacement. Over the benchmark's {len(raw):,} raw "
        f"keys instead (networks that differ only in where a stage's pass-through zeros sit counted several "
        f"times): {expected_random_best(raw, 10):.2f} at 10, {expected_random_best(raw, 100):.2f} at 100."
    )
    return [markdown(pd.DataFrame(rows)), "", note]


def proposal_mass(setting: Setting) -> list[str]:
    """What one proposal of a sampler uniform over nasbench's dimensions (Optuna's RandomSampler, and the
    start-up trials of TPE and NSGA-II) puts on the good networks, against uniform over the networks:
    exact, by decoding every combination of choices."""
    truth, dims = setting.truth, setting.truth.space.dimensions()
    labels = [d.label for d in dims]
    combos = product(*(d.choices for d in dims))
    keys = [truth.key(truth.space.decode(dict(zip(labels, c, strict=True)))) for c in combos]
    mass = pd.Series(keys).value_counts(normalize=True).reindex(truth.table.index, fill_value=0.0)
    rows = []
    for lim, limit in setting.limits.items():
        feasible = truth.table["macs"] <= (limit.max_macs or math.inf)
        acc = truth.table["acc"].where(feasible)
        row = {"limit": lim, "P(feasible) proposal / uniform": f"{mass[feasible].sum():.3f} / {feasible.mean():.3f}"}
        for top in (0.01, 0.05):
            good = acc >= acc.quantile(1 - top)
            row[f"P(top {top:.0%} of feasible) proposal / uniform"] = f"{mass[good].sum():.4f} / {good.mean():.4f}"
        rows.append(row)
    return [f"{len(keys):,} combinations of choices decode to the {mass.gt(0).sum():,} networks.", "",
            markdown(pd.DataFrame(rows))]  # fmt: skip


def context_lines(args, setting: Setting, wall: float, cpu: float) -> list[str]:
    truth, limits = setting.truth, setting.limits
    variants = {n: VARIANTS[n] for n in args.variants}
    ref = truth.row(truth.space.reference("k3e3"))
    return [
        f"- command: `{shlex.join(sys.orig_argv)}`",
        f"- wall {wall:.0f} s, CPU {cpu:.0f} s (one process); machine: {platform.platform()}, processor "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"optuna {optuna.__version__}",
        f"- seeds 0..{args.seeds - 1}; queries {', '.join(map(str, QUERIES))} (a separate run each); nasbench's "
        f"searchers as `nasbench search` runs them (nsga2's population max(4, min(50, queries // 4)), TPE "
        f"multivariate)" + "".join(f"; variant {n}: {v.base}'s driver with {v.what}" for n, v in variants.items()),
        f"- limit k3e3: network {ref['key']} (all MB k3 e3) has {ref['flops'] / 1e6:.2f} M FLOPs in the table's "
        f"convention and {ref['macs'] / 1e6:.2f} M in nasbench's MACs (batch norm and pooling counted); "
        f"`--max-macs {limits['k3e3'].max_macs:.0f}`, feasible = nasbench MACs within it",
        f"- hypervolume over (true acc %, table FLOPs), reference ({REFERENCE_ACC:.0f} %, "
        f"{setting.reference[1] / 1e6:.2f} M FLOPs = {REFERENCE_FLOPS_FACTOR} x the largest), divided by the "
        f"hypervolume of the table's true front of the feasible networks: "
        + ", ".join(f"{lim} {setting.table_hv[lim]:.4g}" for lim in limits),
    ]


def summary(args, setting: Setting, runs: pd.DataFrame, random100: dict[str, float], clock: tuple) -> str:
    out = ["# nasbench's trial searchers on the NAS-Bench-Macro table", "", *context_lines(args, setting, *clock)]
    out += ["", "## Random search, exact expectation from the table", "", *random_expectation(setting)]
    out += ["", "## What one random proposal draws", "", *proposal_mass(setting)]
    for lim in setting.limits:
        uniform100 = expected_random_best(feasible_accs(setting, lim), 100)
        out += ["", f"## Limit: {lim}", "", score_table(runs, lim), ""]
        table, reaching = reach_table(runs, lim, random100[lim], uniform100)
        out += [f"Random search's measured 100-query mean best: {random100[lim]:.2f} % (uniform expectation "
                f"{uniform100:.2f} %). Queries to reach the measured one: the 200-query runs' anytime best.",
                "", table, ""]  # fmt: skip
        ours = [r for r in reaching if "(variant)" not in r]
        variants = ", ".join(r for r in reaching if "(variant)" in r) or ("no" if args.variants else "not run")
        out.append(
            f"**Does some searcher reach random's 100-query mean best in <= 50 queries ({lim})?** "
            f"nasbench's: {', '.join(ours) or 'no'}; variants: {variants}."
        )
    return "\n".join(out) + "\n"


def verify(truth, limit: Limit, searchers: Sequence[str] = SEARCHERS, queries: int = 50, seed: int = 0) -> bool:
    """The bench's queried architectures against a real ``nasbench search`` run's records, in trial order."""
    cli = Path(sys.executable).parent / "nasbench"
    ok = True
    for searcher in searchers:
        with tempfile.TemporaryDirectory() as tmp:
            command = [str(cli), "search", "--space", "nas-bench-macro", "--evaluator", "table", "--budget",
                       f"{queries}trials", "--searcher", searcher, "--max-macs", f"{limit.max_macs:.0f}",
                       "--seed", str(seed), "--out", f"{tmp}/run"]  # fmt: skip
            subprocess.run(command, check=True, capture_output=True)
            real = list(nasbench.load_run(f"{tmp}/run").records.sort_values("trial")["arch"])
        mine = [r.arch for r in run_search(truth, CachedTable(truth), searcher, seed, queries, limit)]
        diff = next((i for i, (a, b) in enumerate(zip(mine, real, strict=False)) if a != b), None)
        if diff is None and len(mine) == len(real):
            print(f"verify {searcher}: OK ({len(real)} architectures equal, in order; `{shlex.join(command[1:-2])}`)")
        else:
            ok = False
            at = diff if diff is not None else min(len(mine), len(real))
            print(f"verify {searcher}: DIFFERS at query {at}: bench {mine[at : at + 1]} vs run {real[at : at + 1]}")
    return ok


def variant_list(text: str) -> list[str]:
    names = list(VARIANTS) if text == "all" else [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown variant {unknown[0]!r}; valid are {', '.join(VARIANTS)} or all")
    return names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=50, help="seeds 0..N-1 (at least 20 for the record)")
    p.add_argument(
        "--variants",
        type=variant_list,
        default="",
        help=f"comma list or 'all' of {', '.join(VARIANTS)} (not in nasbench)",
    )
    p.add_argument(
        "--searchers",
        type=lambda text: [v.strip() for v in text.split(",") if v.strip()],
        default=list(SEARCHERS),
        help=f"comma list of nasbench's searchers to run (default all: {','.join(SEARCHERS)}); random always runs",
    )
    p.add_argument("--verify", action="store_true", help="first compare with real `nasbench search` runs")
    p.add_argument("--out", type=Path, default=OUT, help="per-run CSV; summary.md goes beside it")
    args = p.parse_args()
    if args.seeds < 1:
        p.error(f"--seeds must be at least 1, got {args.seeds}")
    start, cpu = time.perf_counter(), time.process_time()
    setting = Setting.load()
    unknown = [s for s in args.searchers if s not in SEARCHERS]
    if unknown:
        p.error(f"unknown searcher {unknown[0]!r}; valid are {', '.join(SEARCHERS)}")
    searchers = ["random", *[s for s in args.searchers if s != "random"]]  # the reference every table needs
    if args.verify and not verify(setting.truth, setting.limits["k3e3"], searchers):
        sys.exit(1)
    runs, curves = run_all(setting, [*searchers, *args.variants], args.seeds)
    runs, random100 = add_scores(runs, curves, setting.table_hv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    columns = ["searcher", "in_nasbench", "limit", "queries", "seed", "queried", "feasible", "best_true_acc",
               "hv_norm", "queries_to_random100"]  # fmt: skip
    runs[columns].to_csv(args.out, index=False)
    text = summary(args, setting, runs, random100, (time.perf_counter() - start, time.process_time() - cpu))
    (args.out.parent / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
