"""Precision planning: which layers of an INT8 artifact stay in float, by measured speed (see
:mod:`.plan`)."""

from .blocks import Block, attribute, group_blocks
from .measure import CostSource, OrtCosts
from .measure_openvino import OpenVinoCosts
from .plan import ALL_INT8, FP32, Candidate, PrecisionPlan, plan_artifact, plan_cpu_flavour, plan_precision, propose

__all__ = [
    "ALL_INT8",
    "FP32",
    "Block",
    "Candidate",
    "CostSource",
    "OpenVinoCosts",
    "OrtCosts",
    "PrecisionPlan",
    "attribute",
    "group_blocks",
    "plan_cpu_flavour",
    "plan_artifact",
    "plan_precision",
    "propose",
]
