"""`edgecv models` through the real command line; the bad values in this process (typer's test runner)."""

from __future__ import annotations

import json

import pytest

from edgecv.models import create_model, list_models
from edgecv.models.complexity import count_complexity
from edgecv.models.describe import describe_model, describe_models
from tests.conftest import assert_user_error, assert_user_error_in_process


def test_json_lists_every_model_with_measured_figures(cli):
    proc = cli("models", "--json", "--width-mult", "0.5", "--resolution", "64")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    assert [row["name"] for row in rows] == list_models()
    for row in rows:
        assert {
            "name",
            "family",
            "task",
            "params",
            "macs",
            "resolution",
            "width_mult",
            "input_shape",
            "variants",
            "aliases",
            "note",
        } <= set(row)
        if row["note"] is None:
            assert (row["width_mult"], row["resolution"], row["input_shape"]) == (0.5, 64, [1, 3, 64, 64])
        else:  # a size the model cannot take (SSD300 is 300×300 only) is shown at its default, and said so
            assert "shown at" in row["note"], row
        model = create_model(row["name"], width_mult=row["width_mult"], resolution=row["resolution"], **row["options"])
        complexity = count_complexity(model)
        assert (row["params"], row["macs"]) == (complexity.params, complexity.macs)


def test_table_on_stdout_with_notes_below(cli):
    proc = cli("models", "-a", "0.75", "-r", "160")
    assert proc.returncode == 0, proc.stderr
    for name in list_models():
        assert name in proc.stdout
    assert "3×160×160" in proc.stdout and "α=0.75" in proc.stdout and "groups=3" in proc.stdout
    assert "* shufflenetv1: α=0.75 not offered" in proc.stdout


def test_width_a_model_does_not_offer_is_noted_not_fatal():
    rows = {row["name"]: row for row in describe_models(width_mult=0.75, resolution=64)}
    assert rows["mobilenetv1"]["width_mult"] == 0.75 and rows["mobilenetv1"]["note"] is None
    shuffle = rows["shufflenetv2"]
    assert shuffle["width_mult"] == 1.0 and shuffle["resolution"] == 64
    assert "α=0.75 not offered (0.5/1/1.5/2)" in shuffle["note"]


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--width-mult", "wide"], "--width-mult must be a number, got 'wide'"),
        (["--width-mult", "0"], "width_mult must be a number > 0"),
        (["--width-mult", "-1"], "width_mult must be a number > 0"),
        (["--width-mult", "nan"], "width_mult must be a number > 0"),
        (["--resolution", "100"], "multiple of 32"),
        (["--resolution", "16"], "multiple of 32"),
        (["--resolution", "224px"], "--resolution must be an integer, got '224px'"),
    ],
)
def test_bad_values_exit_2_with_one_line(args, fragment):
    assert_user_error_in_process("models", *args, fragments=(fragment,))


def test_a_bad_value_exits_2_from_the_real_command(cli):
    proc = cli("models", "--width-mult", "wide")
    assert_user_error(proc, "--width-mult must be a number")
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == ""


@pytest.mark.parametrize(
    "alias, name, width_mult, options",
    [
        ("mobilenet_v3_small", "mobilenetv3", 1.0, {"variant": "small"}),
        ("yolox-s", "yolox", 1.0, {"variant": "s"}),
        ("shufflenet_v2_x0_5", "shufflenetv2", 0.5, {}),
        ("ssdlite320_mobilenet_v3_large", "ssdlite", 1.0, {"backbone": "mobilenetv3"}),
    ],
)
def test_an_alias_is_listed_with_the_options_it_stands_for(cli_in_process, alias, name, width_mult, options):
    result = cli_in_process("models", alias, "--json")
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert (row["name"], row["width_mult"]) == (name, width_mult)
    assert options.items() <= row["options"].items()
    model = create_model(alias, settle_batchnorm=False)
    assert row["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("alias", ["mobilenet_v3_small", "shufflenet_v2_x0_5"])
def test_models_and_export_read_an_alias_alike(alias):
    from edgecv.export.model_source import resolve_model
    from edgecv.export.options import ExportOptions

    row = describe_model(alias)
    info = resolve_model(alias, ExportOptions(), None)[0]
    assert (info["name"], info["width_mult"]) == (row["name"], row["width_mult"])
    assert {k: info[k] for k in row["options"]} == row["options"]


def test_an_alias_contradicting_the_width_given_is_refused():
    assert_user_error_in_process("models", "shufflenet_v2_x0_5", "-a", "1.0", fragments=("α=0.5",))
