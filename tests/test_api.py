"""The library API: a study from a file, a dict or a Protocol, run from Python, its results read as DataFrames."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import study
from study.protocol.schema import load_protocol, parse_protocol, protocol_yaml
from tests.helpers.commands import PROJECT, study_command
from tests.helpers.protocols import PROTOCOLS, write_tiny_protocol

CLAIM = {"id": "finetune-vs-scratch", "text": "fine-tuning beats training from scratch", "a": "finetune(depth=1)",
         "b": "scratch"}


def tiny_with_claim(directory: Path) -> Path:
    data = yaml.safe_load(write_tiny_protocol(directory).read_text())
    path = directory / "claimed.yaml"
    path.write_text(yaml.safe_dump({**data, "name": "claimed", "claims": [CLAIM]}, sort_keys=False))
    return path


def test_import_study_loads_no_heavy_library():
    code = "import sys, study; print(json.dumps([m in sys.modules for m in ('pandas', 'tensorflow', 'keras')]))"
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [False, False, False]


def test_every_public_name_resolves_and_others_do_not():
    assert sorted(study.__all__) == sorted(set(study.__all__))
    for name in study.__all__:
        assert getattr(study, name).__name__ == name
    assert set(study.__all__) <= set(dir(study))
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        study.nonexistent  # noqa: B018


@pytest.mark.parametrize("path", [*sorted((PROJECT / "protocols").glob("*.yaml")), PROTOCOLS / "tiny.yaml"],
                         ids=lambda path: path.stem)
def test_a_protocol_written_as_yaml_loads_back_equal(path):
    protocol = load_protocol(path)
    assert parse_protocol(protocol_yaml(protocol)) == protocol


def test_file_dict_and_object_plan_the_same_cells(tmp_path):
    path = write_tiny_protocol(tmp_path)
    data = yaml.safe_load(path.read_text())
    plans = [study.load(source, results_dir=tmp_path / "results", quiet=True).plan(jobs=2)
             for source in (path, data, load_protocol(path))]
    for plan in plans[1:]:
        pd.testing.assert_frame_equal(plan.table, plans[0].table)
        assert plan.cost == plans[0].cost
    assert plans[0].to_run == 8


def test_a_bad_dict_fails_in_one_line_naming_the_field_without_a_line_of_the_harness_copy(tmp_path):
    data = yaml.safe_load(write_tiny_protocol(tmp_path).read_text())
    with pytest.raises(study.ProtocolError) as caught:
        study.load({**data, "fractions": [0.5, 1.5]})
    assert str(caught.value) == "<dict>: fractions.1: expected a number <= 1.0, got 1.5"


def test_numpy_values_in_a_dict_load_as_numbers(tmp_path):
    data = yaml.safe_load(write_tiny_protocol(tmp_path).read_text())
    s = study.load({**data, "seeds": np.int64(3), "fractions": np.array([0.5, 1.0])}, quiet=True)
    assert s.protocol.seed_list() == [0, 1, 2] and s.protocol.fractions == [0.5, 1.0]


def test_a_path_object_in_a_dict_loads_as_its_text(tmp_path):
    folder = tmp_path / "images"
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True)
    data = yaml.safe_load(write_tiny_protocol(tmp_path).read_text())
    s = study.load({**data, "dataset": {"source": "folder", "path": folder}}, quiet=True)
    assert s.protocol.dataset.path == str(folder)


def test_an_edited_protocol_object_is_validated_again(tmp_path):
    edited = load_protocol(write_tiny_protocol(tmp_path)).model_copy(update={"train": {"epochs": 3}})
    assert study.load(edited, quiet=True).protocol.train.epochs == 3
    broken = edited.model_copy(update={"fractions": [0.5, 2.0]})
    with pytest.raises(study.ProtocolError, match=r"^<tiny>: fractions.1: "):
        study.load(broken)


def test_a_protocol_file_is_read_again_at_every_call(tmp_path):
    path = write_tiny_protocol(tmp_path)
    s = study.load(path, results_dir=tmp_path / "results", quiet=True)
    path.write_text(path.read_text().replace("name: tiny", "name: edited").replace("seeds: 2", "seeds: 4"))
    assert s.protocol.name == "edited" and "edited" in repr(s)
    plan = s.plan(jobs=2)
    assert plan.to_run == 16
    assert list(plan.decidability) == list(plan.decidability)  # a list, readable again


@pytest.mark.parametrize(("options", "refusal"), [
    ({"max_seeds": 5}, "--max-seeds and --seeds-per-round need --until-decided"),
    ({"address": "tcp://10.0.0.5:8786"}, "--address needs --executor dask or --executor ray"),
    ({"keep_models": "Best"}, "unknown keep_models 'Best': one of none, best, all"),
    ({"executor": "slurm"}, "unknown executor 'slurm': one of local, dask, ray"),
])
def test_run_checks_its_options_before_reading_anything(tmp_path, options, refusal):
    s = study.load(write_tiny_protocol(tmp_path), results_dir=tmp_path / "results", quiet=True)
    with pytest.raises(study.StudyError) as caught:
        s.run(**options)
    assert str(caught.value) == refusal and not (tmp_path / "results").exists()


def test_a_protocol_that_cannot_draw_every_class_names_the_field_without_a_file(tmp_path):
    data = yaml.safe_load(write_tiny_protocol(tmp_path).read_text())
    protocol = study.Protocol.model_validate({**data, "fractions": [0.01, 1.0]})
    with pytest.raises(study.ProtocolError, match=r"^<tiny>: fractions: fraction 0.01 leaves class"):
        study.load(protocol, results_dir=tmp_path / "results", quiet=True).plan()


@pytest.mark.slow
def test_a_study_built_in_python_runs_and_reads_back_as_the_report_does(tmp_path):
    """The run happens in a fresh process (TensorFlow stays out of the test's), as a notebook would do it."""
    protocol = load_protocol(tiny_with_claim(tmp_path)).model_copy(update={"name": "edited"})
    script = textwrap.dedent(f"""
        import json, study
        protocol = study.load_protocol({str(tiny_with_claim(tmp_path))!r}).model_copy(update={{"name": "edited"}})
        s = study.load(protocol, results_dir={str(tmp_path / "results")!r}, report_dir={str(tmp_path / "report")!r},
                       quiet=True)
        outcome = s.run(jobs=2)
        print(json.dumps({{"report": str(outcome.report), "lines": outcome.claim_lines(),
                          "done": outcome.summary.done}}))
    """)
    ran = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    outcome = json.loads(ran.stdout.splitlines()[-1])
    assert outcome["done"] == 8 and outcome["report"] == str(tmp_path / "report" / "edited" / "index.html")
    assert len(outcome["lines"]) == 1 and "fine-tuning beats training from scratch (finetune-vs-scratch)" in \
        outcome["lines"][0]

    s = study.load(protocol, results_dir=tmp_path / "results", report_dir=tmp_path / "report", quiet=True)
    cells = s.cells()
    assert len(cells) == 8 and set(cells["status"]) == {"done"}
    predictions = s.predictions()
    assert len(predictions) == cells["n_test"].sum()
    assert set(predictions["run_id"]) == set(cells["run_id"])
    claims = s.claims()
    stored = pd.read_csv(tmp_path / "report" / "edited" / "tables" / "claims.csv")
    assert list(claims["claim"]) == list(stored["claim"]) == ["finetune-vs-scratch"]
    assert claims["verdict"].iloc[0] == stored["verdict"].iloc[0]
    assert outcome["lines"][0].startswith(claims["verdict"].iloc[0].upper())
    assert claims["effect"].iloc[0] == pytest.approx(stored["effect"].iloc[0])
    assert set(s.tables()) >= {"answer", "claims", "cells", "summary_auc"}
    assert load_protocol(tmp_path / "results" / "edited" / "protocol.yaml") == protocol
    assert s.status()["done"].sum() == 8


@pytest.mark.slow
def test_run_ends_with_each_claims_verdict_and_where_the_report_is(tmp_path):
    path = tiny_with_claim(tmp_path)
    ran = study_command("run", str(path), "--results-dir", str(tmp_path / "results"), "--report-dir",
                        str(tmp_path / "report"), "--no-progress")
    assert ran.returncode == 0, ran.stderr
    last = ran.stdout.strip().splitlines()[-3:]
    assert last[0].startswith("8 done, 0 failed, 0 skipped")
    verdict = pd.read_csv(tmp_path / "report" / "claimed" / "tables" / "claims.csv")["verdict"].iloc[0]
    assert last[1].startswith(f"{verdict.upper()}: fine-tuning beats training from scratch (finetune-vs-scratch)")
    assert last[2] == f"report: {tmp_path / 'report' / 'claimed' / 'index.html'}"
