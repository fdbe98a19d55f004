"""``edgecv bundle RUN --target jetson``: what a user copies to a Jetson board to build and measure
TensorRT engines there — the ONNX files (with the FP16 copies strongly typed builds read), the
manifest, labels and input spec, the preflight of each ONNX file, ``build_engine.sh`` and
``benchmark.sh`` (:mod:`.scripts`) and a README (:mod:`.readme`).
"""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from edgecv.errors import ArtifactError, InvalidOptionError, OutputPathError, StageError
from edgecv.runfolder import INT8_ONNX, MANIFEST_NAME, ONNX, read_manifest
from edgecv.tensorrt.installation import DEFAULT_TRT_VERSION

from .readme import render_readme
from .scripts import EXPECTED, SCRIPTS, render_benchmark_script, render_build_script

TARGETS = ("jetson",)


def _run_inputs(run_dir: Path) -> dict[str, Any]:
    manifest = read_manifest(run_dir)
    spec = manifest.get("input_spec") or {}
    options = manifest.get("options") or {}
    name = spec.get("input_name") or spec.get("name") or "input"
    shape = [int(d) for d in spec.get("shape") or []]
    if len(shape) != 4:
        raise ArtifactError(f"{run_dir}/manifest.json has no 4-D input shape in its input_spec")
    return {
        "manifest": manifest,
        "input_name": name,
        "shape": shape,
        "dynamic_batch": bool(options.get("dynamic_batch")),
        "batch": int(options.get("batch") or 1),
    }


def _fp16_copies(run_dir: Path, staging: Path) -> list[str]:
    """The FP16 copies strong typing builds from, reused from the run folder or written now."""
    from edgecv.tensorrt.fp16 import COPY_OF, write_fp16_copy

    made = []
    for dst, src in COPY_OF.items():
        if not (run_dir / src).is_file():
            continue
        if (run_dir / dst).is_file():
            shutil.copy2(run_dir / dst, staging / dst)
        else:
            write_fp16_copy(run_dir / src, staging / dst)
        made.append(dst)
    return made


def make_bundle(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    target: str = "jetson",
    max_batch: int | None = None,
    dla_core: int | None = None,
    workspace_mib: int = 2048,
    trt_version: str = DEFAULT_TRT_VERSION,
    allow_preflight_errors: bool = False,
) -> dict[str, Any]:
    """Write the bundle for ``run_dir`` to ``out`` (a folder, or a ``.tar.gz``); returns a summary.

    A bundle holding an ONNX file the preflight says TensorRT would refuse is not written (StageError)
    unless ``allow_preflight_errors``: on the board it would fail only after the copy."""
    from edgecv.tensorrt.build import MAX_DYNAMIC_BATCH
    from edgecv.tensorrt.run_folder_preflight import check_file

    if target not in TARGETS:
        raise InvalidOptionError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise ArtifactError(f"{run_dir} is not a run folder")
    info = _run_inputs(run_dir)
    if not (run_dir / ONNX).is_file():
        raise ArtifactError(f"{run_dir} has no {ONNX}; run `edgecv export` first")
    if dla_core is not None and dla_core < 0:
        raise InvalidOptionError(f"--dla-core must be ≥ 0, got {dla_core}")
    if workspace_mib < 1:
        raise InvalidOptionError(f"--workspace must be ≥ 1 MiB, got {workspace_mib}")
    max_batch = max_batch or (MAX_DYNAMIC_BATCH if info["dynamic_batch"] else info["batch"])
    if info["dynamic_batch"] and max_batch < info["batch"]:
        raise InvalidOptionError(f"--max-batch {max_batch} is below the export batch {info['batch']}")
    out_path = Path(out).expanduser() if out else run_dir / f"bundle-{target}"
    archive = out_path.name.endswith((".tar.gz", ".tgz"))
    if not archive and out_path.exists() and (not out_path.is_dir() or any(out_path.iterdir())):
        raise OutputPathError(f"{out_path} exists and is not an empty folder; pick another --out")
    if archive and out_path.is_dir():
        raise OutputPathError(f"{out_path} is a folder")

    with tempfile.TemporaryDirectory(prefix="edgecv-bundle-") as tmp:
        staging = Path(tmp) / (out_path.name.removesuffix(".tar.gz").removesuffix(".tgz") if archive else out_path.name)
        staging.mkdir()
        files = [ONNX]
        shutil.copy2(run_dir / ONNX, staging / ONNX)
        if (run_dir / INT8_ONNX).is_file():
            shutil.copy2(run_dir / INT8_ONNX, staging / INT8_ONNX)
            files.append(INT8_ONNX)
        files += _fp16_copies(run_dir, staging)
        shutil.copy2(run_dir / MANIFEST_NAME, staging / MANIFEST_NAME)
        manifest = info["manifest"]
        spec = manifest.get("input_spec") or {}
        (staging / "input_spec.json").write_text(json.dumps(spec, indent=2) + "\n")
        (staging / "labels.json").write_text(json.dumps(_labels(run_dir, manifest), indent=2) + "\n")
        _engine_metadata(staging, settings_precisions=("fp32", "fp16", "int8"))
        # Read with the bundled manifest, as `edgecv check` reads the run folder.
        preflight = {f: check_file(staging / f, trt_version, max_batch=max_batch).to_dict() for f in files}
        if not allow_preflight_errors:
            _refuse_preflight_errors(preflight)
        (staging / "preflight.json").write_text(json.dumps(preflight, indent=2) + "\n")
        settings = {
            "input_name": info["input_name"],
            "shape": info["shape"],
            "dynamic_batch": info["dynamic_batch"],
            "opt_batch": info["batch"],
            "max_batch": max_batch,
            "dla_core": dla_core,
            "workspace_mib": workspace_mib,
            "int8": INT8_ONNX in files,
        }
        (staging / "build_engine.sh").write_text(render_build_script(settings))
        (staging / "benchmark.sh").write_text(render_benchmark_script(settings))
        for script in SCRIPTS:
            (staging / script).chmod(0o755)
        (staging / "README.md").write_text(render_readme(manifest, settings, files, preflight))
        (staging / "bundle.json").write_text(
            json.dumps(
                {
                    "schema": "edgecv.bundle/1",
                    "target": target,
                    "run": str(run_dir),
                    "files": files,
                    "settings": settings,
                    "expects": EXPECTED,
                    "preflight_trt_version": trt_version,
                    "preflight_errors_allowed": allow_preflight_errors,
                },
                indent=2,
            )
            + "\n"
        )
        if archive:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            partial = out_path.with_name(out_path.name + ".partial")
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(staging, arcname=staging.name)
            partial.replace(out_path)
        else:
            out_path.parent.mkdir(parents=True, exist_ok=True)
            if out_path.exists():
                out_path.rmdir()
            shutil.copytree(staging, out_path)
    errors = sum(r["errors"] for r in preflight.values())
    return {
        "bundle": str(out_path),
        "files": files
        + [
            "manifest.json",
            "input_spec.json",
            "labels.json",
            *(f"metadata.{p}.json" for p in ("fp32", "fp16", "int8")),
            "preflight.json",
            *SCRIPTS,
            "README.md",
            "bundle.json",
        ],
        "settings": settings,
        "preflight_errors": errors,
        "preflight_warnings": sum(r["warnings"] for r in preflight.values()),
    }


def _refuse_preflight_errors(preflight: dict[str, Any]) -> None:
    failing = {name: r for name, r in preflight.items() if r["errors"]}
    if not failing:
        return
    parts = []
    for name, report in failing.items():
        first = next(f for f in report["findings"] if f["severity"] == "error")
        more = f" (+{report['errors'] - 1} more)" if report["errors"] > 1 else ""
        parts.append(f"{name}: [{first['rule']}] {first['node']}: {first['message']}{more}")
    raise StageError(
        "bundle",
        "TensorRT would not build "
        + "; ".join(parts)
        + "; nothing written (--allow-preflight-errors writes the bundle anyway, every finding in its preflight.json)",
    )


def _engine_metadata(staging: Path, settings_precisions: tuple[str, ...]) -> None:
    """``metadata.<precision>.json``: the edgecv keys model.onnx carries, which build_engine.sh puts in
    each engine's sidecar (a plan is never stamped), so an engine still knows its task and input spec."""
    from edgecv.artifact_metadata import PREFIX, read_metadata

    meta = read_metadata(staging / ONNX)
    for precision in settings_precisions:
        stamped = {**meta, f"{PREFIX}precision": precision, f"{PREFIX}intended_for": "tensorrt"} if meta else {}
        (staging / f"metadata.{precision}.json").write_text(json.dumps(stamped, indent=2) + "\n")


def _labels(run_dir: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    model = manifest.get("model") or {}
    names = None
    for candidate in ("labels.json", "labels.txt"):
        p = run_dir / candidate
        if p.is_file():
            text = p.read_text()
            names = json.loads(text).get("names") if candidate.endswith(".json") else text.splitlines()
            break
    names = names or model.get("class_names") or (manifest.get("input_spec") or {}).get("class_names")
    return {
        "num_classes": model.get("num_classes"),
        "names": names,
        "note": None if names else "the run folder names no classes: labels are class indices",
    }
