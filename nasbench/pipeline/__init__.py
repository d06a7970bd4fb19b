"""The whole-run pipeline of ``nasbench search``, apart from the searchers it runs.

``config`` parses a search's settings once, at the edge, into a typed ``SearchConfig``; ``run`` runs one
search from a space, data and a budget to a Pareto front (train the supernet, calibrate the ranker, search
with each named searcher, write the outputs), resumable at any point, and sets up Ray's workers when trials
run several at a time. The searchers (``nasbench.search``) know nothing of it: they get a ``SearchContext``.
"""
