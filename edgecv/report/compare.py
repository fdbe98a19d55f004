"""Merge several ``results.json`` and compare them against the first: the same artifacts on two
machines, two library versions, two thread counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import plots
from .format import DASH, fmt, machine_line, threads_text
from .html import esc, figure, html_table, page
from .markdown import md_escape, md_table
from .schema import COMPARISON_SCHEMA


def run_labels(paths: Sequence[str | Path], docs: Sequence[dict[str, Any]] | None = None) -> list[str]:
    """Short unique names for the runs: the run folder (or artifact) each benchmarked; where two runs
    benchmarked the same one, as many trailing folders of their results files as tell them apart."""
    if docs is not None:
        targets = [Path(str((d.get("target") or {}).get("path") or "")).name for d in docs]
        if all(targets) and len(set(targets)) == len(targets):
            return targets
    trails = []
    for p in (Path(x).expanduser().absolute() for x in paths):
        parts = list(p.parent.parts[1:]) if p.stem == "results" else [*p.parent.parts[1:], p.stem]
        trails.append(parts or [p.stem])
    depth = [1] * len(trails)
    while True:
        labels = ["/".join(t[-d:]) for t, d in zip(trails, depth)]
        clashing = [i for i, label in enumerate(labels) if labels.count(label) > 1 and depth[i] < len(trails[i])]
        if not clashing:
            break
        for i in clashing:
            depth[i] += 1
    unique: list[str] = []
    for base in labels:
        label, n = base, 2
        while label in unique:
            label, n = f"{base}-{n}", n + 1
        unique.append(label)
    return unique


def _setting_fields(doc: dict[str, Any]) -> dict[str, Any]:
    """What a reader checks first when two runs disagree: how each was timed, on what, with what."""
    s = doc.get("settings") or {}
    m = doc.get("machine") or {}
    loop = f"{s['iterations']} calls" if s.get("iterations") else (f"{s['duration']} s" if s.get("duration") else None)
    return {
        "scenario": s.get("scenario"),
        "batch": ", ".join(map(str, s["batches"])) if s.get("batches") else "scenario's",
        "threads": threads_text(s.get("threads")),
        "precision hint": s.get("precision_hint") or "backend default",
        "shape": s.get("shape"),
        "timed calls": loop,
        "warmup": s.get("warmup"),
        "isolation": s.get("isolation"),
        "CPU": m.get("cpu"),
        "usable cores": (m.get("cores") or {}).get("usable"),
        "CPU flags": ", ".join(m.get("flags") or []) or None,
        "memory GiB": m.get("memory_gib"),
        "OpenVINO CPU default precision": m.get("openvino_default_precision"),
        "OS": m.get("os"),
        "edgecv": doc.get("edgecv_version"),
        **{tool: version for tool, version in (doc.get("versions") or {}).items() if tool != "edgecv"},
    }


def run_differences(docs: Sequence[dict[str, Any]]) -> dict[str, list[Any]]:
    """Every setting, machine fact and tool version whose value is not the same in all runs."""
    fields = [_setting_fields(doc) for doc in docs]
    keys = list(dict.fromkeys(k for f in fields for k in f))
    return {k: [f.get(k) for f in fields] for k in keys if len({repr(f.get(k)) for f in fields}) > 1}


def headline(runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """``throughput`` when every run is the offline or throughput scenario (their headline), else
    ``latency``."""
    scenarios = {(doc.get("settings") or {}).get("scenario") for _, doc in runs}
    return "throughput" if scenarios <= {"offline", "throughput"} else "latency"


def _manifest_sha256(path: Path, doc: dict[str, Any]) -> str | None:
    """The sha256 the run folder's manifest records for ``path``."""
    from edgecv.errors import ArtifactError
    from edgecv.runfolder import find_artifact, read_manifest

    target = doc.get("target") or {}
    try:
        if target.get("kind") == "run-folder":
            folder = Path(str(target.get("path")))
            relative = path.relative_to(folder).as_posix()
            manifest = read_manifest(folder)
        else:
            found = find_artifact(path)
            if found is None:
                return None
            record, manifest, _ = found
            relative = record.get("path", "")
    except (ValueError, OSError, ArtifactError):
        return None
    return ((manifest.get("files") or {}).get(relative) or {}).get("sha256")


def source_sha256(result: dict[str, Any], doc: dict[str, Any]) -> str | None:
    """The sha256 of the ONNX file a row ran or, for an engine, was built from (``edgecv
    import-trtexec`` records it): what lines a board's engine up with a CPU's ONNX figures."""
    if result.get("source_sha256"):
        return str(result["source_sha256"])
    path = Path(str(result.get("path") or ""))
    if path.suffix != ".onnx":
        return None
    found = _manifest_sha256(path, doc)
    if found is None and path.is_file():
        from edgecv.runfolder import sha256_file

        found = sha256_file(path)
    return found


def _new_row(n: int, key: tuple, source: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"_key": key, "_source": source, "batch": key[3], "scenario": key[2], "threads": key[4]}
    for field in ("artifacts", "backends", "medians", "p90s", "throughputs", "precisions"):
        row[field] = [None] * n
    return row


def _fill(row: dict[str, Any], j: int, r: dict[str, Any]) -> None:
    row["artifacts"][j] = r["artifact"]
    row["backends"][j] = r["backend"]
    row["medians"][j] = r["latency"].get("median_ms")
    row["p90s"][j] = r["latency"].get("p90_ms")
    row["throughputs"][j] = (r.get("concurrency") or {}).get("items_per_s") or r.get("throughput_ips")
    row["precisions"][j] = r.get("precision")


def _place(rows: list[dict[str, Any]], n: int, j: int, key: tuple, source: str | None) -> dict[str, Any]:
    """The row a result of run ``j`` belongs in: the same artifact (by name), else the first run's
    artifact built from the same ONNX file at the same batch; a second engine from that file gets a
    row of its own next to it, repeating the first run's figures."""
    for row in rows:
        if row["_key"] == key and row["artifacts"][j] is None:
            return row
    same = [] if j == 0 or source is None else [r for r in rows if r["_source"] == source and r["_key"][3:] == key[3:]]
    same = [r for r in same if r["artifacts"][0] is not None]
    # Where a third run has the same engines, each goes to the row of its namesake.
    for row in sorted(same, key=lambda r: key[0] not in r["artifacts"]):
        if row["artifacts"][j] is None:
            row["matched_by"] = "source ONNX sha256"
            return row
    row = _new_row(n, key, source)
    if same:
        for field in ("artifacts", "backends", "medians", "p90s", "throughputs", "precisions"):
            row[field][0] = same[0][field][0]
        row.update(_key=same[0]["_key"], matched_by="source ONNX sha256")
        rows.insert(rows.index(same[-1]) + 1, row)
    else:
        rows.append(row)
    return row


def _speedups(row: dict[str, Any], by_throughput: bool) -> None:
    """The headline figure of each run and its speed-up over the first run (above 1: faster), the
    way `edgecv benchmark` reports: p90 latency, or items/s in the offline and throughput scenarios.
    A row where some run has no p90 (trtexec before TensorRT 8.6 prints only p99) compares medians."""
    present = [j for j, a in enumerate(row["artifacts"]) if a is not None]
    if by_throughput:
        row["statistic"], values = "items/s", row["throughputs"]
    elif all(row["p90s"][j] is not None for j in present):
        row["statistic"], values = "p90", row["p90s"]
    else:
        row["statistic"], values = "median", row["medians"]
    row["values"] = list(values)
    base = values[0]
    speedups: list[float | None] = []
    for value in values:
        if base is None or value is None or not base or not value:
            speedups.append(None)
        else:
            speedups.append(value / base if by_throughput else base / value)
    row["speedups"] = speedups


def compare_runs(runs: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rows of the same artifact (or, for an engine, the ONNX file it was built from) at one batch,
    with each run's median, p90 and throughput, the headline figure and each run's speed-up over the
    first (above 1: faster)."""
    labels = [label for label, _ in runs]
    by_throughput = headline(runs) == "throughput"
    rows: list[dict[str, Any]] = []
    for j, (_, doc) in enumerate(runs):
        # A thread sweep's rows are told apart by their thread count; other runs' are not.
        swept = isinstance((doc.get("settings") or {}).get("threads"), list)
        for r in doc["results"]:
            key = (r["artifact"], r["backend"], r["scenario"], r["batch"], r.get("threads") if swept else None)
            source = source_sha256(r, doc)
            row = _place(rows, len(runs), j, key, source)
            _fill(row, j, r)
            if r.get("source_onnx") and source:
                row.setdefault("source_onnx", r["source_onnx"])
    for row in rows:
        row.pop("_key")
        row.pop("_source")
        names = [a for a in row["artifacts"] if a is not None]
        row["artifact"] = names[0]
        row["backend"] = next(b for b in row["backends"] if b is not None)
        row.setdefault("matched_by", "artifact")
        _speedups(row, by_throughput)
        threads = f" · {row['threads']}t" if row["threads"] is not None else ""
        row["label"] = f"{' ↔ '.join(dict.fromkeys(names))} · b{row['batch']}{threads}"
    tools = sorted({k for _, doc in runs for k in (doc.get("versions") or {})})
    differing = {
        k: [(doc.get("versions") or {}).get(k) for _, doc in runs]
        for k in tools
        if len({(doc.get("versions") or {}).get(k) for _, doc in runs}) > 1
    }
    return {
        "schema": COMPARISON_SCHEMA,
        "baseline": labels[0],
        "runs": [
            {
                "label": label,
                "created": doc.get("created"),
                "target": (doc.get("target") or {}).get("path"),
                "machine": machine_line(doc),
                "settings": doc.get("settings"),
            }
            for label, doc in runs
        ],
        "versions_differing": differing,
        "differences": run_differences([doc for _, doc in runs]),
        "headline": "throughput" if by_throughput else "latency",
        "rows": rows,
    }


def _columns(labels: list[str], by_throughput: bool) -> list[tuple[str, str]]:
    cols = [("artifact", "artifact"), ("backend", "backend"), ("batch", "batch")]
    figure = "items/s" if by_throughput else "p90 ms"
    cols += [(f"value{j}", f"{figure} · {label}") for j, label in enumerate(labels)]
    cols += [(f"speedup{j}", f"× faster than {labels[0]} · {label}") for j, label in enumerate(labels) if j > 0]
    return cols


def _cells(row: dict[str, Any], by_throughput: bool) -> dict[str, str]:
    cells = {
        "artifact": " ↔ ".join(dict.fromkeys(a for a in row["artifacts"] if a is not None)),
        "backend": " ↔ ".join(dict.fromkeys(b for b in row["backends"] if b is not None)),
        # A thread sweep's rows: the thread count next to the batch.
        "batch": str(row["batch"]) + (f" · {row['threads']}t" if row.get("threads") is not None else ""),
    }
    marker = " (median)" if row["statistic"] == "median" else ""
    for j, (value, speedup) in enumerate(zip(row["values"], row["speedups"])):
        cells[f"value{j}"] = fmt(value, ".1f" if by_throughput else ".3f") + (marker if value is not None else "")
        cells[f"speedup{j}"] = DASH if speedup is None else f"{speedup:.2f}×" + marker
    return cells


def comparison_rows(comparison: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    labels = [r["label"] for r in comparison["runs"]]
    by_throughput = comparison.get("headline") == "throughput"
    return _columns(labels, by_throughput), [_cells(row, by_throughput) for row in comparison["rows"]]


def numeric_columns(columns: Sequence[tuple[str, str]]) -> set[str]:
    return {k for k, _ in columns if k.startswith(("value", "speedup")) or k == "batch"}


def speedup_note(comparison: dict[str, Any]) -> str:
    """What the figures and the speed-up columns mean, in `edgecv benchmark`'s terms."""
    base = comparison["baseline"]
    if comparison.get("headline") == "throughput":
        note = (
            "Offline/throughput scenario: throughput is the headline, as in `edgecv benchmark`. "
            f"× faster: this run's items/s divided by {base}'s (above 1: more throughput than {base})."
        )
    else:
        note = (
            "p90 latency, the headline of `edgecv benchmark`. "
            f"× faster: {base}'s p90 divided by this run's (above 1: faster than {base}, like × PyTorch)."
        )
        if any(row.get("statistic") == "median" for row in comparison["rows"]):
            note += " (median): a run gives no p90 (trtexec before TensorRT 8.6), so that row compares medians."
    if any(row.get("matched_by") == "source ONNX sha256" for row in comparison["rows"]):
        note += " A ↔ B: engine B was built from ONNX file A (same sha256), so their figures share a row."
    return note


def difference_rows(comparison: dict[str, Any]) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    """One row per setting, machine fact or version that differs between the runs (empty if none)."""
    labels = [r["label"] for r in comparison["runs"]]
    columns = [("what", "differs")] + [(f"run{j}", label) for j, label in enumerate(labels)]
    rows = [
        {"what": what, **{f"run{j}": DASH if v is None else str(v) for j, v in enumerate(values)}}
        for what, values in (comparison.get("differences") or {}).items()
    ]
    return columns, rows


def render_comparison_markdown(comparison: dict[str, Any]) -> str:
    columns, rows = comparison_rows(comparison)
    numeric = numeric_columns(columns)
    lines = [f"# edgecv comparison against {md_escape(comparison['baseline'])}", ""]
    lines += [
        f"- **{md_escape(r['label'])}**: {md_escape(r['machine'])} ({md_escape(r['created'])}, {md_escape(r['target'])})"
        for r in comparison["runs"]
    ]
    diff_columns, diff_rows = difference_rows(comparison)
    lines += ["", "## What differs between the runs", ""]
    lines += [md_table(diff_columns, diff_rows) if diff_rows else "Nothing: same settings, machine and versions."]
    lines += ["", "## Results", "", md_table(columns, rows, numeric), "", speedup_note(comparison)]
    return "\n".join(lines) + "\n"


def render_comparison_html(comparison: dict[str, Any]) -> str:
    columns, rows = comparison_rows(comparison)
    numeric = numeric_columns(columns)
    labels = [r["label"] for r in comparison["runs"]]
    runs = "".join(
        f"<li><b>{esc(r['label'])}</b>: {esc(r['machine'])} ({esc(r['created'])}, {esc(r['target'])})</li>"
        for r in comparison["runs"]
    )
    diff_columns, diff_rows = difference_rows(comparison)
    diffs = (
        html_table(diff_columns, diff_rows, set())
        if diff_rows
        else "<p>Nothing: same settings, machine and versions.</p>"
    )
    body = "\n".join(
        [
            f"<h1>edgecv comparison against {esc(comparison['baseline'])}</h1>",
            f"<ul>{runs}</ul>",
            html_table(columns, rows, numeric),
            f'<p class="meta">{esc(speedup_note(comparison))}</p>',
            "<h2>What differs between the runs</h2>",
            diffs,
            figure(
                plots.comparison_bars(comparison["rows"], labels, comparison.get("headline") == "throughput"),
                "headline figure per run",
                "Each run's headline figure per artifact: p90 latency (a row marked (median) in the table: "
                "median), or items/s in the offline and throughput scenarios.",
            ),
        ]
    )
    return page(f"edgecv comparison against {comparison['baseline']}", body)
