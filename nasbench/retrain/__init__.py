"""Retraining from scratch: a search run's Pareto winners and the space's reference networks, one recipe.

Public API::

    retrain_run(run, *, top, budget, baselines=None, config=RetrainConfig(), parallel=1, ...) -> report dict
    resolve_budget(budget, epochs) -> Budget                  # --budget 20min | 500steps | 3epochs, or --epochs
    RetrainConfig(...)                                        # the one recipe; each field says why
    pick_winners(records, k) -> DataFrame                     # k rows spread along the acc-vs-MACs front
    plan_jobs(run, space, top, baselines) -> list[Job]        # winners, then baselines
    retrain_model(job, train, test, num_classes, budget, out_dir, ...) -> result dict
    write_report(run_path) / read_results(run_path) / report_frame(results) / rank_correlation(frame)

Modules: ``recipe`` (config, EMA, mixup/cutmix, loss), ``pick`` (what to retrain), ``train`` (one model,
resumable), ``run`` (a whole run, in process or as parallel Ray Tune trials through
``nasbench.engines.ray_tune``), ``report`` (report.csv/.json/.md). The command, ``nasbench retrain``,
is in ``nasbench.cli.retrain``.
"""

from nasbench.retrain.pick import BASELINE, WINNER, Job, baseline_jobs, pick_winners, plan_jobs, winner_jobs
from nasbench.retrain.recipe import RetrainConfig, WeightEma, mix_batch
from nasbench.retrain.report import rank_correlation, read_results, report_frame, write_report
from nasbench.retrain.run import resolve_budget, retrain_run
from nasbench.retrain.train import RESULT_FILE, WEIGHTS_FILE, retrain_data, retrain_model

__all__ = [
    "BASELINE",
    "RESULT_FILE",
    "WEIGHTS_FILE",
    "WINNER",
    "Job",
    "RetrainConfig",
    "WeightEma",
    "baseline_jobs",
    "mix_batch",
    "pick_winners",
    "plan_jobs",
    "rank_correlation",
    "read_results",
    "report_frame",
    "resolve_budget",
    "retrain_data",
    "retrain_model",
    "retrain_run",
    "winner_jobs",
    "write_report",
]
