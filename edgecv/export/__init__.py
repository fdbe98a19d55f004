"""Export: torch → ONNX, verification, simplification, OpenVINO IR, INT8, TensorRT, the run folder.

``edgecv.export(...)`` is the library's entry point, but ``edgecv.export`` is also this package; so
the package itself is made callable (forwarding to :func:`edgecv.export.pipeline.export`) instead of
renaming either the public function or the folder DESIGN.md names.
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any):
        from .pipeline import export

        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
