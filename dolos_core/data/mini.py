"""DOLOS-mini: a synthetic dataset in exactly the DOLOS layout, built offline from a seed.

It is *not* DOLOS. It is a stand-in with the same structure and the same kind of signal, small
enough to run the whole study on a laptop CPU, so that every piece of code the paper's study
needs is exercised end to end. What it has:

- **Real images** of procedurally rendered faces, with a part map (background, hair, skin, brows,
  eyes, nose, mouth), passed through a camera model: lens blur, Bayer mosaic, Poisson-Gaussian
  sensor noise in the raw domain, bilinear demosaicing, gamma and JPEG. ``celebahq`` and ``ffhq``
  differ in framing (face size and position), lighting tint, backgrounds, noise levels and JPEG
  quality, so a model trained on one meets a domain shift on the other.
- **Generated pixels** carry no camera trace; each generator leaves its own, documented trace:

  ================  =====================================================  ===================
  generator         how DOLOS-mini makes it                                 stands in for
  ================  =====================================================  ===================
  ``p2``            a whole new face, "diffusion-like": the clean render    P2 (a pixel-space
                    is blurred like a lens, noised and denoised 4 times     diffusion model)
                    with an edge-preserving (bilateral) filter: smooth,
                    with none of the camera's noise
  ``repaint-p2``    a real image whose masked part is replaced by a         RePaint with the P2
                    re-rendered variant passed through the same ``p2``      model
                    process, pasted exactly into the mask
  ``repaint-p2-9k`` the first images of ``repaint-p2`` (the 9k subset)      Repaint-P2 9k
  ``ldm``           variant rendered at 1/4 resolution (a "latent") and     latent diffusion
                    decoded by bicubic x4 upsampling and sharpening, with   (LDM) inpainting
                    a decoder's 2x2-block noise; pasted exactly into the
                    mask
  ``lama``          OpenCV Telea inpainting of the masked part (a smooth    LaMa
                    fill from the mask's border) plus a faint 2x2-block
                    noise (its decoder's upsampling)
  ``pluralistic``   exemplar fill: the masked part copied from another      Pluralistic
                    place of the same image (real texture, real noise),
                    plus a generator's 2x2-block noise
  ================  =====================================================  ===================

  The generators share traces, as the real ones share architectures: a smooth fill without the
  camera's noise (``repaint-p2``, ``lama``, and ``ldm``'s decoded latent), a 2x2 block noise
  from an upsampling decoder (``ldm``, ``lama``, ``pluralistic``); ``lama`` and
  ``pluralistic`` differ in kind (a smooth fill against copied real texture), so no two
  generators are near-twins and each held-out one shares a trace with the other three
  (``benchmarks/transfer_matrix.py`` measures the structure on the validation split).

  Every trace is a statistic of texture (too smooth, the wrong noise spectrum), not a pixel-
  locked pattern: it survives horizontal flips and resizing the way a generator's fingerprint
  does, and no single pixel's colour gives it away (Table 2's ``pixel-lr`` baseline checks that).
- **Masks are exact**: outside the mask an inpainted image is byte-identical to its real image,
  inside every pixel was produced by the generator (no blending that would spill over, or leave
  labelled pixels unchanged).
- **Inpainted images** start from the real images of the same split (image ``i`` of an
  inpainted set inpaints real image ``i mod n_real``), as DOLOS's split sizes indicate (Repaint-P2:
  30k train images for 9k real ones; its 9k subset one per real image). A weakly supervised
  model therefore cannot tell real from fake by remembering faces: only the traces differ.
- **Masks** as in DOLOS: one facial part (or two small ones), small parts dilated by a random
  1-15 px at 256 px (scaled to the image size); stored with 255 = real, 0 = fake.

How it differs from DOLOS: faces are cartoons, not photographs; the generators are image-
processing algorithms, not neural networks; their traces are cleaner and more uniform than a
real generator's, so absolute numbers are not comparable with the paper's. What carries over is
the structure of the questions (weak vs full labels, cross-dataset and cross-generator transfer).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from ..config import BuildSizes, Profile
from .layout import SPLITS, DatasetKey

BUILDER_VERSION = 4
# The contrasts of the paper's claims this builder cannot test, and why (a real data root
# declares none: it tests everything). Written into the build record; the claims read it
# (``claims.claims_table``) and call a claim that needs one "not testable here".
NOT_TESTABLE = {
    "dataset shift": "no dataset shift in DOLOS-mini: its CelebA-HQ and FFHQ differ only in rendering "
                     "(tint, framing, noise, JPEG quality)",
    "generator transfer": "transfer between generators set by the builder: its generators' traces were "
                          "designed to share what they share (builder v4 changed them to move it: "
                          "transfer_matrix-before/after)",
}
BG, HAIR, SKIN, BROWS, EYES, NOSE, MOUTH = range(7)      # the part labels of a rendered face
SMALL_PARTS = (BROWS, EYES, NOSE, MOUTH)
# Probability of each mask choice: a single part, or two small parts together.
MASK_CHOICES = ((SKIN,), (HAIR,), (EYES,), (NOSE,), (MOUTH,), (BROWS,), (EYES, MOUTH),
                (NOSE, MOUTH), (BROWS, EYES))
MASK_PROBS = np.array([0.16, 0.14, 0.12, 0.12, 0.12, 0.08, 0.1, 0.08, 0.08])

_HAIR_COLOURS = np.array([[0.08, 0.06, 0.05], [0.25, 0.15, 0.08], [0.55, 0.4, 0.2],
                          [0.8, 0.68, 0.45], [0.5, 0.2, 0.1], [0.6, 0.6, 0.6]])
_SKIN_COLOURS = np.array([[0.96, 0.8, 0.69], [0.9, 0.7, 0.56], [0.78, 0.57, 0.42],
                          [0.6, 0.42, 0.3], [0.42, 0.28, 0.2]])
_IRIS_COLOURS = np.array([[0.35, 0.2, 0.1], [0.2, 0.35, 0.55], [0.3, 0.45, 0.3], [0.15, 0.1, 0.05]])


@dataclass(frozen=True)
class SourceStyle:
    """Rendering and camera statistics of one source (the cross-dataset shift)."""

    face_size: tuple[float, float]      # face half-height as a fraction of the image
    jitter: float                       # centre offset, fraction of the image
    tint: tuple[float, float, float]    # illuminant colour
    bg_textured: float                  # probability of a textured background
    read_noise: tuple[float, float]     # sensor read noise (0-255 scale, raw domain)
    shot_gain: tuple[float, float]      # shot-noise gain
    jpeg: tuple[int, int]               # JPEG quality range
    blur: tuple[float, float]           # lens blur sigma (px at 256)


STYLES = {
    "celebahq": SourceStyle((0.36, 0.42), 0.02, (1.04, 1.0, 0.94), 0.3,
                            (2.0, 4.0), (0.6, 1.2), (85, 95), (0.4, 0.8)),
    "ffhq": SourceStyle((0.26, 0.34), 0.06, (0.94, 0.99, 1.06), 0.7,
                        (1.0, 2.5), (0.3, 0.8), (90, 98), (0.2, 0.5)),
}


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in about [-1, 1]: a random grid upsampled bicubically."""
    g = rng.standard_normal((cells, cells, channels)).astype(np.float32)
    out = cv2.resize(g, (size, size), interpolation=cv2.INTER_CUBIC)
    return out.reshape(size, size, channels)


def sample_params(rng: np.random.Generator, style: SourceStyle) -> dict:
    """Random face geometry and colours for one image."""
    p = {
        "fh": rng.uniform(*style.face_size),
        "aspect": rng.uniform(0.7, 0.85),
        "cx": 0.5 + rng.uniform(-style.jitter, style.jitter),
        "cy": 0.52 + rng.uniform(-style.jitter, style.jitter),
        "angle": rng.uniform(-12, 12),
        "yaw": rng.uniform(-0.06, 0.06),
        "skin": _SKIN_COLOURS[rng.integers(len(_SKIN_COLOURS))] * rng.uniform(0.92, 1.08, 3),
        "hair": _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15, 3),
        "hair_size": rng.uniform(1.05, 1.3),
        "hair_drop": rng.uniform(0.0, 0.5),
        "iris": _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))],
        "lips": np.array([0.7, 0.3, 0.3]) * rng.uniform(0.75, 1.15, 3),
        "eye_w": rng.uniform(0.16, 0.22), "eye_h": rng.uniform(0.06, 0.1),
        "eye_y": rng.uniform(-0.12, -0.05), "eye_dx": rng.uniform(0.3, 0.4),
        "brow_y": rng.uniform(0.1, 0.16), "brow_t": rng.uniform(0.035, 0.06),
        "nose_w": rng.uniform(0.12, 0.18), "nose_h": rng.uniform(0.22, 0.3),
        "mouth_w": rng.uniform(0.28, 0.4), "mouth_h": rng.uniform(0.07, 0.13),
        "mouth_y": rng.uniform(0.38, 0.48),
        "bg": rng.uniform(0.1, 0.9, (2, 3)),
        "bg_textured": rng.random() < style.bg_textured,
        "tint": np.array(style.tint),
        "light": rng.uniform(-0.5, 0.5, 2),
        "tex_seed": int(rng.integers(2**31)),
    }
    return p


def perturb_params(p: dict, rng: np.random.Generator) -> dict:
    """A variant of a face (what a generator 'imagines' in the masked part): new colours and
    texture, slightly moved features, same framing."""
    q = dict(p)
    q["skin"] = p["skin"] * rng.uniform(0.97, 1.03, 3)  # close to the original: no colour seam
    q["hair"] = _HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))] * rng.uniform(0.85, 1.15, 3)
    q["iris"] = _IRIS_COLOURS[rng.integers(len(_IRIS_COLOURS))]
    q["lips"] = p["lips"] * rng.uniform(0.8, 1.2, 3)
    for k in ("eye_w", "eye_h", "nose_w", "nose_h", "mouth_w", "mouth_h", "brow_t"):
        q[k] = p[k] * rng.uniform(0.85, 1.15)
    q["tex_seed"] = int(rng.integers(2**31))
    return q


def render_scene(p: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Clean render: (size, size, 3) float32 RGB in [0, 1] and (size, size) uint8 part map."""
    S = 2 * size  # draw at twice the size, then area-downsample: anti-aliased edges
    rng = np.random.default_rng(p["tex_seed"])
    img = np.zeros((S, S, 3), np.float32)
    lab = np.zeros((S, S), np.uint8)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32) / S
    t = (xx * 0.7 + yy * 0.3)[..., None]
    img[:] = p["bg"][0] * (1 - t) + p["bg"][1] * t
    if p["bg_textured"]:
        img *= 1 + 0.25 * _smooth_noise(rng, S, 6, 3)
    cx, cy = p["cx"] * S, p["cy"] * S
    fh, ang = p["fh"] * S, p["angle"]                  # face half-height, rotation (degrees)
    fw, rad = fh * p["aspect"], np.deg2rad(ang)
    rot = np.array([[np.cos(rad), -np.sin(rad)], [np.sin(rad), np.cos(rad)]])

    def at(dx: float, dy: float) -> tuple[int, int]:
        """Face coordinates (fractions of the face half-sizes) -> pixels, rotated."""
        v = rot @ np.array([(dx + p["yaw"]) * fw, dy * fh])
        return int(round(cx + v[0])), int(round(cy + v[1]))

    def ell(canvas, centre, axes, colour, angle=0.0):
        cv2.ellipse(canvas, centre, (max(1, int(axes[0])), max(1, int(axes[1]))),
                    ang + angle, 0, 360, colour, -1)

    hair_col = tuple(float(c) for c in p["hair"])
    skin_col = tuple(float(c) for c in p["skin"])
    # Hair behind the head, then neck, then the face.
    hs = p["hair_size"]
    hair_c = at(0, -0.12 + p["hair_drop"] * 0.2)
    ell(img, hair_c, (fw * hs, fh * (hs + p["hair_drop"] * 0.3)), hair_col)
    ell(lab, hair_c, (fw * hs, fh * (hs + p["hair_drop"] * 0.3)), HAIR)
    nx0, ny0 = at(-0.45, 0.6)
    nx1 = at(0.45, 0.6)[0]
    cv2.rectangle(img, (nx0, ny0), (nx1, S), tuple(c * 0.85 for c in skin_col), -1)
    cv2.rectangle(lab, (nx0, ny0), (nx1, S), SKIN, -1)
    ell(img, (int(cx), int(cy)), (fw, fh), skin_col)
    ell(lab, (int(cx), int(cy)), (fw, fh), SKIN)
    # Fringe of hair over the forehead.
    fringe = at(0, -0.95)
    ell(img, fringe, (fw * 0.95, fh * 0.28 * (0.5 + p["hair_drop"])), hair_col)
    ell(lab, fringe, (fw * 0.95, fh * 0.28 * (0.5 + p["hair_drop"])), HAIR)
    # Eyes and brows.
    for side in (-1, 1):
        ec = at(side * p["eye_dx"], p["eye_y"])
        ew, eh = p["eye_w"] * fw, p["eye_h"] * fh
        ell(img, ec, (ew, eh), (0.93, 0.92, 0.9))
        ell(lab, ec, (ew, eh), EYES)
        cv2.circle(img, ec, max(1, int(eh * 0.9)), tuple(float(c) for c in p["iris"]), -1)
        cv2.circle(img, ec, max(1, int(eh * 0.4)), (0.03, 0.03, 0.03), -1)
        b0 = at(side * (p["eye_dx"] - 0.14), p["eye_y"] - p["brow_y"])
        b1 = at(side * (p["eye_dx"] + 0.16), p["eye_y"] - p["brow_y"] + 0.02)
        bm = at(side * p["eye_dx"], p["eye_y"] - p["brow_y"] - 0.03)
        pts = np.array([b0, bm, b1], np.int32)
        th = max(2, int(p["brow_t"] * fh))
        cv2.polylines(img, [pts], False, tuple(float(c) * 0.8 for c in p["hair"]), th)
        cv2.polylines(lab, [pts], False, BROWS, th)
    # Nose: a soft triangle.
    nw, nh = p["nose_w"], p["nose_h"]
    tri = np.array([at(0, 0.02), at(-nw, nh + 0.04), at(nw, nh + 0.04)], np.int32)
    cv2.fillPoly(img, [tri], tuple(c * 0.88 for c in skin_col))
    cv2.fillPoly(lab, [tri], NOSE)
    for side in (-1, 1):
        cv2.circle(img, at(side * nw * 0.45, nh + 0.02), max(1, int(0.025 * fh)),
                   tuple(c * 0.45 for c in skin_col), -1)
    # Mouth: lips and the line between them.
    mc = at(0, p["mouth_y"])
    ell(img, mc, (p["mouth_w"] * fw, p["mouth_h"] * fh), tuple(float(c) for c in p["lips"]))
    ell(lab, mc, (p["mouth_w"] * fw, p["mouth_h"] * fh), MOUTH)
    cv2.line(img, at(-p["mouth_w"] * 0.95, p["mouth_y"]), at(p["mouth_w"] * 0.95, p["mouth_y"]),
             tuple(float(c) * 0.4 for c in p["lips"]), max(1, int(0.015 * fh)))
    # Texture and light: low-frequency blotches, a directional shading, the illuminant tint.
    face = (lab != BG)[..., None]
    img *= np.where(face, 1 + 0.06 * _smooth_noise(rng, S, 10, 1) + 0.04 * _smooth_noise(rng, S, 24, 3), 1)
    shade = 1 + 0.18 * ((xx - 0.5) * p["light"][0] + (yy - 0.5) * p["light"][1])
    img *= shade[..., None]
    img *= p["tint"]
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return np.clip(img, 0, 1), lab[::2, ::2].copy()


def camera(img: np.ndarray, rng: np.random.Generator, style: SourceStyle) -> np.ndarray:
    """The real-image trace: lens blur, Bayer mosaic, Poisson-Gaussian raw noise, bilinear
    demosaicing, gamma, JPEG. float [0, 1] -> uint8."""
    size = img.shape[0]
    sigma = rng.uniform(*style.blur) * size / 256
    img = cv2.GaussianBlur(img, (0, 0), max(sigma, 0.1))
    lin = np.power(np.clip(img, 0, 1), 2.2) * 255.0
    raw = np.empty(img.shape[:2], np.float32)  # RGGB Bayer pattern
    raw[0::2, 0::2] = lin[0::2, 0::2, 0]
    raw[0::2, 1::2] = lin[0::2, 1::2, 1]
    raw[1::2, 0::2] = lin[1::2, 0::2, 1]
    raw[1::2, 1::2] = lin[1::2, 1::2, 2]
    gain = rng.uniform(*style.shot_gain)
    read = rng.uniform(*style.read_noise)
    raw = raw + rng.standard_normal(raw.shape).astype(np.float32) * np.sqrt(gain * raw + read**2)
    raw16 = np.clip(raw * 256, 0, 65535).astype(np.uint16)
    rgb = cv2.cvtColor(raw16, cv2.COLOR_BayerBG2RGB).astype(np.float32) / (256 * 255)
    out = np.power(np.clip(rgb, 0, 1), 1 / 2.2) * 255
    out8 = np.clip(np.round(out), 0, 255).astype(np.uint8)
    q = int(rng.integers(style.jpeg[0], style.jpeg[1] + 1))
    ok, buf = cv2.imencode(".jpg", out8[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()


def lens_blur(img: np.ndarray, rng: np.random.Generator, style: SourceStyle) -> np.ndarray:
    """The camera's lens blur alone: a generator imitates the look of its training images."""
    sigma = rng.uniform(*style.blur) * img.shape[0] / 256
    return cv2.GaussianBlur(img, (0, 0), max(sigma, 0.1))


def diffusion_like(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ``p2`` trace: 4 rounds of "add noise, denoise with an edge-preserving (bilateral)
    filter". The result is smooth where a camera image is noisy. float [0, 1] -> uint8."""
    x = img.astype(np.float32)
    for s in (0.10, 0.05, 0.025, 0.012):
        x = x + rng.standard_normal(x.shape).astype(np.float32) * s
        x = cv2.bilateralFilter(x, 5, s * 3, 1.5)
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


def latent_like(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ``ldm`` trace: a 1/4-resolution "latent" decoded by bicubic upsampling and
    sharpening. float [0, 1] -> uint8."""
    h, w = img.shape[:2]
    lat = cv2.resize(img, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    lat = lat + rng.standard_normal(lat.shape).astype(np.float32) * 0.01
    up = cv2.resize(lat, (w, h), interpolation=cv2.INTER_CUBIC)
    sharp = cv2.addWeighted(up, 1.6, cv2.GaussianBlur(up, (0, 0), 1.2), -0.6, 0)
    return np.clip(np.round(sharp * 255), 0, 255).astype(np.uint8)


def block_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """An upsampling decoder's trace: Gaussian noise constant over 2x2 blocks, (h, w, 3) float."""
    h, w = shape
    block = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 3)).astype(np.float32)
    return np.repeat(np.repeat(block, 2, 0), 2, 1)[:h, :w] * sigma


def exemplar_fill(real: np.ndarray, mask: np.ndarray, rng: np.random.Generator, tries: int = 8) -> np.ndarray:
    """A patch-based fill: ``real`` shifted so that the masked part is copied from another place
    of the same image (of ``tries`` random shifts of up to a third of the side, the one whose
    source overlaps the mask least), real texture and noise included. uint8 -> float32."""
    h, w = mask.shape
    best, best_overlap = (h // 4, 0), None
    for _ in range(tries):
        d = (int(rng.integers(-h // 3, h // 3 + 1)), int(rng.integers(-w // 3, w // 3 + 1)))
        if abs(d[0]) + abs(d[1]) < max(2, h // 8):
            continue
        overlap = int((mask & np.roll(mask, d, (0, 1))).sum())
        if best_overlap is None or overlap < best_overlap:
            best, best_overlap = d, overlap
    return np.roll(real, best, (0, 1)).astype(np.float32)


def paste(fill: np.ndarray, base: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``fill`` where ``mask`` is 1, ``base`` elsewhere: the mask is exactly what changed."""
    return np.where(mask[..., None] > 0, fill, base)


def choose_mask(parts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A DOLOS-like mask (1 = fake): one facial part or two small ones, small parts dilated by a
    random 1-15 px at 256 px, scaled to this size. Falls back to skin if a part is absent."""
    size = parts.shape[0]
    choice = MASK_CHOICES[rng.choice(len(MASK_CHOICES), p=MASK_PROBS / MASK_PROBS.sum())]
    mask = np.zeros_like(parts)
    for part in choice:
        m = (parts == part).astype(np.uint8)
        if part in SMALL_PARTS:
            r = max(1, int(round(rng.integers(1, 16) * size / 256)))
            m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
        mask |= m
    if mask.sum() < 4:
        mask = (parts == SKIN).astype(np.uint8)
    return mask


def make_real(rng, size, style):
    p = sample_params(rng, style)
    clean, parts = render_scene(p, size)
    return p, parts, camera(clean, rng, style)


def make_sample(source: str, generator: str, size: int, seed_seq: list[int],
                base_seed_seq: list[int] | None = None):
    """One image (uint8 RGB) and its mask (uint8, 1 = fake) or None.

    Inpainted images start from a real image of the same split: ``base_seed_seq`` is the seed of
    that real image, so the base is byte-identical to the file in ``<source>/real/<split>``
    (as in DOLOS, where the inpainted sets are made from the real images: Repaint-P2's 30k
    train images are ~3.3 masks per real train image, its 9k subset one per image).
    """
    rng = np.random.default_rng(seed_seq)
    style = STYLES[source]
    if generator == "real":
        return make_real(rng, size, style)[2], None
    if generator == "p2":
        clean, _ = render_scene(sample_params(rng, style), size)
        return diffusion_like(lens_blur(clean, rng, style), rng), None
    base_rng = np.random.default_rng(base_seed_seq if base_seed_seq is not None else seed_seq)
    p, parts, real = make_real(base_rng, size, style)
    mask = choose_mask(parts, rng)
    if generator in ("repaint-p2", "ldm"):
        variant, _ = render_scene(perturb_params(p, rng), size)
        variant = lens_blur(variant, rng, style)
        if generator == "repaint-p2":
            return paste(diffusion_like(variant, rng), real, mask), mask
        fill = latent_like(variant, rng).astype(np.float32) + block_noise(rng, mask.shape, 1.5)
        return paste(np.clip(np.round(fill), 0, 255).astype(np.uint8), real, mask), mask
    if generator == "lama":
        out = cv2.inpaint(real, mask, 3, cv2.INPAINT_TELEA).astype(np.float32)
        out += block_noise(rng, mask.shape, 1.2)
    elif generator == "pluralistic":
        out = exemplar_fill(real, mask, rng) + block_noise(rng, mask.shape, 2.5)
    else:
        raise ValueError(f"unknown generator {generator!r}")
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return paste(out, real, mask), mask


def _seed_for(seed: int, source: str, generator: str, split: str, i: int) -> list[int]:
    h = hashlib.sha256(f"{source}/{generator}/{split}".encode()).digest()
    return [seed, int.from_bytes(h[:4], "little"), i]


def _write_png(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(path.stem + ".tmp.png")
    bgr = arr[..., ::-1] if arr.ndim == 3 else arr
    if not cv2.imwrite(str(tmp), bgr):
        raise OSError(f"could not write {tmp}")
    os.replace(tmp, path)


def _job(args):
    root, source, generator, split, i, size, seed, n_real = args
    key = DatasetKey(source, generator)
    base = _seed_for(seed, source, "real", split, i % n_real) if n_real else None
    img, mask = make_sample(source, generator, size, _seed_for(seed, source, generator, split, i), base)
    name = f"{i:06d}.png"
    _write_png(key.images_dir(Path(root), split) / name, img)
    if mask is not None:
        _write_png(key.masks_dir(Path(root), split) / name, np.where(mask > 0, 0, 255).astype(np.uint8))
    return i


def plan(sizes: BuildSizes, factor: float) -> dict[tuple[str, str], dict[str, int]]:
    """Images per (source, generator) and split. FFHQ has no test split, like the real data."""
    base = {"train": sizes.train, "valid": sizes.valid, "test": sizes.test}
    big = dict(base, train=int(round(sizes.train * factor)))
    no_test = dict(base, test=0)
    out: dict[tuple[str, str], dict[str, int]] = {}
    for g in ("real", "p2", "ldm", "lama", "pluralistic"):
        out[("celebahq", g)] = base
    out[("celebahq", "repaint-p2")] = big
    for g in ("real", "p2"):
        out[("ffhq", g)] = no_test
    out[("ffhq", "repaint-p2")] = dict(big, test=0)
    return out


def _render_all(todo: list, workers: int, progress: bool) -> None:
    """Render every image of ``todo`` (``_job`` arguments), in ``workers`` processes."""
    pool = get_context("spawn" if os.name == "nt" else "fork").Pool(workers) if workers > 1 else None
    iterator = pool.imap_unordered(_job, todo, chunksize=16) if pool is not None else map(_job, todo)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(todo), desc="building DOLOS-mini", unit="img")
    for _ in iterator:
        pass
    if pool is not None:
        pool.close()
        pool.join()


def _copy_9k(root: Path, the_plan: dict) -> None:
    """repaint-p2-9k: the first images of repaint-p2 (train: as many as the real train split)."""
    src, dst = DatasetKey("celebahq", "repaint-p2"), DatasetKey("celebahq", "repaint-p2-9k")
    for split in SPLITS:
        n = the_plan[("celebahq", "real")][split]
        for kind in ("images", "masks"):
            sdir = src.images_dir(root, split) if kind == "images" else src.masks_dir(root, split)
            ddir = dst.images_dir(root, split) if kind == "images" else dst.masks_dir(root, split)
            ddir.mkdir(parents=True, exist_ok=True)
            for name in sorted(os.listdir(sdir))[:n]:
                shutil.copyfile(sdir / name, ddir / name)


def build_mini(root: str | Path, profile: Profile, seed: int = 0, workers: int | None = None,
               force: bool = False, progress: bool = True, only: tuple[str, ...] | None = None) -> dict:
    """Write DOLOS-mini for ``profile`` under ``root``; return its metadata.

    Skipped when ``root/DOLOS-MINI.json`` says the same version, seed, sizes and sets were built.
    Deterministic: the same seed gives byte-identical files, whatever the number of workers.
    ``only``: build just these CelebA-HQ generators (e.g. ``("real", "repaint-p2")``: what
    Patches B and C read; the 9k subset comes with ``repaint-p2``); an image is the same
    whichever other sets are built.
    """
    if profile.build_sizes is None:
        raise ValueError(f"profile {profile.name!r} uses real data; DOLOS-mini is for smoke/mini")
    root = Path(root)
    meta = {
        "dataset": "DOLOS-mini", "builder_version": BUILDER_VERSION, "seed": seed,
        "image_size": profile.image_size, "sizes": profile.build_sizes.__dict__,
        "repaint_full_factor": profile.repaint_full_factor,
    }
    if only is not None:
        unknown = sorted(set(only) - {g for s, g in plan(profile.build_sizes, 1.0) if s == "celebahq"})
        if unknown or not {"real", "repaint-p2"} <= set(only):
            raise ValueError(f"build_mini(only=...): {only!r} must name CelebA-HQ generators and include "
                             f"'real' and 'repaint-p2' (unknown: {unknown})")
        meta["only"] = sorted(only)
    meta_path = root / "DOLOS-MINI.json"
    if not force and meta_path.exists():
        old = json.loads(meta_path.read_text())
        if {k: old.get(k) for k in meta} == meta:
            return old
    if root.exists():
        for sub in ("celebahq", "ffhq"):
            shutil.rmtree(root / sub, ignore_errors=True)
        meta_path.unlink(missing_ok=True)
    todo = []
    the_plan = plan(profile.build_sizes, profile.repaint_full_factor)
    if only is not None:
        the_plan = {k: v for k, v in the_plan.items() if k[0] == "celebahq" and k[1] in only}
    for (source, generator), splits in the_plan.items():
        key = DatasetKey(source, generator)
        for split in SPLITS:
            if not splits[split]:
                continue
            key.images_dir(root, split).mkdir(parents=True, exist_ok=True)
            if key.has_masks:
                key.masks_dir(root, split).mkdir(parents=True, exist_ok=True)
            n_real = the_plan[(source, "real")][split] if key.has_masks else 0
            if key.has_masks and not n_real:  # no real split to inpaint: independent bases
                n_real = splits[split]
            todo += [(str(root), source, generator, split, i, profile.image_size, seed, n_real)
                     for i in range(splits[split])]
    t0 = time.time()
    _render_all(todo, workers or min(4, os.cpu_count() or 1), progress)
    _copy_9k(root, the_plan)
    meta["build_seconds"] = round(time.time() - t0, 1)
    meta["counts"] = {f"{s}/{g}": v for (s, g), v in the_plan.items()}
    meta["counts"]["celebahq/repaint-p2-9k"] = the_plan[("celebahq", "real")]
    meta["not_testable"] = NOT_TESTABLE
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, meta_path)
    return meta
