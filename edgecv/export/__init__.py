"""Export: torch → ONNX, verification, simplification, OpenVINO IR, INT8, TensorRT, the run folder.

This package is only a package: the function that runs an export is :func:`edgecv.export_model`
(:func:`edgecv.export.pipeline.export`). A package cannot also be a function: importing any of its
modules binds ``edgecv.export`` to the package.
"""
