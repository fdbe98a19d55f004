"""Resident memory of this process: edgecv's one reader of it (the benchmark's memory figures, the
INT8 report's peak).

Two readings with different meanings: the current RSS (``/proc/self/statm``), which goes down when
memory is freed, and the peak RSS (``VmHWM`` in ``/proc/self/status``), which never does. A peak is
only attributable to one artifact in a process that ran nothing else, which is why the benchmark
runs each artifact in a fresh subprocess unless told otherwise. ``getrusage``'s ``ru_maxrss`` is
only the fallback where there is no ``/proc`` (macOS): on Linux it survives ``execve``, so a fresh
worker would report its parent's peak. Where neither exists (Windows) both readings are ``None``.
"""

from __future__ import annotations

import os
import sys

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]

MB = 1e6


def current_rss_mb() -> float | None:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MB
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / MB
    except (OSError, ValueError, IndexError):
        pass
    if resource is None:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak / MB if sys.platform == "darwin" else peak * 1024 / MB
