"""Windows of consecutive frames, and memory-bounded random sampling of them (private).

A window of ``width`` frames at position ``t`` is ``frames[t : t + width]``
flattened into ``width * n_mels`` values; a clip of ``n_frames`` frames has
``n_frames - width + 1`` positions. :func:`all_windows` gives all of
them as a zero-copy view; :class:`WindowReservoir` and :func:`sample_windows`
draw a uniform random sample of windows across many clips while holding only
the sample and the current clip in memory.
"""

import numpy as np
from sklearn.utils import check_random_state

from ._validation import as_float_array, check_int

__all__ = ["WindowReservoir", "all_windows", "sample_windows"]

# Replacement windows are gathered into the reservoir in chunks of this many
# rows, so a clip that replaces many windows needs no clip-sized temporary.
_FIRST_ROWS = 4096  # the sample buffer's first allocation, in windows
_GATHER_ROWS = 256


def all_windows(frames, width):
    """Return every window of ``width`` consecutive frames as rows.

    Parameters
    ----------
    frames : array-like of shape (n_frames, n_mels)
        Frames as rows. float32 and float64 are kept, other dtypes become float64.
    width : int
        Frames per window, ``1 <= width <= n_frames``.

    Returns
    -------
    windows : ndarray of shape (n_frames - width + 1, width * n_mels)
        Row ``t`` is ``frames[t : t + width].ravel()``. A read-only view that
        shares memory with (a C-contiguous copy of) ``frames``: consecutive
        windows overlap in memory, so nothing is copied. Use ``np.array`` for a
        writable copy.

    Examples
    --------
    >>> import numpy as np
    >>> from msk._windows import all_windows
    >>> frames = np.arange(12.0).reshape(6, 2)
    >>> x = all_windows(frames, 2)
    >>> x.shape
    (5, 4)
    >>> x[1].tolist()
    [2.0, 3.0, 4.0, 5.0]
    """
    frames = as_float_array("frames", frames, ndim=2)
    width = check_int("width", width, low=1)
    n_frames, n_mels = frames.shape
    if n_frames < width:
        raise ValueError(f"`frames` must have at least width = {width} frames; got frames of shape {frames.shape}.")
    step = frames.strides[0]
    return np.lib.stride_tricks.as_strided(
        frames, shape=(n_frames - width + 1, width * n_mels), strides=(step, frames.itemsize), writeable=False
    )


class WindowReservoir:
    """Uniform random sample of windows from a stream of clips, in bounded memory.

    Clips are added one at a time with :meth:`update`; the reservoir keeps a
    uniform random sample without replacement of ``n_samples`` windows among
    all the windows seen so far (Vitter's Algorithm R, vectorised per clip), so
    every window of every clip has the same chance ``n_samples / n_seen`` of
    being in the sample, whatever the clip lengths. It holds the sample and
    nothing of past clips.

    Parameters
    ----------
    width : int
        Frames per window.
    n_samples : int
        Windows kept.
    random_state : int, RandomState instance or None, default=None
        Seeds the sampling; the same seed and clips give the same sample.

    Attributes
    ----------
    n_seen_ : int
        Windows seen so far.
    n_mels_ : int or None
        Frame size, fixed by the first clip.

    Notes
    -----
    The sample buffer is allocated when the first clip arrives, in that
    clip's dtype (float32 or float64; later clips are cast to it), and grows
    by doubling up to ``n_samples`` windows as windows arrive: its memory
    follows the windows seen, so a huge ``n_samples`` (more windows than the
    clips hold) costs only what the clips hold.
    Clips shorter than ``width`` frames have no window and are skipped.

    References
    ----------
    .. [1] J. S. Vitter, "Random sampling with a reservoir", ACM Transactions
       on Mathematical Software 11(1), 1985.

    Examples
    --------
    >>> import numpy as np
    >>> from msk._windows import WindowReservoir
    >>> rng = np.random.default_rng(0)
    >>> res = WindowReservoir(width=2, n_samples=50, random_state=0)
    >>> for n_frames in (40, 7, 100):
    ...     _ = res.update(rng.standard_normal((n_frames, 8)))
    >>> res.n_seen_, res.windows().shape
    (144, (50, 16))
    """

    def __init__(self, width, n_samples, random_state=None):
        self.width = check_int("width", width, low=1)
        self.n_samples = check_int("n_samples", n_samples, low=1)
        self._rng = check_random_state(random_state)
        self.n_seen_ = 0
        self.n_mels_ = None
        self._buffer = None

    def update(self, frames, *, name="frames"):
        """Offer every window of one clip to the sample; return ``self``.

        Parameters
        ----------
        frames : array-like of shape (n_frames, n_mels)
            One clip's frames (any length; fewer than ``width`` frames adds nothing).
        name : str, default="frames"
            Name of the argument in error messages.
        """
        dtype = None if self._buffer is None else self._buffer.dtype
        frames = as_float_array(name, frames, ndim=2, dtype=dtype, min_len=0)
        if self.n_mels_ is None:
            self.n_mels_ = frames.shape[1]
        elif frames.shape[1] != self.n_mels_:
            raise ValueError(
                f"`{name}` must have n_mels = {self.n_mels_} columns like the clips before it; "
                f"got frames of shape {frames.shape}."
            )
        n_pos = frames.shape[0] - self.width + 1
        if n_pos <= 0:
            return self
        windows = all_windows(frames, self.width)
        seen, k = self.n_seen_, self.n_samples
        # Fill the free slots in stream order.
        fill = max(0, min(n_pos, k - seen))
        if self._buffer is None:
            self._buffer = np.empty((min(k, max(fill, _FIRST_ROWS)), windows.shape[1]), dtype=frames.dtype)
        if fill and seen + fill > self._buffer.shape[0]:
            # grow by doubling, never past n_samples: memory follows the windows seen, not the request
            grown = np.empty((min(k, max(seen + fill, 2 * self._buffer.shape[0])), self._buffer.shape[1]),
                             dtype=self._buffer.dtype)
            grown[:seen] = self._buffer[:seen]
            self._buffer = grown
        if fill:
            self._buffer[seen:seen + fill] = windows[:fill]
        # Window i (global number g = seen + i) replaces slot j ~ U{0..g} when j < k.
        rest = np.arange(fill, n_pos)
        if rest.size:
            slots = self._rng.randint(0, seen + rest + 1, dtype=np.int64)
            hit = slots < k
            slots, src = slots[hit], rest[hit]
            # Sequential semantics: when a slot is hit twice, the later window wins.
            last = slots.size - 1 - np.unique(slots[::-1], return_index=True)[1]
            slots, src = slots[last], src[last]
            for a in range(0, slots.size, _GATHER_ROWS):
                self._buffer[slots[a:a + _GATHER_ROWS]] = windows[src[a:a + _GATHER_ROWS]]
        self.n_seen_ = seen + n_pos
        return self

    def windows(self):
        """Return the sample, rows in random order.

        Returns
        -------
        windows : ndarray of shape (min(n_samples, n_seen_), width * n_mels_)
            The sampled windows. This is the reservoir's own storage (shuffled
            in place; slots of a reservoir are exchangeable, so further
            updates stay uniform): copy it before modifying it if more clips
            will be added.
        """
        if self._buffer is None:
            raise ValueError("no windows were sampled: every clip so far had fewer than `width` frames.")
        n = min(self.n_samples, self.n_seen_)
        if n < self._buffer.shape[0]:
            self._buffer = self._buffer[:n].copy()  # release the unused tail of the buffer
        self._rng.shuffle(self._buffer)
        return self._buffer


def sample_windows(clips, width, n_samples, random_state=None):
    """Draw windows uniformly at random across many clips, in bounded memory.

    Parameters
    ----------
    clips : iterable of array-like of shape (n_frames_i, n_mels)
        Frames of each clip, consumed one at a time (a generator that decodes
        clips lazily keeps memory at one clip).
    width : int
        Frames per window.
    n_samples : int
        Windows drawn. If the clips hold fewer windows, all of them are returned.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw.

    Returns
    -------
    windows : ndarray of shape (min(n_samples, n_windows), width * n_mels)
        A uniform random sample without replacement of all the clips' windows,
        in random order.

    See Also
    --------
    WindowReservoir : the streaming form, for several levels in one pass.

    Examples
    --------
    >>> import numpy as np
    >>> from msk._windows import sample_windows
    >>> rng = np.random.default_rng(0)
    >>> clips = (rng.standard_normal((n, 20)) for n in (50, 80, 30))
    >>> sample_windows(clips, width=4, n_samples=100, random_state=0).shape
    (100, 80)
    """
    reservoir = WindowReservoir(width, n_samples, random_state)
    # No enumerate(): its cached result tuple would keep the previous clip alive
    # while the iterator produces the next one (two clips in memory).
    i = 0
    for clip in clips:
        reservoir.update(clip, name=f"clips[{i}]")
        del clip
        i += 1
    return reservoir.windows()
