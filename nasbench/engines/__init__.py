"""One adapter module per external engine; nothing else in nasbench imports these engines.

``optuna_study`` (Optuna: the study in SQLite, seeded samplers, ask and tell) and ``ray_tune`` (Ray: the
session and its cleanup, shared objects, trials through Tune, a parallel map for retraining). Import them
explicitly; importing this package pulls in neither engine. ``ray_reaper`` is the helper process that
``ray_tune`` starts so that no Ray process outlives the command (it imports nothing from Ray).
"""
