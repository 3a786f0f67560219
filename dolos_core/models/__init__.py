"""Models of the study. Each method is one file that registers itself
(``@register_model``, ``models/registry.py``, as timm's model files); this package only imports
the files, in the order tables and figures list the methods (the paper's three first).

Every model is built the same way, ``build_model(method, supervision, init, loss_cfg,
**options)``, and ``model.predict(x)`` returns a fake-probability map and an image score
(``base.DolosModel``). Adding a method: one file here and one import line below
(docs/development.md, "Add a method").
"""

from . import gradcam, patches, attention  # noqa: F401  (the paper's methods, in the paper's order)
from . import patches_mil  # noqa: F401  (ours: weak Patches with a pooled image loss)
from .backbone import InitError
from .base import SUPERVISIONS, DolosModel
from .card import Card, Schedule
from .checkpoints import map_ffd_names, map_patch_forensics_names
from .registry import (MODELS, build_model, card, count_parameters, list_models, load_pretrained, method_sources,
                       methods, model_options, register_model, unregister_model)

__all__ = ["build_model", "register_model", "unregister_model", "list_models", "methods", "card",
           "model_options", "method_sources", "DolosModel", "Card", "Schedule", "InitError", "MODELS",
           "SUPERVISIONS", "map_patch_forensics_names", "map_ffd_names", "load_pretrained", "count_parameters"]
