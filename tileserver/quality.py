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
