"""Search spaces shipped with nasbench (YAML files; installed as the package ``nasbench.search_spaces``)."""
