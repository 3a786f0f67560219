"""Perturbations of test images (robustness extension, after FakeLocator; NOT in the DOLOS
paper). Each takes an HxWx3 uint8 image and a seed and returns a perturbed uint8 image; use
them through ``DolosDataset(..., perturbation=..., perturbation_seed=...)``, a wrapper around the
test data, so nothing else changes. Strengths are on the 0-255 scale where relevant."""

from __future__ import annotations

from functools import partial

import cv2
import numpy as np


def jpeg(img: np.ndarray, seed: int, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def blur(img: np.ndarray, seed: int, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), float(sigma))


def resize(img: np.ndarray, seed: int, scale: float) -> np.ndarray:
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, int(round(w * scale))), max(1, int(round(h * scale)))),
                       interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def noise(img: np.ndarray, seed: int, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = img.astype(np.float32) + rng.normal(0, float(sigma), img.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


PERTURBATIONS = {"jpeg": jpeg, "blur": blur, "resize": resize, "noise": noise}
# The sweep of the robustness notebook: (perturbation, strength).
SWEEP = ([("jpeg", q) for q in (90, 70, 50)] + [("blur", s) for s in (1, 2)]
         + [("resize", s) for s in (0.5, 0.25)] + [("noise", s) for s in (2, 5, 10)])


def make(name: str, strength):
    if name not in PERTURBATIONS:
        raise KeyError(f"unknown perturbation {name!r}; known: {', '.join(PERTURBATIONS)}")
    key = {"jpeg": "quality", "blur": "sigma", "resize": "scale", "noise": "sigma"}[name]
    return partial(PERTURBATIONS[name], **{key: strength})
