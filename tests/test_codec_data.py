"""Training crops for the learned codec: which slides and levels they come from."""
from __future__ import annotations

import numpy as np
import torch

from tests.conftest import lc25000_subset
from tileserver.train.codec_data import LEGACY_TRAIN_SLIDES, TRAIN_SLIDES, CropSampler, tissue_fraction

PINK, VIOLET = (200, 90, 150), (110, 60, 190)


def test_slide_levels_are_drawn_in_proportion_to_their_area():
    big = np.full((512, 512, 3), PINK, np.uint8)  # 4x the area of the small level
    small = np.full((256, 256, 3), VIOLET, np.uint8)
    assert tissue_fraction(big) == tissue_fraction(small) == 1.0
    sampler = CropSampler(lc=None, slide_levels=[big, small], crop=64)
    crops = sampler.batch(np.random.default_rng(0), 600)
    red = crops[:, :, :, 0].mean(axis=(1, 2))
    from_big = np.mean(red > (PINK[0] + VIOLET[0]) / 2)
    assert 0.74 < from_big < 0.86  # 0.8 expected; a uniform draw over levels gives 0.5


def test_runs_recorded_without_slides_resume_on_the_slides_they_trained_on(tmp_path):
    from tileserver.train.codec_trainer import CHECKPOINT, CodecTrainer, TrainConfig

    config = TrainConfig(N=16, M=24, crop=64, batch=2, threads=1, warmup=1, val_minutes=0, steps=1,
                         data=[str(lc25000_subset(tmp_path, 4))])
    assert config.slides == list(TRAIN_SLIDES)
    CodecTrainer(config, tmp_path / "run", resume=False).run()
    checkpoint = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=False)
    del checkpoint["config"]["slides"]  # as written before slides were a setting
    torch.save(checkpoint, tmp_path / "run" / CHECKPOINT)
    resumed = CodecTrainer(TrainConfig(steps=2), tmp_path / "run", resume=True)
    assert resumed.config.slides == list(LEGACY_TRAIN_SLIDES)
