"""Resizing of maps and masks: the one place the repository resizes them.

- :func:`nearest`: nearest neighbour sampled at pixel centres, output pixel ``i`` reads input
  pixel ``floor((i + 0.5) * n_in / n_out)``. This is what Pillow's ``NEAREST``, torch's
  ``nearest-exact`` and the authors' mask resizing do (OpenCV's ``INTER_NEAREST`` is not:
  it reads ``floor(i * n_in / n_out)``, shifted by half a pixel). Binary masks stay binary.
- :func:`bicubic`: float maps resized as Pillow's default ``resize`` of a float image, the
  authors' upsampling of a map to the mask before the 0.5 threshold (a = -0.5 cubic,
  antialiased when shrinking; torch's ``bicubic`` with ``antialias=True`` is that filter).

Image resizing for the networks (Lanczos, bilinear) stays with the transforms
(``data.datasets.Transform``), which are Pillow's filters by definition.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    return np.minimum(((np.arange(n_out) + 0.5) * (n_in / n_out)).astype(np.int64), n_in - 1)


def nearest(x, size: tuple[int, int]):
    """(..., H, W) -> (..., h, w) by pixel-centred nearest neighbour. NumPy in, NumPy out;
    a tensor in, a tensor out (on its device); the dtype is kept."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    iy, ix = _nearest_index(x.shape[-2], size[0]), _nearest_index(x.shape[-1], size[1])
    if isinstance(x, torch.Tensor):
        iy, ix = torch.from_numpy(iy).to(x.device), torch.from_numpy(ix).to(x.device)
        return x.index_select(-2, iy).index_select(-1, ix)
    return np.asarray(x)[..., iy, :][..., ix]


@lru_cache(maxsize=32)
def _bicubic_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """The (n_out, n_in) float64 matrix of 1-D bicubic resizing, read off torch's
    ``interpolate`` applied to the unit vectors: resizing is linear and separable, so a 2-D
    resize is ``W_y @ M @ W_x.T``, two small matrix products. Each row is normalised to sum
    to 1, as Pillow's filter weights are, so a constant map stays exactly constant."""
    # three identical columns: torch's kernel mishandles images one pixel wide
    eye = torch.eye(n_in, dtype=torch.float64)[:, None, :, None].repeat(1, 1, 1, 3)
    cols = F.interpolate(eye, size=(n_out, 3), mode="bicubic", align_corners=False, antialias=True)
    w = cols[:, 0, :, 1].T.contiguous()
    return w / w.sum(1, keepdim=True)


def bicubic(maps, size: tuple[int, int]) -> torch.Tensor:
    """Float maps (..., h, w) -> float32 tensor (..., H, W), bicubic as Pillow's float resize.
    Values may overshoot [0, 1] slightly near edges, as Pillow's do. The products run in
    float64 and are rounded once to float32: a constant map (an untrained model's 0.5
    everywhere) comes out exactly constant, as with Pillow, so "> 0.5" passes none of it."""
    t = torch.as_tensor(np.asarray(maps, dtype=np.float32) if not isinstance(maps, torch.Tensor)
                        else maps).float()
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    wy = _bicubic_matrix(t.shape[-2], int(size[0]))
    wx = _bicubic_matrix(t.shape[-1], int(size[1]))
    return (wy @ t.double() @ wx.T).float()


__all__ = ["nearest", "bicubic"]
