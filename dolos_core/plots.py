"""Figure helpers shared by the notebooks (matplotlib / seaborn)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use(matplotlib.get_backend() if "inline" in matplotlib.get_backend() else "Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def save_figure(fig, figures_dir: str | Path, stem: str) -> list[Path]:
    """Save ``fig`` as ``stem``.png (150 dpi) and ``stem``.pdf under ``figures_dir``."""
    d = Path(figures_dir)
    d.mkdir(parents=True, exist_ok=True)
    out = [d / f"{stem}.png", d / f"{stem}.pdf"]
    fig.savefig(out[0], dpi=150, bbox_inches="tight")
    fig.savefig(out[1], bbox_inches="tight")
    return out


def overlay(img: np.ndarray, mask: np.ndarray | None, colour=(1.0, 0.1, 0.1), alpha: float = 0.45):
    """RGB uint8 image with the fake region (mask == 1) tinted and outlined."""
    out = img.astype(np.float32) / 255
    if mask is None:
        return out
    m = mask.astype(bool)
    out[m] = (1 - alpha) * out[m] + alpha * np.array(colour)
    return np.clip(out, 0, 1)


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


def map_grid(images, masks, maps, titles=None, threshold: float | None = None, ncols: int = 3):
    """Rows of (input with mask outline, ground truth, predicted map)."""
    n = len(images)
    fig, axes = plt.subplots(n, ncols, figsize=(2.2 * ncols, 2.2 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i])
        axes[i, 1].imshow(masks[i] if masks[i] is not None else np.zeros(images[i].shape[:2]),
                          cmap="gray", vmin=0, vmax=1)
        mp = maps[i] if threshold is None else (maps[i] > threshold)
        axes[i, 2].imshow(mp, cmap="magma", vmin=0, vmax=1, interpolation="nearest")
        if titles:
            axes[i, 0].set_ylabel(titles[i], fontsize=8)
    for ax, t in zip(axes[0], ["input", "ground truth (1 = fake)", "fake probability"]):
        ax.set_title(t, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


def iou_heatmap(cg: pd.DataFrame, panel: str, ax=None, order=None):
    """Annotated train x test IoU heatmap (Figure 6 of the paper); missing cells stay blank."""
    import seaborn as sns

    d = cg[cg["panel"] == panel].pivot(index="train", columns="test", values="iou")
    if order is not None:
        cols = [c for c in order if c in d.columns]
        rank = {g: i for i, g in enumerate(order)}
        rows = sorted(d.index, key=lambda r: rank.get(r.removeprefix("all but "), len(rank)))
        d = d.loc[rows, cols]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.8))
    if d.isna().all().all():
        ax.text(0.5, 0.5, "no predictions yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return ax
    sns.heatmap(d, annot=True, fmt=".1f", cmap="viridis", vmin=0, vmax=100, ax=ax,
                cbar_kws={"label": "IoU (%)"})
    ax.set_xlabel("tested on")
    ax.set_ylabel("trained on")
    return ax


def training_curves(runs: dict[str, dict], ncols: int = 5):
    """One small panel per experiment: train and validation loss against training steps (left
    axis), validation AP of the image scores for weak runs (right axis, % with chance at 50),
    the kept (lowest validation loss) epoch marked. ``runs``: experiment -> its ``train.json``."""
    names = list(runs)
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
