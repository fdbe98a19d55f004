"""Accuracy next to latency: data sets (ImageFolder, ``.npz``, COCO, the generated shapes set),
metrics (top-k; COCO mAP through pycocotools) and ``edgecv eval``'s runner."""
