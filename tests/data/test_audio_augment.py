"""SpecAugment masks and time shift: batched, each setting changes the batch, seeded runs repeat."""

import pytest
import torch

from forgeml.config import AugmentConfig, ConfigError
from forgeml.data.augment import Augment, band_mask, check_audio_fits, time_shift


def batch() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(16, 1, 40, 101) + 3.0  # no exact zeros: every zero below comes from augmentation


@pytest.mark.parametrize("setting", [{"freq_mask": 8}, {"time_mask": 20}, {"time_shift": 10},
                                     {"freq_mask": 8, "time_mask": 20, "time_shift": 10, "masks": 2}])
def test_each_setting_changes_the_batch(setting):
    x = batch()
    aug = Augment(AugmentConfig(**setting))
    assert aug.active and aug.audio
    torch.manual_seed(1)
    y = aug(x)
    assert y.shape == x.shape and not torch.equal(x, y)
    torch.manual_seed(1)
    assert torch.equal(aug(x), y)  # same seed, same augmentation


def test_freq_mask_zeroes_whole_bands_of_mel_bins():
    torch.manual_seed(2)
    y = band_mask(batch(), 8, dim=2)
    zero_rows = (y == 0).all(dim=3)[:, 0]  # (N, M): mel bins blanked over every frame
    widths = zero_rows.sum(1)
    assert widths.max() <= 8 and widths.sum() > 0
    assert ((y == 0).sum(dim=(1, 2, 3)) == widths * 101).all()  # nothing else touched


def test_time_mask_zeroes_spans_of_frames_and_masks_adds_more():
    x = batch()
    torch.manual_seed(3)
    one = (Augment(AugmentConfig(time_mask=10))(x) == 0).all(dim=2)[:, 0].sum()
    torch.manual_seed(3)
    two = (Augment(AugmentConfig(time_mask=10, masks=3))(x) == 0).all(dim=2)[:, 0].sum()
    assert two > one


def test_time_shift_moves_frames_and_fills_with_zero():
    x = batch()
    torch.manual_seed(4)
    y = time_shift(x, 5)
    for i in range(len(x)):
        found = [s for s in range(-5, 6) if torch.equal(y[i, ..., max(s, 0) : 101 + min(s, 0)], x[i, ..., max(-s, 0) : 101 - max(s, 0)])]
        assert len(found) == 1  # each clip moved by one whole shift
        s = found[0]
        assert (y[i, ..., :s] == 0).all() if s > 0 else (y[i, ..., 101 + s :] == 0).all()


def test_masks_wider_than_the_spectrogram_are_refused():
    check_audio_fits(AugmentConfig(freq_mask=39, time_shift=100), [1, 40, 101], "x.csv")
    with pytest.raises(ConfigError, match="freq_mask: 40 does not fit"):
        check_audio_fits(AugmentConfig(freq_mask=40), [1, 40, 101], "x.csv")
    with pytest.raises(ConfigError, match="time_mask: 101"):
        check_audio_fits(AugmentConfig(time_mask=101), [1, 40, 101], "x.csv")
