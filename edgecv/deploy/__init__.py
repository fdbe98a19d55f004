"""Deployment to boards edgecv cannot reach from here: the Jetson bundle (:mod:`.bundle`) and reading
trtexec logs back into benchmark results (:mod:`.trtexec_log`). Nothing here needs TensorRT or a GPU."""
