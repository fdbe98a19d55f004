"""The export stages, each a small class in a registry, run in order by the pipeline.

A stage declares what determines its result (``key``), which files it writes (``outputs``) and
which artifacts those are (``artifacts``). The pipeline skips a stage whose key and files match the
manifest of an earlier run. A new engine (TensorRT, a detector post-processing stage) is one new
class here plus its module, not edits across the pipeline.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from edgecv.errors import VerificationError
from edgecv.int8_kernels import target_cpu
from edgecv.runfolder import (
    INT8_CPU_ONNX,
    INT8_ONNX,
    INT8_REPORT_FILE,
    ONNX,
    OV_DIR,
    OV_FP16_XML,
    OV_INT8_XML,
    OV_XML,
    RANGES_FILE,
    RANGES_META_FILE,
    RAW_ONNX,
    TMP_MARK,
    ArtifactRecord,
    atomic_path,
)

if TYPE_CHECKING:  # pragma: no cover
    from .pipeline import ExportContext


class Stage:
    name: ClassVar[str]
    title: ClassVar[str]
    after: ClassVar[tuple[str, ...]] = ()

    def enabled(self, ctx: "ExportContext") -> bool:
        return True

    def key(self, ctx: "ExportContext") -> dict[str, Any]:
        return {}

    def outputs(self, ctx: "ExportContext") -> list[str]:
        return []

    def caches(self, ctx: "ExportContext") -> list[str]:
        """Files the stage may keep between runs, outside its key (each vouches for itself), which a
        rebuild of the stage reuses: they stay while the stage is enabled."""
        return []

    def run(self, ctx: "ExportContext") -> dict[str, Any]:
        raise NotImplementedError

    def artifacts(self, ctx: "ExportContext", info: dict[str, Any]) -> list[ArtifactRecord]:
        return []


STAGES: list[Stage] = []


def register_stage(cls: type[Stage]) -> type[Stage]:
    STAGES.append(cls())
    return cls


def ordered_stages(stages: list[Stage] | None = None) -> list[Stage]:
    """Stages in an order that runs each after everything it names in ``after`` (graphlib), so a
    new stage class may be defined anywhere in this module. Ties keep registration order."""
    from graphlib import CycleError, TopologicalSorter

    stages = STAGES if stages is None else stages
    by_name = {s.name: s for s in stages}
    unknown = {(s.name, a) for s in stages for a in s.after if a not in by_name}
    if unknown:
        raise RuntimeError(f"stages depend on stages that do not exist: {sorted(unknown)}")
    sorter = TopologicalSorter({s.name: s.after for s in stages})
    try:
        sorter.prepare()
    except CycleError as exc:
        raise RuntimeError(f"export stages depend on each other in a cycle: {exc.args[1]}") from None
    position = {s.name: i for i, s in enumerate(stages)}
    order: list[Stage] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order += [by_name[name] for name in ready]
        sorter.done(*ready)
    return order


def verify_or_fail(
    ctx: "ExportContext", stage: str, artifact: str, backend: str, precision: str, run_precision: str | None = None
):
    """Run ``artifact`` on the verification inputs and compare with PyTorch; raise on failure."""
    from edgecv.runtime import load

    from .verify import DECODED_BOXES, decoded_outputs, nms_settings, run_all, verify_outputs

    inputs = ctx.verification_inputs()
    with load(ctx.run_dir / artifact, backend=backend, precision=run_precision) as rt:
        actual = run_all(rt.infer, inputs.batches)
        ran = getattr(rt, "precision", None) or precision
    if DECODED_BOXES in ctx.reference_outputs()[0]:
        exposed = decoded_outputs(
            ctx.run_dir / artifact, backend, inputs.batches, onnx_path=ctx.run_dir / ONNX, precision=run_precision
        )
        for got, extra in zip(actual, exposed or []):
            got.update(extra)
    result = verify_outputs(
        artifact,
        backend,
        precision,
        ctx.reference_outputs(),
        actual,
        inputs=inputs.description,
        atol=ctx.options.atol if precision == "fp32" else None,
        rtol=ctx.options.rtol if precision == "fp32" else None,
        classification=ctx.spec.task == "classification",
        nms=nms_settings(ctx.model_info),
        background=ctx.model_info.get("background_class"),
    )
    summary = result.to_dict()
    summary["ran_precision"] = ran
    if not result.passed:
        detail = "; ".join(o.summary() for o in result.failures())
        label = artifact.replace(f"{TMP_MARK}{os.getpid()}-", "")
        raise VerificationError(stage, f"{label} ({backend}) differs from PyTorch: {detail}", summary)
    return summary


def float_scopes_of(ctx: "ExportContext") -> tuple[str, ...]:
    """Module paths a detector keeps in float in INT8 (decode, NMS, YOLO's prediction convs)."""
    scopes = ctx.model_info.get("float_scopes")
    if scopes is None and ctx.spec.task == "detection":
        scopes = getattr(ctx.model, "float_scopes", ())
    return tuple(scopes or ())


@register_stage
class ExportOnnx(Stage):
    name = "export"
    title = "PyTorch → ONNX"

    def key(self, ctx):
        o = ctx.options
        return {
            "model": ctx.model_record(),
            "opset": o.opset,
            "batch": o.batch,
            "dynamic_batch": o.dynamic_batch,
            "exporter": o.exporter,
            "torch": ctx.versions.get("torch"),
        }

    def outputs(self, ctx):
        return [RAW_ONNX]

    def run(self, ctx):
        from .onnx_export import export_onnx

        o = ctx.options
        with atomic_path(ctx.run_dir / RAW_ONNX) as tmp:
            return export_onnx(
                ctx.model,
                ctx.spec,
                tmp,
                opset=o.opset,
                batch=o.batch,
                dynamic_batch=o.dynamic_batch,
                exporter=o.exporter,
            )


@register_stage
class SimplifyAndVerify(Stage):
    name = "simplify"
    title = "onnxsim + verify in ONNX Runtime"
    after = ("export",)

    def key(self, ctx):
        return {"tolerance": [ctx.options.atol, ctx.options.rtol], "onnxsim": ctx.versions.get("onnxsim")}

    def outputs(self, ctx):
        return [ONNX]

    def run(self, ctx):
        from .simplify import simplify_onnx

        with atomic_path(ctx.run_dir / ONNX) as tmp:
            info = simplify_onnx(ctx.run_dir / RAW_ONNX, tmp)
            if not info["simplified"]:
                ctx.reporter.warn(f"onnxsim failed, keeping the raw graph: {info['reason']}")
            tmp_rel = tmp.relative_to(ctx.run_dir).as_posix()
            # Verify before the rename: a graph that does not match PyTorch never looks finished.
            info["verification"] = verify_or_fail(ctx, self.name, tmp_rel, "onnxruntime", "fp32")
            info["verification"]["artifact"] = ONNX
        return info

    def artifacts(self, ctx, info):
        return [
            ArtifactRecord(
                name="onnx-fp32",
                path=ONNX,
                format="onnx",
                backend="onnxruntime",
                precision="fp32",
                intended_for="onnxruntime",
                description="simplified FP32 ONNX"
                if info.get("simplified")
                else "FP32 ONNX (onnxsim failed; raw graph)",
                dynamic_batch=ctx.options.dynamic_batch,
                batch=ctx.options.batch,
                verification=info.get("verification", {}),
            )
        ]


class _OpenVinoIR(Stage):
    after = ("simplify",)
    compress_to_fp16: ClassVar[bool]
    xml: ClassVar[str]
    precision: ClassVar[str]

    def enabled(self, ctx):
        return "openvino" in ctx.options.backends

    def key(self, ctx):
        return {"openvino": ctx.versions.get("openvino"), "tolerance": [ctx.options.atol, ctx.options.rtol]}

    def outputs(self, ctx):
        return [self.xml, str(Path(self.xml).with_suffix(".bin"))]

    def run(self, ctx):
        from .openvino import convert_to_ir

        final = ctx.run_dir / self.xml
        with atomic_path(final, companions=(".bin",)) as tmp:
            info = convert_to_ir(ctx.run_dir / ONNX, tmp, compress_to_fp16=self.compress_to_fp16)
            tmp_rel = tmp.relative_to(ctx.run_dir).as_posix()
            # f32 hint: on AMX CPUs OpenVINO's default is bf16, which is not what "FP32" means.
            info["verification"] = verify_or_fail(
                ctx, self.name, tmp_rel, "openvino", self.precision, run_precision="f32"
            )
            info["verification"]["artifact"] = self.xml
        info["cpu_default_precision"] = ctx.machine.get("openvino_default_precision")
        return info

    def artifacts(self, ctx, info):
        return [
            ArtifactRecord(
                name=f"openvino-{self.precision}",
                path=self.xml,
                format="openvino",
                backend="openvino",
                precision=self.precision,
                intended_for="openvino",
                description=f"OpenVINO IR, {info.get('weights', self.precision)} weights",
                dynamic_batch=ctx.options.dynamic_batch,
                batch=ctx.options.batch,
                verification=info.get("verification", {}),
                extra={"cpu_default_precision": info.get("cpu_default_precision")},
            )
        ]


@register_stage
class OpenVinoFP32(_OpenVinoIR):
    name = "openvino"
    title = "OpenVINO IR (FP32)"
    compress_to_fp16 = False
    xml = OV_XML
    precision = "fp32"


@register_stage
class OpenVinoFP16(_OpenVinoIR):
    name = "openvino-fp16"
    title = "OpenVINO IR (FP16 weights)"
    compress_to_fp16 = True
    xml = OV_FP16_XML
    precision = "fp16"

    def enabled(self, ctx):
        return super().enabled(ctx) and ctx.options.fp16


# --- INT8 (calibration) ---------------------------------------------------------------------------
# (the INT8 stage is defined here, before the engines that consume its Q/DQ graph)
@register_stage
class Int8(Stage):
    name = "int8"
    title = "calibrate + INT8 (ONNX Q/DQ, OpenVINO NNCF)"
    after = ("simplify", "openvino")

    def enabled(self, ctx):
        return ctx.options.int8

    def key(self, ctx):
        o = ctx.options
        return {
            "data": ctx.calibration_data().fingerprint,
            "method": o.calib_method,
            "exclude": list(o.exclude),
            "float_scopes": list(float_scopes_of(ctx)),
            "keep_fp32": o.keep_fp32,
            "sensitivity": o.sensitivity,
            "openvino": "openvino" in o.backends,
            "onnxruntime": ctx.versions.get("onnxruntime"),
            "nncf": ctx.versions.get("nncf"),
            # 7-bit weights (ORT reduce_range, NNCF's overflow fix) depend on the CPU built for:
            # with `auto`, a rerun on another kind of CPU rebuilds.
            "target_cpu": target_cpu(o.target_cpu).name,
        }

    def outputs(self, ctx):
        out = [INT8_ONNX, INT8_CPU_ONNX, INT8_REPORT_FILE]
        if "openvino" in ctx.options.backends:
            out += [OV_INT8_XML, str(Path(OV_INT8_XML).with_suffix(".bin"))]
        return out

    def caches(self, ctx):
        return [RANGES_FILE, RANGES_META_FILE]

    def run(self, ctx):
        from edgecv.calibration.run import quantize_run

        o = ctx.options
        ov = ctx.run_dir / OV_DIR / "model.xml" if "openvino" in o.backends else None
        # ORT's calibrator and NNCF print progress on stdout, which belongs to `--json` output.
        with contextlib.redirect_stdout(io.StringIO()):
            result = quantize_run(
                ctx.run_dir / ONNX,
                ctx.run_dir,
                ctx.calibration_data(),
                o.calib_method,
                openvino_xml=ov,
                exclude=o.exclude,
                keep_fp32=o.keep_fp32,
                sensitivity=o.sensitivity,
                progress=ctx.reporter.progress,
                float_scopes=float_scopes_of(ctx),
                target_cpu=o.target_cpu,
            )
        info = result.to_dict()
        info["target_cpu_requested"] = o.target_cpu
        if result.sensitivity is not None:
            # The full ranking lives in calibration/report.json; the manifest keeps the top of it.
            info["sensitivity"] = {**info["sensitivity"], "layers": info["sensitivity"]["layers"][:10]}
        return info

    def artifacts(self, ctx, info):
        fid = info.get("fidelity", {})
        # Only these two depend on the target CPU (the TensorRT flavour is the same for every CPU),
        # so only they carry it, into their metadata too, for the benchmark to compare.
        built_for = {"target_cpu": info["target_cpu"]} if info.get("target_cpu") else {}
        records = [
            ArtifactRecord(
                name="onnx-int8",
                path=INT8_ONNX,
                format="onnx",
                backend="onnxruntime",
                precision="int8",
                intended_for="tensorrt",
                description="INT8 Q/DQ, TensorRT flavour (signed, symmetric); slow in ONNX Runtime on CPUs",
                dynamic_batch=ctx.options.dynamic_batch,
                batch=ctx.options.batch,
                fidelity=fid.get("onnx-int8", {}),
            ),
            ArtifactRecord(
                name="onnx-int8-cpu",
                path=INT8_CPU_ONNX,
                format="onnx",
                backend="onnxruntime",
                precision="int8",
                intended_for="onnxruntime",
                description="INT8 Q/DQ, U8 activations / S8 weights: ONNX Runtime's fast CPU flavour",
                dynamic_batch=ctx.options.dynamic_batch,
                batch=ctx.options.batch,
                fidelity=fid.get("onnx-int8-cpu", {}),
                extra=dict(built_for),
            ),
        ]
        if "openvino-int8" in fid:
            records.append(
                ArtifactRecord(
                    name="openvino-int8",
                    path=OV_INT8_XML,
                    format="openvino",
                    backend="openvino",
                    precision="int8",
                    intended_for="openvino",
                    description="OpenVINO IR quantized by NNCF",
                    dynamic_batch=ctx.options.dynamic_batch,
                    batch=ctx.options.batch,
                    fidelity=fid["openvino-int8"],
                    extra=dict(built_for),
                )
            )
        return records


# --- TensorRT engines ---------------------------------------------------------------------------
def _trt_version(ctx) -> str:
    """The TensorRT to check and build for: the one installed here, else the default (JetPack 6)."""
    from edgecv.tensorrt.installation import DEFAULT_TRT_VERSION

    return ctx.versions.get("tensorrt") or DEFAULT_TRT_VERSION


@register_stage
class TensorRTPreflight(Stage):
    """Every ONNX written for TensorRT is checked here (no TensorRT needed); findings go to the manifest."""

    name = "tensorrt-preflight"
    title = "TensorRT preflight (no GPU needed)"
    after = ("simplify", "int8")

    def enabled(self, ctx):
        return ctx.options.int8 or "tensorrt" in ctx.options.backends

    def key(self, ctx):
        return {"trt_version": _trt_version(ctx), "max_batch": ctx.options.max_batch}

    def run(self, ctx):
        from edgecv.tensorrt.preflight import check_tensorrt
        from edgecv.tensorrt.run_folder_preflight import int8_stage_passed_rules

        files = [f for f in (ONNX, INT8_ONNX) if (ctx.run_dir / f).is_file()]
        int8 = ctx.stage_info.get("int8") or {}
        exempt = tuple(int8.get("excluded") or ())
        reports = {}
        warnings = []
        for name in files:
            report = check_tensorrt(
                ctx.run_dir / name,
                _trt_version(ctx),
                max_batch=ctx.options.max_batch,
                exempt=exempt if name == INT8_ONNX else (),
                qdq_passed=name == INT8_ONNX and int8_stage_passed_rules(int8),
            )
            reports[name] = report.to_dict()
            if report.errors or report.warnings:
                warnings.append(
                    f"TensorRT {report.trt_version} preflight of {name}: {report.summary()} "
                    f"(`edgecv check {ctx.run_dir / name} --target tensorrt`)"
                )
        return {"trt_version": _trt_version(ctx), "reports": reports, "warnings": warnings}


@register_stage
class TensorRTEngines(Stage):
    name = "tensorrt"
    title = "TensorRT engines"
    after = ("simplify", "int8")

    def enabled(self, ctx):
        return "tensorrt" in ctx.options.backends

    def plan(self, ctx):
        """One build recipe per engine (strongly typed unless --trt-weak-typing on 10.x)."""
        from edgecv.tensorrt.build import engine_recipe

        o = ctx.options
        precisions = ["fp16" if o.fp16 else "fp32"] + (["int8"] if o.int8 else [])
        version = _trt_version(ctx)
        return [engine_recipe(version, p, weak_typing=o.trt_weak_typing, dla_core=o.dla_core) for p in precisions]

    def settings(self, ctx) -> dict[str, Any]:
        from edgecv.tensorrt.build import MAX_DYNAMIC_BATCH, WORKSPACE_BYTES

        o = ctx.options
        return {
            "max_batch": o.max_batch or MAX_DYNAMIC_BATCH,
            "opt_batch": o.batch,
            "workspace_bytes": o.workspace_bytes or WORKSPACE_BYTES,
        }

    def key(self, ctx):
        from edgecv.tensorrt.build import gpu_description

        return {
            "tensorrt": _trt_version(ctx),
            "gpu": gpu_description(),
            "plan": [r.to_dict() for r in self.plan(ctx)],
            **self.settings(ctx),
        }

    def outputs(self, ctx):
        out = []
        for recipe in self.plan(ctx):
            out += [f"tensorrt/model.{recipe.precision}.engine", f"tensorrt/model.{recipe.precision}.json"]
            if recipe.source not in (ONNX, INT8_ONNX):
                out.append(recipe.source)
        return out

    def caches(self, ctx):
        from edgecv.tensorrt.build import TIMING_CACHE

        return [f"tensorrt/{TIMING_CACHE}"]

    def run(self, ctx):
        from edgecv.tensorrt.build import TIMING_CACHE, build_engine, write_sidecar
        from edgecv.tensorrt.fp16 import COPY_OF, write_fp16_copy

        engines = {}
        for recipe in self.plan(ctx):
            if recipe.source in COPY_OF and not (ctx.run_dir / recipe.source).is_file():
                with atomic_path(ctx.run_dir / recipe.source) as tmp:
                    write_fp16_copy(ctx.run_dir / COPY_OF[recipe.source], tmp)
            final = ctx.run_dir / f"tensorrt/model.{recipe.precision}.engine"
            with atomic_path(final, companions=(".json",)) as tmp:
                info = build_engine(
                    ctx.run_dir / recipe.source,
                    tmp,
                    precision=recipe.precision,
                    input_name=ctx.spec.input_name,
                    input_shape=ctx.spec.shape,
                    dynamic_batch=ctx.options.dynamic_batch,
                    recipe=recipe,
                    timing_cache=ctx.run_dir / "tensorrt" / TIMING_CACHE,
                    **self.settings(ctx),
                )
                if recipe.precision != "int8":
                    tmp_rel = tmp.relative_to(ctx.run_dir).as_posix()
                    info["verification"] = verify_or_fail(ctx, self.name, tmp_rel, "tensorrt", recipe.precision)
                # A plan stays untouched: the keys ONNX/OpenVINO artifacts carry inside go to the sidecar.
                from edgecv import __version__
                from edgecv.artifact_metadata import build_metadata

                info["metadata"] = build_metadata(
                    ctx.spec,
                    model=ctx.model_info,
                    precision=recipe.precision,
                    intended_for="tensorrt",
                    version=__version__,
                )
                write_sidecar(tmp, info)
            engines[recipe.precision] = info
        return {"engines": engines}

    def artifacts(self, ctx, info):
        return [
            ArtifactRecord(
                name=f"tensorrt-{precision}",
                path=f"tensorrt/model.{precision}.engine",
                format="tensorrt",
                backend="tensorrt",
                precision=precision,
                intended_for="tensorrt",
                description=f"TensorRT {e.get('tensorrt')} engine for {e.get('gpu')}"
                + (" (strongly typed)" if e.get("strongly_typed") else " (weakly typed)"),
                dynamic_batch=ctx.options.dynamic_batch,
                batch=ctx.options.batch,
                verification=e.get("verification", {}),
                fidelity=ctx.stage_info.get("int8", {}).get("fidelity", {}).get("onnx-int8", {})
                if precision == "int8"
                else {},
                extra={
                    "profile": e.get("profile"),
                    "compute_capability": e.get("compute_capability"),
                    "source_onnx": e.get("source_onnx"),
                },
            )
            for precision, e in info.get("engines", {}).items()
        ]
