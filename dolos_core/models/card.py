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


@dataclass(frozen=True)
class Option:
    """One constructor option a method declares on its card (e.g. Patches' ``weak_init``):
    ``values``, the values it takes (the first is the default); ``supervisions``, those whose
    network it changes (a run of another supervision neither takes it nor carries it in its
    id); ``help``, one line for ``--list`` and the docs. A profile sets it per method
    (``Profile.method_options``, ``--set method_options.<method>.<option>=VALUE``)."""

    values: tuple
    supervisions: tuple[str, ...] = ("weak", "full")
    help: str = ""

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("an option needs at least one value (the first is its default)")

    @property
    def default(self):
        return self.values[0]


def _scratch(supervision: str, options: Mapping[str, object]) -> str:
    return "random"


@dataclass(frozen=True)
class Card:
    """What the study needs to know about one method.

    - ``label``, ``colour``: its name and colour in tables and figures;
    - ``schedules``: profile name -> supervision (``weak``, ``full``) -> ``Schedule``; the smoke
      profile uses ``SMOKE_SCHEDULE`` unless the card names its own;
    - ``start``: supervision -> the paper's starting weights, a key of ``weights.WEIGHT_FILES``
      (``None``: from scratch);
    - ``authors_transform``: the supervisions trained with the authors' transform, a Lanczos
      resize and a random horizontal flip; the others use a bilinear resize and no flip;
    - ``mask_resize``: how a mask reaches the map's side under full supervision (``nearest``,
      or ``bilinear`` then binarised at 0.5);
    - ``checkpoint_filter``: ``(state, path) -> state``, renames a released checkpoint's
      tensors to this repository's names (and refuses one that cannot start the method), as
      timm's ``checkpoint_filter_fn``; ``None``: the names are ours already;
    - ``map_loss``: the name of the paper's per-cell map loss under full supervision (``ce``,
      ``bce``), for the loss-variants table;
    - ``loss_variants``: whether its full supervision also trains with every registered map
      loss (the FakeLocator extension's setup C runs, ``{method}-C-{loss}``);
    - ``options``: name -> ``Option``, the constructor options the study sets per method
      (Patches' ``weak_init``); ``random_label``: how the report names a random start,
      ``(supervision, options) -> str``;
    - ``full_runs_of``: the method whose setup C runs stand for this one's (a method that
      differs only in its weak loss: its setup C would retrain a duplicate); ``None``: its own;
    - ``weak_variant_of``: the method this one changes only the weak loss of: its setup B is
      compared with that method's (a claim of its own) and drawn beside it in the geometry stage;
    - ``beyond_paper``: a method of ours, not the paper's: the paper's claims compare the
      paper's methods only, and tables and figures mark it.
    """

    label: str
    colour: str
    schedules: Mapping[str, Mapping[str, Schedule]]
    start: Mapping[str, str | None] = field(default_factory=lambda: {"weak": None, "full": None})
    authors_transform: tuple[str, ...] = ()
    mask_resize: str = "nearest"
    checkpoint_filter: Callable[[dict, str, object], dict] | None = None
    map_loss: str = "ce"
    loss_variants: bool = False
    options: Mapping[str, Option] = field(default_factory=dict)
    random_label: Callable[[str, Mapping[str, object]], str] = _scratch
    full_runs_of: str | None = None
    weak_variant_of: str | None = None
    beyond_paper: bool = False

    def options_for(self, supervision: str, chosen: Mapping[str, object] | None = None) -> dict:
        """The constructor options of a ``supervision`` run: each option that changes that
        supervision's network, at its value in ``chosen`` (a profile's or an experiment's), else
        its default."""
        chosen = chosen or {}
        return {name: chosen.get(name, opt.default) for name, opt in self.options.items()
                if supervision in opt.supervisions}

    def schedule(self, profile: str, supervision: str) -> Schedule | None:
        """The schedule of ``supervision`` under the profile named ``profile`` (None: the card
        has none for that profile)."""
        by_sup = self.schedules.get(profile)
        if by_sup is None:
            return SMOKE_SCHEDULE if profile == "smoke" else None
        return by_sup.get(supervision)
