"""What edgecv knows of TensorRT, without needing TensorRT: the Q/DQ rules of its ONNX parser
(:mod:`.rules`), which operators each version imports (:mod:`.operators`), the preflight of a graph
(:mod:`.preflight`, :mod:`.run_folder_preflight`), the engine build and its recipes (:mod:`.build`),
the FP16 copies strongly typed builds read (:mod:`.fp16`), and facts about an installation and its
GPU (:mod:`.installation`). Used by export, calibration, deploy and the TensorRT runtime.

Nothing is imported here: a Jetson board running engines imports :mod:`.installation` alone, without
ONNX; only :func:`.build.build_engine` imports ``tensorrt`` itself.
"""
