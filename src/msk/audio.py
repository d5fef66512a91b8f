"""Reading audio files: decode with soundfile, mix to mono, resample with soxr."""

import os
import re
from importlib import resources

import numpy as np

from ._validation import check_int

__all__ = ["audio_extensions", "audio_files", "load_audio", "example_audio"]

# libsndfile's log line for a WAV 'data' chunk longer than the file, e.g. "data : 352800 (should
# be 317515)"; sizes from 0x7ffff000 up are "unknown length" placeholders of streaming writers.
_WAV_SHORT_DATA = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_WAV_UNKNOWN_SIZE = 0x7FFFF000
# Ogg declares no length; libsndfile logs these when the stream is cut mid-way.
_OGG_CUT = ("Ogg: Junk after the last page", "Ogg: Last page lacks an end-of-stream bit")


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
    import soundfile as sf

    if sr is not None:
        sr = check_int("sr", sr, low=1)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike; got {type(path).__name__}.")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path!r}: no such file.")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not an audio file.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty (0 bytes).")
    try:
        # bytes: file names that are not valid UTF-8 (lone surrogates) reach libsndfile intact
        with sf.SoundFile(os.fsencode(path)) as f:
            native_sr = f.samplerate
            declared = f.frames
            short_data = _WAV_SHORT_DATA.search(f.extra_info)
            ogg_cut = [msg for msg in _OGG_CUT if msg in f.extra_info]
            y = f.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise ValueError(f"{path!r} could not be decoded as audio: {exc}") from None
    # For WAV, libsndfile trims `frames` to the bytes present and only logs the header's
    # declared data size, so compare that (unless it is a streaming placeholder).
    if short_data and int(short_data[1]) < _WAV_UNKNOWN_SIZE:
        raise ValueError(
            f"{path!r} is truncated: its header declares {short_data[1]} bytes of audio data "
            f"but the file holds only {short_data[2]}."
        )
    if ogg_cut:
        raise ValueError(f"{path!r} is truncated or corrupt: {ogg_cut[0].lower()}.")
    if y.shape[0] == 0:
        raise ValueError(f"{path!r} holds no audio samples.")
    # libsndfile reports the declared length from the header; a file cut short
    # decodes fewer frames (MP3 lengths are estimates, so allow a small slack).
    if declared > 0 and y.shape[0] < declared - max(2048, declared // 100):
        raise ValueError(
            f"{path!r} is truncated: its header declares {declared} frames but only "
            f"{y.shape[0]} could be decoded."
        )
    y = y.mean(axis=1, dtype=np.float32) if y.shape[1] > 1 else y[:, 0]
    if not np.isfinite(y).all():
        raise ValueError(f"{path!r} decodes to NaN or infinite samples.")
    if sr is not None and sr != native_sr:
        import soxr

        y = soxr.resample(y, native_sr, sr, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(y, dtype=np.float32)
