"""Figure helpers shared by the notebooks (matplotlib / seaborn)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use(matplotlib.get_backend() if "inline" in matplotlib.get_backend() else "Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import metrics, resize  # noqa: E402
from .experiments import GENERATOR_NAMES  # noqa: E402
from .models import MODELS, methods  # noqa: E402


def save_figure(fig, figures_dir: str | Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``stem``.png (150 dpi) and ``stem``.pdf under ``figures_dir``, both
    byte-stable: no creation date nor software version in their metadata (the same figure
    saved twice is the same file, so a default run leaves ``git status`` clean)."""
    d = Path(figures_dir)
    d.mkdir(parents=True, exist_ok=True)
    out = [d / f"{stem}.png", d / f"{stem}.pdf"]
    fig.savefig(out[0], dpi=150, bbox_inches="tight", metadata={"Software": None})
    fig.savefig(out[1], bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                                        "Creator": None})
    return out


def loss_curves(history: list[dict], title: str = ""):
    df = pd.DataFrame(history)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(df["epoch"], df["train_loss"], "o-", label="train")
    ax.plot(df["epoch"], df["valid_loss"], "s-", label="valid")
    best = int(df["valid_loss"].idxmin())
    ax.axvline(df["epoch"][best], color="grey", ls=":", label="best (kept)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def map_grid(masks: np.ndarray | None, maps: dict[str, np.ndarray], images=None,
             threshold: float | None = None, row_labels=None, title: str | None = None):
    """The one map grid of the study: one row per image; columns: the input (when ``images``),
    the ground truth (when ``masks``, with its fake area), then one column per entry of
    ``maps`` (name -> (R, h, w) fake probabilities). Maps are shown upsampled to the mask the
    authors' way (bicubic) on one fixed scale, 0 to 1, with one colour bar (no per-image
    rescaling, so a flat, uncertain map looks flat); with ``threshold`` they are shown binary
    (> threshold). Each map cell is labelled with its image's IoU-lg at the threshold (0.5
    when None)."""
    names = list(maps)
    n_rows = len(next(iter(maps.values()))) if maps else len(masks)
    lead = (images is not None) + (masks is not None)
    ncols = lead + len(names)
    fig, axes = plt.subplots(n_rows, ncols, figsize=(1.75 * ncols + 0.6, 1.85 * n_rows),
                             squeeze=False)
    thr = metrics.THRESHOLD if threshold is None else threshold
    im = None
    for r in range(n_rows):
        c = 0
        if images is not None:
            axes[r, c].imshow(images[r])
            c += 1
        if masks is not None:
            axes[r, c].imshow(masks[r], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            axes[r, c].set_xlabel(f"fake {100 * masks[r].mean():.0f}%", fontsize=9)
            c += 1
        for j, name in enumerate(names):
            m = maps[name][r:r + 1].astype(np.float32)
            ax = axes[r, c + j]
            shown = resize.bicubic(m, masks.shape[-2:])[0].numpy() if masks is not None else m[0]
            shown = (shown > thr).astype(np.float32) if threshold is not None else np.clip(shown, 0, 1)
            im = ax.imshow(shown, cmap="gray" if threshold is not None else "magma", vmin=0, vmax=1,
                           interpolation="nearest")
            if masks is not None:
                iou = 100 * metrics.localization(m, masks[r:r + 1], thr).iou[0]
                ax.set_xlabel(f"IoU {iou:.0f}", fontsize=9)
    heads = (["input"] if images is not None else []) + (["ground truth"] if masks is not None else []) + names
    for ax, t in zip(axes[0], heads):
        ax.set_title(t, fontsize=10)
    if row_labels is not None:
        for r, lab in enumerate(row_labels):
            axes[r, 0].set_ylabel(lab, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.93 if threshold is None else 1, 1))
    if threshold is None and im is not None:
        cax = fig.add_axes((0.945, 0.15, 0.012, 0.7))
        fig.colorbar(im, cax=cax, label="fake probability")
    return fig


def sample_grid(samples: dict[str, list[tuple]], title: str = ""):
    """Rows of sample images per dataset (``analysis.data_samples``), the fake region outlined
    in red (its content stays visible); reals have no outline."""
    rows = list(samples)
    n = max(len(v) for v in samples.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(1.5 * n, 1.5 * len(rows)), squeeze=False)
    for r, key in enumerate(rows):
        for c, (img, mask) in enumerate(samples[key]):
            ax = axes[r, c]
            ax.imshow(img, interpolation="nearest")   # the stored pixels (and a small PNG)
            if mask is not None and mask.any():
                ax.contour(mask.astype(float), levels=[0.5], colors="red", linewidths=1.0)
        axes[r, 0].set_ylabel(key.split("/")[1], fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def mask_area_boxes(areas: pd.DataFrame):
    """Box plot of the fake area (% of the image) per generator (``analysis.mask_areas``),
    with the number of masks under each box."""
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6, 3))
    sns.boxplot(data=areas, x="generator", y="area", ax=ax)
    counts = areas.groupby("generator", sort=False).size()
    ax.set_xticks(range(len(counts)), [f"{g}\n(n={n})" for g, n in counts.items()])
    ax.set_xlabel("")
    ax.set_ylabel("fake pixels (% of image)")
    fig.tight_layout()
    return fig


def method_colour(method: str) -> str:
    """A method's colour in every figure, from its card (black for a name not registered)."""
    return MODELS[method].card.colour if method in MODELS else "black"


def method_label(method: str) -> str:
    """A method's name in every figure, from its card (the name itself if not registered)."""
    return MODELS[method].card.label if method in MODELS else method


def _methods_in(df: pd.DataFrame) -> list[str]:
    """The registered methods with a row in ``df`` (registry order): a method without results
    takes no room in a figure; a table without a ``method`` column shows every method."""
    if "method" not in df:
        return methods()
    present = set(df["method"].dropna())
    return [m for m in methods() if m in present]


def _bars_with_ci(ax, df: pd.DataFrame, col: str, ci: str | None, setups, methods=None):
    """Grouped bars (setup groups, one bar per method) with 95% intervals; a missing value is
    written "missing" instead of drawn as a zero-height bar, an experiment that does not exist
    (Patches-MIL's setup C is Patches') "n/a"."""
    methods = methods or _methods_in(df)
    w = 0.8 / len(methods)
    idx = df.set_index("experiment")
    for k, m in enumerate(methods):
        for i, s in enumerate(setups):
            x = i - 0.4 + w * (k + 0.5)
            name = f"{m}-{s}"
            v = idx[col].get(name, np.nan) if col in idx else np.nan
            if v is None or np.isnan(v):
                ax.text(x, 2, "missing" if name in idx.index else "n/a", rotation=90, ha="center", va="bottom",
                        fontsize=7, color="grey")
                continue
            err = None
            if ci is not None and f"{ci}_ci_low" in idx and not np.isnan(idx[f"{ci}_ci_low"].get(name, np.nan)):
                err = [[v - idx[f"{ci}_ci_low"][name]], [idx[f"{ci}_ci_high"][name] - v]]
            ax.bar(x, v, w, color=method_colour(m), yerr=err, capsize=2,
                   label=method_label(m) if i == 0 else None)
    ax.set_xticks(range(len(setups)), [f"setup {s}" for s in setups])


def _bar_x(df: pd.DataFrame, setups, methods=None):
    """(experiment, method, x) of every bar ``_bars_with_ci`` draws."""
    methods = methods or _methods_in(df)
    w = 0.8 / len(methods)
    return [(f"{m}-{s}", m, i - 0.4 + w * (k + 0.5)) for k, m in enumerate(methods) for i, s in enumerate(setups)]


def _below_chance(ax, df: pd.DataFrame, col: str, setups) -> None:
    idx = df.set_index("experiment")
    for name, _, x in _bar_x(df, setups):
        v = idx[col].get(name, np.nan) if col in idx else np.nan
        if np.isfinite(v) and v < 50:
            ax.text(x, v + 2, "below\nchance", ha="center", va="bottom", fontsize=6, color="darkred")


def _seed_marks(ax, df: pd.DataFrame, setups) -> None:
    """Each experiment's mean over seeds (diamond, Student's t interval) and its seeds' values
    (dots) over its bar; nothing with one seed."""
    if "iou_seeds" not in df or df["iou_seeds"].isna().all():
        return
    idx = df.set_index("experiment")
    first = True
    for name, _, x in _bar_x(df, setups):
        if name not in idx.index or not np.isfinite(idx.loc[name, "iou_seeds"]):
            continue
        r = idx.loc[name]
        lo, hi = r.get("iou_seeds_t_low", np.nan), r.get("iou_seeds_t_high", np.nan)
        err = [[r["iou_seeds"] - lo], [hi - r["iou_seeds"]]] if np.isfinite(lo) else None
        ax.errorbar(x, r["iou_seeds"], yerr=err, fmt="D", ms=4, color="black", capsize=2, lw=1,
                    label=f"mean over {int(r['seeds'])} seeds (t interval)" if first else None)
        values = [float(v) for v in str(r.get("iou_seed_values", "")).split(",") if v.strip()]
        ax.plot([x] * len(values), values, ".", color="black", ms=3, alpha=0.7,
                label="each seed" if first and values else None)
        first = False


def table2_figure(t2: pd.DataFrame, title: str = ""):
    """Table 2 at a glance: IoU-lg at the paper's 0.5 threshold, pixel AUC (threshold-free) and
    detection AP, per method and setup: bars are the profile's seed's run with 95% bootstrap
    intervals over test images where they exist; with several seeds (``iou_seeds``), a black
    diamond marks each experiment's IoU mean over seeds with Student's t interval over the seed
    means, and dots the seeds' own values. The trivial baselines as horizontal lines (everything
    fake, the mask prior; chance for AUC and AP); a bar below chance is labelled so. Missing
    experiments are labelled, never drawn as zero."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.9))
    base = t2.set_index("experiment")
    specs = (("iou", "iou", "IoU-lg at threshold 0.5 (%)", "ABC"),
             ("pixel_auc_img", None, "pixel AUC per image, averaged (%)\nthreshold-free: the learning test's", "ABC"),
             ("ap_mean", "ap", "detection AP, weak setups (%)", "AB"))
    for ax, (col, ci, label, setups) in zip(axes, specs):
        _bars_with_ci(ax, t2, col, ci, setups)
        ax.set_ylabel(label)
        ax.set_ylim(0, 105)
        ax.grid(axis="y", alpha=0.3)
        if col in ("pixel_auc_img", "ap_mean"):       # below chance: a map (or score) inverted, said on the bar
            _below_chance(ax, t2, col, setups)
    _seed_marks(axes[0], t2, "ABC")
    # the mask prior at 0.5 marks (almost) nothing: it is drawn at its validation-chosen threshold
    for name, col, ls, text in (("baseline-everything-fake", "iou", ":", "everything fake"),
                                ("baseline-mask-prior", "iou_val_thr", "--", "mask prior, at its val. threshold")):
        if name in base.index and col in base and not np.isnan(base.loc[name, col]):
            axes[0].axhline(base.loc[name, col], color="black", ls=ls, lw=1,
                            label=f"{text} ({base.loc[name, col]:.1f})")
    if "baseline-mask-prior" in base.index and not np.isnan(base.loc["baseline-mask-prior"].get("pixel_auc_img", np.nan)):
        axes[1].axhline(base.loc["baseline-mask-prior", "pixel_auc_img"], color="black", ls="--", lw=1,
                        label=f"mask prior ({base.loc['baseline-mask-prior', 'pixel_auc_img']:.1f})")
    for ax in axes[1:]:
        ax.axhline(50, color="grey", ls="-.", lw=1, label="chance")
    for ax in axes:      # below the axes: never over a bar or an error bar
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def iou_by_area_figure(by_area: pd.DataFrame):
    """IoU-lg against mask area (``evaluate.iou_by_area_table``), one panel per setup, one line
    per method with 95% intervals; bins named in % of the image with their image counts; the
    everything-fake baseline (an image's IoU = its fake area), which rises along the bins too."""
    d = by_area.copy()

    def label(b: str) -> str:
        if str(b).endswith("%"):          # metrics.area_label's already
            return str(b)
        lo, hi = (float(x) for x in b.strip("([]").split(","))
        return f"{100 * max(lo, 0):.0f}-{100 * hi:.0f}%"

    d["bin"] = d["area_bin"].map(label)
    order = list(dict.fromkeys(d["bin"]))
    counts = d.groupby("bin", sort=False)["count"].first()
    setups = sorted(set(d["setup"]))
    fig, axes = plt.subplots(1, len(setups), figsize=(4.2 * len(setups), 3.4), sharey=True, squeeze=False)
    for ax, s in zip(axes[0], setups):
        for k, m in enumerate(_methods_in(d)):
            g = d[(d.setup == s) & (d.method == m)].set_index("bin").reindex(order)
            x = np.arange(len(order)) + 0.08 * (k - 1)       # side by side: intervals do not hide each other
            err = [g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]] if "ci_low" in g else None
            ax.errorbar(x, g["mean"], yerr=err, fmt="o-", capsize=2, color=method_colour(m), label=method_label(m))
        if "everything_fake" in d:
            base = d[d.setup == s].groupby("bin", sort=False)["everything_fake"].first().reindex(order)
            ax.plot(range(len(order)), base, "k:", marker="x", label="everything fake")
        ax.set_xticks(range(len(order)), [f"{b}\nn={counts[b]}" for b in order], fontsize=8)
        ax.set_title(f"setup {s}")
        ax.set_xlabel("fake area (% of image), images per bin")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("mean IoU-lg (%)")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def loss_variants_figure(lv: pd.DataFrame):
    """IoU-lg with 95% intervals of each localization loss (setup C), one panel per method;
    the paper's loss (Patches: cross-entropy; Attention: BCE) is one colour in both panels,
    a variant that adds the class loss says that it also trains on real images, and a variant
    whose map is one constant value (pixel AUC 50) is marked so."""
    d = lv.copy()
    d["variant"] = d.apply(lambda r: "paper (CE / BCE)" if r["loss"] in ("ce", "bce") else
                           r["loss"].upper() + (" + class loss\n(adds real images)" if r["rho_class"] else ""),
                           axis=1)
    variants = list(dict.fromkeys(d["variant"]))
    colours = dict(zip(variants, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    methods = _methods_in(d)
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 3.6), sharey=True, squeeze=False)
    for ax, m in zip(axes[0], methods):
        g = d[d.method == m].set_index("variant").reindex(variants)
        for i, v in enumerate(variants):
            val = g.loc[v, "iou"]
            if np.isnan(val):
                ax.text(i, 2, "missing", rotation=90, ha="center", fontsize=7, color="grey")
                continue
            err = [[val - g.loc[v, "iou_ci_low"]], [g.loc[v, "iou_ci_high"] - val]]
            ax.bar(i, val, 0.7, color=colours[v], yerr=err, capsize=3)
            auc = g.loc[v, "pixel_auc"] if "pixel_auc" in g else np.nan
            # every bar's value in text, so a bar at (or near) 0 is read, not missed
            ax.text(i, g.loc[v, "iou_ci_high"] + 1.5, f"{val:.1f}", ha="center", va="bottom", fontsize=8)
            if abs(auc - 50) < 0.5:      # one value everywhere: the network collapsed to a constant map
                ax.text(i, g.loc[v, "iou_ci_high"] + 7, "constant map\n(pixel AUC 50)", ha="center",
                        fontsize=7, color="tab:red")
        ax.set_xticks(range(len(variants)), variants, fontsize=8)
        ax.set_title(method_label(m))
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].set_ylabel("IoU-lg, setup C (%)")
    fig.tight_layout()
    return fig


def _short_pipeline(name: str) -> str:
    out = name.replace("fit_pixels=2000,", "").replace("min_cluster_size=", "mcs ")
    out = out.replace("hdbscan-features(", "features (").replace("min_cluster_frac=", "mcs ")
    out = out.replace(",with_score=False", "").replace(",with_score=True", " + score")
    return out.replace(",min_samples=", ", ms ").replace("hdbscan(", "scalar (").replace(
        "+largest-component", " + largest comp.")


_VARIANT_ORDER = {"filter": 0, "scalar HDBSCAN": 1, "feature HDBSCAN": 2}


def postprocess_gains(pp: pd.DataFrame):
    """IoU gain (points) of each post-processing over none (Table 2's scoring), per experiment:
    a heatmap, every setting its own row (nothing averaged), grouped by variant, each cell with
    its paired 95% bootstrap interval over images; blue = better, a bold cell's interval
    excludes 0."""
    import seaborn as sns

    d = pp[pp.steps != "none"].copy()
    d["chain"] = d["postprocess"].map(_short_pipeline)
    d["order"] = d["variant"].map(_VARIANT_ORDER)
    d = d.sort_values("order", kind="stable")
    cols = [c for c in pp["experiment"].drop_duplicates()]
    grid = d.pivot_table(index="chain", columns="experiment", values="gain", sort=False)[cols]
    lo = d.pivot_table(index="chain", columns="experiment", values="gain_ci_low", sort=False)[cols]
    hi = d.pivot_table(index="chain", columns="experiment", values="gain_ci_high", sort=False)[cols]
    text = grid.map(lambda v: f"{v + 0.0:+.1f}") + "\n[" + lo.map(lambda v: f"{round(v, 1) + 0.0:.1f}") + ", " \
        + hi.map(lambda v: f"{round(v, 1) + 0.0:.1f}") + "]"      # one decimal: a bold [-0.3, -0.1] never reads [-0, -0]
    fig, ax = plt.subplots(figsize=(1.1 * grid.shape[1] + 4, 0.62 * grid.shape[0] + 1.8))
    lim = max(1.0, float(np.nanmax(np.abs(grid.values))))
    sns.heatmap(grid, annot=text.values, fmt="", cmap="RdBu", center=0, vmin=-lim, vmax=lim, ax=ax,
                cbar_kws={"label": "IoU-lg gain over none (points)"}, annot_kws={"fontsize": 6.5})
    sig = ((lo > 0) | (hi < 0)).values
    for t, s_ in zip(ax.texts, sig.ravel()):
        t.set_fontweight("bold" if s_ else "normal")
    variants = d.drop_duplicates("chain").set_index("chain").loc[grid.index, "variant"].tolist()
    for i in range(1, len(variants)):
        if variants[i] != variants[i - 1]:
            ax.axhline(i, color="black", lw=1.5)
    ax.set_yticklabels([f"{v.split()[0]}: {c}" if v != "filter" else c
                        for v, c in zip(variants, grid.index)], rotation=0)
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_title("Post-processing against Table 2's scoring (threshold 0.5, bicubic): gain [95% interval]; "
                 f"{int(pp['n_images'].iloc[0])} test images per model", fontsize=10)
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def postprocess_by_area(by_area: pd.DataFrame, chains: list[str]):
    """Gain over none by mask area of each of ``chains`` (one panel each): one line per model,
    each bin with its paired 95% interval over images; the dotted line marks 50%, past which the
    fake region is the majority and "largest cluster = real" calls the wrong side real."""
    fig, axes = plt.subplots(1, len(chains), figsize=(4.6 * len(chains), 3.6), squeeze=False, sharey=True)
    for ax, chain in zip(axes[0], chains):
        d = by_area[(by_area.postprocess == chain) & (by_area.n_images > 0)]
        for exp, g in d.groupby("experiment", sort=False):
            x = (g.area_low + g.area_high) / 2 * 100
            ax.errorbar(x, g.gain, yerr=[g.gain - g.gain_ci_low, g.gain_ci_high - g.gain], marker="o", ms=3,
                        capsize=2, lw=1, label=exp)
        ax.axhline(0, color="black", lw=0.8)
        ax.axvline(50, color="grey", ls=":", lw=1)
        ax.set_xlabel("fake area (% of the image; bin centres)", fontsize=8)
        ax.set_title(_short_pipeline(chain), fontsize=9)
    axes[0, 0].set_ylabel("IoU-lg gain over none (points)")
    axes[0, -1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Where the largest-cluster rule helps and hurts, by mask area (95% intervals over images)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def table3_figure(t2: pd.DataFrame, t3: pd.DataFrame):
    """Table 3: IoU-lg on CelebA-HQ of Patches trained on CelebA-HQ (Table 2) and on FFHQ, per
    setup, with 95% intervals over test images, the mean over seeds (diamond, t interval) when
    there are several, and both trivial baselines (everything fake; the mask prior at its
    validation-chosen threshold: at 0.5 its map is empty)."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    a = t2.set_index("experiment")
    b = t3.set_index("experiment")
    for k, (src, suffix, label, colour) in enumerate(((a, "", "trained on CelebA-HQ", "tab:orange"),
                                                      (b, "-ffhq", "trained on FFHQ", "tab:purple"))):
        for i, s in enumerate("ABC"):
            name = f"patches-{s}{suffix}"
            x = i - 0.2 + 0.4 * k
            if name not in src.index or np.isnan(src.loc[name, "iou"]):
                ax.text(x, 2, "missing", rotation=90, ha="center", fontsize=7, color="grey")
                continue
            v = src.loc[name, "iou"]
            err = [[v - src.loc[name, "iou_ci_low"]], [src.loc[name, "iou_ci_high"] - v]]
            ax.bar(x, v, 0.4, color=colour, yerr=err, capsize=3, label=label if i == 0 else None)
            if "iou_seeds" in src and np.isfinite(src.loc[name].get("iou_seeds", np.nan)):
                r = src.loc[name]
                lo, hi = r.get("iou_seeds_t_low", np.nan), r.get("iou_seeds_t_high", np.nan)
                ax.errorbar(x, r["iou_seeds"], yerr=[[r["iou_seeds"] - lo], [hi - r["iou_seeds"]]]
                            if np.isfinite(lo) else None, fmt="D", ms=4, color="black", capsize=2, lw=1,
                            label="mean over seeds (t interval)" if (i, k) == (0, 0) else None)
    if "baseline-everything-fake" in a.index:
        ax.axhline(a.loc["baseline-everything-fake", "iou"], color="black", ls=":", lw=1,
                   label=f"everything fake ({a.loc['baseline-everything-fake', 'iou']:.1f})")
    if "baseline-mask-prior" in a.index and np.isfinite(a.loc["baseline-mask-prior"].get("iou_val_thr", np.nan)):
        v = a.loc["baseline-mask-prior", "iou_val_thr"]
        ax.axhline(v, color="black", ls="--", lw=1, label=f"mask prior, at its val. threshold ({v:.1f})")
    ax.set_xticks(range(3), [f"setup {s}" for s in "ABC"])
    ax.set_ylabel("IoU-lg on CelebA-HQ test (%)")
    ax.set_title("Patches across datasets (bars: seed 0, 95% intervals over images)", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def robustness(rob: pd.DataFrame):
    """IoU-lg of each Table 2 model under each perturbation: one panel per kind of perturbation,
    its strengths in order on the x axis after the unperturbed point ("clean", the same in every
    panel); one line per model (colour: method, line style: setup) with its 95% interval over
    the images as a band (``iou_ci_low/high``, when present). Every point is scored on the same
    first ``n_images`` test images (the clean point is therefore not Table 2's number, which uses
    the whole test set). One legend: the methods' colours and the setups' line styles."""
    from matplotlib.lines import Line2D

    kinds = [k for k in dict.fromkeys(rob["perturbation"]) if k != "none"]
    units = {"jpeg": "JPEG quality", "blur": "blur sigma (px)", "resize": "resize factor", "noise": "noise sigma (/255)"}
    styles = {"A": ":", "B": "--", "C": "-"}
    fig, axes = plt.subplots(1, max(1, len(kinds)), figsize=(3.6 * max(1, len(kinds)), 4.2), sharey=True, squeeze=False)
    clean = rob[rob.perturbation == "none"].set_index("experiment")
    banded = {"iou_ci_low", "iou_ci_high"} <= set(rob.columns)
    for ax, kind in zip(axes[0], kinds):
        d = rob[rob.perturbation == kind]
        strengths = list(dict.fromkeys(d["strength"]))
        for exp, g in d.groupby("experiment", sort=False):
            g = g.set_index("strength").reindex(strengths)
            m, setup = g["method"].dropna().iloc[0], g["setup"].dropna().iloc[0]
            x = range(len(strengths) + 1)
            ax.plot(x, [clean["iou"].get(exp, np.nan), *g["iou"]], marker="o", ms=3, lw=1.4,
                    color=method_colour(m), ls=styles.get(setup, "-"))
            if banded:
                ax.fill_between(x, [clean["iou_ci_low"].get(exp, np.nan), *g["iou_ci_low"]],
                                [clean["iou_ci_high"].get(exp, np.nan), *g["iou_ci_high"]],
                                color=method_colour(m), alpha=0.08, lw=0)
        ax.set_xticks(range(len(strengths) + 1), ["clean", *[f"{float(x):g}" for x in strengths]], fontsize=8)
        ax.set_xlabel(units.get(kind, kind))
        ax.set_title(kind)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("IoU-lg (%)")
    n = int(rob["n_images"].max()) if "n_images" in rob and len(rob) else 0
    handles = ([Line2D([], [], color=method_colour(m), lw=2, label=method_label(m)) for m in _methods_in(rob)]
               + [Line2D([], [], color="black", ls=ls, lw=1.4, label=f"setup {s}") for s, ls in styles.items()])
    fig.legend(handles=handles, fontsize=8, loc="lower center", ncol=len(handles), frameon=False,
               handlelength=3)
    fig.suptitle(f"Robustness: IoU-lg on the first {n} test images per set"
                 + (" (bands: 95% intervals over those images)" if banded else ""), fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def cross_generator_figure(cg: pd.DataFrame, order, title: str = ""):
    """Figure 6: two train x test IoU-lg heatmaps (one generator; all but one) on one colour
    scale with one colour bar, the paper's generator names with the layout's folder names, each
    cell's value over its 95% interval over test images; with seeds (``iou_seeds``) each cell is
    the mean over seeds, its Student's t interval over the seed means and the seeds' values.
    In-domain cells are outlined (solid); in the all-but panel the held-out cell of each row is
    outlined dashed. Missing cells stay blank and say so."""
    from matplotlib.patches import Rectangle


    fig, axes = plt.subplots(1, 2, figsize=(14, 5.6))
    im = None
    for ax, panel, name in zip(axes, ("single", "all-but"), ("trained on one generator",
                                                             "trained on the other three")):
        d = cg[cg["panel"] == panel]
        cols = [g for g in order if g in set(d["test"])]
        rows = [r for g in order for r in dict.fromkeys(d["train"]) if r.removeprefix("all but ") == g]
        grid = np.full((len(rows), len(cols)), np.nan)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                cell = d[(d.train == r) & (d.test == c)]
                seeded = len(cell) and "iou_seeds" in cell and np.isfinite(cell["iou_seeds"].iloc[0])
                if seeded:           # the mean over seeds, its t interval and the seeds' values
                    x = cell.iloc[0]
                    grid[i, j] = x["iou_seeds"]
                    t = (f"\n[{x['iou_seeds_t_low']:.0f}, {x['iou_seeds_t_high']:.0f}]"
                         if np.isfinite(x.get("iou_seeds_t_low", np.nan)) else "")
                    each = ", ".join(f"{float(v):.0f}" for v in str(x["iou_seed_values"]).split(",") if v.strip())
                    txt = f"{grid[i, j]:.1f}{t}\n({each})"
                    ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                            color="white" if grid[i, j] < 55 else "black")
                elif len(cell) and not np.isnan(cell["iou"].iloc[0]):
                    grid[i, j] = cell["iou"].iloc[0]
                    nan = pd.Series([np.nan])
                    lo, hi = cell.get("iou_ci_low", nan).iloc[0], cell.get("iou_ci_high", nan).iloc[0]
                    txt = f"{grid[i, j]:.1f}" + (f"\n[{lo:.0f}, {hi:.0f}]" if not np.isnan(lo) else "")
                    ax.text(j, i, txt, ha="center", va="center", fontsize=9,
                            color="white" if grid[i, j] < 55 else "black")
                else:
                    ax.text(j, i, "missing", ha="center", va="center", fontsize=8, color="grey")
                held = r.removeprefix("all but ") == c
                if held:
                    ax.add_patch(Rectangle((j - 0.48, i - 0.48), 0.96, 0.96, fill=False, lw=2,
                                           ls="-" if panel == "single" else "--", ec="white"))
        im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100)
        def gname(g: str) -> str:       # the paper's name and the layout's folder, as every table says
            return f"{GENERATOR_NAMES.get(g, g)} ({g})" if GENERATOR_NAMES.get(g, g) != g else g

        ax.set_xticks(range(len(cols)), [gname(c) for c in cols], rotation=20, ha="right")
        ax.set_yticks(range(len(rows)), [("all but " if r.startswith("all but ") else "")
                                         + gname(r.removeprefix("all but ")) for r in rows])
        ax.set_xlabel("tested on")
        if panel == "single":
            ax.set_ylabel("trained on")
        ax.set_title(name + ("\n(solid box: in-domain)" if panel == "single" else "\n(dashed box: the held-out generator)"),
                     fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 0.92, 1))
    cax = fig.add_axes((0.93, 0.2, 0.012, 0.6))
    fig.colorbar(im, cax=cax, label="IoU-lg (%)")
    return fig


def training_curves(runs: dict[str, dict], ncols: int = 5):
    """One small panel per experiment: train and validation loss against training steps (left
    axis), validation AP of the image scores for weak runs (right axis, % with chance at 50),
    the kept (lowest validation loss) epoch marked. ``runs``: experiment -> its ``train.json``."""
    names = [n for n in runs if runs[n].get("history")]      # a run evaluated as loaded has none
    nrows = max(1, -(-len(names) // ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.9 * ncols, 2.3 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        meta = runs[name]
        df = pd.DataFrame(meta["history"])
        iters = meta.get("iters_per_epoch") or meta.get("schedule", {}).get("iters_per_epoch", 1)
        step = df["step"] if "step" in df else (df["epoch"] + 1) * iters
        ax.plot(step, df["train_loss"], "o-", ms=3, color="tab:blue", label="train loss")
        ax.plot(step, df["valid_loss"], "s-", ms=3, color="tab:orange", label="valid loss")
        best = int(df["valid_loss"].idxmin())
        ax.axvline(step.iloc[best], color="grey", ls=":", lw=1)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        if "valid_ap" in df and df["valid_ap"].notna().any():
            ax2 = ax.twinx()
            ax2.plot(step, df["valid_ap"], "^-", ms=3, color="tab:green", label="valid AP (%)")
            ax2.axhline(50, color="tab:green", ls="--", lw=0.8, alpha=0.6)
            ax2.set_ylim(40, 100)
            ax2.tick_params(labelsize=7, colors="tab:green")
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("loss", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("training step", fontsize=8)
    handles = [plt.Line2D([], [], color=c, marker=m, label=lab) for c, m, lab in
               (("tab:blue", "o", "train loss"), ("tab:orange", "s", "validation loss"),
                ("tab:green", "^", "validation AP, weak runs (%, right axis; dashed: chance)"),
                ("grey", None, "kept epoch (lowest validation loss)"))]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return fig


def budget_scaling(df: pd.DataFrame, baseline_iou: float | None = None):
    """IoU-lg, pixel AUC and detection AP against training steps, one line per (setup, init);
    ``df`` is ``evaluate.scaling_table``. Error bars: 95% bootstrap intervals (IoU, AP). Dotted
    lines: the everything-fake baseline's IoU, and chance (50) for AUC and AP."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    styles = {("B", "pytorch"): ("tab:blue", "o", "B, image labels"),
              ("B", "authors"): ("tab:grey", "s", "B, image labels, authors' init"),
              ("C", "pytorch"): ("tab:red", "^", "C, masks")}
    cols = (("iou", "iou"), ("pixel_auc", None), ("ap_mean", "ap"))
    for (setup, init), g in df.dropna(subset=["iou"]).groupby(["setup", "init"]):
        colour, marker, label = styles.get((setup, init), ("black", "x", f"{setup} {init}"))
        g = g.sort_values("steps")
        for ax, (col, ci) in zip(axes, cols):
            if col not in g or g[col].isna().all():
                continue
            yerr = None
            if ci is not None:
                yerr = [g[col] - g[f"{ci}_ci_low"], g[f"{ci}_ci_high"] - g[col]]
            ax.errorbar(g["steps"], g[col], yerr=yerr, color=colour, marker=marker, capsize=3,
                        label=label)
    if baseline_iou is not None:
        axes[0].axhline(baseline_iou, color="black", ls=":", lw=1, label="everything fake")
    for ax in axes[1:]:
        ax.axhline(50, color="black", ls=":", lw=1, label="chance")
    titles = ("Localization at threshold 0.5", "Localization, threshold-free",
              "Detection, real vs fake")
    names = ("IoU-lg (%)", "pixel AUC (%)", "detection AP (%)")
    for ax, title, name, where in zip(axes, titles, names, ("upper left", "lower right", "lower right")):
        ax.set_xscale("log")
        ax.margins(x=0.08)
        ax.set_xlabel("training steps (log scale)")
        ax.set_ylabel(name)
        ax.set_ylim(0, 102)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc=where)
    fig.suptitle("Patches on Repaint-P2 test (weak: real vs Repaint-P2 9k, image labels; "
                 "C: Repaint-P2 with masks)", fontsize=10)
    fig.tight_layout()
    return fig


def _errorbar_rows(ax, rows: pd.DataFrame, scale: float = 1.0, **kw):
    """Each row's value over its interval against the field's share; with ``seed_values`` (rows
    trained under several seeds), each seed's own value as a small dot of the same colour, just
    right of its mean (on it, the marker would hide it)."""
    rows = rows.sort_values("rf_share")
    x, y = 100 * rows["rf_share"], rows["value"] * scale
    yerr = [y - rows["ci_low"] * scale, rows["ci_high"] * scale - y]
    ax.errorbar(x, y, yerr=yerr, capsize=3, **kw)
    if "seed_values" not in rows:
        return
    for share, n, values in zip(rows["rf_share"], rows["seeds"], rows["seed_values"]):
        vs = [float(v) * scale for v in str(values).split(",") if v.strip() and v.strip() != "nan"]
        if n and n > 1 and vs:
            ax.plot([100 * share + 1.2] * len(vs), vs, ls="none", marker=".", ms=4, alpha=0.7, color=kw.get("color"))


def _seed_dot_legend(ax) -> None:
    """One legend entry for the seed dots ``_errorbar_rows`` draws."""
    ax.plot([], [], ls="none", marker=".", ms=4, color="grey", label="each seed (dots right of the mean)")


# The thresholds the geometry figure draws: (metric, line style, marker, legend words)
GEOMETRY_THRESHOLDS = (("iou", "-", "o", "at 0.5"), ("iou_own", "-.", "^", "at own threshold (B: no masks)"),
                       ("iou_val", ":", "s", "at val.-mask threshold (oracle for B)"))


def geometry_figure(df: pd.DataFrame, paper_share: float | None = None, ratio_line: float | None = None):
    """Patches B and C against the receptive field's share of the image side
    (``geometry.geometry_table``): IoU-lg at 0.5, at each run's own threshold (weak B's without
    masks) and at the validation-mask threshold (an oracle for weak B), with the dilated-mask
    reference (an oracle), B/C, and pixel AUC. Error bars: 95% intervals over seeds and test
    images; dots: each seed's own value (``seed_values``). The dotted vertical line marks the
    paper's share (its 299 px input). The stage's other
    weak runs (e.g. Patches-MIL B, rows with their own ``/C`` row) are drawn beside B; ``ratio_line``
    (e.g. the claims' ``WEAK_RATIO``) is drawn dashed in the B / C panel."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 5.2))
    names = list(dict.fromkeys(df.row))     # geometry.other_weak_rows's rule: plots may not import geometry
    others = [r for r in names if r not in ("B", "C", "B/C", "dilated mask") and not r.endswith("/C")
              and f"{r}/C" in names]
    # every colour from a card: Patches' for B (and B / C), each other weak run's method's own
    # (row "patches-mil-B": Patches-MIL's); C, the full-supervision reference, in grey
    colours = {"B": method_colour("patches"), "C": "dimgrey",
               **{r: method_colour(r.rsplit("-", 1)[0]) for r in others}}
    for row in ("B", "C", *others):
        for metric, ls, marker, what in GEOMETRY_THRESHOLDS:
            r = df[(df.row == row) & (df.metric == metric)].dropna(subset=["value"])
            _errorbar_rows(axes[0], r, color=colours[row], ls=ls, marker=marker, label=f"{row} {what}")
        r = df[(df.row == row) & (df.metric == "pixel_auc")].dropna(subset=["value"])
        _errorbar_rows(axes[2], r, color=colours[row], marker="o", label=row)
    r = df[df.row == "dilated mask"].dropna(subset=["value"])
    _errorbar_rows(axes[0], r, color="black", ls=":", marker="x",
                   label="dilated mask: mask vs mask dilated by half a field (oracle reference)")
    for row, colour in (("B", colours["B"]), *((r, colours[r]) for r in others)):
        for metric, ls, marker, what in GEOMETRY_THRESHOLDS:
            r = df[(df.row == f"{row}/C") & (df.metric == metric)].dropna(subset=["value"])
            _errorbar_rows(axes[1], r, color=colour, ls=ls, marker=marker, label=f"{row} / C, {what}")
    axes[1].axhline(1.0, color="grey", lw=0.8)
    if ratio_line is not None:
        axes[1].axhline(ratio_line, color="grey", ls="--", lw=0.8, label=f"claim T2-weak: B >= {ratio_line:g} x C")
    axes[2].axhline(50, color="black", ls=":", lw=1, label="chance")
    if "seed_values" in df and (df["seeds"].fillna(0) > 1).any():
        for ax in axes:
            _seed_dot_legend(ax)
    titles = ("IoU-lg on Repaint-P2 test", "What weak labels keep of full supervision",
              "Pixel AUC (threshold-free)")
    names = ("IoU-lg (%)", "B / C", "pixel AUC (%)")
    for ax, title, name in zip(axes, titles, names):
        if paper_share is not None:
            ax.axvline(100 * paper_share, color="grey", ls=":", lw=1)
            ax.text(100 * paper_share, 0.02, " paper (299 px)", transform=ax.get_xaxis_transform(),
                    fontsize=7, color="grey", rotation=90, va="bottom")
        ax.set_xlabel("receptive field / image side (%)")
        ax.set_ylabel(name)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  frameon=False)       # below the axes: never over a line or an error bar
    axes[0].set_ylim(0, 100)
    axes[1].set_ylim(0, 1.1)
    axes[2].set_ylim(45, 100.5)
    sides = df.dropna(subset=["value"]).groupby("rf_share")["size"].first()
    for ax in axes:
        ax.set_xlim(0, 100 * max(sides.index.max(), paper_share or 0) + 5)
        top = ax.secondary_xaxis("top")
        top.set_xticks(100 * sides.index.values, [f"{s} px" for s in sides.values])
        top.tick_params(labelsize=7)
    fig.tight_layout()
    return fig


def calibration_figure(hist: pd.DataFrame, summary: pd.DataFrame):
    """One panel per input side: the distribution of weak Patches' (setup B) cell probabilities
    for each kind of cell (``geometry.calibration_table``), each normalised to its own cells, with
    the paper's 0.5 threshold (solid), the measured mean of the cells that see only real pixels
    of fake images with its 95% interval (dotted, shaded) and the share of such cells labelled
    fake in training (dashed: where the label alone would push them). Under each panel, per kind:
    its cells, mean probability with its interval and share above 0.5; one legend for all."""
    sizes = sorted(hist["size"].unique())
    fig, grid = plt.subplots(2, len(sizes), figsize=(4.8 * len(sizes), 5.0), squeeze=False,
                             gridspec_kw={"height_ratios": (3, 1)})
    colours = ("tab:green", "tab:orange", "tab:purple", "tab:red")
    kinds = list(dict.fromkeys(hist["kind"]))
    short = dict(zip(kinds, ("real image", "fake, real-only cell", "fake, some fake pixels", "fake, centre fake")))
    for ax, below, size in zip(grid[0], grid[1], sizes):
        h = hist[hist["size"] == size]
        stats = []
        for kind, colour in zip(kinds, colours):
            k = h[h["kind"] == kind]
            s = summary[(summary["size"] == size) & (summary["kind"] == kind)].iloc[0]
            ax.stairs(k["density"].to_numpy(), np.r_[k["bin_low"].to_numpy(), k["bin_high"].iloc[-1]],
                      color=colour, lw=1.5, label=kind if size == sizes[0] else None)
            ci = (f" [{s['mean_prob_ci_low']:.2f}, {s['mean_prob_ci_high']:.2f}]"
                  if "mean_prob_ci_low" in s and pd.notna(s["mean_prob_ci_low"]) else "")
            stats.append(f"{short.get(kind, kind)}: mean {s['mean_prob']:.2f}{ci}, "
                         f"{metrics.share_label(s['share_above_0.5'])} > 0.5 ({int(s.cells):,} cells)")
        side = summary[summary["size"] == size]
        settle = side["settle"].iloc[0]
        ro = side[side["kind"] == kinds[1]].iloc[0] if len(kinds) > 1 else None
        ax.axvline(0.5, color="black", lw=1, label="threshold 0.5" if size == sizes[0] else None)
        ax.axvline(settle, color="black", ls="--", lw=1,
                   label="share of real-only cells labelled fake in training" if size == sizes[0] else None)
        if ro is not None and "mean_prob_ci_low" in ro and pd.notna(ro["mean_prob_ci_low"]):
            ax.axvspan(ro["mean_prob_ci_low"], ro["mean_prob_ci_high"], color=colours[1], alpha=0.25, lw=0)
            ax.axvline(ro["mean_prob"], color=colours[1], ls=":", lw=1.2,
                       label="their measured mean (95% interval)" if size == sizes[0] else None)
        share = side["rf_share"].iloc[0]
        ax.set_title(f"{size} px (field {100 * share:.0f}% of the side)")
        ax.set_xlabel("B's cell probability of fake")
        ax.set_ylabel("share of the kind's cells")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        below.axis("off")
        below.text(0, 1, "\n".join(stats), transform=below.transAxes, fontsize=7, va="top", ha="left")
    fig.legend(loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def transfer_figure(df: pd.DataFrame):
    """Does less supervision generalize better (``evaluate.transfer_table``): IoU-lg at 0.5 of
    each experiment on its own generator and on each generator it does not train on, with the
    held-out mean; bars are the mean over seeds (colour: the method's card; hatched: full
    supervision), error bars Student's t interval over the seeds, dots each seed."""
    sets = list(dict.fromkeys(df["test_set"]))
    exps = list(dict.fromkeys(df["experiment"]))
    fig, ax = plt.subplots(figsize=(2.0 + 1.4 * len(sets), 3.8))
    w = 0.8 / max(len(exps), 1)
    for j, name in enumerate(exps):
        d = df[df.experiment == name].set_index("test_set")
        method, setup = d["method"].iloc[0], d["setup"].iloc[0]
        for i, ts in enumerate(sets):
            if ts not in d.index or not np.isfinite(d.loc[ts, "iou"]):
                continue
            r = d.loc[ts]
            x = i + (j - (len(exps) - 1) / 2) * w
            err = None
            if np.isfinite(r["iou_t_low"]):
                err = [[r["iou"] - r["iou_t_low"]], [r["iou_t_high"] - r["iou"]]]
            ax.bar(x, r["iou"], w, color=method_colour(method), hatch="//" if setup == "C" else None,
                   edgecolor="black", lw=0.5, yerr=err, capsize=2,
                   label=f"{method_label(method)} {setup}" if i == 0 else None)
            vals = [float(v) for v in str(r["iou_values"]).split(",") if v.strip()]
            if len(vals) > 1:
                ax.plot([x] * len(vals), vals, ls="none", marker=".", ms=3, color="black", alpha=0.6)
    ax.set_xticks(range(len(sets)))
    ax.set_xticklabels([s.split("/")[-1] + ("\n(own)" if k == 0 else "") for k, s in enumerate(sets)], fontsize=8)
    ax.axvline(len(sets) - 1.5, color="grey", ls=":", lw=1)
    top = np.nanmax(np.r_[df["iou_t_high"].to_numpy(dtype=float), df["iou"].to_numpy(dtype=float), 0.0])
    ax.set_ylim(0, max(10.0, 1.15 * top))
    ax.set_ylabel("IoU-lg at 0.5 (%)")
    ax.set_title("Trained on Repaint-P2: own generator, held-out generators and their mean", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
