"""Starting weights, offline-first (docs/STUDY.md, "Initialisation").

The study starts each method from a different place (each method's card says where,
``Card.start``):

| method    | supervision | start (the paper)                                   | file in ``weights/``   |
|-----------|-------------|-----------------------------------------------------|------------------------|
| patches   | weak        | from scratch, Patch-Forensics' Xavier init (0.02)   | none                   |
| patches   | full        | from scratch, PyTorch's default init                | none                   |
| gradcam   | weak, full  | ImageNet Xception (timm ``legacy_xception``)        | ``legacy_xception.pth``|
| attention | weak, full  | the FFD authors' checkpoint (Xception + reg. map)   | ``xcp_reg.tar``        |

Weights are only ever *read* from a local folder (the profile's ``weights_dir``, default
``weights/`` in the repository). ``scripts/fetch_weights.sh`` downloads them on a connected
machine; nothing here touches the network.

The profile's ``init`` policy decides what happens:
- ``paper``: start as the paper did; a missing file stops the run with one line naming the file,
  where to get it and ``--init random``.
- ``auto`` (mini, smoke): the paper's start when the file is there, random otherwise; what was
  used is recorded with the run and shown in the report.
- ``random``: every method from random weights (Patches keeps the authors' init scheme).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .models import card

INIT_POLICIES = ("paper", "auto", "random")


@dataclass(frozen=True)
class WeightFile:
    name: str          # file name inside the weights folder
    what: str          # what it is
    source: str        # where its authors publish it
    used_by: str       # which runs start from it


WEIGHT_FILES = {
    "imagenet": WeightFile(
        "legacy_xception.pth", "ImageNet-pretrained Xception (timm legacy_xception, Cadene's port)",
        "timm: timm.create_model('legacy_xception', pretrained=True) (Hugging Face hub "
        "timm/legacy_xception.tf_in1k); Cadene's xception-b5690688.pth is accepted too",
        "gradcam-* (weak and full)"),
    "ffd": WeightFile(
        "xcp_reg.tar", "FFD (Dang et al., CVPR 2020) Xception with a regression attention map",
        "https://github.com/JStehouwer/FFD_CVPR2020/releases/download/v2.0/xcp_reg.tar",
        "attention-* (weak and full)"),
    "patches-release": WeightFile(
        "dolos-patches/", "the DOLOS authors' trained Patches models (sections 5.1 and 5.2)",
        "https://sharing.speed.pub.ro/owncloud/index.php/s/MTSTY7tnKqn21h4/download (one zip)",
        "optional: evaluating the authors' own models (--init FILE --set max_iters=0; docs/running.md)"),
}


def paper_start(method: str, supervision: str) -> str | None:
    """The weight file (a key of ``WEIGHT_FILES``) a ``method``/``supervision`` run starts from
    in the paper, from the method's card (None: from scratch)."""
    return card(method).start.get(supervision)


class WeightsMissing(FileNotFoundError):
    """A weight file the paper's initialisation needs is not in the weights folder."""


@dataclass(frozen=True)
class InitChoice:
    """What one run starts from: ``random`` or a file; ``label`` is what the report shows."""

    kind: str                 # "random" | "file"
    path: Path | None = None
    label: str = "random"


def default_weights_dir(root: Path) -> Path:
    return Path(root) / "weights"


def resolve_init(method: str, supervision: str, policy: str, weights_dir: str | Path,
                 options: dict | None = None) -> InitChoice:
    """The start of a ``method``/``supervision`` run under ``policy`` (see module doc).
    ``policy`` may also be a checkpoint path, used as it is. ``options``: the run's method
    options (``Card.options``; None: the card's defaults), for the label of a random start."""
    if policy not in INIT_POLICIES:
        path = Path(policy).expanduser()
        if not path.is_file():
            raise WeightsMissing(f"init checkpoint {path} does not exist")
        return InitChoice("file", path.resolve(), f"checkpoint {path.name}")
    key = paper_start(method, supervision)
    if policy == "random" or key is None:
        c = card(method)
        return InitChoice("random", None, c.random_label(supervision, c.options_for(supervision, options)))
    wf = WEIGHT_FILES[key]
    path = Path(weights_dir).expanduser() / wf.name
    if path.is_file():
        return InitChoice("file", path.resolve(), f"{key} ({wf.name})")
    if policy == "auto":
        return InitChoice("random", None, f"random (no {wf.name} in the weights folder)")
    raise WeightsMissing(
        f"{path} is missing: the paper starts {method} from {wf.what}. Get it with "
        f"scripts/fetch_weights.sh on a connected machine (source: {wf.source}) and put it in "
        f"{Path(weights_dir).expanduser()} (or point --weights DIR at it), or run without it "
        "with --init random")
