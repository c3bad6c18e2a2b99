"""Cost before running: plan prints n_train per fraction and each arm's estimated time, from a pilot's stored cells
where they exist and from the per-image rate otherwise; a grouped fraction far off its share is warned of."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers.protocols import write_tiny_protocol
from PIL import Image

from study.cli import main
from study.data.sources import source_fingerprint
from study.plan.cells import plan_cells
from study.protocol.schema import load_protocol
from study.runner import cost
from study.store.results import ResultStore


def plan_output(protocol, results, capsys, *extra: str) -> str:
    assert main(["plan", str(protocol), "--results-dir", str(results), "--jobs", "2", *extra]) == 0
    return capsys.readouterr().out


def arm_rows(out: str) -> dict[str, str]:
    """arm label -> its row of the estimate table."""
    table = out[out.index("estimated time"):out.index("\ntotal: ")].splitlines()[2:]
    return {row.split()[0]: row for row in table}


def test_without_stored_cells_the_estimate_comes_from_the_rate(tmp_path, capsys):
    out = plan_output(write_tiny_protocol(tmp_path), tmp_path / "results", capsys)
    # 2 classes x 30 images, a seeded split of 5 validation and 6 test images per class: 2 x 19 training images
    assert "  fraction 0.5: 20 images (52.6% of 38)\n  fraction 1: 38 images (100.0% of 38)\n" in out
    rows = arm_rows(out)
    assert set(rows) == {"scratch", "finetune(depth=1)"} and all(row.endswith("rate (4)") for row in rows.values())
    assert re.search(r"\ntotal: 8 cells, .* of cell time, about .* with 2 job\(s\) \(total / jobs\); to run: 8 cells",
                     out)


@pytest.mark.slow
def test_a_pilot_store_makes_plan_estimate_from_its_cells(tmp_path, capsys):
    """A one-seed pilot (its own protocol name) stores one cell per arm and fraction; the two-seed protocol's plan
    takes every cell's time from those of its arm and fraction."""
    protocol = write_tiny_protocol(tmp_path, seeds=2, epochs=1)
    pilot = tmp_path / "pilot.yaml"
    pilot.write_text(protocol.read_text().replace("name: tiny", "name: pilot").replace("seeds: 2", "seeds: 1"))
    results = tmp_path / "results"
    assert main(["run", str(pilot), "--results-dir", str(results), "--report-dir", str(tmp_path / "report"),
                 "--jobs", "1", "--no-progress"]) == 0
    out = plan_output(protocol, results, capsys)
    assert all(row.endswith("stored cells (4)") for row in arm_rows(out).values()), out

    loaded = load_protocol(protocol)
    cells = plan_cells(loaded, source_fingerprint(loaded.dataset, None))
    sizes = {(cell.fraction, cell.seed): cost.Subset(cell.fraction, 20 if cell.fraction == 0.5 else 38, 38, None, None)
             for cell in cells}
    arms = cost.arm_costs(cells, sizes, cost.stored_seconds(results), pending=set())
    stored = ResultStore(results, "pilot").cells().groupby("arm")["train_seconds"].sum()
    assert {arm.label: arm.seconds for arm in arms} == pytest.approx((2 * stored).to_dict())  # two seeds each
    seconds = cost.cell_seconds(cells, sizes, cost.stored_seconds(results))  # what the progress bar's ETA reads
    assert set(seconds) == {cell.run_id for cell in cells}
    assert sum(seconds.values()) == pytest.approx(sum(arm.seconds for arm in arms))


def test_rate_scales_with_images_pixels_backbone_and_trained_blocks(tmp_path):
    cells = {cell.arm.label: cell for cell in plan_cells(load_protocol(write_tiny_protocol(tmp_path)), "data")}
    scratch, finetune = cells["scratch"].settings.as_dict(), cells["finetune(depth=1)"].settings.as_dict()
    assert cost.rate_seconds(scratch, 64) == pytest.approx(2 * cost.rate_seconds(scratch, 32))  # epochs x batches
    bigger = {**scratch, "dataset": {**scratch["dataset"], "size": 32}}
    assert cost.rate_seconds(bigger, 32) == pytest.approx(4 * cost.rate_seconds(scratch, 32))
    # the cnn has 5 blocks: depth 1 trains a fifth of them; pretrained, their batch norm stays frozen
    assert cost.rate_seconds(finetune, 32) == pytest.approx(cost.rate_seconds(scratch, 32) / 5)
    pretrained = {**finetune, "backbone": {**finetune["backbone"], "weights": "imagenet"}}
    assert cost.rate_seconds(pretrained, 32) == pytest.approx(cost.rate_seconds(scratch, 32) / 5 / 1.6)


def grouped_manifest(folder) -> None:
    """A CSV with a split column: per class 2 training patients of 4 images, and one image in val and in test."""
    rows = ["path,label,patient,split"]
    for label in ("a", "b"):
        for patient in range(2):
            rows += [f"{label}{patient}-{i}.png,{label},{label}{patient},train" for i in range(4)]
        rows += [f"{label}-val.png,{label},{label}-v,val", f"{label}-test.png,{label},{label}-t,test"]
    for index, row in enumerate(rows[1:]):
        noise = np.random.default_rng(index).integers(0, 256, (16, 16), dtype=np.uint8)
        Image.fromarray(noise).save(folder / row.split(",")[0])
    (folder / "list.csv").write_text("\n".join(rows) + "\n")


def test_a_grouped_fraction_far_off_its_share_is_warned_in_plan_and_run(tmp_path, capsys):
    grouped_manifest(tmp_path)
    protocol = tmp_path / "grouped.yaml"
    protocol.write_text(write_tiny_protocol(tmp_path).read_text()
                        .replace("{source: synthetic, classes: 2, per_class: 30, size: 16}",
                                 f"{{source: csv, path: {tmp_path / 'list.csv'}, group_column: patient, size: 16, "
                                 "split_column: split}").replace("[0.5, 1.0]", "[0.25, 0.5, 1.0]"))
    out = plan_output(protocol, tmp_path / "results", capsys)
    # 0.25 of a class's 8 images is 2, but its patients hold 4 each: one patient per class, 8 of the 16 images
    assert "  fraction 0.25: 8 images (50.0% of 16), 2 of 4 groups\n  fraction 0.5: 8 images" in out
    warning = ("warning: fraction 0.25 draws 50.0% of the training images in seed 0 (8 of 16, 2 of 4 groups): whole "
               "groups are drawn, so its cells train on more images than asked")
    assert warning in out.splitlines() and "warning: fraction 0.5 " not in out
    assert main(["run", str(protocol), "--results-dir", str(tmp_path / "results"), "--dry-run"]) == 0
    assert warning in capsys.readouterr().err.splitlines()
