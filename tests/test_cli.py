"""The commands as a user runs them: run, resume, status, plan, validate, report; kill -9 mid-sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from helpers.commands import PROJECT, study_command, unreachable_url
from helpers.protocols import protocol_file_text, write_tiny_protocol

from study.cli import CLOSED_PIPE
from study.store.results import ResultStore


def dirs(tmp_path):
    return ["--results-dir", str(tmp_path / "results"), "--report-dir", str(tmp_path / "report")]


@pytest.mark.slow
def test_run_stores_every_cell_then_resume_skips_them(tmp_path):
    protocol = write_tiny_protocol(tmp_path)
    first = study_command("run", str(protocol), *dirs(tmp_path), "--jobs", "2")
    assert first.returncode == 0, first.stderr
    assert "8 done, 0 failed, 0 skipped" in first.stdout
    store = ResultStore(tmp_path / "results", "tiny")
    cells = store.cells()
    assert len(cells) == 8 and set(cells["status"]) == {"done"}
    assert set(cells["arm"]) == {"scratch", "finetune(depth=1)"}
    assert (cells.loc[cells.fraction == 0.5, "n_train"] < cells.loc[cells.fraction == 1.0, "n_train"].min()).all()
    for run_id in cells["run_id"]:
        predictions = store.predictions(run_id)
        assert len(predictions) == cells["n_test"].iloc[0]
        assert abs(predictions.filter(like="prob_").sum(axis=1) - 1).max() < 1e-4
    assert (tmp_path / "report" / "tiny" / "report.md").is_file()
    assert (tmp_path / "report" / "tiny" / "figures" / "learning_curve.png").is_file()
    stamps = {path: path.stat().st_mtime_ns for path in store.cells_dir.iterdir()}

    again = study_command("run", str(protocol), *dirs(tmp_path))
    assert again.returncode == 0, again.stderr
    assert "0 done, 0 failed, 8 skipped" in again.stdout
    assert {path: path.stat().st_mtime_ns for path in store.cells_dir.iterdir()} == stamps

    status = study_command("status", str(protocol), *dirs(tmp_path))
    assert status.returncode == 0
    assert "total: 8 done, 0 failed, 0 pending" in status.stdout


@pytest.mark.slow
def test_worker_output_goes_to_the_logs_folder_and_the_terminal_shows_only_progress(tmp_path):
    protocol = write_tiny_protocol(tmp_path, seeds=1, epochs=1)
    result = study_command("run", str(protocol), *dirs(tmp_path), "--jobs", "2", env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert result.returncode == 0, result.stderr
    startup = ("absl::InitializeLog", "oneDNN custom operations")
    assert not any(line in result.stderr or line in result.stdout for line in startup), result.stderr
    assert [line[:5] for line in result.stderr.splitlines()] == [f"[{n}/4]" for n in range(1, 5)], result.stderr
    logs = sorted((tmp_path / "results" / "tiny" / "logs").glob("worker-*.log"))
    assert len(logs) == 2, logs  # one per worker process
    assert all(line in "".join(log.read_text() for log in logs) for line in startup)


@pytest.mark.slow
def test_the_number_of_jobs_never_changes_a_result(tmp_path):
    """Every cell trains with train.threads threads, so one worker or two give the same numbers under one run id."""
    protocol = write_tiny_protocol(tmp_path, seeds=1, epochs=3)
    runs = {}
    for jobs in ("1", "2"):
        done = study_command("run", str(protocol), "--results-dir", str(tmp_path / jobs), "--report-dir",
                             str(tmp_path / "report"), "--jobs", jobs, "--no-progress")
        assert done.returncode == 0, done.stderr
        runs[jobs] = ResultStore(tmp_path / jobs, "tiny").cells().set_index("run_id").sort_index()
    assert set(runs["1"]["threads"]) == {1} and list(runs["1"].index) == list(runs["2"].index)
    metrics = ["auc", "accuracy", "log_loss", "accuracy_op", "best_epoch", "monitor_value", "history_json"]
    pd.testing.assert_frame_equal(runs["1"][metrics], runs["2"][metrics], check_exact=True)


def test_plan_shows_block_map_and_pending(tmp_path):
    protocol = write_tiny_protocol(tmp_path)
    result = study_command("plan", str(protocol), *dirs(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "block map of cnn" in result.stdout and "block4_pool" in result.stdout
    assert "to run: 8 cells" in result.stdout


def test_status_and_plan_do_not_import_tensorflow(tmp_path):
    protocol = write_tiny_protocol(tmp_path)
    code = (
        "import sys; from study.cli import main\n"
        f"status = main(['status', {str(protocol)!r}, '--results-dir', {str(tmp_path)!r}])\n"
        f"plan = main(['plan', {str(protocol)!r}, '--results-dir', {str(tmp_path)!r}])\n"
        "assert (status, plan) == (0, 0), f'status returned {status}, plan returned {plan}'\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'tensorflow imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    status, plan = result.stdout.split("protocol tiny: ")
    assert status.startswith(f"tiny: 8 cells in {tmp_path / 'tiny'}\n")
    assert "total: 0 done, 0 failed, 8 pending" in status.splitlines()
    assert plan.startswith("8 cells = 2 fractions x 2 seeds x 2 arms\n")
    assert "to run: 8 cells, each up to 2 epochs (early stopping may end them sooner)" in plan.splitlines()


def first_line_then_close(*args: str) -> tuple[str, int, str]:
    """`python -m study ARGS | head -1`: the first line, the command's exit status and its stderr."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with subprocess.Popen([sys.executable, "-m", "study", *args], cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as command:
        first = command.stdout.readline()
        command.stdout.close()
        return first, command.wait(), command.stderr.read()


def test_a_reader_that_closes_the_pipe_ends_the_command_quietly(tmp_path):
    protocol = write_tiny_protocol(tmp_path, seeds=600)  # 2400 cells: a dry run prints far more than a pipe holds
    first, code, err = first_line_then_close("run", str(protocol), *dirs(tmp_path), "--dry-run")
    assert first.startswith("tiny: 2400 cells, 0 stored, 2400 to run with ")
    assert (code, err) == (CLOSED_PIPE, "")  # no traceback, the status of a command SIGPIPE ended
    for command in ("plan", "status"):  # short outputs may fit the pipe before it closes: then they end with 0
        first, code, err = first_line_then_close(command, str(protocol), *dirs(tmp_path))
        assert first.startswith(("protocol tiny", "tiny: 2400 cells")) and code in (0, CLOSED_PIPE) and err == ""


def test_bad_protocol_exits_2_with_one_line(tmp_path):
    protocol = write_tiny_protocol(tmp_path)
    protocol.write_text(protocol.read_text().replace("fractions: [0.5, 1.0]", "fractions: [0.5, 2.0]"))
    result = study_command("run", str(protocol), *dirs(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {protocol}:7: fractions.1: expected a number <= 1.0, got 2.0"
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "flags, code, message",
    [
        ((), 0, None),
        (("--max-seeds", "4"), 2, "error: --max-seeds and --seeds-per-round need --until-decided"),
        (("--address", "127.0.0.1:1"), 2, "error: --address needs --executor dask or --executor ray"),
        (("--until-decided",), 2, "--until-decided needs claims to decide, and the protocol has none"),
        (("--executor", "nope"), 2, "invalid choice: 'nope'"),
        (("--sharp",), 2, "unrecognized arguments: --sharp"),
    ],
)
def test_exit_codes_follow_the_documented_table(tmp_path, capsys, flags, code, message):
    """Usage errors (flags that do not go together) exit 2 like argparse's own, before anything is stored; a dry
    run that works exits 0."""
    from study.cli import main

    protocol = write_tiny_protocol(tmp_path)
    try:
        returned = main(["run", str(protocol), *dirs(tmp_path), "--dry-run", *flags])
    except SystemExit as exc:  # argparse ends on its own usage errors
        returned = exc.code
    err = capsys.readouterr().err
    assert returned == code, err
    if message is not None:
        assert message in err
    if message and message.startswith("error: "):  # the harness's own: one line
        assert err.strip().startswith(message) and len(err.strip().splitlines()) == 1
    if code:
        assert not list(tmp_path.rglob("*.parquet"))


def test_missing_dataset_names_file_and_setting(tmp_path):
    protocol = tmp_path / "mm.yaml"
    protocol.write_text(write_tiny_protocol(tmp_path).read_text().replace(
        "{source: synthetic, classes: 2, per_class: 30, size: 16}", "{source: medmnist, name: pathmnist, size: 28}"))
    result = study_command("status", str(protocol), *dirs(tmp_path), "--data-dir", str(tmp_path),
                           env={"STUDY_MEDMNIST_URL": unreachable_url(), "NO_PROXY": "127.0.0.1"})
    assert result.returncode == 1
    assert "pathmnist.npz" in result.stderr and "--data-dir" in result.stderr and "download http" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.integration
def test_kill_9_mid_sweep_then_resume_stores_each_cell_once(tmp_path):
    protocol = write_tiny_protocol(tmp_path, seeds=4, epochs=3)
    store = ResultStore(tmp_path / "results", "tiny")
    command = [sys.executable, "-m", "study", "run", str(protocol), *dirs(tmp_path), "--jobs", "1"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, cwd=PROJECT, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(store.cells_dir.glob("*.parquet"))) < 3:
        time.sleep(0.05)
    # while it holds the results (stopped, so that it cannot finish first on a loaded machine), a second run is refused
    os.killpg(process.pid, signal.SIGSTOP)
    busy = study_command("run", str(protocol), *dirs(tmp_path))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert busy.returncode == 1 and "another `study run` is writing these results" in busy.stderr
    before = {path.name: path.stat().st_mtime_ns for path in store.cells_dir.glob("*.parquet")}
    assert 3 <= len(before) < 16, "the kill should land mid-sweep"

    resumed = study_command("run", str(protocol), *dirs(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    after = {path.name: path.stat().st_mtime_ns for path in store.cells_dir.glob("*.parquet")}
    assert len(after) == 16
    assert all(after[name] == stamp for name, stamp in before.items()), "a stored cell ran again"
    cells = store.cells()
    assert len(cells) == 16 and cells["run_id"].is_unique and set(cells["status"]) == {"done"}
    assert f"{16 - len(before)} done, 0 failed, {len(before)} skipped" in resumed.stdout
    assert pd.Series([store.predictions(r) is not None for r in cells["run_id"]]).all()


@pytest.mark.slow
def test_failed_cell_is_stored_and_runs_again_only_on_request(tmp_path):
    weights = tmp_path / "not-weights.h5"
    weights.write_text("this is not an HDF5 file")
    protocol = tmp_path / "broken.yaml"
    protocol.write_text(protocol_file_text("frozen_mobilenetv2_weights_file", weights=weights))
    store = ResultStore(tmp_path / "results", "broken")
    first = study_command("run", str(protocol), *dirs(tmp_path))
    assert first.returncode == 1
    assert "0 done, 1 failed" in first.stdout and "--retry-failed" in first.stderr
    failed = store.cells().iloc[0]
    assert failed["status"] == "failed" and "not-weights.h5" in failed["error"]

    skipped = study_command("run", str(protocol), *dirs(tmp_path))
    assert skipped.returncode == 0 and "0 done, 0 failed, 1 skipped" in skipped.stdout
    status = study_command("status", str(protocol), *dirs(tmp_path))
    assert "total: 0 done, 1 failed, 0 pending" in status.stdout and "failed: frozen fraction=1 seed=0" in status.stdout

    retried = study_command("run", str(protocol), *dirs(tmp_path), "--retry-failed")
    assert retried.returncode == 1 and "0 done, 1 failed, 0 skipped" in retried.stdout
    cells = store.cells()
    assert len(cells) == 1 and cells.iloc[0]["finished_at"] > failed["finished_at"]


def test_missing_weights_file_is_a_protocol_error(tmp_path):
    protocol = write_tiny_protocol(tmp_path)
    protocol.write_text(protocol.read_text().replace("weights: none", f"weights: {tmp_path / 'absent.h5'}"))
    result = study_command("validate", str(protocol))
    assert result.returncode == 2
    assert f"{protocol}:3: backbone.weights: expected imagenet, none, or the path of a weights file" in result.stderr


def test_datasets_describes_every_source():
    result = study_command("datasets")
    assert result.returncode == 0
    for source in ("medmnist", "folder", "csv", "synthetic", "STUDY_DATA_DIR"):
        assert source in result.stdout


@pytest.mark.slow
def test_a_second_protocol_copies_the_cells_it_shares_instead_of_training_them(tmp_path):
    first = write_tiny_protocol(tmp_path)
    assert study_command("run", str(first), *dirs(tmp_path), "--jobs", "1").returncode == 0
    second = tmp_path / "second.yaml"
    second.write_text(first.read_text().replace("name: tiny", "name: second").replace(
        "  - {name: finetune, depth: [1]}", "  - {name: finetune, depth: [1, all]}"))
    result = study_command("run", str(second), *dirs(tmp_path), "--jobs", "1")
    assert result.returncode == 0, result.stderr
    assert "8 cells copied from other protocols' stores" in result.stdout  # 2 arms x 2 fractions x 2 seeds
    assert "4 done, 0 failed, 8 skipped" in result.stdout  # only finetune(depth=all) trained
    original = ResultStore(tmp_path / "results", "tiny").cells().set_index("run_id")
    copied = ResultStore(tmp_path / "results", "second").cells().set_index("run_id")
    shared = copied[copied["adopted_from"] == "tiny"]
    assert len(shared) == 8 and set(shared["protocol"]) == {"second"}
    assert shared["auc"].equals(original.loc[shared.index, "auc"])
    assert set(copied.loc[copied["adopted_from"].isna(), "arm"]) == {"finetune(depth=all)"}


def breastmnist_protocol(tmp_path):
    """The tiny protocol on BreastMNIST (a source that needs the data directory)."""
    protocol = tmp_path / "breast.yaml"
    protocol.write_text(write_tiny_protocol(tmp_path).read_text().replace(
        "{source: synthetic, classes: 2, per_class: 30, size: 16}", "{source: medmnist, name: breastmnist, size: 28}"))
    return protocol


@pytest.mark.integration
def test_validate_runs_the_data_checks_of_plan_with_a_data_dir_and_says_when_it_skips_them(tmp_path, breastmnist_dir,
                                                                                           monkeypatch, capsys):
    from study.cli import main

    monkeypatch.delenv("STUDY_DATA_DIR", raising=False)
    protocol = breastmnist_protocol(tmp_path)
    assert main(["validate", str(protocol)]) == 0
    assert "valid protocol 'tiny'; data checks skipped: no data directory" in capsys.readouterr().out
    assert main(["validate", str(protocol), "--data-dir", str(breastmnist_dir)]) == 0
    assert "data checked: 780 images, 2 classes" in capsys.readouterr().out
    monkeypatch.setenv("STUDY_DATA_DIR", str(breastmnist_dir))
    assert main(["validate", str(protocol)]) == 0 and "data checked" in capsys.readouterr().out

    small = tmp_path / "small.yaml"
    small.write_text(protocol.read_text().replace("fractions: [0.5, 1.0]", "fractions: [0.001, 1.0]"))
    csv = tmp_path / "manifest.yaml"
    (tmp_path / "list.csv").write_text("file,label\na.png,0\n")
    csv.write_text(protocol.read_text().replace("{source: medmnist, name: breastmnist, size: 28}",
                                                f"{{source: csv, path: {tmp_path / 'list.csv'}}}"))
    monkeypatch.setenv("STUDY_MEDMNIST_URL", "http://127.0.0.1:9")  # nothing listens: the download must fail
    cases = ((protocol, tmp_path, 1, "MedMNIST file breastmnist.npz is not in"),
             (small, breastmnist_dir, 2, "fractions: fraction 0.001 leaves class"), (csv, breastmnist_dir, 1, "no column 'path'"))
    for bad, data_dir, code, words in cases:
        assert main(["validate", str(bad), "--data-dir", str(data_dir)]) == code
        validated = capsys.readouterr().err
        assert main(["plan", str(bad), "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "results")]) == code
        assert validated == capsys.readouterr().err and len(validated.strip().splitlines()) == 1, validated
        assert words in validated, validated


@pytest.mark.slow
def test_status_and_report_work_without_the_data_using_the_stored_fingerprint(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from study.cli import main

    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(10):
            noise = np.random.default_rng(i).integers(0, 256, (16, 16), dtype=np.uint8)
            Image.fromarray(noise).save(tmp_path / "images" / label / f"{i}.png")
    protocol = tmp_path / "folder.yaml"
    protocol.write_text(write_tiny_protocol(tmp_path, seeds=1, epochs=1).read_text()
                        .replace("{source: synthetic, classes: 2, per_class: 30, size: 16}",
                                 "{source: folder, path: images, size: 16}").replace("[0.5, 1.0]", "[1.0]"))
    args = [str(protocol), *dirs(tmp_path), "--data-dir", str(tmp_path)]
    assert main(["run", *args, "--jobs", "1", "--no-progress"]) == 0
    (tmp_path / "images").rename(tmp_path / "elsewhere")
    capsys.readouterr()

    assert main(["status", *args]) == 0
    out, err = capsys.readouterr()
    assert "total: 2 done, 0 failed, 0 pending" in out
    assert err.startswith("note: the dataset cannot be read here (image folder") and len(err.splitlines()) == 1
    assert "run ids use the fingerprint the last run stored in" in err
    assert main(["report", *args]) == 0 and "report written to" in capsys.readouterr().out
    assert main(["plan", *args]) == 1 and "image folder" in capsys.readouterr().err  # plan needs the data
