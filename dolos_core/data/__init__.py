"""The DOLOS data layer: the layout and its validator, torch datasets, the DOLOS-mini builder."""

from .datasets import (ConcatDolos, DolosDataset, EpochSampler, Transform, collate, mask_to_fake,
                       read_mask, transform_for)
from .layout import (
    GENERATORS, PARTIAL_GENERATORS, SOURCES, SPLITS, DatasetError, DatasetKey, all_keys,
    validate_root,
)

__all__ = [
    "ConcatDolos", "DolosDataset", "EpochSampler", "Transform", "collate", "mask_to_fake", "read_mask",
    "transform_for",
    "GENERATORS", "PARTIAL_GENERATORS", "SOURCES", "SPLITS", "DatasetError", "DatasetKey",
    "all_keys", "validate_root",
]
