"""Searchers over a trained supernet; every one writes the same records (one row per evaluated arch).

``base`` is the protocol (``Searcher``, ``SearchContext``, ``RecordSink``), ``registry`` the names,
``proximal`` the one-shot NASP searcher, ``trials`` the engine-free driver of Optuna's samplers (``nsga2``,
``tpe``, ``random``, ``evolution``), ``evaluator`` the one evaluation, ``ranker`` the score. The whole run
around them is ``nasbench.pipeline``. The external engines sit in ``nasbench.engines``; importing this
package pulls in neither Ray nor Optuna.
"""

from nasbench.callable_module import make_callable


def _search(*args, **kwargs):
    """The main job: ``nasbench.search(space, data, budget, **settings) -> Run`` (``pipeline.run.search``)."""
    from nasbench.pipeline.run import search

    return search(*args, **kwargs)


make_callable(__name__, _search)
