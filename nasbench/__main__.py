from nasbench.cli import entry

entry()
