"""Loaded by Python at start-up when this folder is on PYTHONPATH (subprocess tests only).

``EDGECV_FAKE_TRT=<version>`` installs the fake tensorrt/cuda modules (``EDGECV_FAKE_GPU_CC=8.7``
picks the fake GPU's compute capability); ``EDGECV_BLOCK_IMPORTS=torch,onnxruntime,openvino`` makes
those packages absent, as on a Jetson board that has none of them: ``None`` in ``sys.modules`` makes
``import`` fail and ``importlib.util.find_spec`` answer ``None``. Child processes inherit both.
"""

import os
import sys

_version = os.environ.get("EDGECV_FAKE_TRT")
if _version:
    _root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    sys.path.insert(0, _root)
    from tests.tensorrt_fake import modules

    _gpu = {}
    if os.environ.get("EDGECV_FAKE_GPU_CC"):
        _major, _minor = os.environ["EDGECV_FAKE_GPU_CC"].split(".")
        _gpu = {"major": int(_major), "minor": int(_minor)}
    sys.modules.update(modules(_version, _gpu))
    sys.path.remove(_root)

for _name in filter(None, os.environ.get("EDGECV_BLOCK_IMPORTS", "").split(",")):
    sys.modules[_name] = None
