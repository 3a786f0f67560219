"""Cost of the post-processing extension per image: the scalar HDBSCAN (one score per pixel of
the map upsampled to the image) and the feature HDBSCAN (FOCAL's recipe: the map's cells on
the model's features), at the mini's and the paper's map sizes, on maps and features with a
planted fake region (10% of the image).

    .venv/bin/python benchmarks/bench_postprocess.py [--n 20]

Prints milliseconds per image for each variant and size, and what a paper-size test set
(1,000 images, the paper profile's ``postprocess_images``) costs per chain at that rate.
The feature variant's forward pass (the model's own features) is not included: it is one
prediction pass, timed by ``benchmarks/bench_train.py``'s prediction rate.
"""

from __future__ import annotations

import argparse

import numpy as np

from dolos_core.postprocess import Pipeline

# (what, cells per side, feature channels, image side): the mini at 96 px, the paper at 299 px
SIZES = [("mini Patches", 12, 256, 96), ("mini Grad-CAM / Attention", 6, 728, 96),
         ("paper Patches", 37, 256, 299), ("paper Grad-CAM / Attention", 19, 728, 299)]


def planted(n: int, side: int, channels: int, seed: int = 0):
    """``n`` maps (side, side) and features (channels, side, side) with a planted fake block."""
    rng = np.random.default_rng(seed)
    k = max(1, int(round(side * 0.32)))
    truth = np.zeros((side, side), bool)
    truth[side // 4:side // 4 + k, side // 3:side // 3 + k] = True
    maps = np.clip(np.where(truth, 0.7, 0.2) + rng.normal(0, 0.1, (n, side, side)), 0, 1).astype(np.float32)
    mu = rng.normal(0, 1, (2, channels))
    feats = rng.normal(0, 0.5, (n, side, side, channels)) + np.where(truth[..., None], mu[1], mu[0])
    return maps, feats.transpose(0, 3, 1, 2).astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20, help="images per measurement")
    a = ap.parse_args()
    chains = {
        "scalar HDBSCAN (mcs 500)": Pipeline(("hdbscan",), {"hdbscan": {"min_cluster_size": 500}}),
        "feature HDBSCAN (mcs 0.1)": Pipeline(("hdbscan-features",), {"hdbscan-features": {"min_cluster_frac": 0.1}}),
        "feature HDBSCAN (mcs 0.1) + score": Pipeline(("hdbscan-features",), {"hdbscan-features": {
            "min_cluster_frac": 0.1, "with_score": True}}),
    }
    print(f"{'map':28s} {'cells':>7s} {'image':>6s}  {'chain':36s} {'ms/image':>9s} {'1,000 images':>13s}")
    for what, side, channels, image in SIZES:
        maps, feats = planted(a.n, side, channels)
        for name, chain in chains.items():
            chain.apply(maps[:1], image, features=feats[:1] if chain.needs_features else None)  # warm-up
            _, sec = chain.apply(maps, image, features=feats if chain.needs_features else None)
            print(f"{what:28s} {side:>4d}^2 {image:>5d}px  {name:36s} {1000 * sec:9.1f} {1000 * sec / 60:10.1f} min")


if __name__ == "__main__":
    main()
