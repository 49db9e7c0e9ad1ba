"""The short-time spectrum behind the app's picture and the report's spectrograms."""

import numpy as np

from video_bgm.spectrum import frame_centres, power_db
from video_bgm.synthetic import sine


def test_a_tone_peaks_in_its_own_bin_in_every_frame():
    rate, n_fft = 32000, 1024
    tone = sine(1000.0, rate, rate)[0]
    db = power_db(tone, frame_centres(len(tone), 256), n_fft)
    assert db.shape == (n_fft // 2 + 1, 125)
    assert (db[:, 2:-2].argmax(axis=0) == round(1000 / (rate / n_fft))).all()
    assert db.max() - np.median(db) > 60  # a clean tone stands far above the rest


def test_silence_is_the_floor():
    assert power_db(np.zeros(4096, np.float32), frame_centres(4096, 512)).max() < -100
