"""Tests of msk.load_audio and msk.example_audio.

Every file is written into ``tmp_path`` with soundfile, from a synthesised signal or from
the shipped example clip. Oracles: the samples written (lossless formats), the channel mean,
``soxr.resample`` called directly, and the frequency of a sine (lossy formats).
"""

import operator
import os
import re
import struct

import numpy as np
import pytest
import soundfile as sf
import soxr

import msk
from conftest import assert_close

NATIVE_SR = 44100


def sine(freq, n, sr, amp=0.5, phase=0.0):
    return (amp * np.sin(2 * np.pi * freq * np.arange(n) / sr + phase)).astype(np.float32)


@pytest.fixture(scope="module")
def stereo():
    """2 s of stereo at 44.1 kHz: 440 Hz on the left, 1 kHz on the right."""
    n = 2 * NATIVE_SR
    return np.stack([sine(440, n, NATIVE_SR), sine(1000, n, NATIVE_SR, amp=0.25)], axis=1)


@pytest.fixture(scope="module")
def example():
    return msk.load_audio(msk.example_audio())


def write(path, data, sr, fmt, subtype):
    sf.write(path, data, sr, format=fmt, subtype=subtype)
    return path


def dominant_frequency(y, sr):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.shape[0])))
    return np.fft.rfftfreq(y.shape[0], 1.0 / sr)[spectrum.argmax()]


FORMATS = {
    "wav": ("WAV", "PCM_16"),
    "flac": ("FLAC", "PCM_16"),
    "ogg": ("OGG", "VORBIS"),
    "mp3": ("MP3", "MPEG_LAYER_III"),
}


# ------------------------------------------------------------------- decoding


def test_example_clip():
    path = msk.example_audio()
    assert os.path.isabs(path) and path.endswith("example.mp3")
    y = msk.load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1 and y.flags.c_contiguous
    # 29.1 s plus the MP3 encoder's padding (about 0.1 s).
    assert 29.1 * 16000 <= y.shape[0] <= 29.3 * 16000
    assert 0.1 < np.abs(y).max() <= 1.0
    assert np.sqrt(np.mean(y**2)) > 0.01  # music, not silence


def test_example_clip_native_rate_is_16k(example):
    np.testing.assert_array_equal(msk.load_audio(msk.example_audio(), sr=None), example)
    np.testing.assert_array_equal(msk.load_audio(msk.example_audio(), sr=16000), example)


@pytest.mark.parametrize("ext", ["wav", "flac"])
def test_lossless_formats_decode_exactly(tmp_path, stereo, ext):
    fmt, subtype = FORMATS[ext]
    path = write(tmp_path / f"a.{ext}", stereo, NATIVE_SR, fmt, subtype)
    y = msk.load_audio(path, sr=None)
    assert y.dtype == np.float32 and y.shape == (stereo.shape[0],)
    # 16-bit quantisation of each channel, then the mean of the two.
    assert_close(y, stereo.mean(axis=1), rtol=0, atol=1.0 / 32768)


def test_float_wav_is_bit_exact(tmp_path, stereo):
    path = write(tmp_path / "a.wav", stereo, NATIVE_SR, "WAV", "FLOAT")
    y = msk.load_audio(path, sr=None)
    np.testing.assert_array_equal(y, stereo.mean(axis=1, dtype=np.float32))


@pytest.mark.parametrize("ext", ["ogg", "mp3"])
def test_lossy_formats_keep_the_tone(tmp_path, ext):
    n = 2 * NATIVE_SR
    fmt, subtype = FORMATS[ext]
    path = write(tmp_path / f"a.{ext}", sine(1000, n, NATIVE_SR), NATIVE_SR, fmt, subtype)
    y = msk.load_audio(path, sr=None)
    assert y.dtype == np.float32
    # Vorbis is sample-exact in length; MP3 adds encoder delay and padding (< 0.1 s).
    assert n <= y.shape[0] <= n + NATIVE_SR // 10
    assert dominant_frequency(y, NATIVE_SR) == pytest.approx(1000, abs=1.0)
    assert np.sqrt(np.mean(y**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_example_clip_through_every_format(tmp_path, example, ext):
    """Real music written in each format and read back: the same music at 16 kHz."""
    fmt, subtype = FORMATS[ext]
    path = write(tmp_path / f"clip.{ext}", example, 16000, fmt, subtype)
    y = msk.load_audio(path)
    n = min(y.shape[0], example.shape[0])
    assert abs(y.shape[0] - example.shape[0]) < 16000 // 10
    if ext in ("wav", "flac"):
        assert_close(y, example, rtol=0, atol=1.0 / 32768)
    else:
        # Lossy codecs: compare the log-mel spectrograms, which is what msk uses. MP3 adds a
        # decoder delay, so align on the cross-correlation peak first.
        a, b = example[:n], y[:n]
        if ext == "mp3":
            lag = int(np.argmax(np.correlate(b[16000:20000], a[16000:18000], mode="valid")))
            b = y[lag: lag + n - 2000]
            a = example[: b.shape[0]]
        Sa, Sb = msk.log_melspectrogram(a), msk.log_melspectrogram(b)
        assert np.corrcoef(Sa.ravel(), Sb.ravel())[0, 1] > 0.95


def test_pathlike_and_str_agree(tmp_path, stereo):
    path = write(tmp_path / "a.wav", stereo, NATIVE_SR, "WAV", "FLOAT")
    np.testing.assert_array_equal(msk.load_audio(path), msk.load_audio(str(path)))


# ------------------------------------------------------------- channels and rate


def test_multichannel_is_averaged(tmp_path):
    n = 4000
    chans = np.stack([sine(f, n, 16000, amp=0.2) for f in (100, 200, 300, 400)], axis=1)
    path = write(tmp_path / "quad.wav", chans, 16000, "WAV", "FLOAT")
    assert sf.info(path).channels == 4
    assert_close(msk.load_audio(path), chans.mean(axis=1), rtol=1e-6, atol=1e-7)


def test_resampling_matches_soxr(tmp_path, stereo):
    path = write(tmp_path / "a.wav", stereo, NATIVE_SR, "WAV", "FLOAT")
    y = msk.load_audio(path, sr=16000)
    mono = stereo.mean(axis=1, dtype=np.float32)
    expected = soxr.resample(mono, NATIVE_SR, 16000, quality="HQ")
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert y.shape == (round(mono.shape[0] * 16000 / NATIVE_SR),) == expected.shape
    np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("target", [8000, 16000, 22050, 48000])
def test_resampling_keeps_a_sine(tmp_path, target):
    path = write(tmp_path / "tone.wav", sine(1000, 3 * NATIVE_SR, NATIVE_SR), NATIVE_SR,
                 "WAV", "FLOAT")
    y = msk.load_audio(path, sr=target)
    assert y.shape[0] == 3 * target
    assert dominant_frequency(y, target) == pytest.approx(1000, abs=0.5)
    # A real resampler, not decimation: the tone keeps its level and stays clean.
    mid = y[target // 2: -target // 2]
    assert_close(np.sqrt(np.mean(mid**2)), 0.5 / np.sqrt(2), rtol=1e-3)
    clean = sine(1000, y.shape[0], target)
    # Compare against an ideal tone at the best-fitting phase (soxr is linear phase).
    best = max(np.dot(mid, sine(1000, y.shape[0], target, phase=p)[target // 2: -target // 2])
               for p in np.linspace(0, 2 * np.pi, 64, endpoint=False))
    assert best / np.dot(clean[target // 2: -target // 2], clean[target // 2: -target // 2]) > 0.99


def test_resampling_removes_content_above_the_new_nyquist(tmp_path):
    # 10 kHz cannot exist at 16 kHz: dropping samples would alias it to 6 kHz.
    path = write(tmp_path / "hi.wav", sine(10000, NATIVE_SR, NATIVE_SR), NATIVE_SR, "WAV", "FLOAT")
    y = msk.load_audio(path, sr=16000)
    assert np.sqrt(np.mean(y[2000:-2000] ** 2)) < 1e-3


def test_sr_none_keeps_native_rate(tmp_path, stereo):
    path = write(tmp_path / "a.flac", stereo, NATIVE_SR, "FLAC", "PCM_16")
    native = msk.load_audio(path, sr=None)
    assert native.shape == (stereo.shape[0],)
    # Asking for the native rate does not resample either.
    np.testing.assert_array_equal(msk.load_audio(path, sr=NATIVE_SR), native)


def test_resampled_example_clip_to_22050(example):
    y = msk.load_audio(msk.example_audio(), sr=22050)
    assert y.shape == (round(example.shape[0] * 22050 / 16000),)
    np.testing.assert_array_equal(y, soxr.resample(example, 16000, 22050, quality="HQ"))


# ---------------------------------------------------------------- bad files


def named(path):
    return re.escape(os.path.basename(str(path)))


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.wav"
    with pytest.raises(FileNotFoundError, match=named(path) + ".*no such file"):
        msk.load_audio(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=named(path) + ".*empty"):
        msk.load_audio(path)


def test_directory(tmp_path):
    path = tmp_path / "folder.wav"
    path.mkdir()
    with pytest.raises(ValueError, match=named(path) + ".*directory"):
        msk.load_audio(path)


@pytest.mark.parametrize("ext", ["wav", "mp3", "flac", "ogg"])
def test_text_file_with_audio_extension(tmp_path, ext):
    path = tmp_path / f"notes.{ext}"
    path.write_text("These are not the samples you are looking for.\n" * 20)
    with pytest.raises(ValueError, match=named(path) + ".*could not be decoded as audio"):
        msk.load_audio(path)


def test_random_bytes(tmp_path, rng):
    path = tmp_path / "noise.wav"
    path.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=named(path)):
        msk.load_audio(path)


@pytest.mark.parametrize("fraction", [0.3, 0.9, 0.999])
def test_truncated_wav(tmp_path, stereo, fraction):
    full = write(tmp_path / "full.wav", stereo, NATIVE_SR, "WAV", "PCM_16").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(full[: int(len(full) * fraction)])
    with pytest.raises(ValueError, match=named(path) + ".*truncated: its header declares 352800"):
        msk.load_audio(path)


def test_wav_header_without_samples(tmp_path, stereo):
    full = write(tmp_path / "full.wav", stereo, NATIVE_SR, "WAV", "PCM_16").read_bytes()
    path = tmp_path / "header.wav"
    path.write_bytes(full[:44])
    with pytest.raises(ValueError, match=named(path)):
        msk.load_audio(path)
    path.write_bytes(full[:12])  # RIFF/WAVE and nothing else
    with pytest.raises(ValueError, match=named(path) + ".*could not be decoded"):
        msk.load_audio(path)


def test_streamed_wav_with_unknown_length_loads(tmp_path):
    """Streaming writers put 0xFFFFFFFF in the size fields: that is not truncation."""
    data = sine(440, 8000, 16000)
    full = bytearray(write(tmp_path / "s.wav", data, 16000, "WAV", "FLOAT").read_bytes())
    pos = full.index(b"data")
    full[pos + 4: pos + 8] = struct.pack("<I", 0xFFFFFFFF)
    full[4:8] = struct.pack("<I", 0xFFFFFFFF)
    path = tmp_path / "streamed.wav"
    path.write_bytes(bytes(full))
    np.testing.assert_array_equal(msk.load_audio(path), data)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.99])
def test_truncated_flac(tmp_path, stereo, fraction):
    full = write(tmp_path / "full.flac", stereo, NATIVE_SR, "FLAC", "PCM_16").read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(full[: int(len(full) * fraction)])
    with pytest.raises(ValueError, match=named(path) + ".*could not be decoded as audio"):
        msk.load_audio(path)


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_mp3(tmp_path, fraction):
    tone = sine(440, 4 * NATIVE_SR, NATIVE_SR)
    full = write(tmp_path / "full.mp3", tone, NATIVE_SR, "MP3", "MPEG_LAYER_III").read_bytes()
    path = tmp_path / "cut.mp3"
    path.write_bytes(full[: int(len(full) * fraction)])
    with pytest.raises(ValueError, match=named(path) + ".*truncated: its header declares"):
        msk.load_audio(path)


def test_truncated_ogg_without_samples(tmp_path, stereo):
    full = write(tmp_path / "full.ogg", stereo, NATIVE_SR, "OGG", "VORBIS").read_bytes()
    path = tmp_path / "cut.ogg"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=named(path)):
        msk.load_audio(path)


# Ogg/Vorbis declares no length in its header: a file cut after the first pages decodes the
# pages that remain; load_audio reads libsndfile's log ('Junk after the last page').
def test_truncated_ogg_with_some_pages(tmp_path, stereo):
    full = write(tmp_path / "full.ogg", stereo, NATIVE_SR, "OGG", "VORBIS").read_bytes()
    path = tmp_path / "cut.ogg"
    path.write_bytes(full[: int(len(full) * 0.9)])
    with pytest.raises(ValueError, match=named(path)):
        msk.load_audio(path)


def test_non_finite_samples(tmp_path):
    data = sine(440, 4000, 16000)
    data[100] = np.nan
    path = write(tmp_path / "nan.wav", data, 16000, "WAV", "FLOAT")
    with pytest.raises(ValueError, match=named(path) + ".*NaN or infinite"):
        msk.load_audio(path)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(sr=0), ValueError, "`sr` must be a positive integer; got 0"),
        (dict(sr=-16000), ValueError, "`sr`"),
        (dict(sr=16000.0), TypeError, "`sr` must be an integer"),
        (dict(sr="16k"), TypeError, "`sr`"),
    ],
)
def test_bad_sr(tmp_path, kwargs, error, match):
    path = write(tmp_path / "a.wav", sine(440, 1000, 16000), 16000, "WAV", "FLOAT")
    with pytest.raises(error, match=match):
        msk.load_audio(path, **kwargs)


@pytest.mark.parametrize("path", [42, None, b"bytes.wav", ["a.wav"]])
def test_bad_path_type(path):
    with pytest.raises(TypeError, match="`path` must be a str or os.PathLike"):
        msk.load_audio(path)


# -- msk.audio.stream: the one front end ------------------------------------------------------


@pytest.mark.parametrize("block_frames", [None, 1000, 4096])
@pytest.mark.parametrize("sr", [None, 16000, 22050])
def test_stream_concatenates_to_load_audio(tmp_path, stereo, block_frames, sr):
    path = write(tmp_path / "x.flac", stereo, NATIVE_SR, "FLAC", "PCM_24")
    blocks = msk.audio.stream(path, sr=sr, block_frames=block_frames)
    expected = sr * stereo.shape[0] // NATIVE_SR if sr else stereo.shape[0]
    assert abs(operator.length_hint(blocks) - expected) <= 1
    got = np.concatenate(list(blocks))
    np.testing.assert_array_equal(got, msk.load_audio(path, sr=sr))
    if block_frames and sr is None:
        assert got.dtype == np.float32


def test_stream_reads_mp3_in_blocks_as_whole():
    """Blocks of whole MP3 frames: the same samples as one read of the file."""
    with sf.SoundFile(msk.example_audio()) as f:
        whole = f.read(dtype="float32")
    np.testing.assert_array_equal(np.concatenate(list(msk.audio.stream(msk.example_audio()))), whole)


def test_stream_of_a_waveform(rng):
    y = rng.standard_normal(30000).astype(np.float64)
    got = np.concatenate(list(msk.audio.stream(y, sr=16000, source_sr=44100, block_frames=7000)))
    np.testing.assert_array_equal(got, soxr.resample(y.astype(np.float32), 44100, 16000, quality="HQ"))
    with pytest.raises(ValueError, match="source_sr"):
        msk.audio.stream(y, sr=16000)
    with pytest.raises(ValueError, match="shape"):
        msk.audio.stream(np.zeros((4, 2)), source_sr=16000)
    with pytest.raises(TypeError, match="source"):
        msk.audio.stream(b"abc", source_sr=16000)
    bad = y.copy()
    bad[20000] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        list(msk.audio.stream(bad, sr=16000, source_sr=16000, block_frames=7000))


def test_stream_checks_integrity_at_the_end(tmp_path, stereo):
    full = write(tmp_path / "full.wav", stereo, NATIVE_SR, "WAV", "PCM_16").read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(ValueError, match=named(path) + ".*truncated"):
        list(msk.audio.stream(path, block_frames=1000))
    with pytest.raises(FileNotFoundError, match="no such file"):
        msk.audio.stream(tmp_path / "missing.wav")
