"""Speed-aware precision for the ONNX Runtime CPU flavour and the OpenVINO INT8 IR (each with its
engine's cost source: :mod:`.measure`, :mod:`.measure_openvino`): which blocks stay in float because the whole graph runs
faster that way, at the thread count the artifact is for.

ONNX Runtime's integer kernels lose to its float ones in places (a depthwise convolution costs a
fixed ~9 ns per output pixel whatever its channel count; integer Add/Mul hardly use a second
thread; a float activation between two integer layers costs a DequantizeLinear and a
QuantizeLinear). Per-kernel profiles of the FP32 and the all-INT8 graph *propose*: a block
(:mod:`.blocks`) whose INT8 kernels took longer than its float ones is a candidate for float.
Whole graphs *decide*: the Q/DQ pairs at a float block's edges cost time the block's own kernels do
not show, so candidate graphs (the losing blocks, most loss first, in growing sets) are timed
against the all-INT8 graph, and the fastest is kept.

    plan = plan_precision(prepared, all_int8, build, OrtCosts(threads=2), fixed=excluded)
    plan.float_nodes, plan.reasons, plan.to_dict()
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from ..float_scopes import float_feeders
from .blocks import Block, attribute, cost_blocks, group_blocks
from .measure import CostSource

ALL_INT8 = "all-int8"
FP32 = "fp32"
# Shares of the losing blocks (most loss first) tried in float; 1.0 is every losing block. Each
# candidate is a quantization (most of what a plan costs), so there are few.
SHARES = (0.5, 1.0)
# A block counts as losing when its INT8 kernels take this fraction longer than its float ones;
# below it a profile's noise decides.
LOSS_MARGIN = 0.05
# What whole-graph timing on a machine in use resolves: no candidate is built when the losing
# blocks' profiled loss adds up to less than this fraction of the INT8 graph's profiled time, and a
# candidate replaces the all-INT8 graph only when it is faster by more than this fraction.
MIN_GAIN = 0.03


@dataclass
class Candidate:
    name: str
    path: Path
    float_nodes: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # what building it reported (the flavour's entry)


@dataclass
class PrecisionPlan:
    threads: int
    cpu: str
    blocks: list[Block]
    candidates: dict[str, Candidate]
    times: dict[str, dict[str, float]]
    chosen: str
    unattributed_ms: dict[str, float] = field(default_factory=dict)
    spent_s: dict[str, float] = field(default_factory=dict)  # profiling, building and timing candidates
    clock: str = "wall"
    engine: str = "onnxruntime"
    # The fastest candidate and the all-INT8 graph timed again, when the first timing favoured it.
    confirmation: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def choice(self) -> Candidate:
        return self.candidates[self.chosen]

    @property
    def float_nodes(self) -> list[str]:
        return list(self.choice.float_nodes)

    def ms(self, name: str) -> float:
        return self.times[name]["typical_ms"]

    @property
    def reasons(self) -> dict[str, str]:
        """Why each node the plan keeps in float is kept, with the times that decided it."""
        by_block = {b.name: b for b in self.blocks}
        whole = f"whole graph {self.ms(self.chosen):.2f} ms against {self.ms(ALL_INT8):.2f} ms all-INT8"
        reasons = {}
        for name in self.choice.blocks:
            b = by_block[name]
            if _losing(b):
                why = f"slower in INT8 at {self.threads} threads: {b.int8_ms:.3f} ms vs {b.fp32_ms:.3f} ms in float"
            else:  # in a candidate of whole kinds
                why = (
                    f"{b.op_type} blocks together ran slower in INT8 at {self.threads} threads (this one alone did not)"
                )
            reasons.update({n: f"{why} (block {b.name}); {whole}" for n in b.nodes})
        for n in self.choice.float_nodes:
            reasons.setdefault(n, f"data movement between float blocks (no Q/DQ round trip); {whole}")
        return reasons

    @property
    def warning(self) -> str | None:
        """Said when even the chosen INT8 graph ran slower than FP32 here."""
        if FP32 not in self.times or self.ms(self.chosen) <= self.ms(FP32):
            return None
        artifact, instead = SLOWER_THAN_FP32.get(self.engine, SLOWER_THAN_FP32["onnxruntime"])
        return (
            f"{artifact} ran slower than FP32 at {self.threads} thread(s) here even with "
            f"{len(self.choice.blocks)} block(s) in float ({self.ms(self.chosen):.2f} ms against "
            f"{self.ms(FP32):.2f} ms): {instead}"
        )

    def flavour_info(self) -> dict[str, Any]:
        """The chosen graph's flavour entry for the INT8 report, its float nodes with their reasons
        and this plan's record under ``precision_plan``."""
        info = dict(self.choice.info)
        reasons = self.reasons
        if "kept_float" in info:
            info["kept_float"] = [{**k, "reason": reasons.get(k["node"], k["reason"])} for k in info["kept_float"]]
        else:  # a flavour whose builder does not list its float nodes (NNCF's)
            info["kept_float"] = [{"node": n, "reason": why} for n, why in reasons.items()]
        info["precision_plan"] = self.to_dict()
        return info

    def to_dict(self) -> dict[str, Any]:
        losing = [b for b in self.blocks if _losing(b)]
        return {
            "measured_on": {"cpu": self.cpu, "threads": self.threads, "engine": self.engine, "clock": self.clock},
            "chosen": self.chosen,
            "float_nodes": self.float_nodes,
            "float_blocks": list(self.choice.blocks),
            "candidates": {
                name: {
                    "float_blocks": len(c.blocks),
                    "float_nodes": len(c.float_nodes),
                    **_rounded(self.times.get(name, {})),
                }
                for name, c in self.candidates.items()
            },
            "confirmation": {name: _rounded(figures) for name, figures in self.confirmation.items()},
            "statistic": "typical_ms: median over interleaved rounds of each round's fastest run",
            "fp32_ms": round(self.ms(FP32), 4) if FP32 in self.times else None,
            "speedup_vs_all_int8": round(self.ms(ALL_INT8) / self.ms(self.chosen), 3),
            "speedup_vs_fp32": round(self.ms(FP32) / self.ms(self.chosen), 3) if FP32 in self.times else None,
            "losing_blocks": [b.to_dict() for b in sorted(losing, key=lambda b: -b.loss_ms)],
            "blocks_profiled": len(self.blocks),
            "unattributed_ms": {k: round(v, 4) for k, v in self.unattributed_ms.items()},
            "spent_s": {k: round(v, 2) for k, v in self.spent_s.items()},
        }


# Per engine: which artifact a plan is for, and what to run instead when even its best is slower than FP32.
SLOWER_THAN_FP32 = {
    "onnxruntime": ("the ONNX Runtime CPU flavour", "run model.onnx or the OpenVINO INT8 IR on this CPU"),
    "openvino": ("the OpenVINO INT8 IR", "run the FP32 IR (openvino/model.xml) on this CPU"),
}


def _losing(block: Block) -> bool:
    return block.int8_ms > block.fp32_ms * (1 + LOSS_MARGIN)


def propose(blocks: list[Block], shares: tuple[float, ...] = SHARES) -> dict[str, list[Block]]:
    """Candidate sets of blocks for float, by name: growing shares of the losing blocks, most loss
    first (``float-N``), and every block of the kinds that lose in total (``kinds:…``: one block's
    profile is noisy, a kind's sum over many blocks much less so). Sets already proposed are not
    repeated."""
    losing = sorted((b for b in blocks if _losing(b)), key=lambda b: -b.loss_ms)
    sets: dict[str, list[Block]] = {}
    for share in shares:
        n = max(1, round(share * len(losing))) if losing else 0
        if n:
            sets.setdefault(f"float-{n}", losing[:n])
    by_kind: dict[str, Block] = {}
    for b in blocks:
        kind = by_kind.setdefault(b.op_type, Block(b.op_type, b.op_type))
        kind.fp32_ms, kind.int8_ms = kind.fp32_ms + b.fp32_ms, kind.int8_ms + b.int8_ms
    kinds = sorted(k for k, total in by_kind.items() if _losing(total))
    chosen = [b for b in blocks if b.op_type in kinds]
    seen = [{b.name for b in s} for s in sets.values()]
    if chosen and {b.name for b in chosen} not in seen:
        sets["kinds:" + "+".join(kinds)] = chosen
    return sets


Builder = Callable[[str, list[str]], Candidate]


def plan_precision(
    fp32: Path,
    all_int8: Candidate,
    build: Builder,
    costs: CostSource,
    *,
    fixed: Collection[str] = (),
    cpu: str = "",
    progress: Callable[[str, int, int | None], None] | None = None,
    graph: Path | None = None,
    most: int | None = None,
) -> PrecisionPlan:
    """Plan the float blocks of the INT8 artifact quantized from ``fp32`` (the model that was
    quantized; ``graph``: the ONNX graph it came from, whose node names the plan uses, when ``fp32``
    is not that graph itself). ``all_int8``: that artifact with only ``fixed`` in float;
    ``build(name, float_nodes)`` quantizes it again with ``float_nodes`` also in float. ``costs``
    measures (see :class:`~.measure.OrtCosts`, :class:`~.measure_openvino.OpenVinoCosts`). ``most``:
    build at most this many candidates (the first :func:`propose` makes)."""
    say = progress or (lambda *_: None)
    clock = time.perf_counter
    spent: dict[str, float] = {}
    start = clock()
    model = onnx.load(str(graph or fp32), load_external_data=False)
    blocks = group_blocks(model, fixed=fixed)
    say("profiling FP32 and INT8 kernels", 0, 2)
    fp32_nodes, fp32_rest = attribute(costs.kernel_times(fp32, FP32), model)
    say("profiling FP32 and INT8 kernels", 1, 2)
    int8_nodes, int8_rest = attribute(costs.kernel_times(all_int8.path, "int8"), model)
    cost_blocks(blocks, fp32_nodes, int8_nodes)
    spent["profile_s"], start = clock() - start, clock()

    candidates = {FP32: Candidate(FP32, fp32), ALL_INT8: all_int8}
    proposals = dict(list(propose(blocks).items())[:most])
    if sum(max(b.loss_ms, 0.0) for b in blocks) < MIN_GAIN * sum(int8_nodes.values()):
        proposals = {}  # the most float could win is below what whole-graph timing resolves
    for i, (name, chosen) in enumerate(proposals.items()):
        say("building candidate graphs", i, len(proposals))
        nodes = [n for b in chosen for n in b.nodes]
        nodes += float_feeders(model, [*fixed, *nodes])
        nodes = [n for n in nodes if n not in set(fixed)]
        candidate = build(name, nodes)
        candidate.blocks = [b.name for b in chosen]
        candidates[name] = candidate
    spent["build_s"], start = clock() - start, clock()
    say("timing whole candidate graphs", 0, None)
    # FP32 is timed too (not a choice): the record says how the chosen graph compares with it.
    times = costs.graph_times(candidates)
    fastest = min(
        (n for n in candidates if n not in (FP32, ALL_INT8) and n in times),
        default=ALL_INT8,
        key=lambda n: times[n]["typical_ms"],
    )
    # The fastest of several candidates is partly the luckiest: it must win by more than timing
    # resolves, and win again when timed afresh against the all-INT8 graph alone.
    confirmation: dict[str, dict[str, float]] = {}
    wins = _wins(times, fastest)
    if wins:
        say("timing the fastest candidate again", 0, None)
        confirmation = costs.graph_times({ALL_INT8: candidates[ALL_INT8], fastest: candidates[fastest]})
        wins = _wins(confirmation, fastest)
    spent["time_s"] = clock() - start
    chosen_name = fastest if wins else ALL_INT8
    return PrecisionPlan(
        threads=costs.threads,
        cpu=cpu,
        blocks=blocks,
        candidates=candidates,
        times=times,
        chosen=chosen_name,
        unattributed_ms={FP32: fp32_rest, "int8": int8_rest},
        spent_s=spent,
        clock=getattr(costs, "clock", "wall"),
        engine=getattr(costs, "engine", "onnxruntime"),
        confirmation=confirmation,
    )


def _rounded(figures: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def _wins(times: dict[str, dict[str, float]], name: str) -> bool:
    return times[name]["typical_ms"] < times[ALL_INT8]["typical_ms"] * (1 - MIN_GAIN)


def plan_artifact(
    fp32: Path,
    work: Path,
    quantize: Callable[[Path, list[str]], dict[str, Any]],
    fixed: list[str],
    costs: CostSource | Callable[[], CostSource],
    what: str,
    progress: Callable[[str, int, int | None], None] | None = None,
    graph: Path | None = None,
    most: int | None = None,
) -> PrecisionPlan:
    """:func:`plan_precision` for an artifact that ``quantize(out, float_nodes)`` writes with
    ``float_nodes`` in float besides ``fixed``, its candidates written under ``work`` with
    ``fp32``'s suffix. ``costs``: a cost source, or what opens one (closed afterwards). ``what``
    names the artifact in the error raised when a tool fails."""
    from edgecv.errors import EdgecvError, StageError
    from edgecv.sysinfo import machine_info

    def build(name: str, nodes: list[str]) -> Candidate:
        path = work / ("plan-" + re.sub(r"[^\w.-]", "_", name) + fp32.suffix)
        return Candidate(name, path, nodes, info=quantize(path, nodes))

    try:
        with contextlib.ExitStack() as stack:
            if callable(costs):
                costs = stack.enter_context(costs())
            cpu = machine_info()["cpu"]
            return plan_precision(
                fp32, build(ALL_INT8, []), build, costs, fixed=fixed, cpu=cpu, progress=progress, graph=graph, most=most
            )
    except EdgecvError:
        raise
    except Exception as exc:  # the engine's sessions, profiler or quantizer on an odd graph
        raise StageError("int8", f"planning {what}'s precision failed: {type(exc).__name__}: {exc}") from exc


def plan_cpu_flavour(
    prepared: Path,
    tmp: Path,
    quantize: Callable[[Path, list[str]], dict[str, Any]],
    fixed: list[str],
    threads: int | None,
    progress: Callable[[str, int, int | None], None] | None = None,
    costs: CostSource | None = None,
) -> PrecisionPlan:
    """The CPU flavour's plan, measured with ONNX Runtime at ``threads`` threads (default: this
    machine's cores) unless ``costs`` is given. ``quantize(out, float_nodes)`` writes the flavour
    with ``float_nodes`` in float besides ``fixed``; candidates are written under ``tmp``."""
    from edgecv.runtime.onnxruntime import default_intra_threads

    from .measure import OrtCosts

    source = costs if costs is not None else (lambda: OrtCosts(threads or default_intra_threads()))
    return plan_artifact(prepared, tmp, quantize, fixed, source, "the CPU flavour", progress)
