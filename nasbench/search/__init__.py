"""Searchers over a trained supernet; every one writes the same records (one row per evaluated arch).

``base`` is the protocol (``Searcher``, ``SearchContext``, ``RecordSink``), ``registry`` the names,
``proximal`` the one-shot NASP searcher, ``trials`` the engine-free driver of Optuna's samplers (``nsga2``,
``tpe``, ``random``), ``evaluator`` the one evaluation, ``orchestrate`` the whole run. The external engines
sit in ``nasbench.engines``; importing this package pulls in neither Ray nor Optuna.
"""

from nasbench.callable_module import make_callable


def _search(*args, **kwargs):
    """The main job: ``nasbench.search(space, data, budget, **settings) -> Run`` (``orchestrate.search``)."""
    from nasbench.search.orchestrate import search

    return search(*args, **kwargs)


make_callable(__name__, _search)
