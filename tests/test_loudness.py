"""Loudness: BS.1770 measurement against known values, normalisation, fades, ducking and the mix."""

import numpy as np
import pytest

from video_bgm import loudness
from video_bgm.loudness import Mix, finish, integrated_loudness

SR = 32000


def sine(freq=997.0, seconds=5.0, amplitude=1.0, sr=SR, channels=1):
    t = np.arange(round(seconds * sr)) / sr
    return np.repeat((amplitude * np.sin(2 * np.pi * freq * t))[None], channels, axis=0).astype(np.float32)


def test_k_weighting_at_48k_is_the_recommendations_table():
    sos = loudness.k_weighting(48000)
    np.testing.assert_allclose(sos[0], [1.53512485958697, -2.69169618940638, 1.19839281085285,
                                        1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
    np.testing.assert_allclose(sos[1], [1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)


@pytest.mark.parametrize("sr", [32000, 48000])
def test_full_scale_997_hz_sine_reads_minus_3_01_lufs(sr):
    assert integrated_loudness(sine(sr=sr), sr) == pytest.approx(-3.01, abs=0.02)
    # both channels of stereo: twice the power
    assert integrated_loudness(sine(sr=sr, channels=2), sr) == pytest.approx(0.0, abs=0.02)
    # -20 dB of amplitude is -20 LU
    assert integrated_loudness(sine(sr=sr, amplitude=0.1), sr) == pytest.approx(-23.01, abs=0.02)


def test_gates_ignore_silence_and_quiet_passages():
    tone = sine(seconds=4.0, amplitude=0.5)
    with_silence = np.concatenate([tone, np.zeros((1, 8 * SR), np.float32)], axis=1)
    # absolute gate: silence does not lower the reading
    assert integrated_loudness(with_silence, SR) == pytest.approx(integrated_loudness(tone, SR), abs=0.3)  # ungated: 4.8 LU lower
    # relative gate: a passage 30 dB quieter is ignored too
    quiet = sine(seconds=8.0, amplitude=0.5 * 10 ** (-30 / 20))
    assert integrated_loudness(np.concatenate([tone, quiet], axis=1), SR) == pytest.approx(
        integrated_loudness(tone, SR), abs=0.3)  # ungated: 4.8 LU lower
    assert integrated_loudness(np.zeros((2, SR), np.float32), SR) == float("-inf")


def test_normalise_reaches_the_target_within_1_lu():
    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal((2, 10 * SR))).astype(np.float32)
    for target in (-14.0, -16.0, -23.0):
        out = loudness.normalise(noise, SR, target)
        assert abs(integrated_loudness(out, SR) - target) < 1.0
        assert np.abs(out).max() <= loudness.PEAK_CEILING


def test_fades_start_and_end_at_zero_and_leave_the_middle():
    audio = np.ones((1, SR * 2), np.float32)
    out = loudness.fade(audio, SR, 0.5, 0.5)
    assert out[0, 0] < 1e-4 and out[0, -1] < 1e-4
    assert np.all(out[0, SR // 2: -SR // 2] == 1.0)
    assert np.all(np.diff(out[0, : SR // 2]) >= 0)


def _speech_like(seconds=12.0):
    """A 300 Hz tone on for 2 s, off for 2 s: a talker with pauses."""
    tone = sine(300.0, seconds, 0.3)
    gate = ((np.arange(tone.shape[1]) // (2 * SR)) % 2 == 0).astype(np.float32)
    return tone * gate, gate


def test_mix_keeps_the_original_audible_at_the_chosen_balance():
    original, _ = _speech_like()
    rng = np.random.default_rng(1)
    music = (0.2 * rng.standard_normal((1, original.shape[1]))).astype(np.float32)
    out = finish(music, SR, Mix(loudness=-16.0, fade=0.5, keep_original=-12.0, duck=0.0), original=original)
    assert out.shape == original.shape
    # the original is in the mix unchanged up to one overall gain: project it out
    g = float((out * original).sum() / (original * original).sum())
    assert g > 0
    rest = out - g * original
    assert integrated_loudness(g * original, SR) - integrated_loudness(rest, SR) == pytest.approx(12.0, abs=1.0)
    assert abs(integrated_loudness(out, SR) - (-16.0)) < 1.0


def test_ducking_lowers_the_music_while_the_original_is_loud():
    original, gate = _speech_like()
    music = sine(2000.0, 12.0, 0.2)
    out = finish(music, SR, Mix(loudness=None, fade=0.0, keep_original=0.0, duck=10.0), original=original)
    music_in_mix = out - original * (out[0, : SR] @ original[0, : SR]) / (original[0, : SR] @ original[0, : SR])
    level = lambda a, b: 20 * np.log10(np.sqrt(np.mean(music_in_mix[0, a:b] ** 2)))
    talking = level(SR * 4 + SR // 2, SR * 6 - SR // 4)  # well inside a talking span
    pause = level(SR * 6 + 3 * SR // 2, SR * 8)  # the end of a pause, after the release
    assert talking - pause == pytest.approx(-10.0, abs=1.5)
    # smooth: no step in the gain bigger than a few hundredths of a dB per sample
    gains = loudness.duck_gain(original, SR, 10.0, integrated_loudness(original, SR) - 10)
    assert np.abs(np.diff(20 * np.log10(gains))).max() < 0.05


def test_silent_original_gives_music_only_with_a_note():
    music = sine(440.0, 3.0, 0.2)
    notes = []
    out = finish(music, SR, Mix(keep_original=-12.0), original=np.zeros((1, 3 * SR), np.float32), notes=notes)
    assert notes and "silent" in notes[0]
    assert abs(integrated_loudness(out, SR) - loudness.DEFAULT_LOUDNESS) < 1.0


def test_mix_options_are_validated():
    with pytest.raises(ValueError, match="loudness"):
        Mix(loudness=5).validate()
    with pytest.raises(ValueError, match="duck"):
        Mix(duck=-1).validate()
    Mix(keep_original=-12).validate()


def test_limit_peak_scales_instead_of_clipping():
    loud = np.array([[0.5, -2.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(loudness.limit_peak(loud), loud * 0.99 / 2.0)
    quiet = np.array([[0.1, -0.2]], dtype=np.float32)
    assert loudness.limit_peak(quiet) is quiet


def test_the_raised_cosine_fade_in_and_its_fade_out_sum_to_one():
    ramp = loudness.raised_cosine(64)
    assert ramp.dtype == np.float32 and 0 < ramp[0] < 0.01 and 0.99 < ramp[-1] < 1
    np.testing.assert_allclose(ramp + ramp[::-1], 1.0, atol=1e-6)
