"""`edgecv export`: flags to ExportOptions, the pipeline, the artifact table."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from edgecv.cli.common import (
    PlainUsage,
    app,
    console,
    emit_json,
    guarded,
    out_console,
    quiet_library_warnings,
    split_list,
)


@app.command("export", cls=PlainUsage)
def export_cmd(
    model: str = typer.Argument(..., metavar="MODEL", help="zoo model name or alias (see `edgecv models`)"),
    width_mult: Optional[float] = typer.Option(
        None, "--width-mult", "-a", help="width multiplier α (default: the model's, see `edgecv models`)"
    ),
    resolution: Optional[str] = typer.Option(
        None,
        "--resolution",
        "-r",
        metavar="INT|HxW",
        help="input side or height×width (e.g. 224, 384x640); the model's strides decide what is allowed",
    ),
    num_classes: Optional[int] = typer.Option(
        None,
        "--num-classes",
        help="classes of the head, background included for SSD (default: the model's, 1000 / 91 / 80)",
    ),
    weights: Optional[Path] = typer.Option(None, "--weights", help="state_dict or checkpoint file"),
    groups: Optional[int] = typer.Option(None, "--groups", help="ShuffleNet V1 groups g"),
    variant: Optional[str] = typer.Option(
        None, "--variant", help="member of a family (mobilenetv3: large|small; yolox: nano|tiny|s)"
    ),
    backbone: Optional[str] = typer.Option(
        None, "--backbone", help="a detector's feature extractor (ssdlite: mobilenetv3|mobilenetv2)"
    ),
    conf_thres: Optional[float] = typer.Option(
        None, "--conf-thres", help="detectors: score threshold baked into the NMS (0.25; use 0.001 for COCO-style mAP)"
    ),
    iou_thres: Optional[float] = typer.Option(None, "--iou-thres", help="detectors: NMS IoU threshold (0.45)"),
    max_det: Optional[int] = typer.Option(
        None, "--max-det", help="detectors: detections kept per image, outputs padded to it (100)"
    ),
    no_nms: bool = typer.Option(
        False, "--no-nms", help="detectors: export decoded boxes and per-class scores, without NMS"
    ),
    agnostic_nms: bool = typer.Option(False, "--agnostic-nms", help="detectors: class-agnostic NMS"),
    labels: Optional[Path] = typer.Option(
        None,
        "--labels",
        metavar="FILE",
        help="class names to record in the artifacts: labels.txt (one a line) or a COCO annotation .json "
        "(default: from --calib data that names its classes)",
    ),
    max_batch: Optional[int] = typer.Option(
        None,
        "--max-batch",
        help="TensorRT: the optimisation profile's largest batch (with --dynamic-batch; default 32)",
    ),
    dla_core: Optional[int] = typer.Option(
        None, "--dla-core", help="TensorRT: build for this DLA core (Jetson Orin), falling back to the GPU"
    ),
    workspace: Optional[int] = typer.Option(
        None, "--workspace", metavar="MIB", help="TensorRT: builder workspace limit in MiB"
    ),
    trt_weak_typing: bool = typer.Option(
        False, "--trt-weak-typing", help="TensorRT 10 only: weakly typed build with --fp16/--int8 builder flags"
    ),
    out: Optional[Path] = typer.Option(
        None,
        "--out",
        "-o",
        help="run folder (default runs/<model>-w<α>-r<res>, + -b<N> or -dyn for other batch settings)",
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset"),
    batch: int = typer.Option(1, "--batch", help="static batch size"),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="export with a dynamic batch axis"),
    exporter: str = typer.Option("torchscript", "--exporter", help="torchscript | dynamo"),
    fp16: bool = typer.Option(False, "--fp16", help="also write FP16 OpenVINO IR; TensorRT engines in FP16"),
    int8: bool = typer.Option(False, "--int8", help="calibrate and write INT8 artifacts"),
    calib: Optional[str] = typer.Option(None, "--calib", help="image folder, list file, or .npy/.npz array"),
    calib_size: int = typer.Option(300, "--calib-size", help="calibration images"),
    calib_method: Optional[str] = typer.Option(
        None, "--calib-method", help="minmax | entropy | percentile (default: percentile)"
    ),
    seed: int = typer.Option(0, "--seed", help="seed for sampling and verification inputs"),
    sensitivity: bool = typer.Option(False, "--sensitivity", help="rank layers by INT8 sensitivity"),
    keep_fp32: int = typer.Option(0, "--keep-fp32", help="leave the N most sensitive layers in float"),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="comma-separated node names to keep in float"),
    target_cpu: str = typer.Option(
        "auto",
        "--target-cpu",
        metavar="auto|x86-vnni|x86-avx2|arm64",
        help="CPU the INT8 artifacts will run on (auto: this one); x86-avx2 uses 7-bit weights",
    ),
    backend: Optional[str] = typer.Option(
        None,
        "--backend",
        help="engines to build, comma-separated: onnxruntime,openvino,tensorrt (default onnxruntime,openvino)",
    ),
    atol: Optional[float] = typer.Option(None, "--atol", help="FP32 verification absolute tolerance (1e-4)"),
    rtol: Optional[float] = typer.Option(None, "--rtol", help="FP32 verification relative tolerance (1e-4)"),
    force: bool = typer.Option(
        False,
        "--force",
        help="rebuild every stage; replaces an earlier export in --out, removing its files this one does not make",
    ),
    as_json: bool = typer.Option(False, "--json", help="print the manifest summary as JSON on stdout"),
) -> None:
    """Export MODEL to verified, simplified ONNX (+ OpenVINO IR, + INT8 with --int8) in a run folder."""

    def run() -> None:
        import warnings

        from edgecv.export.options import DEFAULT_CALIB_METHOD
        from edgecv.export.pipeline import export
        from edgecv.export.progress import RichReporter, artifact_table, sensitivity_table

        options: dict[str, Any] = dict(
            num_classes=num_classes,
            width_mult=width_mult,
            resolution=resolution,
            weights=str(weights) if weights else None,
            opset=opset,
            batch=batch,
            dynamic_batch=dynamic_batch,
            exporter=exporter,
            fp16=fp16,
            int8=int8,
            calib=calib,
            calib_size=calib_size,
            calib_method=calib_method or DEFAULT_CALIB_METHOD,
            seed=seed,
            sensitivity=sensitivity,
            keep_fp32=keep_fp32,
            exclude=split_list(exclude),
            atol=atol,
            rtol=rtol,
            force=force,
            target_cpu=target_cpu,
        )
        chosen = {"groups": groups, "variant": variant, "backbone": backbone}
        if any(v is not None for v in chosen.values()):
            options["variant"] = {k: v for k, v in chosen.items() if v is not None}
        options.update(
            conf_thres=conf_thres,
            iou_thres=iou_thres,
            max_det=max_det,
            nms=not no_nms,
            agnostic_nms=agnostic_nms,
            labels=str(labels) if labels else None,
            max_batch=max_batch,
            dla_core=dla_core,
            workspace_bytes=workspace * (1 << 20) if workspace is not None else None,
            trt_weak_typing=trt_weak_typing,
        )
        if backend is not None:
            options["backends"] = split_list(backend)
        reporter = RichReporter(console)
        with warnings.catch_warnings():
            # edgecv's warnings reach the terminal and the manifest through the reporter; what the
            # libraries underneath warn about (deprecations, tracer notes) is not the user's to act on.
            quiet_library_warnings()
            result = export(model, out=out, reporter=reporter, **options)
        if as_json:
            emit_json(result.summary())
        else:
            out_console.print(artifact_table(result))
            ranking = sensitivity_table(result)
            if ranking is not None:
                out_console.print(ranking)
            if int8:
                from edgecv.int8_kernels import describe_target

                out_console.print(describe_target(target_cpu), markup=False)
            out_console.print(f"manifest: {result.run_dir / 'manifest.json'}", markup=False)

    guarded(run)
