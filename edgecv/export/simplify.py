"""onnxsim simplification, with the raw graph kept when onnxsim fails on a model."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx

# What onnxsim's C++ constant folding prints (std::cerr) for each node it could not evaluate.
_UNFOLDED = re.compile(r'WARNING: failed to run "([^"]+)" op \(name is "([^"]*)"\)[^\n]*\n?')


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


@contextlib.contextmanager
def native_output() -> Iterator[list[str]]:
    """Collect what native code writes to file descriptors 1 and 2 while the block runs, into the
    one-item list yielded. onnxsim prints from C++, past ``sys.stdout``/``sys.stderr``, so only the
    descriptors themselves catch it, and it would otherwise land in the user's terminal or ``--json``."""
    captured: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no descriptors to redirect (an embedding host): nothing to keep clean either
        yield captured
        return
    with tempfile.TemporaryFile() as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield captured
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            for fd, original in zip((1, 2), saved):
                os.dup2(original, fd)
                os.close(original)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def unfolded_note(text: str) -> tuple[dict[str, Any], str]:
    """The nodes onnxsim could not constant-fold, as one note, and the rest of its output."""
    ops = Counter(m.group(1) for m in _UNFOLDED.finditer(text))
    rest = _UNFOLDED.sub("", text).strip()
    if not ops:
        return {}, rest
    total = sum(ops.values())
    listed = ", ".join(f"{op} ×{n}" for op, n in ops.most_common())
    return {
        "unfolded_nodes": total,
        "note": (
            f"onnxsim could not constant-fold {total} node(s) ({listed}); they stay in the graph as "
            "exported, which costs a little speed and nothing in accuracy"
        ),
    }, rest


def simplify_onnx(raw: Path, out: Path) -> dict[str, Any]:
    """Simplify ``raw`` into ``out``. If onnxsim errors or cannot validate its result, copy the raw
    graph instead and say why: a working, unsimplified graph beats no artifact."""
    model = onnx.load(str(raw))
    before = len(model.graph.node)
    info: dict[str, Any] = {"nodes_before": before, "ops_before": op_histogram(model)}
    try:
        import onnxsim

        info["onnxsim"] = getattr(onnxsim, "__version__", "unknown")
        printed: list[str] = []
        try:
            with native_output() as printed:
                simplified, ok = onnxsim.simplify(model)
        finally:
            _record_output(info, printed)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified graph against the original")
        onnx.checker.check_model(simplified)
    except Exception as exc:  # onnxsim raises bare RuntimeErrors from C++; any failure means "keep raw"
        shutil.copyfile(raw, out)
        info.update(simplified=False, reason=f"{type(exc).__name__}: {exc}", nodes_after=before)
        return info
    onnx.save(simplified, str(out))
    info.update(
        simplified=True,
        nodes_after=len(simplified.graph.node),
        ops_after=op_histogram(simplified),
    )
    return info


def _record_output(info: dict[str, Any], printed: list[str]) -> None:
    note, rest = unfolded_note("".join(printed))
    info.update(note)
    # A live progress display redraws (terminal control codes) into the same descriptors meanwhile.
    lines = [line for line in re.split(r"[\r\n]+", rest) if line.strip() and "\x1b" not in line]
    if lines:  # anything else onnxsim said stays in the manifest, out of the terminal
        info["onnxsim_output"] = lines[:20]
