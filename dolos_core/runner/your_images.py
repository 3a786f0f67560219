"""``./run_all.sh predict --images PATH --experiment NAME [--checkpoint FILE] [--out DIR]``: maps,
overlays and scores for your own images (``dolos_core.localize``), with one line for what cannot
be used (a path, an untrained experiment, a checkpoint of another method) and no traceback."""

from __future__ import annotations

import sys
from pathlib import Path

from .. import cpu_pin
from ..config import ConfigError, get_paths, get_profile
from ..localize import ImagesError, find_images, load_localizer, localize_images
from .cli import parse_args
from .overrides import parse_set


def main(argv: list[str] | None = None) -> int:
    args = parse_args(["predict", *(sys.argv[1:] if argv is None else argv)])
    try:
        from ..experiments import get_experiment

        try:
            get_experiment(args.experiment)
        except KeyError as exc:
            raise ConfigError(str(exc).strip("'\"")) from None
        profile = get_profile(args.profile, **parse_set(args.sets))
        cpu_pin.set_mode(profile.cpu_numerics)
        paths = get_paths(args.profile, args.data_root, root=args.repo, tag=args.tag)
        if not 0 < args.threshold < 1:
            raise ConfigError(f"--threshold must be between 0 and 1, got {args.threshold}")
        files = find_images(args.images)
        localizer = load_localizer(args.experiment, profile, paths, args.device, args.checkpoint)
    except (ConfigError, ImagesError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    name = Path(args.checkpoint).stem if args.checkpoint else args.experiment
    out = Path(args.out).expanduser() if args.out else paths.runs / "your_images" / name
    print(f"{len(files)} image(s) from {args.images} · model {localizer.source} on {localizer.device} · "
          f"out {out}", flush=True)
    table = localize_images(localizer, args.images, out, batch_size=args.batch, threshold=args.threshold)
    bad = table[table["error"].fillna("") != ""]
    for _, row in bad.iterrows():
        print(f"skipped: {row['error']}", flush=True)
    good = table.drop(bad.index)
    if len(good):
        print(f"{len(good)} mapped · image score (fake probability) median {good['score'].median():.3f}, "
              f"{int((good['score'] > 0.5).sum())} with a score above 0.5 · {out / 'scores.csv'}, "
              f"{out / 'maps'}/, {out / 'overlays'}/", flush=True)
    return 0 if len(good) else 1


if __name__ == "__main__":
    raise SystemExit(main())
