"""``edgecv bundle RUN --target jetson``: what a user copies to a Jetson board to build and measure
TensorRT engines there — the ONNX files, the manifest, labels and input spec, ``build_engine.sh``,
``benchmark.sh`` and a README.

The scripts read trtexec's own version on the board and use the flags that version has
(``samples/common/sampleOptions.cpp`` of TensorRT 8.6, 10.3 and 11.1):

* 10.x: ``--stronglyTyped`` with the FP16 / FP16-float Q/DQ copies (the default), or TensorRT 10's
  weakly typed ``--fp16`` / ``--int8 --fp16`` on the FP32 / Q/DQ graphs with ``WEAK_TYPING=1``;
* 11.x: strongly typed only (``--stronglyTyped`` is a deprecated no-op there, ``--fp16``/``--int8``
  are gone); CUDA graphs and no data transfers are trtexec 11's defaults, so the "with transfers"
  run asks for ``--includeDataTransfers --noCudaGraph`` instead of dropping 10.x's flags;
* 8.x/9.x (JetPack 5): the weakly typed flags, the only mode before strong typing.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from edgecv.errors import ArtifactError, InvalidOptionError, OutputPathError, StageError

TARGETS = ("jetson",)
SCRIPTS = ("build_engine.sh", "benchmark.sh")
# What the scripts expect (FACTS: JetPack 6.x ships TensorRT 10.3; 7.x 10.13-10.16; TensorRT 11 needs 7.2.2).
EXPECTED = {
    "jetpack": "6.x (TensorRT 10.3) or 7.x (TensorRT 10.13-10.16; TensorRT 11 from JetPack 7.2.2)",
    "python": "3.10 (JetPack 6's system Python)",
}


def _run_inputs(run_dir: Path) -> dict[str, Any]:
    from edgecv.runfolder import read_manifest

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
    from edgecv.export.tensorrt import FP16_ONNX, INT8_FP16_ONNX, INT8_ONNX, ONNX, write_fp16_copy

    made = []
    for src, dst in ((ONNX, FP16_ONNX), (INT8_ONNX, INT8_FP16_ONNX)):
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
    trt_version: str = "10.3",
    allow_preflight_errors: bool = False,
) -> dict[str, Any]:
    """Write the bundle for ``run_dir`` to ``out`` (a folder, or a ``.tar.gz``); returns a summary.

    A bundle holding an ONNX file the preflight says TensorRT would refuse is not written (StageError)
    unless ``allow_preflight_errors``: on the board it would fail only after the copy."""
    from edgecv.export.tensorrt import INT8_ONNX, MAX_DYNAMIC_BATCH, ONNX
    from edgecv.export.trt_preflight import check_file

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
        shutil.copy2(run_dir / "manifest.json", staging / "manifest.json")
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

    meta = read_metadata(staging / "model.onnx")
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


def _shape_arg(name: str, shape: list[int], batch: int | str) -> str:
    return f"{name}:{'x'.join(str(d) for d in [batch, *shape[1:]])}"


def render_build_script(s: dict[str, Any]) -> str:
    return _render(BUILD_SCRIPT, s)


def render_benchmark_script(s: dict[str, Any]) -> str:
    return _render(BENCHMARK_SCRIPT, s)


def _render(template: str, s: dict[str, Any]) -> str:
    values = {
        "@@FIND_TRTEXEC@@": FIND_TRTEXEC.strip("\n"),
        "@@INPUT@@": shlex.quote(s["input_name"]),
        "@@DIMS@@": "x".join(str(d) for d in s["shape"][1:]),
        "@@DYNAMIC@@": "1" if s["dynamic_batch"] else "0",
        "@@OPT@@": str(s["opt_batch"]),
        "@@MAX@@": str(s["max_batch"]),
        "@@WORKSPACE@@": str(s["workspace_mib"]),
        "@@DLA@@": "" if s["dla_core"] is None else str(s["dla_core"]),
        "@@PRECISIONS@@": "fp16 int8" if s["int8"] else "fp16",
    }
    text = template
    for key, value in values.items():
        text = text.replace(key, value)
    return text


# Both scripts: an error exits 2 with one line; trtexec from TRTEXEC, PATH, or where JetPack puts it.
FIND_TRTEXEC = r"""
die() { echo "error: $*" >&2; exit 2; }

TRTEXEC="${TRTEXEC:-}"
if [[ -z "$TRTEXEC" ]]; then
    if command -v trtexec >/dev/null 2>&1; then
        TRTEXEC="$(command -v trtexec)"
    elif [[ -x /usr/src/tensorrt/bin/trtexec ]]; then
        TRTEXEC=/usr/src/tensorrt/bin/trtexec
    else
        die "trtexec not found (JetPack installs it as /usr/src/tensorrt/bin/trtexec); set TRTEXEC=/path/to/trtexec"
    fi
fi
"""

# The scripts are data: rendered by replacing @@NAME@@ markers (bash's own $ syntax stays untouched).
BUILD_SCRIPT = r"""#!/usr/bin/env bash
# Build TensorRT engines from this bundle's ONNX files with trtexec, using the flags the installed
# trtexec has (read from its version). Written by `edgecv bundle`.
#
#   ./build_engine.sh [OUT_DIR]            engines go to OUT_DIR (default: ./engines)
#   PRECISIONS="fp16 int8 fp32"            which engines (default: @@PRECISIONS@@)
#   DLA_CORE=0                             build for DLA core 0 with GPU fallback (Jetson Orin)
#   WEAK_TYPING=1                          TensorRT 10.x only: --fp16/--int8 instead of strong typing
#   TRTEXEC=/path/to/trtexec               which trtexec (default: PATH, then /usr/src/tensorrt/bin)
#
# Exit status: 0 every engine built; 1 an engine failed to build (the others are still built, each
# log in OUT_DIR); 2 a setup error (no trtexec, a file missing), found before any build starts.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$HERE/engines}"
PRECISIONS="${PRECISIONS:-@@PRECISIONS@@}"
DLA_CORE="${DLA_CORE:-@@DLA@@}"
WEAK_TYPING="${WEAK_TYPING:-0}"
INPUT=@@INPUT@@
DIMS="@@DIMS@@"
DYNAMIC=@@DYNAMIC@@
OPT_BATCH=@@OPT@@
MAX_BATCH=@@MAX@@
WORKSPACE_MIB=@@WORKSPACE@@

@@FIND_TRTEXEC@@

# trtexec prints "&&&& RUNNING TensorRT.trtexec [TensorRT v100300] ..." first: MAJOR*10000+MINOR*100+PATCH
# from TensorRT 10 on, MAJOR*1000+MINOR*100+PATCH before.
help_text="$("$TRTEXEC" --help 2>&1 || true)"
packed="$(printf '%s\n' "$help_text" | sed -n 's/.*\[TensorRT v\([0-9]*\)\].*/\1/p' | head -n 1)"
[[ -n "$packed" ]] || die "could not read the TensorRT version from '$TRTEXEC --help'"
if (( packed >= 100000 )); then
    TRT_MAJOR=$(( packed / 10000 )); TRT_MINOR=$(( packed / 100 % 100 ))
else
    TRT_MAJOR=$(( packed / 1000 )); TRT_MINOR=$(( packed / 100 % 10 ))
fi
TRT_VERSION="$TRT_MAJOR.$TRT_MINOR.$(( packed % 100 ))"
echo "trtexec: $TRTEXEC (TensorRT $TRT_VERSION)"

if [[ "$WEAK_TYPING" == 1 && "$TRT_MAJOR" -ge 11 ]]; then
    die "WEAK_TYPING=1 is for TensorRT 10.x; TensorRT $TRT_VERSION builds strongly typed only"
fi

# Sets onnx and flags: which ONNX file and which trtexec flags build $1 on this TensorRT.
recipe() {
    local precision="$1"
    flags=()
    if [[ "$TRT_MAJOR" -ge 11 ]]; then
        # Strongly typed is TensorRT 11's only mode: precision comes from the graph.
        case "$precision" in
            fp32) onnx=model.onnx ;;
            fp16) onnx=model.fp16.onnx ;;
            int8) onnx=model.int8.fp16.onnx ;;
            *) die "unknown precision '$precision' (fp32, fp16, int8)" ;;
        esac
    elif [[ "$TRT_MAJOR" -eq 10 && "$WEAK_TYPING" != 1 ]]; then
        flags+=(--stronglyTyped)
        case "$precision" in
            fp32) onnx=model.onnx ;;
            fp16) onnx=model.fp16.onnx ;;
            int8) onnx=model.int8.fp16.onnx ;;
            *) die "unknown precision '$precision' (fp32, fp16, int8)" ;;
        esac
    else
        # TensorRT 10 weakly typed (asked for), or 8.x/9.x where it is the only mode.
        case "$precision" in
            fp32) onnx=model.onnx ;;
            fp16) onnx=model.onnx; flags+=(--fp16) ;;
            int8) onnx=model.int8.onnx; flags+=(--int8 --fp16) ;;
            *) die "unknown precision '$precision' (fp32, fp16, int8)" ;;
        esac
    fi
}

# A wrong PRECISIONS or a missing file is found before the first (minutes-long) build.
for precision in $PRECISIONS; do
    recipe "$precision"
    [[ -f "$HERE/$onnx" ]] || die "$onnx is not in this bundle (export with --int8 for an INT8 engine)"
done

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
built=()
failed=()

# Each engine is independent: one that fails to build does not keep the others from being built.
for precision in $PRECISIONS; do
    recipe "$precision"
    if [[ -n "$DLA_CORE" ]]; then
        if [[ "$precision" == fp32 ]]; then
            echo "skipping fp32 on DLA: DLA runs FP16 and INT8 only" >&2
            continue
        fi
        flags+=("--useDLACore=$DLA_CORE" --allowGPUFallback)
    fi
    if [[ "$DYNAMIC" == 1 ]]; then
        flags+=("--minShapes=$INPUT:1x$DIMS" "--optShapes=$INPUT:${OPT_BATCH}x$DIMS" "--maxShapes=$INPUT:${MAX_BATCH}x$DIMS")
    fi
    engine="$OUT/model.$precision.engine"
    log="$OUT/model.$precision.build.log"
    # A failed build must not leave an older engine behind for benchmark.sh to time.
    rm -f "$engine" "$OUT/model.$precision.json"
    echo "building $precision from $onnx ..."
    if ! "$TRTEXEC" --onnx="$HERE/$onnx" --saveEngine="$engine" --timingCacheFile="$OUT/timing.cache" \
        --memPoolSize="workspace:$WORKSPACE_MIB" --skipInference "${flags[@]}" > "$log" 2>&1; then
        echo "error: trtexec failed to build $precision from $onnx; see $log" >&2
        failed+=("$precision")
        continue
    fi
    device="$(sed -n 's/.*Selected Device: \(.*\)$/\1/p' "$log" | head -n 1)"
    cc="$(sed -n 's/.*Compute Capability: \([0-9.]*\).*/\1/p' "$log" | head -n 1)"
    l4t="$(head -n 1 /etc/nv_tegra_release 2>/dev/null || true)"
    sha="$(sha256sum "$HERE/$onnx" | cut -d ' ' -f 1)"
    # The sidecar edgecv's runtime reads to refuse a plan built for another GPU or TensorRT.
    cat > "$OUT/model.$precision.json" <<JSON
{
  "tensorrt": "$TRT_VERSION",
  "precision": "$precision",
  "strongly_typed": $([[ "$TRT_MAJOR" -ge 11 || ( "$TRT_MAJOR" -eq 10 && "$WEAK_TYPING" != 1 ) ]] && echo true || echo false),
  "source_onnx": "$onnx",
  "onnx_sha256": "$sha",
  "gpu": "$device",
  "compute_capability": "$cc",
  "nv_tegra_release": "${l4t//\"/}",
  "dla_core": ${DLA_CORE:-null},
  "trtexec_flags": "${flags[*]}",
  "metadata": $(cat "$HERE/metadata.$precision.json" 2>/dev/null || echo '{}'),
  "built_by": "build_engine.sh"
}
JSON
    built+=("$engine")
    echo "engine: $engine"
done

echo
echo "built ${#built[@]} engine(s) in $OUT (timing cache: $OUT/timing.cache)"
for engine in "${built[@]}"; do
    echo "  $engine"
done
if (( ${#failed[@]} )); then
    echo "error: failed to build: ${failed[*]} (logs: $OUT/model.<precision>.build.log)" >&2
    exit 1
fi
"""

BENCHMARK_SCRIPT = r"""#!/usr/bin/env bash
# Measure the engines build_engine.sh made, and record the board's state with them.
# Written by `edgecv bundle`.
#
#   ./benchmark.sh [ENGINE_DIR] [RESULTS_DIR]     defaults: ./engines and ./results
#   DURATION=10                                    seconds per trtexec run
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENGINES="${1:-$HERE/engines}"
RESULTS="${2:-$HERE/results}"
DURATION="${DURATION:-10}"
INPUT=@@INPUT@@
DIMS="@@DIMS@@"
DYNAMIC=@@DYNAMIC@@
BATCH=@@OPT@@

@@FIND_TRTEXEC@@
shopt -s nullglob
engines=("$ENGINES"/*.engine)
(( ${#engines[@]} )) || die "no .engine files in $ENGINES (run ./build_engine.sh first)"
mkdir -p "$RESULTS"

help_text="$("$TRTEXEC" --help 2>&1 || true)"
packed="$(printf '%s\n' "$help_text" | sed -n 's/.*\[TensorRT v\([0-9]*\)\].*/\1/p' | head -n 1)"
[[ -n "$packed" ]] || die "could not read the TensorRT version from '$TRTEXEC --help'"
if (( packed >= 100000 )); then TRT_MAJOR=$(( packed / 10000 )); else TRT_MAJOR=$(( packed / 1000 )); fi

# The board's state: power mode, clocks, L4T release. jetson_clocks --show needs root.
{ nvpmodel -q 2>&1 || echo "nvpmodel not available"; } > "$RESULTS/nvpmodel.txt"
{ jetson_clocks --show 2>&1 || echo "jetson_clocks --show failed (run this script with sudo to record clocks)"; } > "$RESULTS/jetson_clocks.txt"
{ cat /etc/nv_tegra_release 2>/dev/null || echo "no /etc/nv_tegra_release (not a Jetson?)"; } > "$RESULTS/nv_tegra_release.txt"

tegra_pid=""
if command -v tegrastats >/dev/null 2>&1; then
    tegrastats --interval 500 > "$RESULTS/tegrastats.log" 2>&1 &
    tegra_pid=$!
else
    echo "tegrastats not available" > "$RESULTS/tegrastats.log"
fi
stop_tegrastats() {
    if [[ -n "$tegra_pid" ]]; then
        kill "$tegra_pid" 2>/dev/null || true
        wait "$tegra_pid" 2>/dev/null || true
    fi
}
trap stop_tegrastats EXIT

shapes=()
if [[ "$DYNAMIC" == 1 ]]; then
    shapes=("--shapes=$INPUT:${BATCH}x$DIMS")
fi
# GPU only (CUDA graph, no host<->device copies) and end to end (with copies, no graph).
# trtexec 11 made the first its default and deprecated --useCudaGraph/--noDataTransfers.
if [[ "$TRT_MAJOR" -ge 11 ]]; then
    gpu_only=()
    with_copies=(--includeDataTransfers --noCudaGraph)
else
    gpu_only=(--useCudaGraph --noDataTransfers)
    with_copies=()
fi

logs=()
for engine in "${engines[@]}"; do
    name="$(basename "$engine" .engine)"
    for mode in gpu e2e; do
        if [[ "$mode" == gpu ]]; then flags=("${gpu_only[@]}"); else flags=("${with_copies[@]}"); fi
        log="$RESULTS/trtexec_${name}_${mode}.log"
        echo "trtexec $name ($mode) ..."
        "$TRTEXEC" --loadEngine="$engine" --warmUp=500 --duration="$DURATION" "${shapes[@]}" "${flags[@]}" > "$log" 2>&1 \
            || die "trtexec failed on $engine; see $log"
        logs+=("$log")
    done
done

edgecv_results=()
if command -v edgecv >/dev/null 2>&1; then
    for engine in "${engines[@]}"; do
        name="$(basename "$engine" .engine)"
        echo "edgecv benchmark $name ..."
        edgecv benchmark "$engine" --json > "$RESULTS/edgecv_${name}.json" || die "edgecv benchmark failed on $engine"
        edgecv_results+=("$RESULTS/edgecv_${name}.json")
    done
    merge=()
    for f in "${edgecv_results[@]}"; do merge+=(--merge "$f"); done
    edgecv import-trtexec "${logs[@]}" "${merge[@]}" --bundle "$HERE" --out "$RESULTS/results.json"
    echo "results: $RESULTS/results.json"
else
    echo "edgecv is not installed here: trtexec logs are in $RESULTS; at home run"
    echo "  edgecv import-trtexec $RESULTS/trtexec_*.log --bundle THIS_BUNDLE --out jetson.json"
fi
stop_tegrastats
trap - EXIT
echo "board state and logs: $RESULTS"
"""


def render_readme(manifest: dict[str, Any], s: dict[str, Any], files: list[str], preflight: dict[str, Any]) -> str:
    model = manifest.get("model") or {}
    shape = "×".join(map(str, s["shape"]))
    findings = []
    for name, report in preflight.items():
        for f in report["findings"]:
            if f["severity"] != "info":
                findings.append(f"- `{name}` {f['severity']}: [{f['rule']}] {f['node']}: {f['message']}")
    if s["dla_core"] is None:
        dla_line = "DLA_CORE=0 ./build_engine.sh # or: DLA core 0 with GPU fallback (Jetson Orin)"
    else:
        dla_line = (
            f"# engines target DLA core {s['dla_core']} with GPU fallback (DLA_CORE= ./build_engine.sh for the GPU)"
        )
    lines = [
        f"# {model.get('name', 'model')} for a Jetson board",
        "",
        f"Written by `edgecv bundle`. Input `{s['input_name']}` {shape}"
        + (f", dynamic batch (profile min 1, opt {s['opt_batch']}, max {s['max_batch']})" if s["dynamic_batch"] else "")
        + ".",
        "",
        "## What the board needs",
        f"- JetPack {EXPECTED['jetpack']}. Check with `cat /etc/nv_tegra_release` and `dpkg -l | grep nvinfer`.",
        "- `trtexec` (JetPack: `/usr/src/tensorrt/bin/trtexec`). The scripts read its version and use the flags it has:",
        "  TensorRT 10.x builds strongly typed (`--stronglyTyped`) from the FP16 copies; 11.x strongly typed only;",
        "  `WEAK_TYPING=1` gives 10.x's `--fp16`/`--int8` instead.",
        "",
        "## Files",
        *[f"- `{f}`" for f in files],
        "- `manifest.json` (the export's record), `input_spec.json` (preprocessing), `labels.json`,",
        "  `preflight.json` (`edgecv check --target tensorrt` on each ONNX), `bundle.json`,",
        "  `metadata.<precision>.json` (what build_engine.sh writes into each engine's `.json` sidecar).",
        "",
        "## The three commands",
        "```bash",
        "./build_engine.sh            # engines/model.<precision>.engine + .json sidecars",
        dla_line,
        "./benchmark.sh               # results/: trtexec logs, nvpmodel, tegrastats, results.json",
        'sudo -E env "PATH=$PATH" ./benchmark.sh   # the same, and jetson_clocks --show (needs root)',
        "```",
        "Each engine builds on its own: one that fails leaves the others built, and `build_engine.sh` names it",
        "and exits 1 at the end (its log is `engines/model.<precision>.build.log`).",
        "Then bring the results home and compare them with a CPU run:",
        "```bash",
        "scp -r board:PATH/TO/BUNDLE/results jetson-results",
        "edgecv import-trtexec jetson-results/trtexec_*.log --out jetson.json   # if edgecv was not on the board",
        "edgecv report cpu.json jetson-results/results.json                     # or jetson.json",
        "```",
        "",
        "## edgecv on the board (optional: for `edgecv benchmark` on the engines)",
        "Benchmarking an engine imports TensorRT, cuda-python and numpy only: the board needs neither PyTorch,",
        "ONNX Runtime nor OpenVINO. Use JetPack's Python 3.10 and its own TensorRT bindings:",
        "```bash",
        "sudo apt install python3-libnvinfer python3-venv   # JetPack's TensorRT bindings",
        "python3 -m venv --system-site-packages ~/edgecv-venv   # sees JetPack's tensorrt",
        "~/edgecv-venv/bin/pip install numpy typer rich matplotlib 'cuda-python>=12,<13'",
        "~/edgecv-venv/bin/pip install --no-deps edgecv-*.whl   # --no-deps: skip torch/onnxruntime/openvino",
        "~/edgecv-venv/bin/python -c 'import tensorrt, edgecv.runtime.tensorrt; print(tensorrt.__version__)'",
        "```",
        "(cuda-python's major must match the board's CUDA: 12 for JetPack 6, 13 for JetPack 7.)",
        "",
        "## Preflight findings",
        *(findings or ["None above info level."]),
        "",
    ]
    return "\n".join(lines)
