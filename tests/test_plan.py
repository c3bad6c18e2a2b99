"""Grid expansion and run ids."""

from helpers.protocols import protocol_file_text, run_ids

from study.plan.cells import plan_cells
from study.protocol.schema import parse_protocol

BASE = protocol_file_text("six_arms_demo")


def test_grid_is_fraction_by_seed_by_arm():
    cells = plan_cells(parse_protocol(BASE), "data")
    assert len(cells) == 2 * 2 * 6
    labels = list(dict.fromkeys(cell.arm.label for cell in cells))
    assert labels == ["scratch", "frozen", "finetune(depth=1)", "finetune(depth=all)", "truncate(at=1)", "truncate(at=2)"]
    assert len({cell.run_id for cell in cells}) == len(cells)
    assert [c.fraction for c in cells[:12]] == [0.5] * 12


def test_scratch_uses_no_weights_and_head_rate():
    scratch = plan_cells(parse_protocol(BASE), "data")[0]
    assert scratch.settings.backbone.weights == "none"
    assert scratch.arm.lr_backbone == scratch.arm.lr_head == 1e-3


def test_cosmetic_edits_keep_run_ids():
    reordered = BASE.replace("train: {epochs: 2, lr: {backbone: 1.0e-4, head: 1.0e-3}}",
                             "# a comment\ntrain: {lr: {head: 0.001, backbone: 0.0001}, epochs: 2}\nreport: {metric: accuracy}")
    assert run_ids(reordered) == run_ids(BASE)


def test_result_changing_edits_change_run_ids():
    base = set(run_ids(BASE))
    assert base.isdisjoint(run_ids(BASE.replace("epochs: 2", "epochs: 3")))
    assert base.isdisjoint(run_ids(BASE, fingerprint="other data"))
    changed_lr = set(run_ids(BASE.replace("backbone: 1.0e-4", "backbone: 1.0e-5")))
    # scratch trains at the head rate, so only the pretrained arms change
    assert len(base & changed_lr) == 2 * 2


def test_adding_a_fraction_keeps_existing_ids():
    grown = set(run_ids(BASE.replace("fractions: [0.5, 1.0]", "fractions: [0.25, 0.5, 1.0]")))
    assert set(run_ids(BASE)) < grown


def test_a_strategy_with_its_own_backbone_is_its_own_arm_and_leaves_other_ids_alone():
    own = BASE.replace("  - {name: scratch}\n",
                       "  - {name: scratch}\n  - {name: scratch, backbone: {name: cnn, weights: none, width: 4}}\n")
    cells = plan_cells(parse_protocol(own), "data")
    small = [cell for cell in cells if cell.arm.label == "scratch[cnn-4]"]
    assert len(small) == 2 * 2
    assert small[0].settings.as_dict()["backbone"] == {"name": "cnn", "weights": "none", "width": 4}
    assert "backbone" not in small[0].settings.as_dict()["arm"]
    assert set(run_ids(BASE)) < {cell.run_id for cell in cells}


def test_an_output_layer_rate_changes_only_the_arms_that_set_it():
    with_output = BASE.replace("  - {name: frozen}", "  - {name: frozen, lr: {head: 1.0e-3, output: 1.0e-2}}")
    cells = plan_cells(parse_protocol(with_output), "data")
    frozen = [cell for cell in cells if cell.arm.label == "frozen"]
    assert {cell.arm.lr_output for cell in frozen} == {1e-2}
    assert frozen[0].settings.arm.lr_output == 1e-2
    others = {cell.run_id for cell in cells if cell.arm.label != "frozen"}
    assert others < set(run_ids(BASE)) and not {cell.run_id for cell in frozen} & set(run_ids(BASE))


def test_protocols_without_tuning_keep_their_run_ids():
    import hashlib

    planned = run_ids(BASE)
    assert planned[:2] == ["58a93ed3ff1d51872f18", "5e89c836bb567f296aea"]  # the ids of result format 2
    assert hashlib.sha256(",".join(planned).encode()).hexdigest()[:16] == "3898e4eedd5111ac"
    assert all("tuned" not in cell.settings.as_dict() for cell in plan_cells(parse_protocol(BASE), "data"))


def test_protocols_without_resplit_keep_their_run_ids():
    planned = run_ids(BASE)
    assert planned[:2] == ["58a93ed3ff1d51872f18", "5e89c836bb567f296aea"]  # the ids before dataset.resplit
    assert run_ids(BASE.replace("size: 32}", "size: 32, resplit: false}")) == planned
    resplit = run_ids(BASE.replace("size: 32}", "size: 32, resplit: true}"))
    assert len(resplit) == len(planned) and not set(resplit) & set(planned)
