"""Searchers over a trained supernet; every one writes the same records (one row per evaluated arch).

``ray_trials`` runs ``nsga2``, ``tpe`` and ``random``: Optuna's samplers (``optuna_samplers``, the only
module importing Optuna) propose, Ray Tune (``ray_trials``, the only module importing Ray) runs the
trials. Import those modules explicitly; importing this package pulls in neither engine.
"""
