"""``build_engine.sh`` and ``benchmark.sh``, the bundle's scripts, rendered from the templates below
by replacing ``@@NAME@@`` markers (bash's own ``$`` syntax stays untouched).

The scripts read trtexec's own version on the board and use the flags that version has
(``samples/common/sampleOptions.cpp`` of TensorRT 8.6, 10.3 and 11.1):

* 10.x: ``--stronglyTyped`` with the FP16 / FP16-float Q/DQ copies (the default), or TensorRT 10's
  weakly typed ``--fp16`` / ``--int8 --fp16`` on the FP32 / Q/DQ graphs with ``WEAK_TYPING=1``;
* 11.x: strongly typed only (``--stronglyTyped`` is a deprecated no-op there, ``--fp16``/``--int8``
  are gone); CUDA graphs and no data transfers are trtexec 11's defaults, so the "with transfers"
  run asks for ``--includeDataTransfers --noCudaGraph`` instead of dropping 10.x's flags;
* 8.x/9.x (JetPack 5): the weakly typed flags, the only mode before strong typing.

Most of this module is the two bash templates; the Python is the ``_render`` at the top.
"""

from __future__ import annotations

import shlex
from typing import Any

SCRIPTS = ("build_engine.sh", "benchmark.sh")
# What the scripts expect (FACTS: JetPack 6.x ships TensorRT 10.3; 7.x 10.13-10.16; TensorRT 11 needs 7.2.2).
EXPECTED = {
    "jetpack": "6.x (TensorRT 10.3) or 7.x (TensorRT 10.13-10.16; TensorRT 11 from JetPack 7.2.2)",
    "python": "3.10 (JetPack 6's system Python)",
}


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
