"""The bundle's README: what the board needs, the files, the commands to run there and the
preflight's findings."""

from __future__ import annotations

from typing import Any

from .scripts import EXPECTED


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
