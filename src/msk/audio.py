"""Reading audio: decode with soundfile, mix to mono, resample with soxr, in blocks.

:func:`stream` is the one front end: it yields a file (or a waveform) as
mono float32 blocks at the analysis rate, with every integrity check
(truncated WAV data, cut Ogg streams, fewer frames decoded than the header
declares, no samples, NaN or infinity). :func:`load_audio` is its
concatenation. Resampling is soxr's streaming resampler, whose output equals
one-shot ``soxr.resample`` sample for sample.
"""

import contextlib
import errno
import os
import re
import sys
import tempfile
from importlib import resources

import numpy as np

from ._validation import as_float_array, check_int, check_sample_rate

__all__ = ["MAX_DURATION", "audio_extensions", "audio_files", "example_audio", "library_key", "load_audio",
           "stream"]

#: The longest audio msk decodes, in seconds (24 hours). A longer signal, or a file whose
#: header claims one (e.g. a small file with an absurdly low sample rate), is refused
#: before anything is allocated for it: its samples at 16 kHz alone would take over 5 GB.
MAX_DURATION = 24 * 3600

# libsndfile's log line for a WAV 'data' chunk longer than the file, e.g. "data : 352800 (should
# be 317515)"; sizes from 0x7ffff000 up are "unknown length" placeholders of streaming writers.
_WAV_SHORT_DATA = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_WAV_UNKNOWN_SIZE = 0x7FFFF000
# Ogg declares no length; libsndfile logs these when the stream is cut mid-way.
_OGG_CUT = ("Ogg: Junk after the last page", "Ogg: Last page lacks an end-of-stream bit")
# Frames per read: 56 MP3 frames of 1152 samples (a multiple of every MPEG layer's frame), since
# libsndfile's MP3 decoding gives slightly different samples when a read ends inside a frame.
_BLOCK_FRAMES = 1152 * 56
_MP3_FRAME = 1152


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


def library_key(path, root):
    """The store key of ``path`` in a library rooted at ``root``: its relative path, with ``/``.

    The same file gets the same key from any working directory: both paths
    are made absolute (without resolving symbolic links) before the relative
    path is taken, and the separators are ``/`` on every platform.

    Parameters
    ----------
    path, root : str or os.PathLike

    Returns
    -------
    key : str

    Raises
    ------
    ValueError
        If ``path`` is not inside ``root``.

    Examples
    --------
    >>> from msk.audio import library_key
    >>> library_key("/music/a/b.mp3", "/music/")
    'a/b.mp3'
    """
    path, root = os.path.abspath(os.fspath(path)), os.path.abspath(os.fspath(root))
    rel = os.path.relpath(path, root)
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise ValueError(f"{path!r} is not inside the library root {root!r}; give `root` (--root) "
                         "a folder that holds every input file.")
    return rel.replace(os.sep, "/")


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


# soxr emits an upsampled signal in bursts of about 800 input samples times the ratio (50 MB
# at 1 Hz -> 16 kHz), so larger ratios are taken in steps of at most _MAX_RATIO, and every
# step is fed at most _STEP_FRAMES samples at a time: no burst exceeds about 64 * 1800 samples.
_MAX_RATIO = 64
_STEP_FRAMES = 1024


def _resampled(pairs, sr_in, sr_out):
    """Resample ``(block, is_last)`` pairs with soxr, lazily, in bursts of bounded size.

    With one step (ratios up to 64) the concatenated output equals one-shot ``soxr.resample``.
    """
    if sr_out is None or sr_in == sr_out:
        return (block for block, _ in pairs)
    import soxr

    rates = [sr_in]
    while sr_out > _MAX_RATIO * rates[-1]:
        rates.append(_MAX_RATIO * rates[-1])
    rates.append(sr_out)
    for a, b in zip(rates, rates[1:]):
        pairs = _resample_step(pairs, soxr.ResampleStream(a, b, 1, dtype="float32", quality="HQ"),
                               _STEP_FRAMES if len(rates) > 2 else None)
    return (block for block, _ in pairs)


def _resample_step(pairs, resampler, step):
    for block, last in pairs:
        n = block.shape[0]
        size = step or max(n, 1)
        for i in range(0, max(n, 1), size):
            piece_last = last and i + size >= n
            out = resampler.resample_chunk(block[i : i + size], last=piece_last)
            yield np.asarray(out, dtype=np.float32), piece_last


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
        if os.path.islink(path):
            try:
                os.stat(path)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise ValueError(f"{path!r} is a symbolic link loop, not an audio file.") from None
            raise FileNotFoundError(f"{path!r} is a symbolic link to a missing file.")
        raise FileNotFoundError(f"{path!r}: no such file.")
    if os.path.isdir(path):
        raise ValueError(f"{path!r} is a directory, not an audio file.")
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} is not a regular file (a pipe, socket or device), not an audio file.")
    if os.path.getsize(path) == 0:
        raise ValueError(f"{path!r} is empty (0 bytes).")
    return path


def _open(path):
    import soundfile as sf

    try:
        return sf.SoundFile(os.fsencode(path))  # bytes: file names that are not UTF-8 too
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = str(exc)
        # libsndfile says this of any regular file whose format it does not recognise
        # (_check_path has made sure that the file exists and is regular).
        if "not a regular file" in reason or "Format not recognised" in reason:
            reason = "it is not in an audio format that libsndfile recognises"
        raise ValueError(f"{path!r} could not be decoded as audio: {reason}.") from None


def _too_long(what, n, rate):
    return ValueError(
        f"{what} {n} samples at {rate} Hz ({n / rate:.0f} s), longer than the {MAX_DURATION} s "
        "(msk.audio.MAX_DURATION) that msk decodes."
    )


def _read_frames(block_frames, source_sr, sr, channels):
    """Source frames per read, so that a read holds at most about ``2 * block_frames`` values
    (``channels`` per frame) and a block at ``sr`` about ``block_frames`` samples; a multiple
    of an MP3 frame when it can be."""
    n = block_frames
    if sr is not None and sr > source_sr:
        n = block_frames * source_sr // sr
    n = min(n, 2 * block_frames // max(1, channels))
    if n >= _MP3_FRAME:
        n -= n % _MP3_FRAME
    return max(1, n)


# MPEG audio Layer III frame headers (ISO 11172-3, 13818-3): bit rates in kbit/s by MPEG-1 or
# MPEG-2/2.5 and index, sample rates by version bits (3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5).
_MP3_KBPS = {
    True: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    False: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame_length(key):
    """Bytes of a Layer III frame from its header's top 23 bits, or 0 if not one msk knows."""
    version, layer = (key >> 10) & 3, (key >> 8) & 3
    kbps_index, rate_index, padding = (key >> 3) & 15, (key >> 1) & 3, key & 1
    if (key >> 12) != 0x7FF or version == 1 or layer != 1 or kbps_index in (0, 15) or rate_index == 3:
        return 0
    mpeg1 = version == 3
    kbps = _MP3_KBPS[mpeg1][kbps_index]
    return (144 if mpeg1 else 72) * kbps * 1000 // _MP3_RATES[version][rate_index] + padding


def _mp3_cut_frame(path):
    """``(present, needed)`` bytes of an MP3's last frame if the file ends inside it, else None.

    Walks the Layer III frame headers from the first frame to the end (skipping ID3v2 at the
    start, ID3v1 and APEv2 tags at the end). Returns None as well when the walk meets anything
    it does not know (free format, other layers, junk): only a clean walk whose last frame
    runs past the end of the file is evidence of a cut.
    """
    import mmap

    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 4:
            return None
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            pos, end = 0, size
            if m[:3] == b"ID3" and size >= 10:
                tag = m[6] << 21 | m[7] << 14 | m[8] << 7 | m[9]
                pos = 10 + tag + (10 if m[5] & 0x10 else 0)
            if end >= 128 and m[end - 128 : end - 125] == b"TAG":
                end -= 128
            if end >= 32 and m[end - 32 : end - 24] == b"APETAGEX":
                ape = int.from_bytes(m[end - 20 : end - 16], "little")
                end -= ape + (32 if m[end - 9] & 0x80 else 0)
            n_frames, lengths = 0, {}  # frame length by the header's top 23 bits
            while pos + 4 <= end:
                key = int.from_bytes(m[pos : pos + 3], "big") >> 1
                length = lengths.get(key)
                if length is None:
                    length = lengths[key] = _mp3_frame_length(key)
                if not length:
                    return None
                if pos + length > end:
                    return (end - pos, length) if n_frames else None
                pos += length
                n_frames += 1
            return None


def _file_blocks(f, path, block_frames):
    """Mono float32 blocks of the open audio file ``f`` at its own rate, checked; closes ``f``."""
    import soundfile as sf

    max_frames = MAX_DURATION * f.samplerate
    with f:
        cut = _mp3_cut_frame(path) if f.format == "MP3" else None
        if cut:
            raise ValueError(
                f"{path!r} is truncated: the file ends inside an MP3 frame ({cut[0]} of its "
                f"{cut[1]} bytes present)."
            )
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
            if n_read > max_frames:
                raise _too_long(f"{path!r} decodes to more than", max_frames, f.samplerate)
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
        self._blocks = _resampled(_held_back(blocks), source_sr, sr)
        # Samples expected at the output rate (from a file's header: an estimate).
        self._hint = n_source if sr is None else -(-n_source * sr // source_sr)

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._blocks)

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
        About how many samples a block holds. None means 64512, a multiple
        of every MP3 frame size, so that an MP3 decodes to the same samples
        as when read whole. Fewer source frames are read at a time when the
        signal is resampled up (a 1 Hz file is not read 64512 frames at a
        time) or has many channels, so that memory is bounded by the
        blocks, whatever the file's header claims.

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
        If the file is empty, truncated (see the Notes), not audio, not a
        regular file, a symbolic link loop or holds no samples, if a sample
        is NaN or infinite, if a waveform is not 1-D or lacks ``source_sr``,
        if a rate (``sr``, ``source_sr`` or the file's) is outside 1 Hz to
        1 MHz, or if the audio lasts longer than :data:`MAX_DURATION`
        (24 hours; checked against the header before anything is read, and
        again while decoding).

    Notes
    -----
    Truncation is detected when the file says how long it is (WAV, FLAC,
    and MP3 files with a Xing, Info or VBRI header, as LAME writes, whose
    decoded length falls short), when an Ogg stream ends without its last
    page, and when an MP3 ends inside a frame (its Layer III frame headers
    are walked when it is opened). An MP3 without a length header (many
    constant-bitrate encoders) cut exactly on a frame boundary cannot be
    told from a shorter file, and is read as the shorter file.

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
        sr = check_sample_rate("sr", sr)
    block_frames = _BLOCK_FRAMES if block_frames is None else check_int("block_frames", block_frames, low=1)
    if isinstance(source, (str, os.PathLike)):
        path = _check_path(source)
        f = _open(path)
        try:
            source_sr = check_sample_rate("sr", f.samplerate, path=path)
            n_source = max(0, f.frames)
            if n_source > MAX_DURATION * source_sr:
                raise _too_long(f"{path!r} declares", n_source, source_sr)
        except BaseException:
            f.close()
            raise
        blocks = _file_blocks(f, path, _read_frames(block_frames, source_sr, sr, f.channels))
    else:
        if isinstance(source, (bytes, dict)) or source is None:
            raise TypeError(
                f"`source` must be an audio file path or a 1-D waveform; got {type(source).__name__}."
            )
        if source_sr is None:
            raise ValueError("`source_sr` must be given with a waveform (its rate in Hz); got None.")
        source_sr = check_sample_rate("source_sr", source_sr)
        y = np.asarray(source)
        if y.ndim != 1:
            raise ValueError(f"`source` must be a mono waveform of shape (n_samples,); got shape {y.shape}.")
        if y.shape[0] == 0:
            raise ValueError("`source` must hold at least one sample; got an empty array.")
        n_source = y.shape[0]
        if n_source > MAX_DURATION * source_sr:
            raise _too_long("the waveform holds", n_source, source_sr)
        blocks = _array_blocks(y, _read_frames(block_frames, source_sr, sr, 1))
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
        If the file is empty, truncated, not audio, or holds no samples, if
        ``sr`` or the file's rate is outside 1 Hz to 1 MHz, or if it lasts
        longer than :data:`MAX_DURATION` (24 hours). The message names the
        file and the reason. An MP3 without a length header cut on a frame
        boundary is read as the shorter file (see :func:`stream`).

    Examples
    --------
    >>> import msk
    >>> y = msk.load_audio(msk.example_audio(), sr=8000)
    >>> round(len(y) / 8000, 1)
    29.2
    """
    if sr is not None:
        sr = check_sample_rate("sr", sr)
    blocks = list(stream(_check_path(path), sr=sr))
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


# -- what the C decoders print ------------------------------------------------------------------

#: Bytes of decoder output kept from one capture.
_MAX_DECODER_OUTPUT = 64 * 1024
#: Distinct lines of decoder output kept to explain one file's failure, and characters per line.
_MAX_DECODER_LINES = 20
_MAX_DECODER_LINE = 200


@contextlib.contextmanager
def decoder_output_captured():
    """Send file descriptor 2 to a temporary file while the block runs; yield a list that gets the text.

    C decoders (libsndfile, mpg123) print warnings such as "Illegal Audio-MPEG-Header" straight to
    file descriptor 2, not through Python. While the block runs, fd 2 (process-wide, every thread)
    goes to a temporary file, and Python's ``sys.stderr``, when it writes to fd 2, writes to a
    duplicate of the original descriptor instead (so progress bars and messages still show);
    afterwards fd 2 is restored and the captured text (at most 64 KiB) is appended to the yielded
    list. Captures nest: an inner one takes what is printed while it runs.
    """
    try:
        sys.stderr.flush()
        python_on_fd2 = sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):
        python_on_fd2 = False  # sys.stderr is not the descriptor (e.g. captured by a test runner)
    captured = []
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a closed stderr): nothing to capture
        yield captured
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        original = sys.stderr
        if python_on_fd2:
            sys.stderr = open(saved, "w", buffering=1, encoding=original.encoding, errors="backslashreplace",
                              closefd=False)
        try:
            yield captured
        finally:
            if sys.stderr is not original:
                sys.stderr.close()  # flushes; the duplicate descriptor stays open (closefd=False)
                sys.stderr = original
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read(_MAX_DECODER_OUTPUT).decode("utf-8", errors="replace"))


def decoder_messages(path, *, sr=16000):
    """Decode ``path`` once and return what the C decoders printed meanwhile, as distinct lines.

    Used to explain why a file failed: decoders print their diagnostics
    ("Illegal Audio-MPEG-Header", "Xing stream size off", ...) on file
    descriptor 2 rather than in the error they raise. The capture is
    process-wide, so a caller that decodes on several threads calls this
    while no other thread decodes (:func:`msk.extract_many` does).

    Parameters
    ----------
    path : str or os.PathLike
        The audio file.
    sr : int, default=16000
        The rate it is decoded at, as in :func:`load_audio`.

    Returns
    -------
    lines : list of str
        At most 20 distinct non-empty lines, in the order printed, each cut to
        200 characters; empty if the decoders printed nothing. Decoding errors
        are not raised here: the caller has them already.
    """
    with decoder_output_captured() as text:
        with contextlib.suppress(Exception):
            load_audio(path, sr=sr)
    lines = [line.strip()[:_MAX_DECODER_LINE] for line in "".join(text).splitlines() if line.strip()]
    return list(dict.fromkeys(lines))[:_MAX_DECODER_LINES]
