"""Fused log-mel spectrogram kernel (C++). Private: see msk.spectral."""

from typing import overload

import numpy as np
from numpy.typing import NDArray

_I64 = NDArray[np.int64]

@overload
def mel_power(
    y: NDArray[np.float32], n_fft: int, hop_length: int, center: bool, band_start: _I64,
    band_offset: _I64, weights: NDArray[np.float32], power: int, log: bool, log_scale: float,
    log_offset: float, n_threads: int, out: NDArray[np.float32],
) -> None: ...
@overload
def mel_power(
    y: NDArray[np.float64], n_fft: int, hop_length: int, center: bool, band_start: _I64,
    band_offset: _I64, weights: NDArray[np.float64], power: int, log: bool, log_scale: float,
    log_offset: float, n_threads: int, out: NDArray[np.float64],
) -> None:
    """Fill ``out`` with the (log-)mel spectrogram of ``y``.

    IN  y (n_samples,) C-contiguous float32/float64
    IN  n_fft: power of two from 16 to 2**24; hop_length >= 1; center: pad n_fft / 2 zeros each side
    IN  band_start (n_mels,) int64: first FFT bin of each band
    IN  band_offset (n_mels + 1,) int64, non-decreasing: each band's weights are
        weights[band_offset[b] : band_offset[b + 1]], on bins band_start[b] onwards (<= n_fft / 2)
    IN  weights (nnz,) same dtype as y
    IN  power: 1 (magnitude) or 2 (power); log: apply log(log_scale * mel + log_offset)
    IN  n_threads >= 1: frame blocks split across this many threads
    OUT out (n_frames, n_mels) same dtype, n_frames = 1 + (n_samples + 2 * pad - n_fft) // hop_length
    Arrays are never converted (TypeError on a wrong dtype or layout); the shapes and band
    table are checked (ValueError naming them). Releases the GIL.
    """
