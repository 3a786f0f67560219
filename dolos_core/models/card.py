"""A method's card: what the study needs to know about a method besides its network.

timm keeps a model's ``default_cfg`` (input size, interpolation, mean/std, the weights' URL)
and its ``checkpoint_filter_fn`` beside the model's class; this is the same idea for the study's
methods. A model file declares ``card = Card(...)`` on its ``DolosModel`` subclass and registers
the class (``models.register_model``); every loop over methods (the experiments of Table 2, the
figures' order and colours, the claims, the report) reads the registry, and the training code
reads the card for the transforms, the starting weights and the schedules. Adding a method is
one file and one import line (docs/development.md, "Add a method").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping


@dataclass(frozen=True)
class Schedule:
    """Optimisation schedule of one method under one supervision (docs/STUDY.md, 'Training')."""

    lr: float
    batch_size: int
    epochs: int
    iters_per_epoch: int

    def __post_init__(self) -> None:
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"a schedule's lr must be a positive number, got {self.lr!r}")
        for name in ("batch_size", "epochs", "iters_per_epoch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"a schedule's {name} must be an integer >= 1, got {value!r}")


# Every method's schedule in the smoke profile (seconds per training, for tests).
SMOKE_SCHEDULE = Schedule(1e-3, 4, 2, 2)


def _scratch(supervision: str, weak_init: str) -> str:
    return "random"


@dataclass(frozen=True)
class Card:
    """What the study needs to know about one method.

    - ``label``, ``colour``: its name and colour in tables and figures;
    - ``schedules``: profile name -> supervision (``weak``, ``full``) -> ``Schedule``; the smoke
      profile uses ``SMOKE_SCHEDULE`` unless the card names its own;
    - ``start``: supervision -> the paper's starting weights, a key of ``weights.WEIGHT_FILES``
      (``None``: from scratch);
    - ``lanczos``: the supervisions trained with a Lanczos resize and a random horizontal flip,
      as the authors' code does; the others use a bilinear resize and no flip;
    - ``mask_resize``: how a mask reaches the map's side under full supervision (``nearest``,
      or ``bilinear`` then binarised at 0.5);
    - ``checkpoint_filter``: ``(state, path) -> state``, renames a released checkpoint's
      tensors to this repository's names (and refuses one that cannot start the method), as
      timm's ``checkpoint_filter_fn``; ``None``: the names are ours already;
    - ``map_loss``: the name of the paper's per-cell map loss under full supervision (``ce``,
      ``bce``), for the loss-variants table;
    - ``init_option``: the constructor option that takes the profile's random-init scheme of
      weak training (Patches' ``weak_init``), if any; ``random_label``: how the report names a
      random start, ``(supervision, scheme) -> str``;
    - ``full_from``: the method whose full-supervision runs stand for this one's (a method that
      differs only in its weak loss: its setup C would retrain a duplicate); ``None``: its own;
    - ``beyond_paper``: a method of ours, not the paper's: the paper's claims compare the
      paper's methods only, and tables and figures mark it.
    """

    label: str
    colour: str
    schedules: Mapping[str, Mapping[str, Schedule]]
    start: Mapping[str, str | None] = field(default_factory=lambda: {"weak": None, "full": None})
    lanczos: tuple[str, ...] = ()
    mask_resize: str = "nearest"
    checkpoint_filter: Callable[[dict, str, object], dict] | None = None
    map_loss: str = "ce"
    init_option: str | None = None
    random_label: Callable[[str, str], str] = _scratch
    full_from: str | None = None
    beyond_paper: bool = False

    def schedule(self, profile: str, supervision: str) -> Schedule | None:
        """The schedule of ``supervision`` under the profile named ``profile`` (None: the card
        has none for that profile)."""
        by_sup = self.schedules.get(profile)
        if by_sup is None:
            return SMOKE_SCHEDULE if profile == "smoke" else None
        return by_sup.get(supervision)
