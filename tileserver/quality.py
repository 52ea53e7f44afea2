"""Image quality measures shared by the encoder's rate control, training and evaluation.

SSIM follows the convention used for every number in this project: 11x11 Gaussian window
(sigma 1.5), computed per R, G, B channel and averaged, with the 5 px border dropped
(scikit-image does exactly that with these arguments).
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity


def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    mse = np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def ssim(reference: np.ndarray, test: np.ndarray) -> float:
    return float(
        structural_similarity(
            reference,
            test,
            channel_axis=2,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
        )
    )


def ssim_torch(reference, test):
    """Differentiable mean SSIM of NCHW tensors in [0, 1], in the convention of :func:`ssim`
    (per channel, 11x11 Gaussian window of sigma 1.5, valid region only, i.e. the 5 px border
    dropped), for training losses."""
    import torch
    import torch.nn.functional as F

    offsets = torch.arange(11, dtype=reference.dtype, device=reference.device) - 5
    g = torch.exp(-(offsets**2) / (2 * 1.5**2))
    g = g / g.sum()
    channels = reference.shape[1]
    rows = g.view(1, 1, 11, 1).repeat(channels, 1, 1, 1)
    cols = g.view(1, 1, 1, 11).repeat(channels, 1, 1, 1)

    def blur(image):
        return F.conv2d(F.conv2d(image, rows, groups=channels), cols, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_x, mu_y = blur(reference), blur(test)
    var_x = blur(reference * reference) - mu_x**2
    var_y = blur(test * test) - mu_y**2
    cov = blur(reference * test) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.mean()
