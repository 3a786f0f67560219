"""Figures that a default run leaves unchanged: saved twice, the same bytes."""

from __future__ import annotations

import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dolos_core.plots import save_figure  # noqa: E402


def test_a_figure_saved_twice_is_the_same_png_and_pdf(tmp_path):
    """No creation date nor software version in the files: the committed PDFs stay byte-stable
    across runs, so regenerating an unchanged study leaves git status clean."""
    def draw():
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        ax.set_title("same figure")
        return fig

    first = [p.read_bytes() for p in save_figure(draw(), tmp_path / "a", "fig")]
    time.sleep(1.1)                   # a creation date would differ by now
    second = [p.read_bytes() for p in save_figure(draw(), tmp_path / "b", "fig")]
    assert first == second and b"CreationDate" not in first[1]
