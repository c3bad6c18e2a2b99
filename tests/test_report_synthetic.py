"""The synthetic results stores the report, claims and stats tests use read back as a real run's store does."""

from __future__ import annotations

from helpers.synthetic import N_TEST, grid_rows, protocol_text, write_store

from study.protocol.schema import parse_protocol


def test_synthetic_store_reads_back_like_a_run(tmp_path):
    rows = grid_rows({"scratch": 0.0, "frozen": 0.05})
    store = write_store(tmp_path, rows)
    cells = store.cells()
    assert len(cells) == len(rows) and set(cells["status"]) == {"done"}
    predictions = store.predictions(rows[0]["run_id"])
    assert len(predictions) == N_TEST
    assert (predictions["predicted"] == predictions["label"]).mean() == round(rows[0]["accuracy"] * N_TEST) / N_TEST
    assert parse_protocol(protocol_text(), "synth.yaml").name == "synth"
