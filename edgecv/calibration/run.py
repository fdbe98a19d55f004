"""One call for the export pipeline: calibration data + FP32 ONNX (+ OpenVINO IR) → every INT8
artifact, its fidelity against FP32 on held-out inputs, and ``calibration/report.json``.

    result = quantize_run("runs/x/model.onnx", "runs/x", load_calibration(None, spec),
                          openvino_xml="runs/x/openvino/model.xml")
    result.artifacts["onnx-int8-cpu"], result.fidelity["onnx-int8"].to_dict(), result.timings_s

Steps: ONNX Runtime's pre-processing of the simplified graph; activation ranges once (cached in
``calibration/ranges.json``, reused by a rerun with the same model, data and method); optionally the
layer sensitivity ranking and the most sensitive layers left in float; each ONNX flavour (the
TensorRT one only if it passes :func:`check_tensorrt_qdq`); NNCF for OpenVINO; fidelity.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import onnx

from edgecv.errors import EdgecvError, InvalidOptionError, StageError
from edgecv.int8_kernels import target_cpu as cpu_target
from edgecv.onnx_graph import first_input
from edgecv.progress import StepProgress as Progress
from edgecv.runfolder import INT8_REPORT_FILE, OV_INT8_XML, RANGES_FILE, atomic_path, write_json_atomic
from edgecv.runtime.memory import peak_rss_mb
from edgecv.runtime.onnxruntime import default_intra_threads
from edgecv.tensorrt.rules import check_tensorrt_qdq

from .accuracy_budget import AccuracyBudget, BudgetOutcome, budget_warning, fit_flavour, fit_openvino
from .data import CalibrationData
from .detection_fidelity import compare_detections as detection_compare
from .detection_fidelity import is_detection_output
from .fidelity import collect, compare
from .float_scopes import float_feeders, float_summary, name_unnamed_nodes, nodes_in_scopes
from .int8_report import Int8Result
from .passes import bypass_input_qdq, dedicate_qdq_pairs
from .precision import CostSource, OpenVinoCosts, plan_artifact, plan_cpu_flavour
from .quantize_onnx import CPU, TENSORRT, flavour_of, prepare_for_quantization, quantize_flavour
from .ranges import CALIB_METHODS, DEFAULT_METHOD, cached_ranges
from .runners import fixed_batch, openvino_runner, ort_runner
from .sensitivity import DEFAULT_INPUTS, LAYER_OPS, SensitivityReport, rank_layers

REPORT_FILE = INT8_REPORT_FILE
OPENVINO_INT8 = OV_INT8_XML
OPENVINO_CANDIDATES = 2  # candidate IRs an OpenVINO speed plan builds besides all-INT8


class _Clock:
    def __init__(self):
        self.timings: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def _graph_input(model: onnx.ModelProto) -> str:
    return first_input(model).name


def _check_options(method: str, flavours: Sequence[str], keep_fp32: int, sensitivity_inputs: int) -> None:
    if method not in CALIB_METHODS:
        raise InvalidOptionError(f"calibration method must be one of {', '.join(CALIB_METHODS)}, got {method!r}")
    for name in flavours:
        flavour_of(name)
    if keep_fp32 < 0:
        raise InvalidOptionError(f"keep_fp32 must be 0 or more layers, got {keep_fp32}")
    if sensitivity_inputs < 1:
        raise InvalidOptionError(f"sensitivity needs at least 1 input, got {sensitivity_inputs}")


def _check_exclude(exclude: Sequence[str], model: onnx.ModelProto, keep_fp32: int) -> None:
    names = [n.name for n in model.graph.node]
    unknown = [e for e in exclude if e not in set(names)]
    if unknown:
        hints = get_close_matches(unknown[0], names, n=3)
        hint = (
            f"; did you mean {', '.join(hints)}?" if hints else " (see calibration/report.json's sensitivity ranking)"
        )
        raise InvalidOptionError(f"no node named {', '.join(unknown)} in the graph{hint}")
    layers = sum(n.op_type in LAYER_OPS for n in model.graph.node)
    if keep_fp32 > layers:
        raise InvalidOptionError(f"--keep-fp32 {keep_fp32}: the model has only {layers} quantizable layers")


def _announcer(progress: Progress | None) -> Progress:
    """Where each step of the INT8 stage is announced; some take minutes on a large detector, so a
    user sees which one runs and how far it is."""
    return progress if progress is not None else (lambda description, completed, total: None)


def _stage_error(step: str, exc: Exception) -> StageError:
    return StageError("int8", f"{step} failed: {type(exc).__name__}: {exc}")


def quantize_run(
    fp32_onnx: str | Path,
    out_dir: str | Path,
    calib: CalibrationData,
    method: str = DEFAULT_METHOD,
    *,
    flavours: Sequence[str] = ("tensorrt", "cpu"),
    openvino_xml: str | Path | None = None,
    exclude: Sequence[str] = (),
    keep_fp32: int = 0,
    sensitivity: bool = False,
    sensitivity_inputs: int = DEFAULT_INPUTS,
    progress: Progress | None = None,
    float_scopes: Sequence[str] = (),
    target_cpu: str = "auto",
    finish: Callable[[str, Path], None] | None = None,
    speed_plan: bool | CostSource | dict[str, CostSource] = False,
    threads: int | None = None,
    accuracy_budget: AccuracyBudget | None = None,
) -> Int8Result:
    """Write the INT8 artifacts of ``fp32_onnx`` (the simplified FP32 graph) into ``out_dir``.

    ``exclude``: node names kept in float. ``keep_fp32``: also keep that many of the most sensitive
    layers in float (implies the sensitivity ranking). ``target_cpu``: the CPU the ONNX Runtime CPU
    flavour and the OpenVINO IR are built for (``auto``: this one; see :mod:`edgecv.int8_kernels`).
    Every file is written under a temporary name and renamed when complete; ``finish(artifact,
    temporary file)``, when given, runs on each INT8 artifact just before its rename. ``speed_plan``:
    keep in float the blocks of the CPU flavour and of the OpenVINO IR that make the whole graph
    faster that way, measured here on ONNX Runtime and OpenVINO at ``threads`` threads (default:
    this machine's cores; see :mod:`edgecv.calibration.precision`; a :class:`CostSource` in its
    place answers instead of measuring, or ``{"cpu": …, "openvino": …}`` one per artifact). ``accuracy_budget``: then keep the most sensitive layers of each artifact in float
    until its metric drop against FP32 holds, starting from the float set the flavour already has
    (:mod:`.accuracy_budget`; the layers are ranked when one misses it). Raises
    :class:`InvalidOptionError` for bad options and :class:`StageError` when a tool fails or the
    TensorRT flavour breaks TensorRT's rules."""
    _check_options(method, flavours, keep_fp32, sensitivity_inputs)
    target = cpu_target(target_cpu).name
    fp32_onnx, out_dir = Path(fp32_onnx), Path(out_dir)
    clock = _Clock()
    say = _announcer(progress)
    artifacts: dict[str, Path] = {}
    flavour_info: dict[str, dict[str, Any]] = {}
    outcomes: dict[str, BudgetOutcome] = {}
    fp32_metric = functools.cache(lambda: accuracy_budget.validation.score(ort_runner(fp32_onnx)))
    with tempfile.TemporaryDirectory(prefix="edgecv-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        say("preparing the graph (ONNX Runtime pre-processing)", 0, None)
        with clock.step("pre_process"):
            try:
                prepare_for_quantization(fp32_onnx, prepared)
            except Exception as exc:  # ORT's shape inference raises assorted types on odd graphs
                raise _stage_error("ONNX Runtime's pre-processing", exc) from exc
        prepared_model = onnx.load(str(prepared), load_external_data=False)
        if name_unnamed_nodes(prepared_model):
            onnx.save(prepared_model, str(prepared))
        _check_exclude(exclude, prepared_model, keep_fp32)
        in_scopes = nodes_in_scopes(prepared_model, float_scopes)
        in_scopes += float_feeders(prepared_model, in_scopes) if in_scopes else []
        input_name, batch = _graph_input(prepared_model), fixed_batch(prepared)
        op_types = {n.name: n.op_type for n in prepared_model.graph.node}
        del prepared_model

        ranges_path = out_dir / RANGES_FILE
        with clock.step("ranges"):
            try:
                _, ranges_info = cached_ranges(
                    prepared,
                    calib.calibration,
                    input_name,
                    method,
                    data_fingerprint=calib.fingerprint,
                    cache_path=ranges_path,
                    batch_size=batch,
                    progress=lambda _desc, done, total: say(
                        "collecting activation ranges, calibration inputs", done, total
                    ),
                )
            except EdgecvError:
                raise
            except Exception as exc:  # ONNX Runtime's session and collectors on an odd graph
                raise _stage_error("computing activation ranges", exc) from exc
        ranges_info["cache"] = RANGES_FILE
        holdout = list(calib.holdout.batches(batch))
        say("FP32 reference outputs on held-out inputs", 0, None)
        with clock.step("reference"):
            reference = collect(ort_runner(fp32_onnx), holdout)

        # A detector's decoding, softmax/sigmoid and NMS stay in float in every flavour.
        excluded = list(dict.fromkeys([*exclude, *in_scopes]))
        ranking: SensitivityReport | None = None
        base = list(excluded)

        def ranked() -> list[str]:
            """The layers, most INT8-sensitive first; ranked once, when first asked for (a budget
            that every artifact meets as it is never needs it)."""
            nonlocal ranking
            if ranking is None:
                with clock.step("sensitivity"):
                    ranking = _rank(
                        prepared,
                        Path(tmp) / "ranking.int8.onnx",
                        method,
                        ranges_path,
                        base,
                        reference,
                        holdout,
                        sensitivity_inputs,
                        progress,
                    )
            return ranking.most_sensitive(len(ranking.layers))

        if sensitivity or keep_fp32:
            excluded += [n for n in ranked() if n not in excluded][:keep_fp32]
        reasons = {
            n: "--exclude" if n in exclude else f"--keep-fp32 {keep_fp32}: among the most INT8-sensitive layers"
            for n in excluded
        }

        cpu_plan = None
        for i, name in enumerate(flavours):
            flavour = flavour_of(name)
            say(f"quantizing the {flavour.name} flavour", i + 1, len(flavours))
            plan = None
            if speed_plan and flavour is CPU:
                with clock.step("precision_plan_cpu"):
                    plan = cpu_plan = plan_cpu_flavour(
                        prepared,
                        Path(tmp),
                        lambda out, nodes: _quantize(
                            prepared, out, CPU, method, ranges_path, [*excluded, *nodes], reasons, target
                        ),
                        excluded,
                        threads,
                        say,
                        costs=_costs(speed_plan, "cpu"),
                    )
            with (
                clock.step(f"quantize_{flavour.name}"),
                atomic_path(out_dir / flavour.filename, finish=_finisher(finish, flavour.artifact)) as out,
            ):
                if accuracy_budget is not None:
                    # The flavour's own float set (the speed plan's, on the CPU flavour) is the start.
                    own = [*excluded, *(n for n in (plan.float_nodes if plan else []) if n not in excluded)]
                    flavour_info[flavour.name], outcomes[flavour.artifact] = fit_flavour(
                        lambda floats, path, why, flavour=flavour: _quantize(
                            prepared, path, flavour, method, ranges_path, floats, why, target
                        ),
                        onnx.load(str(prepared), load_external_data=False),
                        accuracy_budget,
                        ranked,
                        own,
                        {**reasons, **(plan.reasons if plan else {})},
                        fp32_metric(),
                        Path(tmp) / flavour.name,
                        out,
                        note=lambda text: say(text, 0, None),
                    )
                    if plan is not None:
                        flavour_info[flavour.name]["precision_plan"] = plan.to_dict()
                elif plan is None:
                    flavour_info[flavour.name] = _quantize(
                        prepared, out, flavour, method, ranges_path, excluded, reasons, target
                    )
                else:
                    shutil.copyfile(plan.choice.path, out)
                    flavour_info[flavour.name] = plan.flavour_info()
            artifacts[flavour.artifact] = out_dir / flavour.filename

    ov_plan = None
    if openvino_xml is not None:
        say("quantizing the OpenVINO IR with NNCF", 0, None)
        with clock.step("nncf_openvino"):
            flavour_info["openvino"], ov_plan = _openvino(
                Path(openvino_xml),
                out_dir / OPENVINO_INT8,
                calib,
                excluded,
                target,
                _finisher(finish, "openvino-int8"),
                accuracy_budget,
                outcomes,
                say,
                plan=None if not speed_plan else (fp32_onnx, threads, _costs(speed_plan, "openvino"), clock),
            )
        artifacts["openvino-int8"] = out_dir / OPENVINO_INT8

    with clock.step("fidelity"):
        score = detection_compare if is_detection_output(reference) else compare
        fidelity = {}
        for i, (name, path) in enumerate(artifacts.items()):
            say(f"fidelity of {name} against FP32", i + 1, len(artifacts))
            outputs = collect(_runner(path), holdout)
            fidelity[name] = score(reference, outputs, artifact=name, in_sample=calib.report.holdout_in_sample)
    warnings = list(calib.report.warnings) + [p.warning for p in (cpu_plan, ov_plan) if p is not None and p.warning]
    if accuracy_budget is not None:
        warnings += [budget_warning(name, o) for name, o in outcomes.items() if not o.reached]
    result = Int8Result(
        out_dir=out_dir,
        method=method,
        artifacts=artifacts,
        fidelity=fidelity,
        calibration=calib.report,
        ranges=ranges_info,
        flavours=flavour_info,
        excluded=excluded,
        sensitivity=ranking,
        timings_s=clock.timings,
        peak_rss_mb=peak_rss_mb(),
        warnings=warnings,
        target_cpu=target,
        kept_float=float_summary(op_types, excluded, in_scopes),
        accuracy_budget=None
        if accuracy_budget is None
        else {
            "max_drop": accuracy_budget.max_drop,
            "data": accuracy_budget.validation.describe(),
            "artifacts": {name: o.to_dict() for name, o in outcomes.items()},
        },
    )
    write_json_atomic(out_dir / REPORT_FILE, result.to_dict())
    return result


def _quantize(
    prepared: Path,
    out: Path,
    flavour,
    method: str,
    ranges: Path,
    excluded: list[str],
    reasons: dict[str, str] | None = None,
    target: str = "auto",
) -> dict[str, Any]:
    try:
        info = quantize_flavour(
            prepared,
            out,
            flavour,
            ranges_path=ranges,
            method=method,
            exclude=tuple(excluded),
            reasons=reasons,
            target=target,
        )
    except EdgecvError:
        raise
    except Exception as exc:  # ORT's quantizer: ValueError, RuntimeError, KeyError on odd graphs
        raise _stage_error(f"quantizing the {flavour.name} flavour", exc) from exc
    if not excluded and flavour is not TENSORRT:
        return info
    # The edits after quantizing, on one load of the graph.
    model = onnx.load(str(out))
    edited = False
    if excluded:
        reference = onnx.load(str(prepared), load_external_data=False)
        info["float_inputs_restored"] = bypass_input_qdq(model, excluded, reference)
        edited = True
    if flavour is TENSORRT:
        info["dedicated_pairs_added"] = dedicate_qdq_pairs(model)
        edited = edited or bool(info["dedicated_pairs_added"])
    if edited:
        onnx.save(model, str(out))
    if flavour is TENSORRT:
        violations = check_tensorrt_qdq(model, exempt=tuple(excluded))
        if violations:
            listed = "; ".join(map(str, violations[:5]))
            more = f" (and {len(violations) - 5} more)" if len(violations) > 5 else ""
            raise StageError("int8", f"the TensorRT-flavour graph breaks TensorRT's Q/DQ rules: {listed}{more}")
        # The TensorRT preflight (export stage, `edgecv check`, the bundle) takes this record for the
        # file rather than checking it against the same rules again.
        info["tensorrt_rules"] = "passed"
    return info


def _rank(
    prepared: Path,
    full: Path,
    method: str,
    ranges: Path,
    excluded: list[str],
    reference,
    holdout,
    n_inputs: int,
    progress,
) -> SensitivityReport:
    """Sensitivity on the first ``n_inputs`` held-out inputs, from a fully quantized TensorRT flavour
    (its dedicated Q/DQ pairs let one layer be put back in float without touching the others)."""
    _quantize(prepared, full, TENSORRT, method, ranges, excluded)
    batches = holdout[: max(1, math.ceil(n_inputs / len(holdout[0])))]
    rows = sum(len(b) for b in batches)
    return rank_layers(full, {k: v[:rows] for k, v in reference.items()}, batches, progress=progress)


def _costs(speed_plan: bool | CostSource | dict[str, CostSource], artifact: str) -> CostSource | None:
    """The cost source the speed plan of ``artifact`` ("cpu" or "openvino") uses; None: measure."""
    if speed_plan is True:
        return None
    return speed_plan.get(artifact) if isinstance(speed_plan, dict) else speed_plan


def _finisher(finish: Callable[[str, Path], None] | None, artifact: str) -> Callable[[Path], None] | None:
    return None if finish is None else (lambda tmp: finish(artifact, tmp))


def _openvino(
    fp32_xml: Path,
    final: Path,
    calib: CalibrationData,
    excluded: list[str],
    target: str,
    finish: Callable[[Path], None] | None = None,
    budget: AccuracyBudget | None = None,
    outcomes: dict[str, BudgetOutcome] | None = None,
    say: Progress | None = None,
    plan: tuple[Path, int | None, CostSource | None, _Clock] | None = None,
) -> tuple[dict[str, Any], Any]:
    """The OpenVINO INT8 IR at ``final`` and its report entry; with ``plan`` (the FP32 ONNX graph
    the IR came from, the threads, a cost source or None to measure, the stage's clock) its speed
    plan first, whose float set the accuracy budget then starts from."""
    from .openvino_int8 import quantize_openvino

    def quantize(out: Path, control=None, floats: Sequence[str] = excluded) -> dict[str, Any]:
        return quantize_openvino(
            fp32_xml, out, calib.calibration, exclude=floats, target=target, accuracy_control=control
        )

    speed = None
    try:
        # NNCF draws progress bars on stdout, which belongs to `--json` output.
        with (
            atomic_path(final, companions=(".bin",), finish=finish) as out,
            contextlib.redirect_stdout(io.StringIO()),
            tempfile.TemporaryDirectory(prefix="edgecv-ov-") as work,
        ):
            floats = excluded
            if plan is not None:
                graph, threads, costs, clock = plan
                # Each candidate is one NNCF quantization (as long as the IR's plain quantization):
                # two keep the INT8 stage within twice its time without the plan.
                with clock.step("precision_plan_openvino"):
                    speed = plan_artifact(
                        fp32_xml,
                        Path(work),
                        lambda path, nodes: quantize(path, floats=[*excluded, *nodes]),
                        excluded,
                        costs or (lambda: OpenVinoCosts(threads or default_intra_threads())),
                        "the OpenVINO IR",
                        _announcer(say),
                        graph=graph,
                        most=OPENVINO_CANDIDATES,
                    )
                floats = [*excluded, *(n for n in speed.float_nodes if n not in excluded)]
            if budget is not None:
                info, outcomes["openvino-int8"] = fit_openvino(
                    lambda path, control: quantize(path, control, floats),
                    fp32_xml,
                    budget,
                    Path(work) / "budget",
                    out,
                    note=lambda text: _announcer(say)(text, 0, None),
                )
                if speed is not None:
                    info["precision_plan"] = speed.to_dict()
            elif speed is not None:
                for suffix in (".xml", ".bin"):
                    shutil.copyfile(speed.choice.path.with_suffix(suffix), out.with_suffix(suffix))
                info = speed.flavour_info()
            else:
                info = quantize(out)
    except EdgecvError:
        raise
    except Exception as exc:  # NNCF and OpenVINO raise their own RuntimeError subclasses
        raise _stage_error("NNCF quantization for OpenVINO", exc) from exc
    return info, speed


def _runner(path: Path):
    return openvino_runner(path) if path.suffix == ".xml" else ort_runner(path)
