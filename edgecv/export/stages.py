"""The export stages, each a small class registered in order of definition; the pipeline runs
them in the order their ``after`` gives (:func:`edgecv.export.stage.ordered_stages`). A new engine
(TensorRT, a detector post-processing stage) is one new class here plus its module, not edits across
the pipeline. (Over 400 lines for a reason: the stages read together are the whole run folder's
recipe, and each is short.)
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, ClassVar

from edgecv.int8_kernels import target_cpu
from edgecv.runfolder import (
    INT8_CPU_ONNX,
    INT8_ONNX,
    INT8_REPORT_FILE,
    ONNX,
    OV_INT8_XML,
    OV_XML,
    RANGES_FILE,
    RANGES_META_FILE,
    RAW_ONNX,
    TIMING_CACHE,
    artifact_kind,
    atomic_path,
    companion_files,
    tensorrt_engine,
)

from .results import (
    EnginesResult,
    Int8Result,
    OnnxExportResult,
    OpenVinoResult,
    PreflightResult,
    SimplifyResult,
)
from .stage import STAGES, Stage, float_scopes_of, ordered_stages, register_stage, shape_of, stamped, verify_or_fail

__all__ = ["STAGES", "Stage", "ordered_stages"]


@register_stage
class ExportOnnx(Stage):
    name = "export"
    title = "PyTorch → ONNX"
    result = OnnxExportResult

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
            return OnnxExportResult(
                export_onnx(
                    ctx.model,
                    ctx.spec,
                    tmp,
                    opset=o.opset,
                    batch=o.batch,
                    dynamic_batch=o.dynamic_batch,
                    exporter=o.exporter,
                )
            )


@register_stage
class SimplifyAndVerify(Stage):
    name = "simplify"
    title = "onnxsim + verify in ONNX Runtime"
    after = ("export",)
    result = SimplifyResult

    def key(self, ctx):
        return {"tolerance": [ctx.options.atol, ctx.options.rtol], "onnxsim": ctx.versions.get("onnxsim")}

    def outputs(self, ctx):
        return [ONNX]

    def run(self, ctx):
        from .simplify import simplify_onnx

        with atomic_path(ctx.run_dir / ONNX, finish=stamped(ctx, "onnx-fp32")) as tmp:
            info = simplify_onnx(ctx.run_dir / RAW_ONNX, tmp)
            if not info["simplified"]:
                ctx.reporter.warn(f"onnxsim failed, keeping the raw graph: {info['reason']}")
            tmp_rel = tmp.relative_to(ctx.run_dir).as_posix()
            # Verify before the rename: a graph that does not match PyTorch never looks finished.
            info["verification"] = verify_or_fail(ctx, self.name, tmp_rel, "onnxruntime", "fp32")
            info["verification"]["artifact"] = ONNX
        return SimplifyResult(info)

    def artifacts(self, ctx, result):
        return [
            artifact_kind("onnx-fp32").record(
                description=None if result.simplified else "FP32 ONNX (onnxsim failed; raw graph)",
                verification=result.verification,
                **shape_of(ctx),
            )
        ]


class _OpenVinoIR(Stage):
    after = ("simplify",)
    result = OpenVinoResult
    compress_to_fp16: ClassVar[bool]
    artifact: ClassVar[str]

    @property
    def xml(self) -> str:
        return artifact_kind(self.artifact).file

    @property
    def precision(self) -> str:
        return artifact_kind(self.artifact).precision

    def enabled(self, ctx):
        return "openvino" in ctx.options.backends

    def key(self, ctx):
        return {"openvino": ctx.versions.get("openvino"), "tolerance": [ctx.options.atol, ctx.options.rtol]}

    def outputs(self, ctx):
        return [self.xml, *companion_files(self.xml)]

    def run(self, ctx):
        from .openvino import convert_to_ir

        final = ctx.run_dir / self.xml
        with atomic_path(final, companions=(".bin",), finish=stamped(ctx, self.artifact)) as tmp:
            info = convert_to_ir(ctx.run_dir / ONNX, tmp, compress_to_fp16=self.compress_to_fp16)
            tmp_rel = tmp.relative_to(ctx.run_dir).as_posix()
            # f32 hint: on AMX CPUs OpenVINO's default is bf16, which is not what "FP32" means.
            info["verification"] = verify_or_fail(
                ctx, self.name, tmp_rel, "openvino", self.precision, run_precision="f32"
            )
            info["verification"]["artifact"] = self.xml
        info["cpu_default_precision"] = ctx.machine.get("openvino_default_precision")
        return OpenVinoResult(info)

    def artifacts(self, ctx, result):
        kind = artifact_kind(self.artifact)
        return [
            kind.record(
                description=kind.description.format(weights=result.weights or self.precision),
                verification=result.verification,
                extra={"cpu_default_precision": result.cpu_default_precision},
                **shape_of(ctx),
            )
        ]


@register_stage
class OpenVinoFP32(_OpenVinoIR):
    name = "openvino"
    title = "OpenVINO IR (FP32)"
    compress_to_fp16 = False
    artifact = "openvino-fp32"


@register_stage
class OpenVinoFP16(_OpenVinoIR):
    name = "openvino-fp16"
    title = "OpenVINO IR (FP16 weights)"
    compress_to_fp16 = True
    artifact = "openvino-fp16"

    def enabled(self, ctx):
        return super().enabled(ctx) and ctx.options.fp16


# --- INT8 (calibration) ---------------------------------------------------------------------------
# (the INT8 stage is defined here, before the engines that consume its Q/DQ graph)
@register_stage
class Int8(Stage):
    name = "int8"
    title = "calibrate + INT8 (ONNX Q/DQ, OpenVINO NNCF)"
    after = ("simplify", "openvino")
    result = Int8Result

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
            "accuracy_budget": None
            if o.max_accuracy_drop is None
            else {"max_drop": o.max_accuracy_drop, "data": ctx.accuracy_validation().fingerprint()},
            # The CPU flavour's and the OpenVINO IR's float blocks are measured here at this many threads.
            "speed_plan": {"threads": _plan_threads(o), "cpu": ctx.machine.get("cpu")} if o.int8_speed else None,
        }

    def outputs(self, ctx):
        out = [INT8_ONNX, INT8_CPU_ONNX, INT8_REPORT_FILE]
        if "openvino" in ctx.options.backends:
            out += [OV_INT8_XML, *companion_files(OV_INT8_XML)]
        return out

    def caches(self, ctx):
        return [RANGES_FILE, RANGES_META_FILE]

    def run(self, ctx):
        from edgecv.calibration.run import quantize_run

        o = ctx.options
        ov = ctx.run_dir / OV_XML if "openvino" in o.backends else None
        built_for = target_cpu(o.target_cpu).name

        def stamp(artifact: str, tmp: Path) -> None:
            # Only these two depend on the target CPU (the TensorRT flavour is the same for every
            # CPU), so only they carry it, for the benchmark to compare.
            cpu = built_for if artifact in ("onnx-int8-cpu", "openvino-int8") else ""
            stamped(ctx, artifact, cpu)(tmp)

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
                finish=stamp,
                speed_plan=o.int8_speed,
                threads=_plan_threads(o) if o.int8_speed else None,
                accuracy_budget=_budget(ctx),
            )
        info = result.to_dict()
        info["target_cpu_requested"] = o.target_cpu
        if result.sensitivity is not None:
            # The full ranking lives in calibration/report.json; the manifest keeps the top of it.
            info["sensitivity"] = {**info["sensitivity"], "layers": info["sensitivity"]["layers"][:10]}
        for name, flavour in info["flavours"].items():
            if "precision_plan" in flavour:
                # So does each speed plan's per-block profile; its decision and times are all here.
                plan = flavour["precision_plan"]
                flavour = {**flavour, "precision_plan": {**plan, "losing_blocks": plan["losing_blocks"][:10]}}
                info["flavours"] = {**info["flavours"], name: flavour}
        return Int8Result(info)

    def artifacts(self, ctx, result):
        built_for = {"target_cpu": result.target_cpu} if result.target_cpu else {}
        names = ["onnx-int8", "onnx-int8-cpu"] + (["openvino-int8"] if result.made("openvino-int8") else [])
        records = []
        for name in names:
            extra = dict(built_for) if name != "onnx-int8" else {}
            if result.budget(name) is not None:
                extra["accuracy_budget"] = result.budget(name)
            records.append(artifact_kind(name).record(fidelity=result.fidelity(name), extra=extra, **shape_of(ctx)))
        return records


def _budget(ctx):
    if ctx.options.max_accuracy_drop is None:
        return None
    from edgecv.calibration.accuracy_budget import AccuracyBudget

    return AccuracyBudget(ctx.options.max_accuracy_drop, ctx.accuracy_validation())


def _plan_threads(options) -> int:
    from edgecv.runtime.onnxruntime import default_intra_threads

    return options.threads or default_intra_threads()


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
    result = PreflightResult

    def enabled(self, ctx):
        return ctx.options.int8 or "tensorrt" in ctx.options.backends

    def key(self, ctx):
        return {"trt_version": _trt_version(ctx), "max_batch": ctx.options.max_batch}

    def run(self, ctx):
        from edgecv.tensorrt.preflight import check_tensorrt
        from edgecv.tensorrt.run_folder_preflight import int8_float_nodes, int8_stage_passed_rules

        files = [f for f in (ONNX, INT8_ONNX) if (ctx.run_dir / f).is_file()]
        int8 = ctx.result(Int8Result)
        exempt = int8_float_nodes(int8.info) if int8 is not None else ()
        reports = {}
        warnings = []
        for name in files:
            report = check_tensorrt(
                ctx.run_dir / name,
                _trt_version(ctx),
                max_batch=ctx.options.max_batch,
                exempt=exempt if name == INT8_ONNX else (),
                qdq_passed=name == INT8_ONNX and int8 is not None and int8_stage_passed_rules(int8.info),
            )
            reports[name] = report.to_dict()
            if report.errors or report.warnings:
                warnings.append(
                    f"TensorRT {report.trt_version} preflight of {name}: {report.summary()} "
                    f"(`edgecv check {ctx.run_dir / name} --target tensorrt`)"
                )
        return PreflightResult({"trt_version": _trt_version(ctx), "reports": reports, "warnings": warnings})


@register_stage
class TensorRTEngines(Stage):
    name = "tensorrt"
    title = "TensorRT engines"
    after = ("simplify", "int8")
    result = EnginesResult

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
            engine = tensorrt_engine(recipe.precision)
            out += [engine, *companion_files(engine)]
            if recipe.source not in (ONNX, INT8_ONNX):
                out.append(recipe.source)
        return out

    def caches(self, ctx):
        return [TIMING_CACHE]

    def run(self, ctx):
        from edgecv.tensorrt.build import build_engine, write_sidecar
        from edgecv.tensorrt.fp16 import COPY_OF, write_fp16_copy

        engines = {}
        for recipe in self.plan(ctx):
            if recipe.source in COPY_OF and not (ctx.run_dir / recipe.source).is_file():
                with atomic_path(ctx.run_dir / recipe.source) as tmp:
                    write_fp16_copy(ctx.run_dir / COPY_OF[recipe.source], tmp)
            final = ctx.run_dir / tensorrt_engine(recipe.precision)
            with atomic_path(final, companions=(".json",)) as tmp:
                info = build_engine(
                    ctx.run_dir / recipe.source,
                    tmp,
                    precision=recipe.precision,
                    input_name=ctx.spec.input_name,
                    input_shape=ctx.spec.shape,
                    dynamic_batch=ctx.options.dynamic_batch,
                    recipe=recipe,
                    timing_cache=ctx.run_dir / TIMING_CACHE,
                    **self.settings(ctx),
                )
                if recipe.precision != "int8":
                    tmp_rel = tmp.relative_to(ctx.run_dir).as_posix()
                    info["verification"] = verify_or_fail(ctx, self.name, tmp_rel, "tensorrt", recipe.precision)
                # A plan stays untouched: the keys ONNX/OpenVINO artifacts carry inside go to the sidecar.
                from edgecv.artifact_metadata import build_metadata
                from edgecv.version import __version__

                info["metadata"] = build_metadata(
                    ctx.spec,
                    model=ctx.model_info,
                    precision=recipe.precision,
                    intended_for="tensorrt",
                    version=__version__,
                )
                write_sidecar(tmp, info)
            engines[recipe.precision] = info
        return EnginesResult({"engines": engines})

    def artifacts(self, ctx, result):
        int8 = ctx.result(Int8Result)
        records = []
        for precision, e in result.engines.items():
            kind = artifact_kind(f"tensorrt-{precision}")
            typing = "strongly typed" if e.get("strongly_typed") else "weakly typed"
            records.append(
                kind.record(
                    description=kind.description.format(tensorrt=e.get("tensorrt"), gpu=e.get("gpu"), typing=typing),
                    verification=e.get("verification", {}),
                    # The engine runs the Q/DQ graph the INT8 stage measured.
                    fidelity=int8.fidelity("onnx-int8") if precision == "int8" and int8 is not None else {},
                    extra={
                        "profile": e.get("profile"),
                        "compute_capability": e.get("compute_capability"),
                        "source_onnx": e.get("source_onnx"),
                    },
                    **shape_of(ctx),
                )
            )
        return records
