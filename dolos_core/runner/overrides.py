"""``--set`` on the command line: profile overrides (``FIELD=VALUE``) and a stage's own
options (``STAGE.OPTION=VALUE``), parsed once for the pipeline (notebooks take the same
overrides as a dict, ``overrides``)."""

from __future__ import annotations

import ast
import dataclasses
import difflib
from typing import Any

from ..config import ConfigError, Profile
from ..models.card import Schedule


def parse_set(items: list[str] | tuple[str, ...], stage_names: tuple[str, ...] = ()) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items -> profile overrides. Values are Python literals (``2``,
    ``1e-4``, ``None``, ``True``) or else strings; ``schedules.patches-weak.lr=1e-4`` sets one
    field of one schedule; ``method_options.patches.weak_init=authors`` one method's option;
    ``STAGE.OPTION=VALUE`` (a name of ``stage_names``) a stage's own
    option, returned under the key ``"STAGE.OPTION"`` (``pipeline.stage_options`` checks it)."""
    out: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(Profile)}
    for item in items:
        field_name, sep, text = item.partition("=")
        field_name = field_name.strip()
        if not sep or not field_name:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            value: Any = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = text.strip()
        if value == "none":
            value = None
        head, _, rest = field_name.partition(".")
        if head in stage_names and rest:
            out[field_name] = value
            continue
        if head not in names:
            close = difflib.get_close_matches(head, sorted(names), n=2)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            if head in {f.name for f in dataclasses.fields(Schedule)}:
                hint = (f" ({head} is a schedule's: schedules.<method>-<supervision>.{head}, "
                        f"e.g. schedules.patches-full.{head})")
            raise ConfigError(f"--set {item!r}: unknown profile field {head!r}{hint}; "
                              f"valid fields: {', '.join(sorted(names))}")
        if head == "schedules":
            key, _, sfield = rest.partition(".")
            sched_fields = {f.name for f in dataclasses.fields(Schedule)}
            if not key or sfield not in sched_fields:
                raise ConfigError(f"--set {item!r}: use schedules.<method>-<supervision>.<field>, "
                                  f"field one of {', '.join(sorted(sched_fields))}")
            out.setdefault("schedules", {}).setdefault(key, {})[sfield] = value
        elif head == "method_options":
            method, _, option = rest.partition(".")
            if not method or not option or "." in option:
                raise ConfigError(f"--set {item!r}: use method_options.<method>.<option>=VALUE, "
                                  "e.g. method_options.patches.weak_init=authors")
            out.setdefault("method_options", {}).setdefault(method, {})[option] = value
        elif rest:
            raise ConfigError(f"--set {item!r}: {head!r} has no sub-fields")
        else:
            out[head] = value
    return out
