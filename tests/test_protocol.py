"""Protocol validation: good files load; bad ones give one line naming file, line and field."""

import pytest

from study.core.errors import ProtocolError
from study.protocol.schema import load_protocol, parse_protocol

GOOD = """\
name: demo
dataset: {source: synthetic, size: 32}
backbone: {name: cnn, weights: none, width: 8}
strategies:
  - {name: scratch}
  - {name: frozen, head: {kind: mlp, units: [16], dropout: 0.2}}
  - {name: finetune, depth: [1, all]}
  - {name: truncate, at: [1, 2]}
fractions: [1.0, 0.5]
seeds: [3, 7]
train: {epochs: 2, lr: {backbone: 1.0e-5, head: 1.0e-3}}
"""


def test_shipped_protocols_validate(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "protocols"
    names = {load_protocol(path).name for path in root.glob("*.yaml")}
    assert {"smoke", "truncation", "tajbakhsh", "cheng2016", "transfusion"} <= names


def test_good_protocol_parses_and_normalises():
    protocol = parse_protocol(GOOD, "demo.yaml")
    assert protocol.fractions == [0.5, 1.0]
    assert protocol.seed_list() == [3, 7]
    assert protocol.strategies[1].head_spec().units == (16,)
    assert protocol.train.lr.backbone == 1e-5
    assert protocol.train.early_stopping.monitor == "val_auc"


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("fractions: [1.0, 0.5]", "fractions: [1.0, 0]", r"^demo\.yaml:9: fractions\.1: expected a number > 0\.0, got 0$"),
        ("train: {epochs: 2,", "train: {epochs: 2, optimizer: adamw,",
         r"^demo\.yaml:11: train\.optimizer: expected one of 'adam' or 'sgd', got 'adamw' \(did you mean 'adam'\?\)$"),
        ("{name: scratch}", "{head: linear}", r"^demo\.yaml:5: strategies\.0\.name: required field is missing$"),
        ("source: synthetic, ", "", r"^demo\.yaml:2: dataset\.source: required field is missing$"),
        ("width: 8}", "width: 8}\nrun: {retries: -1}", r"^demo\.yaml:4: run\.retries: expected a number >= 0, got -1$"),
        ("fractions: [1.0, 0.5]", "fractions: []", r"^demo\.yaml:9: fractions: .*at least 1 item"),
        ("seeds: [3, 7]", "seeds: [3, 3]", r"^demo\.yaml:10: seeds: .*without repeats"),
        ("size: 32", "sise: 32", r"^demo\.yaml:2: dataset\.sise: unknown field \(did you mean 'size'\?\)"),
        ("train: {epochs: 2,", "trian: {epochs: 2,", r"^demo\.yaml:11: trian: unknown field \(did you mean 'train'\?\)"),
        ("at: [1, 2]", "at: [1, 9]", r"^demo\.yaml:8: strategies\.3\.at: cnn has blocks 0\.\.4 .*got 9"),
        ("depth: [1, all]", "depth: [1, 12]", r"^demo\.yaml:7: strategies\.2\.depth: cnn has 5 blocks, got depth 12"),
        ("{name: scratch}", "{name: scratch, depth: 2}", r"^demo\.yaml:5: strategies\.0: depth is not for scratch"),
        ("name: cnn", "name: resnet5O", r"^demo\.yaml:3: backbone\.name: expected one of .*did you mean 'resnet50'"),
        ("epochs: 2", "epochs: two", r"^demo\.yaml:11: train\.epochs: .*valid integer.*got 'two'"),
        ("source: synthetic", "source: dicomm",
         r"^demo\.yaml:2: dataset\.source: expected one of \['medmnist', 'folder', 'csv', 'dicom', 'synthetic'\], got "
         r"'dicomm' \(did you mean 'dicom'\?\)$"),
        ("strategies:", "strategies: []\nx:", r"^demo\.yaml:4: strategies: .*at least 1 item"),
        ("source: synthetic, size: 32", "source: medmnist, name: retinammnist, size: 32",
         r"^demo\.yaml:2: dataset\.name: expected one of the 2D MedMNIST datasets \[.*'retinamnist'.*\], got "
         r"'retinammnist' \(did you mean 'retinamnist'\?\)$"),
        ("source: synthetic, size: 32", "source: medmnist, name: chestmnist, size: 32",
         r"^demo\.yaml:2: dataset\.name: expected a single-label dataset; chestmnist is multi-label"),
    ],
)
def test_invalid_protocols_name_file_line_and_field(old, new, expected):
    assert old in GOOD
    with pytest.raises(ProtocolError, match=expected) as caught:
        parse_protocol(GOOD.replace(old, new, 1), "demo.yaml")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("size: 32", 'size: "32"', r"^demo\.yaml:2: dataset\.size: .*valid integer.*got '32'$"),
        ("seeds: [3, 7]", 'seeds: "2"', r"^demo\.yaml:10: seeds: .*got '2'$"),
        ("epochs: 2,", "epochs: 2, augment: yes,", None),  # YAML 1.1's yes is a boolean: accepted
        ("epochs: 2,", 'epochs: 2, augment: "yes",', r"^demo\.yaml:11: train\.augment: expected true or false, got 'yes'$"),
        ("epochs: 2,", "epochs: 2.0,", r"^demo\.yaml:11: train\.epochs: .*valid integer.*got 2\.0$"),
        ("epochs: 2,", "epochs: true,", r"^demo\.yaml:11: train\.epochs: .*valid integer.*got True$"),
        ("fractions: [1.0, 0.5]", 'fractions: [1.0, "0.5"]', r"^demo\.yaml:9: fractions\.1: .*valid number.*got '0\.5'$"),
        ("units: [16]", 'units: ["16"]', r"^demo\.yaml:6: strategies\.1\.head\.units\.0: expected a valid integer, got '16'$"),
        ("name: demo", "name: demo\ndescription: 12", r"^demo\.yaml:2: description: expected text, got 12$"),
    ],
)
def test_values_are_not_coerced(old, new, expected):
    """Strict fields: a quoted number, a number where text is asked for, a float or a boolean where an integer is,
    are refused with the field's line; an integer where a float is asked for, and YAML's own booleans, are not."""
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    if expected is None:
        assert parse_protocol(text, "demo.yaml").train.augment is True
        return
    with pytest.raises(ProtocolError, match=expected):
        parse_protocol(text, "demo.yaml")


def test_exponents_without_a_point_are_numbers():
    """1e-3 is a number (YAML 1.2), not the text PyYAML's YAML 1.1 makes of it, which a strict field refuses."""
    protocol = parse_protocol(GOOD.replace("lr: {backbone: 1.0e-5, head: 1.0e-3}", "lr: {backbone: 1e-5, head: 1E-3}"),
                              "demo.yaml")
    assert (protocol.train.lr.backbone, protocol.train.lr.head) == (1e-5, 1e-3)
    assert parse_protocol(GOOD.replace("fractions: [1.0, 0.5]", "fractions: [1, 5e-1]"), "demo.yaml").fractions == [
        0.5, 1.0]


def test_yaml_syntax_error_names_line():
    with pytest.raises(ProtocolError, match=r"^demo\.yaml:3: not valid YAML"):
        parse_protocol("name: x\ndataset: {source: synthetic\nbackbone: [\n", "demo.yaml")


def test_missing_file_is_a_protocol_error(tmp_path):
    with pytest.raises(ProtocolError, match="cannot read protocol"):
        load_protocol(tmp_path / "absent.yaml")
