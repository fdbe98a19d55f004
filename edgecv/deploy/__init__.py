"""Deployment to boards edgecv cannot reach from here: the Jetson bundle (:mod:`.bundle`, its scripts
and README) and trtexec logs read back (:mod:`.trtexec_log`) into benchmark results
(:mod:`.trtexec_results`). Nothing here needs TensorRT or a GPU."""
