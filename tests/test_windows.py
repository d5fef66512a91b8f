"""Windows of consecutive frames and their memory-bounded random sampling."""

import tracemalloc

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from msk._windows import WindowReservoir, all_windows, sample_windows


def tagged_clips(lengths, n_mels=3):
    """Clips whose frames carry (clip id, frame index, 0 ...) so every window is identifiable."""
    clips = []
    for c, n in enumerate(lengths):
        f = np.zeros((n, n_mels))
        f[:, 0] = c
        f[:, 1] = np.arange(n)
        clips.append(f)
    return clips


def window_ids(windows):
    """(clip id, position) of each window drawn from tagged_clips."""
    return [(int(c), int(t)) for c, t in windows[:, :2]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [1, 2, 4])
def test_all_windows_matches_sliding_window_view(rng, dtype, width):
    frames = rng.standard_normal((30, 7)).astype(dtype)
    got = all_windows(frames, width)
    want = sliding_window_view(frames, (width, 7)).reshape(-1, width * 7)
    assert got.shape == (31 - width, 7 * width)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
    assert np.shares_memory(got, frames)  # a view, no copy
    assert not got.flags.writeable


@pytest.mark.parametrize("order", ["F", "strided"])
def test_all_windows_of_non_contiguous_frames(rng, order):
    frames = rng.standard_normal((20, 5))
    other = np.asfortranarray(frames) if order == "F" else np.repeat(frames, 2, axis=0)[::2]
    np.testing.assert_array_equal(all_windows(other, 3), all_windows(frames, 3))


def test_all_windows_bad_input():
    with pytest.raises(ValueError, match=r"`frames` must have at least width = 5 frames; got frames of shape \(4, 2\)"):
        all_windows(np.zeros((4, 2)), 5)
    with pytest.raises(ValueError, match=r"`width` must be a positive integer; got 0"):
        all_windows(np.zeros((4, 2)), 0)
    with pytest.raises(ValueError, match=r"`frames` must be a 2-D array"):
        all_windows(np.zeros(4), 1)


def test_sample_is_a_set_of_real_windows_without_repeats():
    clips = tagged_clips([10, 3, 25, 1, 40], n_mels=4)
    out = sample_windows(iter(clips), width=2, n_samples=30, random_state=0)
    assert out.shape == (30, 8)
    ids = window_ids(out)
    assert len(set(ids)) == 30
    for (c, t), row in zip(ids, out):
        np.testing.assert_array_equal(row, clips[c][t:t + 2].ravel())
    # The clip of a single frame has no window of width 2.
    assert all(c != 3 for c, _ in ids)


def test_fewer_windows_than_requested_returns_them_all():
    clips = tagged_clips([5, 8])
    out = sample_windows(clips, width=3, n_samples=100, random_state=1)
    assert out.shape == (3 + 6, 9)
    assert sorted(window_ids(out)) == [(0, t) for t in range(3)] + [(1, t) for t in range(6)]


def test_deterministic_for_a_seed():
    clips = tagged_clips([50, 7, 120, 33])
    a = sample_windows(clips, width=2, n_samples=40, random_state=7)
    b = sample_windows(clips, width=2, n_samples=40, random_state=7)
    c = sample_windows(clips, width=2, n_samples=40, random_state=8)
    np.testing.assert_array_equal(a, b)
    assert set(window_ids(a)) != set(window_ids(c))
    rs = np.random.RandomState(7)
    np.testing.assert_array_equal(sample_windows(clips, width=2, n_samples=40, random_state=rs), a)


def test_every_window_equally_likely():
    """Each of the 76 windows is drawn with probability n_samples / 76 whatever its clip's length."""
    lengths, width, n_samples, n_trials = [3, 40, 10, 26], 2, 15, 3000
    clips = tagged_clips(lengths)
    index = {}
    for c, n in enumerate(lengths):
        for t in range(n - width + 1):
            index[(c, t)] = len(index)
    counts = np.zeros(len(index))
    for seed in range(n_trials):
        for key in window_ids(sample_windows(clips, width, n_samples, random_state=seed)):
            counts[index[key]] += 1
    p = n_samples / len(index)
    expected, sd = n_trials * p, np.sqrt(n_trials * p * (1 - p))
    assert np.abs(counts - expected).max() < 4.5 * sd  # each window ~ Binomial(n_trials, p)
    # Pearson's statistic of the inclusion counts: mean 76 - 1 under uniformity, sd ~ 12.
    chi2 = ((counts - expected) ** 2 / expected).sum() * (1 / (1 - p))
    assert chi2 < len(index) + 5 * np.sqrt(2 * len(index))
    # No bias towards early or late windows, or long or short clips.
    per_clip = [counts[[index[(c, t)] for t in range(n - width + 1)]].mean() for c, n in enumerate(lengths)]
    assert np.ptp(per_clip) < 0.1 * expected


def test_rows_are_shuffled():
    clips = tagged_clips([200])
    ids = window_ids(sample_windows(clips, width=1, n_samples=200, random_state=3))
    assert sorted(ids) == [(0, t) for t in range(200)]
    assert ids != sorted(ids)


def test_reservoir_streams_and_keeps_the_first_dtype(rng):
    res = WindowReservoir(width=2, n_samples=20, random_state=0)
    res.update(rng.standard_normal((15, 4)).astype(np.float32))
    res.update(rng.standard_normal((30, 4)))  # float64 clip cast to the reservoir's float32
    assert res.n_seen_ == 14 + 29
    out = res.windows()
    assert out.shape == (20, 8) and out.dtype == np.float32


def test_memory_holds_the_sample_and_one_clip(rng):
    n_mels, width, n_samples, n_frames = 100, 2, 2000, 5000
    d = n_mels * width

    def clips():
        gen = np.random.default_rng(0)
        for _ in range(20):
            yield gen.standard_normal((n_frames, n_mels), dtype=np.float32)

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = sample_windows(clips(), width, n_samples, random_state=0)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    sample_bytes = n_samples * d * 4
    clip_bytes = n_frames * n_mels * 4
    assert out.shape == (n_samples, d)
    # Sample + one clip + small bounded temporaries: the finite check's block (256 KiB of
    # booleans), one gather chunk of 256 windows, per-clip index arrays (a few int64 per position).
    slack = (1 << 18) + 256 * d * 4 + 4 * 8 * n_frames + 50_000
    assert peak <= sample_bytes + clip_bytes + slack
    assert peak < sample_bytes + 2 * clip_bytes  # never two clips at once


def test_memory_follows_the_windows_seen_not_n_samples():
    """A request far beyond what the clips hold allocates for the windows there are, and returns them all."""
    clips = tagged_clips([3000, 7000, 500, 9000], n_mels=8)
    n_windows = sum(len(c) - 1 for c in clips)
    tracemalloc.start()
    try:
        big = sample_windows(iter(clips), 2, 10**12, random_state=0)  # 10**12 * 16 * 8 bytes = 128 TB
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    exact = sample_windows(iter(clips), 2, n_windows, random_state=0)
    np.testing.assert_array_equal(big, exact)  # the same draw as a request of exactly what there is
    assert big.shape == (n_windows, 16)
    assert peak < 8 * big.nbytes  # a few copies of the sample at most


def test_reservoir_bad_input(rng):
    with pytest.raises(ValueError, match=r"`n_samples` must be a positive integer; got 0"):
        WindowReservoir(1, 0)
    with pytest.raises(ValueError, match=r"`width` must be a positive integer"):
        WindowReservoir(0, 5)
    res = WindowReservoir(2, 5, random_state=0)
    with pytest.raises(ValueError, match=r"no windows were sampled"):
        res.windows()
    res.update(np.zeros((1, 3)))  # too short: skipped
    assert res.n_seen_ == 0
    res.update(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"`frames` must have n_mels = 3 columns.*got frames of shape \(4, 5\)"):
        res.update(np.zeros((4, 5)))
    bad = np.zeros((6, 3))
    bad[2, 2] = np.nan
    with pytest.raises(ValueError, match=r"`clips\[1\]` contains NaN"):
        sample_windows([np.zeros((6, 3)), bad], 2, 4, random_state=0)
    with pytest.raises(ValueError, match=r"`clips\[0\]` must be a 2-D array"):
        sample_windows([np.zeros(6)], 2, 4, random_state=0)
