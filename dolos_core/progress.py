"""A training's progress where others can read it: ``runs/<profile>/progress/<experiment>-<run>.json``
(epoch, step, loss, images/s, ETA; written at most every few seconds, atomically) and, when the
optional ``tensorboard`` package is installed, TensorBoard scalars in
``runs/<profile>/tensorboard/<experiment>-<run>/`` (loss per step, and per epoch the training and
validation loss, validation AP, images/s and learning rate): ``tensorboard --logdir runs/<profile>/tensorboard``.

The runner reads the progress files of the trainings in flight, in whatever process or machine
they run (pool workers, Slurm jobs: the runs folder is shared), and shows one line per training
(:func:`active`, :func:`line`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .io import write_json

EVERY = 2.0          # seconds between two writes of a progress file
STALE = 180.0        # a file not written for this long is not a training in flight


def _seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class TrainingProgress:
    """Progress of one training, written to ``folder/<name>.json`` (and TensorBoard when it is
    installed and ``tensorboard_dir`` is given)."""

    def __init__(self, folder: Path, name: str, label: str, epochs: int, iters: int, batch: int,
                 start_epoch: int = 0, tensorboard_dir: Path | None = None):
        self.path = Path(folder) / f"{name}.json"
        self.state = {"experiment": label, "epochs": epochs, "steps": epochs * iters, "epoch": start_epoch,
                      "step": start_epoch * iters, "loss": None, "img_s": None, "eta_s": None,
                      "status": "training", "pid": os.getpid()}
        self.iters, self.batch = iters, batch
        self.t0, self.step0, self.last = time.time(), start_epoch * iters, 0.0
        self.tb = None
        if tensorboard_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:          # tensorboard is an optional extra
                SummaryWriter = None
            if SummaryWriter is not None:
                self.tb = SummaryWriter(str(tensorboard_dir))
        self._write()

    def _write(self) -> None:
        self.state["updated"] = time.time()
        write_json(self.path, self.state)
        self.last = time.time()

    def step(self, epoch: int, step: int, loss) -> None:
        """After optimiser step ``step`` (counted over the whole training) of ``epoch``; ``loss``
        is read (a device sync) only when the file is due."""
        if time.time() - self.last < EVERY and step < self.state["steps"]:
            return
        done = step - self.step0
        rate = done * self.batch / max(time.time() - self.t0, 1e-9)
        value = float(loss)
        self.state.update(epoch=epoch, step=step, loss=round(value, 5), img_s=round(rate, 1), images_done=step * self.batch,
                          eta_s=round((self.state["steps"] - step) * self.batch / rate, 1) if rate > 0 else None)
        if self.tb is not None:
            self.tb.add_scalar("loss/train_step", value, step)
        self._write()

    def epoch(self, row: dict, lr: float) -> None:
        """An epoch's record (``train.py``'s history row)."""
        if self.tb is not None:
            step = row["step"]
            for key in ("train_loss", "valid_loss", "valid_ap"):
                if row.get(key) is not None:
                    self.tb.add_scalar(f"epoch/{key}", row[key], step)
            if self.state["img_s"]:
                self.tb.add_scalar("epoch/images_per_s", self.state["img_s"], step)
            self.tb.add_scalar("epoch/lr", lr, step)
            self.tb.flush()

    def close(self, status: str) -> None:
        self.state["status"] = status
        self._write()
        if self.tb is not None:
            self.tb.close()


def active(folder: Path, now: float | None = None) -> list[dict]:
    """The trainings in flight under ``folder``: status ``training`` and written recently."""
    now = time.time() if now is None else now
    out = []
    for f in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            p = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if p.get("status") == "training" and now - p.get("updated", 0) < STALE:
            out.append(p)
    return out


def line(p: dict) -> str:
    """One training's progress in one line."""
    parts = [p["experiment"], f"epoch {p['epoch'] + 1}/{p['epochs']}", f"step {p['step']}/{p['steps']}"]
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4f}")
    if p.get("img_s"):
        parts.append(f"{p['img_s']:.1f} img/s")
    if p.get("eta_s") is not None:
        parts.append(f"ETA {_seconds(p['eta_s'])}")
    return " · ".join(parts)


__all__ = ["TrainingProgress", "active", "line"]
