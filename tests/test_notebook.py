"""The example notebook runs top to bottom in a real Jupyter kernel, on real BreastMNIST and ImageNet weights."""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from study.store.results import ResultStore
from tests.helpers.commands import PROJECT

NOTEBOOK = PROJECT / "examples" / "breastmnist.ipynb"


@pytest.mark.integration
def test_the_example_notebook_runs_and_decides_nothing_with_two_seeds(tmp_path, breastmnist_dir,
                                                                      imagenet_keras_home, monkeypatch):
    monkeypatch.setenv("STUDY_DATA_DIR", str(breastmnist_dir))
    monkeypatch.setenv("KERAS_HOME", str(imagenet_keras_home))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                   ).execute()

    errors = [output for cell in notebook.cells for output in cell.get("outputs", []) if output.output_type == "error"]
    assert errors == []
    cells = ResultStore(tmp_path / "notebook-results", "breastmnist-notebook").cells()
    assert len(cells) == 8 and set(cells["status"]) == {"done"}
    assert cells["auc"].min() > 0.6  # ImageNet features separate benign from malignant well above chance
    claims = pd.read_csv(tmp_path / "notebook-report" / "breastmnist-notebook" / "tables" / "claims.csv")
    assert list(claims["verdict"]) == ["inconclusive"]
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "INCONCLUSIVE: fine-tuning the top block beats a linear probe (finetune-beats-frozen)" in printed
