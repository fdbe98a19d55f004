"""Table rows shared by the Markdown, HTML and terminal renderings, so all three say the same."""

from __future__ import annotations

from typing import Any

# (key, header) of the results table, in order.
COLUMNS = (
    ("artifact", "artifact"),
    ("intended_for", "built for"),
    ("backend", "backend"),
    ("precision", "precision"),
    ("batch", "batch"),
    ("size_mb", "size MB"),
    ("median_ms", "median ms"),
    ("p90_ms", "p90 ms"),
    ("throughput", "items/s"),
    ("speedup", "× PyTorch"),
    ("fidelity", "INT8 fidelity"),
)
DASH = "—"


def metric_percent(value: float | None) -> str:
    """A mAP or top-1 figure (a fraction in the documents) as every table and report shows it."""
    return DASH if value is None else f"{100 * value:.2f}%"


def delta_points(delta: float | None) -> str:
    """A difference of two :func:`metric_percent` figures, in percentage points."""
    return DASH if delta is None else f"{100 * delta:+.2f} pt"


def fmt(value: Any, spec: str) -> str:
    if value is None:
        return DASH
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return str(value)


def precision_label(result: dict[str, Any]) -> str:
    """What the artifact is and, where it differs, what actually ran: ``fp32 (ran bf16)``,
    ``int8 (+bf16)`` for an INT8 graph whose float layers run in bf16."""
    built = result.get("artifact_precision")
    ran = result.get("precision")
    float_part = result.get("float_precision")
    if ran == "int8" and float_part and float_part != "fp32":
        return f"int8 (+{float_part})"
    if built and ran and built != ran:
        return f"{built} (ran {ran})"
    return ran or built or DASH


def throughput_cell(result: dict[str, Any]) -> str:
    """Items/s of one request at a time and, in the throughput scenario, with several in flight."""
    single = fmt(result.get("throughput_ips"), ".1f")
    conc = result.get("concurrency") or {}
    if conc.get("items_per_s") is None:
        return single
    return f"{single} → {conc['items_per_s']:.1f} ({conc['requests']} in flight)"


def built_for(result: dict[str, Any]) -> str:
    """The engine an artifact was made for, and where it was timed on another one, that it was: the
    TensorRT-flavour INT8 ONNX runs in ONNX Runtime only as a slow reference."""
    intended, backend = result.get("intended_for"), result.get("backend")
    if not intended:
        return DASH
    if intended == backend or backend == "torch":
        return str(intended)
    if intended == "tensorrt" and backend == "onnxruntime":
        return "tensorrt (slow in ONNX Runtime, see notes)"
    return f"{intended} (timed in {backend})"


def fidelity_label(fidelity: dict[str, Any] | None) -> str:
    if not fidelity:
        return DASH
    parts = []
    if fidelity.get("kind") == "detection":
        # a detector's INT8 fidelity: mAP against the FP32 artifact's detections, and the share kept
        if fidelity.get("map") is not None:
            parts.append(f"mAP vs FP32 {metric_percent(fidelity['map'])}")
        if fidelity.get("reproduced") is not None:
            parts.append(f"{fidelity['reproduced']:.0%} kept")
        if fidelity.get("collapsed"):
            parts.append("COLLAPSED: run --sensitivity")
    if fidelity.get("top1_agreement") is not None:
        parts.append(f"top-1 {metric_percent(fidelity['top1_agreement'])}")
    if fidelity.get("sqnr_db") is not None:
        parts.append(f"SQNR {fidelity['sqnr_db']:.1f} dB")
    if not parts and fidelity.get("cosine") is not None:
        parts.append(f"cos {fidelity['cosine']:.4f}")
    if parts and fidelity.get("in_sample"):
        parts.append("in-sample")  # measured on calibration inputs: optimistic
    return " · ".join(parts) or DASH


UNSTABLE_MARK = "(unstable)"


def stability_notes(results: list[dict[str, Any]]) -> list[str]:
    """What a row marked unstable means, one note per such row."""
    notes = []
    swept = swept_threads(results)
    for r in results:
        lat = r.get("latency") or {}
        if not lat.get("unstable"):
            continue
        at = f"batch {r.get('batch')}" + (f", {threads_words(r.get('threads'))}" if swept else "")
        notes.append(
            f"{r['artifact']} ({at}): unstable timing, p90 {lat['p90_ms']:.3f} ms is "
            f"{lat.get('p90_over_median', float('nan')):.1f}× the median {lat['median_ms']:.3f} ms "
            f"(std/mean {lat.get('cv', float('nan')):.0%}): the machine was busy, throttled or changing "
            "frequency; rerun on an idle machine with more --iterations before trusting these figures"
        )
    return notes


def result_notes(results: list[dict[str, Any]]) -> list[str]:
    """Every note of the results, then the stability notes, each once."""
    return sorted({n for r in results for n in r.get("notes") or []}) + stability_notes(results)


def result_row(result: dict[str, Any]) -> dict[str, str]:
    latency = result["latency"]
    size = result.get("size_bytes")
    return {
        "artifact": str(result["artifact"]),
        "intended_for": built_for(result),
        "backend": str(result["backend"]),
        "precision": precision_label(result),
        "batch": str(result["batch"]),
        "threads": fmt(result.get("threads"), "d"),
        "size_mb": fmt(size / 1e6 if size else None, ".2f"),
        "median_ms": fmt(latency["median_ms"], ".3f"),
        "p90_ms": fmt(latency["p90_ms"], ".3f") + (f" {UNSTABLE_MARK}" if latency.get("unstable") else ""),
        "throughput": throughput_cell(result),
        "speedup": fmt(result.get("speedup_vs_torch"), ".2f") + ("×" if result.get("speedup_vs_torch") else ""),
        "fidelity": fidelity_label(result.get("fidelity")),
    }


# (key, header) of the cold-start and memory table.
DETAIL_COLUMNS = (
    ("artifact", "artifact"),
    ("batch", "batch"),
    ("load_s", "load + compile s"),
    ("first_ms", "first call ms"),
    ("peak_rss", "peak RSS MB"),
    ("rss_growth", "RSS growth MB"),
    ("spread", "min / mean / p99 / max ms"),
    ("std_ms", "std ms"),
    ("outliers", "outliers"),
    ("calls", "calls"),
)


def detail_row(result: dict[str, Any]) -> dict[str, str]:
    latency = result["latency"]
    memory = result.get("memory") or {}
    before, loaded = memory.get("rss_before_load_mb"), memory.get("rss_loaded_mb")
    growth = loaded - before if before is not None and loaded is not None else None
    spread = " / ".join(fmt(latency.get(k), ".3f") for k in ("min_ms", "mean_ms", "p99_ms", "max_ms"))
    return {
        "artifact": str(result["artifact"]),
        "batch": str(result["batch"]),
        "threads": fmt(result.get("threads"), "d"),
        "load_s": fmt(result.get("load_s"), ".3f"),
        "first_ms": fmt(result.get("first_infer_ms"), ".2f"),
        "peak_rss": fmt(memory.get("peak_rss_mb"), ".0f"),
        "rss_growth": fmt(growth, ".0f"),
        "spread": spread,
        "std_ms": fmt(latency.get("std_ms"), ".3f"),
        # None where the timer counted none (trtexec): "—", not 0.
        "outliers": fmt(latency.get("outliers", latency.get("outliers_low", 0) + latency.get("outliers_high", 0)), "d"),
        "calls": str(latency["count"]),
    }


def swept_threads(results: list[dict[str, Any]]) -> bool:
    """Whether one artifact was timed at more than one thread count (then each table shows it).
    Backends left at their defaults report different counts (PyTorch's is not ONNX Runtime's):
    that alone is no sweep."""
    counts: dict[tuple, set] = {}
    for r in results:
        counts.setdefault((r.get("artifact"), r.get("backend"), r.get("batch")), set()).add(r.get("threads"))
    return any(len(c) > 1 for c in counts.values())


def with_threads(columns: tuple[tuple[str, str], ...], results: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """``columns`` with a threads column after the batch where the rows were timed at several."""
    if not swept_threads(results):
        return columns
    at = [k for k, _ in columns].index("batch") + 1
    return columns[:at] + (("threads", "threads"),) + columns[at:]


def detail_columns(results: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    return with_threads(DETAIL_COLUMNS, results)


def threads_words(threads: int | None) -> str:
    """``1 thread``, ``4 threads``; None: the backends' defaults."""
    return "each backend's default threads" if threads is None else f"{threads} thread{'s' if threads != 1 else ''}"


def threads_text(threads: Any) -> Any:
    """A results document's ``settings.threads`` as reports show it: one count as it is, a sweep (a
    list) joined, none given in words."""
    if isinstance(threads, (list, tuple)):
        return ", ".join(map(str, threads)) or "backend default"
    return threads or "backend default"


def machine_line(doc: dict[str, Any]) -> str:
    m = doc.get("machine") or {}
    cores = m.get("cores") or {}
    flags = ", ".join(m.get("flags") or []) or "none of note"
    ov = m.get("openvino_default_precision")
    return (
        f"{m.get('cpu', 'unknown CPU')} ({m.get('arch', '?')}), {cores.get('usable', '?')} usable cores, "
        f"{fmt(m.get('memory_gib'), '.0f')} GiB; flags: {flags}"
        + (f"; OpenVINO CPU default precision: {ov}" if ov else "")
    )


def versions_line(doc: dict[str, Any]) -> str:
    versions = doc.get("versions") or {}
    return ", ".join(f"{k} {v}" for k, v in versions.items() if v)


def settings_line(doc: dict[str, Any]) -> str:
    s = doc.get("settings") or {}
    loop = f"{s['iterations']} calls" if s.get("iterations") else f"{s.get('duration')} s"
    threads = threads_text(s.get("threads"))
    hint = s.get("precision_hint") or "backend default"
    return (
        f"scenario {s.get('scenario')}, warmup {s.get('warmup')}, {loop} per batch, threads {threads}, "
        f"OpenVINO precision hint {hint}, {s.get('isolation', '')}"
    )


# Shown only when `edgecv eval` put an ``accuracy`` dict on some rows.
ACCURACY_COLUMNS = (("accuracy", "accuracy"), ("accuracy_delta", "Δ vs FP32"))
ACCURACY_NAMES = {"top1": "top-1", "map": "mAP"}


def accuracy_cells(result: dict[str, Any]) -> dict[str, str]:
    acc = result.get("accuracy") or {}
    if acc.get("value") is None:
        return {"accuracy": DASH, "accuracy_delta": DASH}
    text = f"{ACCURACY_NAMES.get(acc.get('metric'), acc.get('metric', ''))} {metric_percent(acc['value'])}"
    if acc.get("conf_thres") is not None:
        text += f" (conf {acc['conf_thres']:g})"
    delta = acc.get("delta")
    return {"accuracy": text, "accuracy_delta": delta_points(delta)}


def results_columns(results: list[dict[str, Any]]) -> tuple[tuple[tuple[str, str], ...], list[dict[str, str]]]:
    """The results table's columns and rows, with the accuracy columns where there is accuracy."""
    columns = with_threads(COLUMNS, results)
    if not any((r.get("accuracy") or {}).get("value") is not None for r in results):
        return columns, [result_row(r) for r in results]
    return columns + ACCURACY_COLUMNS, [{**result_row(r), **accuracy_cells(r)} for r in results]


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, accuracy) points no other point beats on both (faster and at least
    as accurate), in order of latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_line(results: list[dict[str, Any]]) -> str | None:
    """The artifacts on the latency–accuracy Pareto front, as a sentence; None without accuracy."""
    rows = [r for r in results if (r.get("accuracy") or {}).get("value") is not None]
    if not rows:
        return None
    front = pareto_front([(r["latency"]["median_ms"], r["accuracy"]["value"]) for r in rows])
    return "Latency–accuracy Pareto front (fastest first): " + ", ".join(str(rows[i]["artifact"]) for i in front) + "."


def accuracy_note(doc: dict[str, Any]) -> str | None:
    """What the report says when it has no accuracy to show, or None when it has some. A model with
    random weights has none: its latency is real, its outputs mean nothing."""
    if any(r.get("accuracy") for r in doc.get("results", [])):
        return None
    model = (doc.get("target") or {}).get("model") or {}
    if model.get("random_weights"):
        return (
            "Accuracy: none to show. The model has random weights (no --weights given): these engines "
            "show speed and fidelity to the FP32 model only. Export trained weights and run `edgecv eval "
            "RUN --data ...` to put accuracy next to latency."
        )
    return (
        "Accuracy: not measured for this run. `edgecv eval RUN --data ...` measures it (top-1/top-5 or "
        "COCO mAP) and a later `edgecv benchmark --report` shows it here."
    )
