"""Reading audio: decode with soundfile, mix to mono, resample with soxr, in blocks.

:func:`stream` is the one front end: it yields a file (or a waveform) as
mono float32 blocks at the analysis rate, with every integrity check
(truncated WAV data, cut Ogg streams, fewer frames decoded than the header
declares, no samples, NaN or infinity). :func:`load_audio` is its
concatenation. Resampling is soxr's streaming resampler, whose output equals
one-shot ``soxr.resample`` sample for sample.
"""

import os
import re
from importlib import resources

import numpy as np

from ._validation import as_float_array, check_int

__all__ = ["audio_extensions", "audio_files", "example_audio", "load_audio", "stream"]

# libsndfile's log line for a WAV 'data' chunk longer than the file, e.g. "data : 352800 (should
# be 317515)"; sizes from 0x7ffff000 up are "unknown length" placeholders of streaming writers.
_WAV_SHORT_DATA = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_WAV_UNKNOWN_SIZE = 0x7FFFF000
# Ogg declares no length; libsndfile logs these when the stream is cut mid-way.
_OGG_CUT = ("Ogg: Junk after the last page", "Ogg: Last page lacks an end-of-stream bit")
# Frames per read: 56 MP3 frames of 1152 samples (a multiple of every MPEG layer's frame), since
# libsndfile's MP3 decoding gives slightly different samples when a read ends inside a frame.
_BLOCK_FRAMES = 1152 * 56


# File name extensions of the formats libsndfile decodes (the keys of soundfile.available_formats).
# Formats that are not music files in practice are left out: RAW (headerless), MAT4/MAT5 (MATLAB),
# HTK (speech features) and MPC2K/SDS/XI (sampler instruments).
_FORMAT_EXTENSIONS = {
    "WAV": ("wav",), "WAVEX": ("wav",), "RF64": ("rf64",), "W64": ("w64",), "FLAC": ("flac",),
    "OGG": ("ogg", "oga", "opus"), "MP3": ("mp3",), "AIFF": ("aif", "aiff", "aifc"),
    "AU": ("au", "snd"), "CAF": ("caf",), "SD2": ("sd2",), "IRCAM": ("sf",), "VOC": ("voc",),
    "NIST": ("nist", "sph"), "SVX": ("8svx", "iff"), "PAF": ("paf",), "AVR": ("avr",),
    "WVE": ("wve",), "PVF": ("pvf",),
}


def audio_extensions():
    """The file name extensions msk reads as audio: the formats this libsndfile decodes.

    Returns
    -------
    extensions : tuple of str
        Lower-case extensions with their dot (``".wav"``, ``".mp3"``, ...),
        sorted. Matching is case-insensitive.

    Examples
    --------
    >>> import msk
    >>> {".wav", ".flac", ".mp3", ".ogg"} <= set(msk.audio.audio_extensions())
    True
    """
    import soundfile as sf

    formats = sf.available_formats()
    return tuple(sorted({f".{ext}" for fmt, exts in _FORMAT_EXTENSIONS.items() if fmt in formats
                         for ext in exts}))


def _is_zarr_hierarchy(path):
    return os.path.isfile(os.path.join(path, "zarr.json")) or os.path.isfile(os.path.join(path, ".zgroup"))


def audio_files(root):
    """What a folder holds: its audio files and the other files, recursively.

    The one rule that ``msk extract``, :func:`msk.extract_many` and
    :meth:`msk.MultiscaleFeatures.fit` apply to a folder. A file is audio
    when its extension (case-insensitive) is one of :func:`audio_extensions`.
    Hidden files and folders (names starting with ``.``) are left out, and so
    is every Zarr hierarchy (a folder holding ``zarr.json`` or ``.zgroup``,
    such as a feature store written into the folder it reads). Symbolic links
    to files are followed; links to folders are not (no loops).

    Parameters
    ----------
    root : str or os.PathLike
        The folder.

    Returns
    -------
    audio : list of str
        The audio files, as ``os.path.join(root, ...)`` paths, sorted.
    not_audio : list of str
        The other (visible) files, sorted: reported as "skipped (not audio)".

    Raises
    ------
    NotADirectoryError
        If ``root`` is not a folder.

    Examples
    --------
    >>> import os, tempfile, msk
    >>> tmp = tempfile.TemporaryDirectory()
    >>> for name in ("a.wav", "b.MP3", "cover.jpg", ".hidden.wav"):
    ...     open(os.path.join(tmp.name, name), "wb").close()
    >>> audio, other = msk.audio.audio_files(tmp.name)
    >>> [os.path.basename(p) for p in audio], [os.path.basename(p) for p in other]
    (['a.wav', 'b.MP3'], ['cover.jpg'])
    >>> tmp.cleanup()
    """
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"`root` must be a str or os.PathLike; got {type(root).__name__}.")
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root!r} is not a folder.")
    extensions = audio_extensions()
    audio, other = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d for d in dirnames
            if not d.startswith(".") and not _is_zarr_hierarchy(os.path.join(dirpath, d))
        )
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = os.path.join(dirpath, name)
            (audio if name.lower().endswith(extensions) else other).append(path)
    return sorted(audio), sorted(other)


def example_audio():
    """Return the path of the real music clip shipped with msk.

    The clip is 29.1 s of "Uncertain Future" by LupusMechanicus (Warzone 2100
    Legacy Soundtrack, CC BY-SA 3.0), stored like a MagnaTagATune clip:
    16 kHz mono MP3 at 32 kbit/s. Its source and licence are recorded in
    ``msk/data/README.md``.

    Returns
    -------
    path : str
        Absolute path of ``example.mp3``.

    Examples
    --------
    >>> import msk
    >>> y = msk.load_audio(msk.example_audio())
    >>> y.dtype, round(len(y) / 16000, 1)  # MP3 decoders add ~0.1 s of encoder padding
    (dtype('float32'), 29.2)
    """
    return str(resources.files("msk").joinpath("data", "example.mp3"))


class _Resampler:
    """Streaming soxr resampler (identical output to one-shot ``soxr.resample``)."""

    def __init__(self, sr_in, sr_out):
        self._stream = None
        if sr_out is not None and sr_in != sr_out:
            import soxr

            self._stream = soxr.ResampleStream(sr_in, sr_out, 1, dtype="float32", quality="HQ")

    def __call__(self, block, last):
        if self._stream is None:
            return block
        return np.asarray(self._stream.resample_chunk(block, last=last), dtype=np.float32)


def _held_back(blocks):
    """``(block, is_last)`` pairs: one block is held back so that the last one is known."""
    pending = None
    for block in blocks:
        if pending is not None:
            yield pending, False
        pending = block
    if pending is not None:
        yield pending, True


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike; got {type(path).__name__}.")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r}: no such file.")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not an audio file.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty (0 bytes).")
    return path


def _open(path):
    import soundfile as sf

    try:
        return sf.SoundFile(os.fsencode(path))  # bytes: file names that are not UTF-8 too
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{path!r} could not be decoded as audio: {exc}") from None


def _file_blocks(f, path, block_frames):
    """Mono float32 blocks of the open audio file ``f`` at its own rate, checked; closes ``f``."""
    import soundfile as sf

    with f:
        declared = f.frames
        # For WAV, libsndfile trims `frames` to the bytes present and only logs the header's
        # declared data size, so compare that (unless it is a streaming placeholder).
        short_data = _WAV_SHORT_DATA.search(f.extra_info)
        if short_data and int(short_data[1]) < _WAV_UNKNOWN_SIZE:
            raise ValueError(
                f"{path!r} is truncated: its header declares {short_data[1]} bytes of audio data "
                f"but the file holds only {short_data[2]}."
            )
        n_read = 0
        while True:
            try:
                block = f.read(block_frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
                raise ValueError(f"{path!r} could not be decoded as audio: {exc}") from None
            if block.shape[0] == 0:
                break
            block = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if not np.isfinite(block).all():
                raise ValueError(f"{path!r} decodes to NaN or infinite samples.")
            n_read += block.shape[0]
            yield np.ascontiguousarray(block)
        ogg_cut = [msg for msg in _OGG_CUT if msg in f.extra_info]
    if ogg_cut:
        raise ValueError(f"{path!r} is truncated or corrupt: {ogg_cut[0].lower()}.")
    if n_read == 0:
        raise ValueError(f"{path!r} holds no audio samples.")
    # libsndfile reports the declared length from the header; a file cut short
    # decodes fewer frames (MP3 lengths are estimates, so allow a small slack).
    if declared > 0 and n_read < declared - max(2048, declared // 100):
        raise ValueError(
            f"{path!r} is truncated: its header declares {declared} frames but only "
            f"{n_read} could be decoded."
        )


class _Stream:
    """The iterator :func:`stream` returns: blocks, and the expected length as a length hint."""

    def __init__(self, blocks, source_sr, sr, n_source):
        self._resample = _Resampler(source_sr, sr)
        self._blocks = _held_back(blocks)
        # Samples expected at the output rate (from a file's header: an estimate).
        self._hint = n_source if sr is None else -(-n_source * sr // source_sr)

    def __iter__(self):
        return self

    def __next__(self):
        block, last = next(self._blocks)
        return self._resample(block, last)

    def __length_hint__(self):
        return self._hint


def _array_blocks(y, block_frames):
    for start in range(0, y.shape[0], block_frames):
        yield as_float_array("y", y[start : start + block_frames], ndim=1, dtype=np.float32)


def stream(source, *, sr=16000, source_sr=None, block_frames=None):
    """Yield an audio file (or a waveform) as mono float32 blocks at ``sr`` Hz.

    The file is decoded ``block_frames`` frames at a time, mixed to mono and
    resampled block by block, so memory does not grow with its length. Every
    check of :func:`load_audio` is made here: a truncated or corrupt file
    raises ``ValueError`` (naming it) when the file is opened or while its
    blocks are read (at the latest when the last one is taken), so a
    consumer sees the error before it finishes.

    Parameters
    ----------
    source : str, os.PathLike or array-like of shape (n_samples,)
        An audio file, or a mono waveform sampled at ``source_sr``.
    sr : int or None, default=16000
        Rate of the blocks in Hz. ``None`` keeps the source's own rate.
    source_sr : int or None, default=None
        Rate of a waveform ``source`` (required for arrays; ignored for a
        file, whose header gives it).
    block_frames : int or None, default=None
        Frames of the source read per block (resampled blocks differ in
        length). None reads 64512 frames, a multiple of every MP3 frame
        size, so that an MP3 decodes to the same samples as when read whole.

    Returns
    -------
    blocks : iterator of ndarray of shape (n,), dtype float32
        Consecutive pieces of the signal; their concatenation is
        :func:`load_audio`'s result. Empty blocks may occur while the
        resampler fills. ``operator.length_hint(blocks)`` is the expected
        number of samples (for a file, from its header: an estimate).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    TypeError
        If ``source`` is neither a path nor an array.
    ValueError
        If the file is empty, truncated, not audio or holds no samples, if a
        sample is NaN or infinite, or if a waveform is not 1-D or lacks ``source_sr``.

    Examples
    --------
    >>> import numpy as np, msk
    >>> blocks = list(msk.audio.stream(msk.example_audio(), sr=8000))
    >>> round(sum(len(b) for b in blocks) / 8000, 1)
    29.2
    >>> np.array_equal(np.concatenate(blocks), msk.load_audio(msk.example_audio(), sr=8000))
    True
    """
    if sr is not None:
        sr = check_int("sr", sr, low=1)
    block_frames = _BLOCK_FRAMES if block_frames is None else check_int("block_frames", block_frames, low=1)
    if isinstance(source, (str, os.PathLike)):
        path = _check_path(source)
        f = _open(path)
        source_sr, n_source = f.samplerate, max(0, f.frames)
        blocks = _file_blocks(f, path, block_frames)
    else:
        if isinstance(source, (bytes, dict)) or source is None:
            raise TypeError(
                f"`source` must be an audio file path or a 1-D waveform; got {type(source).__name__}."
            )
        if source_sr is None:
            raise ValueError("`source_sr` must be given with a waveform (its rate in Hz); got None.")
        source_sr = check_int("source_sr", source_sr, low=1)
        y = np.asarray(source)
        if y.ndim != 1:
            raise ValueError(f"`source` must be a mono waveform of shape (n_samples,); got shape {y.shape}.")
        if y.shape[0] == 0:
            raise ValueError("`source` must hold at least one sample; got an empty array.")
        n_source = y.shape[0]
        blocks = _array_blocks(y, block_frames)
    return _Stream(blocks, source_sr, sr, n_source)


def load_audio(path, *, sr=16000):
    """Decode an audio file to a mono float32 waveform at ``sr`` Hz.

    WAV, FLAC, OGG/Vorbis, Opus and MP3 are read through soundfile
    (libsndfile). Channels are averaged to mono. When the file's rate differs
    from ``sr`` the signal is resampled with soxr (high quality), never by
    dropping samples.

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sr : int or None, default=16000
        Target sampling rate in Hz. ``None`` keeps the file's own rate.

    Returns
    -------
    y : ndarray of shape (n_samples,), dtype float32
        The mono waveform, nominally in [-1, 1].

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty, truncated, not audio, or holds no samples. The
        message names the file and the reason.

    Examples
    --------
    >>> import msk
    >>> y = msk.load_audio(msk.example_audio(), sr=8000)
    >>> round(len(y) / 8000, 1)
    29.2
    """
    if sr is not None:
        sr = check_int("sr", sr, low=1)
    blocks = list(stream(_check_path(path), sr=sr))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
