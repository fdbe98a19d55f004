"""`edgecv export`'s flags come from ExportOptions' fields: every field a user can set has its flag,
each flag fills the field it is declared on, and an absent flag leaves the field's default."""

from __future__ import annotations

import dataclasses

from edgecv.cli.export import export_cmd, options_from_flags
from edgecv.export.options import CALIB_METHOD_NAMES, TARGET_CPU_NAMES, ExportOptions


def _flag_names() -> set[str]:
    import inspect

    names = set()
    for p in inspect.signature(export_cmd).parameters.values():
        names.update(getattr(p.default, "param_decls", ()) or ())
    return names


def test_every_field_has_a_flag():
    for f in dataclasses.fields(ExportOptions):
        assert f.metadata.get("flags"), f"{f.name} has no command-line flag"
    names = _flag_names()
    for flag in ("--width-mult", "-a", "--groups", "--variant", "--backbone", "--no-nms", "--workspace"):
        assert flag in names
    assert {"--out", "--json"} <= names


def test_absent_flags_leave_the_defaults():
    assert ExportOptions(**options_from_flags({})) == ExportOptions()


def test_flags_fill_their_fields():
    options = options_from_flags(
        {
            "groups": 3,
            "backbone": "mobilenetv2",
            "nms": True,  # the parameter of --no-nms
            "workspace_bytes": 64,
            "backends": "onnxruntime, tensorrt",
            "exclude": "a,b",
            "weights": __file__,
            "calib_method": None,
        }
    )
    assert options == {
        "variant": {"groups": 3, "backbone": "mobilenetv2"},
        "nms": False,
        "workspace_bytes": 64 << 20,
        "backends": ("onnxruntime", "tensorrt"),
        "exclude": ("a", "b"),
        "weights": __file__,
    }
    assert ExportOptions(**options).calib_method == ExportOptions().calib_method


def test_spelled_out_names_match_their_owners():
    from edgecv.calibration.ranges import CALIB_METHODS, DEFAULT_METHOD
    from edgecv.int8_kernels import TARGET_CPUS

    assert CALIB_METHOD_NAMES == tuple(CALIB_METHODS)
    assert TARGET_CPU_NAMES == tuple(TARGET_CPUS)
    assert ExportOptions().calib_method == DEFAULT_METHOD
    calib_method = next(f for f in dataclasses.fields(ExportOptions) if f.name == "calib_method")
    assert f"(default: {DEFAULT_METHOD})" in calib_method.metadata["flags"][0].help
