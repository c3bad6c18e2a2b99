"""Grid expansion and run ids."""

from study.plan.cells import plan_cells
from study.protocol.schema import parse_protocol

BASE = """\
name: demo
dataset: {source: synthetic, size: 32}
backbone: {name: cnn, weights: none, width: 8}
strategies:
  - {name: scratch}
  - {name: frozen}
  - {name: finetune, depth: [1, all]}
  - {name: truncate, at: [1, 2]}
fractions: [0.5, 1.0]
seeds: 2
train: {epochs: 2, lr: {backbone: 1.0e-4, head: 1.0e-3}}
"""


def ids(text: str, fingerprint: str = "data") -> list[str]:
    return [cell.run_id for cell in plan_cells(parse_protocol(text), fingerprint)]


def test_grid_is_fraction_by_seed_by_arm():
    cells = plan_cells(parse_protocol(BASE), "data")
    assert len(cells) == 2 * 2 * 6
    labels = list(dict.fromkeys(cell.arm.label for cell in cells))
    assert labels == ["scratch", "frozen", "finetune(depth=1)", "finetune(depth=all)", "truncate(at=1)", "truncate(at=2)"]
    assert len({cell.run_id for cell in cells}) == len(cells)
    assert [c.fraction for c in cells[:12]] == [0.5] * 12


def test_scratch_uses_no_weights_and_head_rate():
    scratch = plan_cells(parse_protocol(BASE), "data")[0]
    assert scratch.settings["backbone"]["weights"] == "none"
    assert scratch.arm.lr_backbone == scratch.arm.lr_head == 1e-3


def test_cosmetic_edits_keep_run_ids():
    reordered = BASE.replace("train: {epochs: 2, lr: {backbone: 1.0e-4, head: 1.0e-3}}",
                             "# a comment\ntrain: {lr: {head: 0.001, backbone: 0.0001}, epochs: 2}\nreport: {metric: accuracy}")
    assert ids(reordered) == ids(BASE)


def test_result_changing_edits_change_run_ids():
    base = set(ids(BASE))
    assert base.isdisjoint(ids(BASE.replace("epochs: 2", "epochs: 3")))
    assert base.isdisjoint(ids(BASE, fingerprint="other data"))
    changed_lr = set(ids(BASE.replace("backbone: 1.0e-4", "backbone: 1.0e-5")))
    # scratch trains at the head rate, so only the pretrained arms change
    assert len(base & changed_lr) == 2 * 2


def test_adding_a_fraction_keeps_existing_ids():
    grown = set(ids(BASE.replace("fractions: [0.5, 1.0]", "fractions: [0.25, 0.5, 1.0]")))
    assert set(ids(BASE)) < grown


def test_a_strategy_with_its_own_backbone_is_its_own_arm_and_leaves_other_ids_alone():
    own = BASE.replace("  - {name: scratch}\n",
                       "  - {name: scratch}\n  - {name: scratch, backbone: {name: cnn, weights: none, width: 4}}\n")
    cells = plan_cells(parse_protocol(own), "data")
    small = [cell for cell in cells if cell.arm.label == "scratch[cnn-4]"]
    assert len(small) == 2 * 2
    assert small[0].settings["backbone"] == {"name": "cnn", "weights": "none", "width": 4}
    assert "backbone" not in small[0].settings["arm"]
    assert set(ids(BASE)) < {cell.run_id for cell in cells}


def test_an_output_layer_rate_changes_only_the_arms_that_set_it():
    with_output = BASE.replace("  - {name: frozen}", "  - {name: frozen, lr: {head: 1.0e-3, output: 1.0e-2}}")
    cells = plan_cells(parse_protocol(with_output), "data")
    frozen = [cell for cell in cells if cell.arm.label == "frozen"]
    assert {cell.arm.lr_output for cell in frozen} == {1e-2}
    assert frozen[0].settings["arm"]["lr_output"] == 1e-2
    others = {cell.run_id for cell in cells if cell.arm.label != "frozen"}
    assert others < set(ids(BASE)) and not {cell.run_id for cell in frozen} & set(ids(BASE))


def test_protocols_without_tuning_keep_their_run_ids():
    import hashlib

    planned = ids(BASE)
    assert planned[:2] == ["58a93ed3ff1d51872f18", "5e89c836bb567f296aea"]  # the ids of result format 2
    assert hashlib.sha256(",".join(planned).encode()).hexdigest()[:16] == "3898e4eedd5111ac"
    assert all("tuned" not in cell.settings for cell in plan_cells(parse_protocol(BASE), "data"))


def test_protocols_without_resplit_keep_their_run_ids():
    planned = ids(BASE)
    assert planned[:2] == ["58a93ed3ff1d51872f18", "5e89c836bb567f296aea"]  # the ids before dataset.resplit
    assert ids(BASE.replace("size: 32}", "size: 32, resplit: false}")) == planned
    resplit = ids(BASE.replace("size: 32}", "size: 32, resplit: true}"))
    assert len(resplit) == len(planned) and not set(resplit) & set(planned)
