"""trtexec runs (:mod:`.trtexec_log`) as edgecv's benchmark results (``edgecv.results/1``): one result
per log, each traced to the run folder's ONNX file its engine was built from, so ``edgecv report``
lines a board's figures up with a CPU's; and ``edgecv benchmark`` files from the same board merged in.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from edgecv.errors import ArtifactError
from edgecv.runfolder import INT8_ONNX, ONNX, sha256_file
from edgecv.tensorrt.fp16 import COPY_OF
from edgecv.tensorrt.installation import parse_version

from .trtexec_log import parse_trtexec_log


def _batch(opts: dict[str, Any]) -> int:
    shapes = opts.get("shapes") or opts.get("optShapes")
    if isinstance(shapes, str):
        first = shapes.split(",")[0]
        dims = first.rpartition(":")[2].split("x")
        if dims and dims[0].isdigit():
            return int(dims[0])
    return int(opts.get("batch", 1)) if str(opts.get("batch", "1")).isdigit() else 1


def _precision(opts: dict[str, Any], name: str) -> str | None:
    for p in ("int8", "fp16", "fp32"):
        if f".{p}." in name or name.endswith(f".{p}"):
            return p
    if opts.get("int8"):
        return "int8"
    if opts.get("fp16"):
        return "fp16"
    return None


def _latency(stats: dict[str, float], count: int | None) -> dict[str, Any]:
    # trtexec gives no spread and no outlier count: those stay None ("—"), never 0.
    return {
        "count": count,
        "min_ms": stats.get("min_ms"),
        "mean_ms": stats.get("mean_ms"),
        "median_ms": stats.get("median_ms"),
        "p90_ms": stats.get("p90_ms"),
        "p95_ms": stats.get("p95_ms"),
        "p99_ms": stats.get("p99_ms"),
        "max_ms": stats.get("max_ms"),
        "std_ms": None,
        "outliers": None,
    }


def _mode(opts: dict[str, Any], major: int) -> str:
    """Whether the timed latency includes host↔device copies (trtexec's defaults changed in 11)."""
    if major >= 11:  # 11: no transfers and CUDA graphs by default (sampleOptions.cpp)
        transfers = bool(opts.get("includeDataTransfers"))
        graph = not opts.get("noCudaGraph")
    else:
        transfers = not opts.get("noDataTransfers")
        graph = bool(opts.get("useCudaGraph"))
    return ("with transfers" if transfers else "GPU only") + (", CUDA graph" if graph else "")


# --- which ONNX artifact an engine was built from -----------------------------------------------
# build_engine.sh and `edgecv export` build strongly typed engines from FP16 copies of the run
# folder's ONNX files (COPY_OF); a comparison matches the engine with the file the copy was made from.


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("source_onnx") else None


def _sidecar(engine: str, near: Path, bundle: Path | None) -> dict[str, Any] | None:
    """The ``.json`` written with the engine: next to it as the log names it, next to the log (or
    results file), or in the bundle's ``engines/``."""
    name = Path(engine).with_suffix(".json").name
    candidates = [Path(engine).with_suffix(".json"), near.parent / name]
    if bundle is not None:
        candidates.append(bundle / "engines" / name)
    for path in candidates:
        found = _read_sidecar(path) if path.is_file() else None
        if found is not None:
            return found
    return None


def _find_file(name: str, places: list[Path]) -> Path | None:
    return next((p / name for p in places if (p / name).is_file()), None)


def engine_source(
    engine: str, precision: str | None, near: Path, bundle: Path | None, onnx: str | None = None
) -> dict[str, Any]:
    """``source_onnx`` and ``source_sha256`` of the run folder's ONNX file an engine was built from,
    so `edgecv report` lines it up with that file's CPU figures; ``{}`` where nothing says which.

    The engine's sidecar names the ONNX it was built from and its sha256; an FP16 copy is traced to
    its original through ``bundle``. Without a sidecar, the bundle's engine naming
    (``model.<precision>.engine``) says which file. ``onnx``: trtexec built from that file itself."""
    places = [near.parent] + ([bundle] if bundle is not None else [])
    built_sha = None
    if onnx:
        name = Path(onnx).name
        local = Path(onnx) if Path(onnx).is_file() else _find_file(name, places)
        built_sha = sha256_file(local) if local else None
    elif (sidecar := _sidecar(engine, near, bundle)) is not None:
        name, built_sha = Path(str(sidecar["source_onnx"])).name, sidecar.get("onnx_sha256")
    elif bundle is not None and precision:
        name = INT8_ONNX if precision == "int8" else ONNX
    else:
        return {}
    original = COPY_OF.get(name, name)
    if original == name and built_sha:
        return {"source_onnx": name, "source_sha256": built_sha}
    copy = _find_file(name, [bundle]) if bundle is not None else None
    if built_sha and copy is not None and sha256_file(copy) != built_sha:
        return {"source_onnx": name, "source_note": f"built from another {name} than the one in {bundle}"}
    base = _find_file(original, [bundle]) if bundle is not None else None
    if base is None:
        return {"source_onnx": name}
    return {"source_onnx": original, "source_sha256": sha256_file(base)}


def _engine_of(opts: dict[str, Any], source: str) -> str:
    return str(opts.get("loadEngine") or opts.get("saveEngine") or opts.get("onnx") or Path(source).stem)


def _result(source: str, run: dict[str, Any], bundle: Path | None, tell_apart: bool) -> dict[str, Any]:
    """One results row; ``tell_apart``: the file mixes boards or TensorRT versions, so the row's name
    says which it ran on."""
    opts = run.get("options", {})
    engine = _engine_of(opts, source)
    name = Path(engine).name
    precision = _precision(opts, name)
    version = run.get("trt_version")
    major = parse_version(version or "10")[0]
    batch = _batch(opts)
    mode = _mode(opts, major)
    stats = run["stats"]
    label = f"tensorrt-{precision}" if precision else Path(name).stem
    built_here = None if opts.get("loadEngine") else opts.get("onnx")
    where = f"TensorRT {version or '?'} on {run.get('device') or 'a GPU the log does not name'}"
    artifact = f"{label} [{mode}]" + (
        f" · {run.get('device') or 'GPU ?'}, TensorRT {version or '?'}" if tell_apart else ""
    )
    bundle = bundle or _enclosing_bundle(Path(source))
    source_info = engine_source(engine, precision, Path(source), bundle, onnx=built_here)
    notes = [
        f"{artifact}: trtexec, {where}; GPU compute median {fmt_ms(stats.get('gpu_compute', {}).get('median_ms'))}"
    ]
    if source_info.get("source_note"):
        notes.append(f"{artifact}: {source_info['source_note']}, so `edgecv report` matches it by name only")
    return {
        "artifact": artifact,
        "backend": "trtexec",
        "scenario": "single-stream" if batch == 1 else "offline",
        "batch": batch,
        "latency": _latency(stats["latency"], run.get("queries")),
        # trtexec's qps counts inferences of the whole batch.
        "throughput_ips": run["throughput_qps"] * batch,
        "samples_ms": [],
        "warmup": None,
        "path": engine,
        "device": run.get("device"),
        "precision": precision,
        "artifact_precision": precision,
        "intended_for": "tensorrt",
        # Logs of several boards or TensorRT versions can share one file: each row says its own.
        "versions": {"tensorrt": version},
        **source_info,
        "notes": notes,
        "trtexec": {
            "mode": mode,
            "log": source,
            "command": run.get("command"),
            "tensorrt": version,
            "gpu": run.get("device"),
            "compute_capability": run.get("compute_capability"),
            **dict(stats.items()),
            "walltime_s": run.get("walltime_s"),
            "gpu_total_s": run.get("gpu_total_s"),
        },
    }


def _round(value: float | None, unit: str) -> str | None:
    return None if value is None else f"{value:.3g}{unit}"


def _distinct(values: Any) -> list[str]:
    return list(dict.fromkeys(str(v) for v in values if v))


def _machine(runs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """The GPU(s) the logs name. trtexec says nothing of the CPU; ``cpu`` holds the machine's name
    as the report shows it until an ``edgecv benchmark`` file from the board is merged in."""
    gpus = _distinct(run.get("device") for _, run in runs)
    ccs = _distinct(run.get("compute_capability") for _, run in runs)
    gpu = " + ".join(gpus) if gpus else None
    cc = ", ".join(ccs) if ccs else None
    name = gpu or "a GPU the trtexec log does not name"
    return {
        "cpu": name + (f" (compute capability {cc})" if cc else ""),
        "arch": "trtexec",
        "gpu": gpu,
        "compute_capability": cc,
    }


def _percentiles(results: list[dict[str, Any]]) -> str:
    given = [p for p in ("p90", "p95", "p99") if any(r["latency"].get(f"{p}_ms") is not None for r in results)]
    return "trtexec's, where each log gives them: " + (", ".join(given) if given else "none")


def to_results(runs: list[tuple[str, dict[str, Any]]], bundle: Path | None = None) -> dict[str, Any]:
    """An ``edgecv.results/1`` document holding one result per parsed trtexec log; ``bundle``: the
    `edgecv bundle` folder the engines were built from (see :func:`engine_source`)."""
    from edgecv.version import __version__

    tell_apart = len({(run.get("device"), run.get("trt_version")) for _, run in runs}) > 1
    results = [_result(source, run, bundle, tell_apart) for source, run in runs]
    versions = _distinct(run.get("trt_version") for _, run in runs)
    return {
        "schema": "edgecv.results/1",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgecv_version": __version__,
        "target": {"path": runs[0][0], "kind": "trtexec-log", "model": None},
        "settings": {
            "scenario": results[0]["scenario"],
            "timer": "trtexec (CUDA events)",
            # What settings_line shows as warmup and timed duration, per log where they differ.
            "warmup": ", ".join(_distinct(_round(run.get("warmup_ms"), " ms") for _, run in runs)) or None,
            "duration": ", ".join(_distinct(_round(run.get("trace_s"), "") for _, run in runs)) or None,
            "percentiles": _percentiles(results),
            "batches": sorted({r["batch"] for r in results}),
        },
        "machine": _machine(runs),
        "versions": {"tensorrt": ", ".join(versions) if versions else None},
        "results": results,
        "skipped": [],
    }


def fmt_ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} ms"


def _enclosing_bundle(log: Path) -> Path | None:
    """The bundle a log was written in (``BUNDLE/results/trtexec_*.log``), when it was copied back
    whole."""
    return next((p for p in list(log.absolute().parents)[:2] if (p / "bundle.json").is_file()), None)


def _bundle_dir(bundle: Path | None) -> Path | None:
    if bundle is None:
        return None
    bundle = Path(bundle).expanduser()
    if not (bundle / "bundle.json").is_file():
        raise ArtifactError(f"{bundle} is not a folder written by `edgecv bundle` (no bundle.json)")
    return bundle


def import_logs(paths: list[Path], bundle: Path | None = None) -> dict[str, Any]:
    runs = []
    for path in paths:
        path = Path(path).expanduser()
        if not path.is_file():
            raise ArtifactError(f"{path} does not exist" if not path.exists() else f"{path} is not a file")
        try:
            text = path.read_text(errors="replace")
        except OSError as exc:
            raise ArtifactError(f"{path} is not readable: {exc}") from None
        runs.append((str(path), parse_trtexec_log(text, str(path))))
    if not runs:
        raise ArtifactError("no trtexec log given")
    return to_results(runs, _bundle_dir(bundle))


def merge_results(doc: dict[str, Any], others: list[Path], bundle: Path | None = None) -> dict[str, Any]:
    """Add the results of ``edgecv benchmark`` documents (run on the same board) to ``doc``: one file
    holds trtexec's figures and edgecv's own for the same engines."""
    from edgecv.report.schema import read_results

    bundle = _bundle_dir(bundle)
    for path in others:
        other = read_results(path)
        for result in other["results"]:
            if result.get("source_sha256") is None and str(result.get("path") or "").endswith(".engine"):
                precision = result.get("artifact_precision") or result.get("precision")
                result.update(engine_source(str(result["path"]), precision, Path(path), bundle))
        doc["results"].extend(other["results"])
        doc["skipped"].extend(other.get("skipped") or [])
        machine = other.get("machine") or {}
        if machine.get("cpu"):
            # The board's CPU from edgecv's own record; the GPU from trtexec's.
            doc["machine"] = {
                **machine,
                "gpu": doc["machine"].get("gpu"),
                "compute_capability": doc["machine"].get("compute_capability"),
            }
        doc["versions"] = {**(other.get("versions") or {}), **{k: v for k, v in doc["versions"].items() if v}}
    return doc
