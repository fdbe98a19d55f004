"""Artifacts that describe themselves: task, input spec, outputs, class names, precision and the
edgecv version travel inside the file (ONNX ``metadata_props``, OpenVINO ``rt_info``), so an
artifact copied out of its run folder still preprocesses, benchmarks, predicts and evaluates
correctly. TensorRT plans stay untouched (metadata in front of a plan breaks trtexec, DeepStream
and Triton); their ``.json`` sidecar carries the same keys.

Imports only ``edgecv.models.spec`` and ``edgecv.runfolder``: every layer may read it.
"""

from __future__ import annotations

import functools
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from edgecv.models.spec import InputSpec
from edgecv.runfolder import atomic_path, find_artifact

PREFIX = "edgecv."
RT_INFO_SECTION = "edgecv"


def build_metadata(
    spec: InputSpec,
    *,
    model: dict[str, Any],
    precision: str,
    intended_for: str = "",
    version: str = "",
    target_cpu: str = "",
) -> dict[str, str]:
    """The string key/value pairs stamped into an artifact. ``target_cpu``: the ``--target-cpu`` an
    INT8 artifact whose arithmetic depends on the CPU was built for (left out otherwise)."""
    keep = (
        "name",
        "task",
        "num_classes",
        "width_mult",
        "resolution",
        "postprocess",
        "background_class",
        "class_names",
        "variant",
        "backbone",
        "groups",
    )
    return {
        f"{PREFIX}version": version,
        f"{PREFIX}task": spec.task,
        f"{PREFIX}input_spec": json.dumps(spec.to_dict(), sort_keys=True),
        f"{PREFIX}model": json.dumps({k: model[k] for k in keep if k in model}, sort_keys=True, default=str),
        f"{PREFIX}precision": precision,
        f"{PREFIX}intended_for": intended_for,
        **({f"{PREFIX}target_cpu": target_cpu} if target_cpu else {}),
    }


def _stamped_onnx(path: Path, metadata: dict[str, str]):
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    return model


def _stamped_openvino_xml(xml: Path, metadata: dict[str, str]) -> ET.ElementTree:
    """edgecv's keys in the IR's ``<rt_info><edgecv>`` section (the form OpenVINO's
    ``Model.get_rt_info(["edgecv", key])`` reads)."""
    tree = ET.parse(xml)
    root = tree.getroot()
    rt_info = root.find("rt_info")
    if rt_info is None:
        rt_info = ET.SubElement(root, "rt_info")
    for old in rt_info.findall(RT_INFO_SECTION):
        rt_info.remove(old)
    section = ET.SubElement(rt_info, RT_INFO_SECTION)
    for key, value in metadata.items():
        ET.SubElement(section, key[len(PREFIX) :]).set("value", value)
    return tree


def _save(path: Path, stamped: Any, to: Path) -> None:
    if path.suffix.lower() == ".onnx":
        import onnx

        onnx.save(stamped, str(to))
    else:
        stamped.write(to, encoding="utf-8", xml_declaration=True)


def _stamped(path: Path, metadata: dict[str, str]) -> Any:
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return _stamped_onnx(path, metadata)
    if suffix == ".xml":
        return _stamped_openvino_xml(path, metadata)
    return None


def stamp_onnx(path: str | Path, metadata: dict[str, str]) -> None:
    """Replace edgecv's keys in ``path``'s ``metadata_props`` (rewritten in place, atomically)."""
    import onnx

    model = _stamped_onnx(Path(path), metadata)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def stamp(path: str | Path, metadata: dict[str, str]) -> bool:
    """Stamp a finished ONNX or OpenVINO artifact, atomically; False for kinds that keep metadata
    elsewhere."""
    path = Path(path)
    stamped = _stamped(path, metadata)
    if stamped is None:
        return False
    with atomic_path(path) as tmp:
        _save(path, stamped, tmp)
    return True


def stamp_unfinished(path: str | Path, metadata: dict[str, str]) -> bool:
    """Stamp a file that is still being written (the temporary file of
    :func:`edgecv.runfolder.atomic_path`, which renames it into place afterwards): rewritten where it
    lies, since nobody reads it yet. False for kinds that keep metadata elsewhere."""
    path = Path(path)
    stamped = _stamped(path, metadata)
    if stamped is None:
        return False
    _save(path, stamped, path)
    return True


def read_metadata(path: str | Path) -> dict[str, str]:
    """edgecv's keys of an artifact (empty when it carries none or cannot be read)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return {}
    # Parsing an ONNX file means parsing its weights too: read each version of a file once, however
    # many lookups (spec, model record, target CPU) a benchmark or an eval makes.
    return dict(_read_metadata(path.resolve(), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=64)
def _read_metadata(path: Path, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".onnx":
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            return tuple((p.key, p.value) for p in model.metadata_props if p.key.startswith(PREFIX))
        if suffix == ".xml":
            section = ET.parse(path).getroot().find(f"rt_info/{RT_INFO_SECTION}")
            if section is None:
                return ()
            return tuple((PREFIX + child.tag, child.get("value", "")) for child in section)
        sidecar = path.with_suffix(".json")
        if suffix == ".engine" and sidecar.is_file():
            data = json.loads(sidecar.read_text())
            meta = data.get("metadata", {}) if isinstance(data, dict) else {}
            return tuple((k, v) for k, v in meta.items() if k.startswith(PREFIX))
    except Exception:  # an unreadable file simply carries no metadata; loading it will say why
        return ()
    return ()


def input_spec_of(path: str | Path) -> InputSpec | None:
    """The input spec an artifact carries, else the one of the run folder's manifest that lists it."""
    meta = read_metadata(path)
    if f"{PREFIX}input_spec" in meta:
        try:
            return InputSpec.from_dict(json.loads(meta[f"{PREFIX}input_spec"]))
        except (ValueError, TypeError, KeyError):
            pass
    found = find_artifact(path)
    if found is not None and isinstance(found[1].get("input_spec"), dict):
        return InputSpec.from_dict(found[1]["input_spec"])
    return None


def model_info_of(path: str | Path) -> dict[str, Any]:
    """The model record an artifact carries (name, task, classes, post-processing), else its manifest's."""
    meta = read_metadata(path)
    if f"{PREFIX}model" in meta:
        try:
            return dict(json.loads(meta[f"{PREFIX}model"]))
        except (ValueError, TypeError):
            pass
    found = find_artifact(path)
    return dict(found[1].get("model") or {}) if found is not None else {}
