"""``notebooks/pareto.ipynb`` executes on a small hand-made run and draws a figure (so it never rots).

The kernel is this interpreter (the venv's), through a ``python3`` kernel spec in a temporary
``JUPYTER_PATH``, which takes precedence over any other ``python3`` kernel installed on the machine.
"""

import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from nasbench import analysis
from nasbench.errors import NasbenchError
from tests.test_retrain import make_run

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "pareto.ipynb"


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch):
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec.joinpath("kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "nasbench", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return "python3"


def test_pareto_notebook_executes(tmp_path, monkeypatch, venv_kernel):
    run = make_run(tmp_path / "run", n=10)
    monkeypatch.setenv(analysis.RUNS_ENV, str(run))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name=venv_kernel, timeout=120, resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs)


def test_notebook_defines_no_logic():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    code = "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")
    assert "def " not in code and "class " not in code and "from nasbench import analysis" in code


def test_find_runs(tmp_path, monkeypatch):
    older, newer = make_run(tmp_path / "a", n=2), make_run(tmp_path / "b", n=2)
    monkeypatch.delenv(analysis.RUNS_ENV, raising=False)
    assert analysis.find_runs(root=tmp_path) == [newer]
    assert analysis.find_runs(f"{older},{newer}") == [older, newer]
    monkeypatch.setenv(analysis.RUNS_ENV, str(tmp_path))
    assert analysis.find_runs() == [older, newer]  # a folder of runs counts as all of them
    with pytest.raises(NasbenchError, match="neither"):
        analysis.find_runs(str(tmp_path / "missing"))


def test_reference_points_and_figure(tmp_path):
    run = make_run(tmp_path / "run", n=6)
    refs = analysis.reference_points(run)
    assert list(refs["name"]) == ["tiny_ref"] and refs["acc"].isna().all() and refs["macs"].iloc[0] > 0
    records = analysis.load_records([run])
    fig = analysis.plot_fronts(records, refs, title="t")
    assert len(fig.axes) == 1 and {"nsga2", "random"} <= {t.get_text() for t in fig.axes[0].get_legend().get_texts()}
