"""Datasets in MagnaTagATune's layout: a loader that never downloads.

MagnaTagATune (MTAT; Law et al. 2009) is the tagging dataset of the paper.
It cannot be redistributed, so msk reads a copy the user already has, in its
original layout::

    root/
        annotations_final.csv    tab-separated, every field in double quotes:
                                 "clip_id", one 0/1 column per tag, "mp3_path"
        clip_info_final.csv      tab-separated, quoted: "clip_id", ..., "artist",
                                 ..., "mp3_path"
        0/ 1/ ... 9/ a/ ... f/   the MP3 clips, ``mp3_path`` relative to root

Any dataset written in this layout loads the same way: the development corpus
built by ``scripts/build_dev_corpus.py`` and the fixture of the tests are two.
The loader reads the two tables, checks them strictly and decodes no audio;
:func:`iter_audio` decodes clips one at a time and reports the ones that are
missing or broken instead of failing.
"""

import csv
import os
import warnings
from dataclasses import dataclass, field

import numpy as np

from ._validation import check_int

__all__ = ["ClipDataset", "Labels", "load_magnatagatune", "load_labels", "iter_audio", "BROKEN_CLIPS",
           "DEFAULT_FOLDERS"]

#: Clip ids of the original MagnaTagATune whose MP3 files are empty or do not
#: decode. They are skipped by :func:`load_magnatagatune`.
BROKEN_CLIPS = (35644, 55753, 57881)

#: The paper's 12:1:3 split by the folder of ``mp3_path``. All clips of one
#: album share a folder, so no album crosses a split.
DEFAULT_FOLDERS = {"train": "0123456789ab", "valid": "c", "test": "def"}

ANNOTATIONS = "annotations_final.csv"
CLIP_INFO = "clip_info_final.csv"
_CLIP_INFO_REQUIRED = ("clip_id", "artist", "mp3_path")
_TRACK_COLUMNS = ("artist", "album", "track_number", "title")
_FOLDERS = "0123456789abcdef"

_LAYOUT = (
    "a MagnaTagATune-layout dataset is a folder holding 'annotations_final.csv' "
    "(tab-separated, quoted: clip_id, one 0/1 column per tag, mp3_path), "
    "'clip_info_final.csv' (tab-separated, quoted, with clip_id, artist and mp3_path columns) "
    "and the audio in sub-folders '0' ... '9', 'a' ... 'f' named by mp3_path"
)


def _readonly(a):
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False, repr=False)
class ClipDataset:
    """Clips of a tagging dataset: ids, audio paths, tags, artists and splits.

    Returned by :func:`load_magnatagatune`. Every per-clip field is a read-only
    array of length ``n_clips`` in the order of ``annotations_final.csv``, so
    one boolean mask or index array selects across all of them.

    Attributes
    ----------
    root : str
        The dataset folder.
    clip_ids : ndarray of shape (n_clips,), dtype int64
        The ``clip_id`` column.
    paths : ndarray of shape (n_clips,), dtype str
        Absolute path of each clip's audio file (``root/mp3_path``). Whether
        the file exists is not checked here; see :func:`iter_audio`.
    tags : ndarray of shape (n_clips, n_tags), dtype uint8
        Binary tag matrix, 1 where the tag applies.
    tag_names : tuple of str
        Names of the columns of ``tags``, most frequent first (counted over
        the whole annotation matrix, ties broken by column order).
    artists : ndarray of shape (n_clips,), dtype str
        The ``artist`` column of ``clip_info_final.csv``.
    splits : ndarray of shape (n_clips,), dtype str
        ``'train'``, ``'valid'`` or ``'test'`` (or the names of a custom
        ``folders`` mapping), from the folder of ``mp3_path``.
    skipped : tuple of (int, str)
        Clips present in the annotations but left out, with the reason (the
        known broken MagnaTagATune clips).
    tracks : ndarray of shape (n_clips,), dtype str
        The track of each clip, for evaluations that must not match a clip
        with another piece of the same recording: the ``artist``, ``album``,
        ``track_number`` and ``title`` columns of ``clip_info_final.csv``
        (those present) joined by ``"/"``. Without ``album``,
        ``track_number`` and ``title`` columns every clip is its own track
        (its ``clip_id``).
    """

    root: str
    clip_ids: np.ndarray
    paths: np.ndarray
    tags: np.ndarray
    tag_names: tuple
    artists: np.ndarray
    splits: np.ndarray
    skipped: tuple = field(default=())
    tracks: np.ndarray = None

    def __post_init__(self):
        if self.tracks is None:  # built by hand without tracks: every clip its own track
            object.__setattr__(self, "tracks", _readonly(self.clip_ids.astype(str)))

    def __len__(self):
        return int(self.clip_ids.shape[0])

    @property
    def n_tags(self):
        """Number of tag columns."""
        return len(self.tag_names)

    @property
    def split_names(self):
        """The split names present, in order of first appearance in the folder rule."""
        return tuple(dict.fromkeys(self.splits.tolist()))

    def subset(self, split):
        """Return the clips of one split (or of an index/mask) as a new dataset.

        Parameters
        ----------
        split : str or array-like of int or bool
            A split name (``'train'``, ``'valid'``, ``'test'``), or indices or a
            boolean mask over the clips.

        Returns
        -------
        ClipDataset
            Same ``tag_names`` and ``root``; per-clip fields restricted.
        """
        if isinstance(split, str):
            known = sorted(set(self.splits.tolist()))
            if split not in known:
                listed = ", ".join(repr(s) for s in known) or "none"
                raise ValueError(f"`split` must be one of the dataset's splits ({listed}); got {split!r}.")
            index = np.flatnonzero(self.splits == split)
        else:
            index = np.asarray(split)
            if index.dtype == np.bool_:
                if index.shape != (len(self),):
                    raise ValueError(
                        f"`split` as a boolean mask must have shape ({len(self)},); got {index.shape}."
                    )
                index = np.flatnonzero(index)
            elif index.ndim != 1 or not np.issubdtype(index.dtype, np.integer):
                raise TypeError(
                    f"`split` must be a split name, or a 1-D array of indices or booleans; got {split!r}."
                )
        return ClipDataset(
            root=self.root,
            clip_ids=_readonly(self.clip_ids[index]),
            paths=_readonly(self.paths[index]),
            tags=_readonly(self.tags[index]),
            tag_names=self.tag_names,
            artists=_readonly(self.artists[index]),
            splits=_readonly(self.splits[index]),
            skipped=self.skipped,
            tracks=_readonly(self.tracks[index]),
        )

    def __repr__(self):
        sizes = ", ".join(f"{s}={int(np.sum(self.splits == s))}" for s in self.split_names)
        return (
            f"ClipDataset(root={self.root!r}, n_clips={len(self)}, n_tags={self.n_tags}, "
            f"n_artists={len(set(self.artists.tolist()))}, splits=({sizes}))"
        )


def _resolve_root(root):
    if root is None:
        root = os.environ.get("MSK_DATA")
        if not root:
            raise FileNotFoundError(
                "No dataset folder given: pass `root` or set the MSK_DATA environment variable "
                f"(msk never downloads MagnaTagATune); {_LAYOUT}."
            )
        source = "MSK_DATA"
    else:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"`root` must be a str, os.PathLike or None; got {type(root).__name__}.")
        source = "`root`"
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{source} {root!r} is not a folder; {_LAYOUT}.")
    return root


def _read_table(path, first, last=None, required=()):
    """Read a quoted tab-separated table; yield nothing, return (header, rows with line numbers)."""
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} not found; {_LAYOUT}.")
    rows = []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter="\t", quotechar='"', strict=True)
            header = None
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if header is None:
                    header = row
                    header_line = reader.line_num
                    continue
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise ValueError(f"{name}, line {reader.line_num}: malformed CSV ({exc}); file {path!r}.") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start}); file {path!r}.") from None
    if header is None:
        raise ValueError(f"{name}: the file is empty (no header line); file {path!r}.")
    where = f"{name}, line {header_line}"
    if header[0] != first:
        raise ValueError(f"{where}: the first column must be {first!r}; got {header[0]!r}.")
    if last is not None and header[-1] != last:
        raise ValueError(f"{where}: the last column must be {last!r}; got {header[-1]!r}.")
    missing = [c for c in required if c not in header]
    if missing:
        raise ValueError(f"{where}: missing column(s) {', '.join(repr(c) for c in missing)}.")
    seen = {}
    for i, c in enumerate(header):
        if not c.strip():
            raise ValueError(f"{where}: column {i + 1} has an empty name.")
        if c in seen:
            raise ValueError(f"{where}: duplicate column {c!r} (columns {seen[c] + 1} and {i + 1}).")
        seen[c] = i
    for line, row in rows:
        if len(row) != len(header):
            raise ValueError(
                f"{name}, line {line}: ragged row with {len(row)} fields; the header has {len(header)}."
            )
    if not rows:
        raise ValueError(f"{name}: the table has a header but no clips; file {path!r}.")
    return header, rows


def _parse_id(name, line, value, seen):
    cid = int(value) if value.isascii() and value.isdigit() else None
    if cid is None:
        raise ValueError(f"{name}, line {line}: clip_id must be a non-negative integer; got {value!r}.")
    if cid in seen:
        raise ValueError(f"{name}, line {line}: duplicate clip_id {cid} (first on line {seen[cid]}).")
    seen[cid] = line
    return cid


def _check_mp3_path(name, line, value):
    parts = value.split("/")
    if len(parts) < 2 or parts[0] not in _FOLDERS or len(parts[0]) != 1 or any(p in ("", ".", "..") for p in parts):
        raise ValueError(
            f"{name}, line {line}: mp3_path must be a relative path inside one of the folders "
            f"'0' ... 'f' (like 'c/artist-album-01-title-0-29.mp3'); got {value!r}."
        )
    return parts[0]


def _check_folders(folders):
    if folders is None:
        return DEFAULT_FOLDERS
    if not isinstance(folders, dict) or not folders:
        raise TypeError(f"`folders` must be a non-empty dict of split name -> folder characters; got {folders!r}.")
    owner = {}
    for split, chars in folders.items():
        if not isinstance(split, str) or not split:
            raise TypeError(f"`folders` keys must be non-empty split names; got {split!r}.")
        if not isinstance(chars, str):
            chars = "".join(chars)
        for ch in chars:
            if ch not in _FOLDERS:
                raise ValueError(f"`folders[{split!r}]` holds {ch!r}, which is not a folder '0' ... 'f'.")
            if ch in owner:
                raise ValueError(f"`folders` puts folder {ch!r} in both {owner[ch]!r} and {split!r}.")
            owner[ch] = split
    return folders


def load_magnatagatune(root=None, *, split=None, n_tags=50, folders=None):
    """Load a dataset in MagnaTagATune's layout (never downloads, decodes no audio).

    Reads ``annotations_final.csv`` and ``clip_info_final.csv`` (tab-separated,
    every field in double quotes), keeps the ``n_tags`` most frequent tags,
    takes each clip's artist from the clip info and its split from the folder
    of its ``mp3_path``. The known broken clips of the original
    MagnaTagATune (:data:`BROKEN_CLIPS`) are left out and listed in
    ``skipped``.

    Parameters
    ----------
    root : str or os.PathLike, default=None
        The dataset folder. ``None`` reads the ``MSK_DATA`` environment
        variable; if that is unset too, a FileNotFoundError explains what to
        do. Nothing is ever downloaded.
    split : str, default=None
        ``None`` returns every clip (with its split in ``splits``); a split name
        (``'train'``, ``'valid'`` or ``'test'`` with the default ``folders``)
        returns only that split. The tag selection is the same either way.
        ``dataset.subset(name)`` does the same selection afterwards.
    n_tags : int, default=50
        How many tags to keep: the most frequent over the whole annotation
        matrix (every clip of every split, the broken clips included, as in
        the published MTAT protocols), ties broken by column order. Synonyms
        are not merged. Tags that no clip has are never kept, so fewer come
        back when the dataset has fewer tags.
    folders : dict of str to str, default=None
        The split rule: split name -> folder characters. ``None`` is the
        paper's 12:1:3 split :data:`DEFAULT_FOLDERS`, ``{'train':
        '0123456789ab', 'valid': 'c', 'test': 'def'}``. Folders may not appear
        twice; clips in folders that no split names are left out.

    Returns
    -------
    dataset : ClipDataset
        Frozen; per-clip arrays in the order of ``annotations_final.csv``.

    Raises
    ------
    FileNotFoundError
        If no root is given and ``MSK_DATA`` is unset, or the folder or one of
        the two tables is missing. The message describes the expected layout.
    ValueError
        If a table is malformed: missing or duplicate columns, a row with the
        wrong number of fields, a tag value other than ``"0"``/``"1"``, a bad
        or duplicate ``clip_id``, an ``mp3_path`` outside the folders
        ``0``-``f``, or annotations and clip info that disagree on the clips
        or their paths. The message names the file, the line and the problem.
        Also if ``split`` names no split of the rule.

    See Also
    --------
    iter_audio : Decode the clips one by one, reporting the broken ones.

    Notes
    -----
    Tag columns are everything between ``clip_id`` and ``mp3_path`` in
    ``annotations_final.csv``. Line numbers in error messages are 1-based
    lines of the file (the header is line 1).

    References
    ----------
    .. [1] E. Law, K. West, M. Mandel, M. Bay and J. S. Downie, "Evaluation of
       algorithms using games: the case of music tagging", ISMIR 2009.
    .. [2] S. Dieleman and B. Schrauwen, "Multiscale approaches to music
       audio feature learning", ISMIR 2013.

    Examples
    --------
    >>> import os, tempfile, msk
    >>> root = tempfile.mkdtemp()
    >>> q = lambda *f: "\\t".join(f'"{x}"' for x in f) + "\\n"
    >>> with open(os.path.join(root, "annotations_final.csv"), "w") as f:
    ...     _ = f.write(q("clip_id", "rock", "piano", "mp3_path")
    ...                 + q("2", "1", "0", "0/a-1.mp3") + q("7", "1", "1", "c/b-1.mp3"))
    >>> with open(os.path.join(root, "clip_info_final.csv"), "w") as f:
    ...     _ = f.write(q("clip_id", "artist", "mp3_path")
    ...                 + q("2", "Ann", "0/a-1.mp3") + q("7", "Bob", "c/b-1.mp3"))
    >>> ds = msk.datasets.load_magnatagatune(root)
    >>> ds.tag_names, ds.tags.tolist(), ds.splits.tolist()
    (('rock', 'piano'), [[1, 0], [1, 1]], ['train', 'valid'])
    >>> ds.subset("valid").artists.tolist()
    ['Bob']
    """
    n_tags = check_int("n_tags", n_tags, low=1)
    folders = _check_folders(folders)
    if split is not None and (not isinstance(split, str) or split not in folders):
        listed = ", ".join(repr(s) for s in folders)
        raise ValueError(f"`split` must be None or one of {listed}; got {split!r}.")
    root = _resolve_root(root)
    ann_path = os.path.join(root, ANNOTATIONS)
    info_path = os.path.join(root, CLIP_INFO)

    # --- annotations ------------------------------------------------------
    header, rows = _read_table(ann_path, "clip_id", "mp3_path")
    if len(header) < 3:
        raise ValueError(f"{ANNOTATIONS}, line 1: no tag columns between 'clip_id' and 'mp3_path'.")
    all_tags = header[1:-1]
    n = len(rows)
    matrix = np.empty((n, len(all_tags)), dtype=np.uint8)
    ids = np.empty(n, dtype=np.int64)
    mp3 = []
    lines = {}
    ok = {"0", "1"}
    for i, (line, row) in enumerate(rows):
        ids[i] = _parse_id(ANNOTATIONS, line, row[0], lines)
        values = row[1:-1]
        if not ok.issuperset(values):
            j = next(j for j, v in enumerate(values) if v not in ok)
            raise ValueError(
                f"{ANNOTATIONS}, line {line}: tag {all_tags[j]!r} must be \"0\" or \"1\"; got {values[j]!r}."
            )
        matrix[i] = np.frombuffer("".join(values).encode("ascii"), dtype=np.uint8) - ord("0")
        _check_mp3_path(ANNOTATIONS, line, row[-1])
        mp3.append(row[-1])

    # --- clip info --------------------------------------------------------
    iheader, irows = _read_table(info_path, "clip_id", required=_CLIP_INFO_REQUIRED)
    c_art, c_mp3 = iheader.index("artist"), iheader.index("mp3_path")
    c_track = [iheader.index(c) for c in _TRACK_COLUMNS if c in iheader]
    if len(c_track) == 1:  # only the artist: no track information
        c_track = []
    info = {}
    info_lines = {}
    for line, row in irows:
        cid = _parse_id(CLIP_INFO, line, row[0], info_lines)
        if cid not in lines:
            raise ValueError(f"{CLIP_INFO}, line {line}: clip_id {cid} is not in {ANNOTATIONS}.")
        track = "/".join(row[c] for c in c_track) if c_track else str(cid)
        info[cid] = (row[c_art], row[c_mp3], line, track)
    artists = []
    tracks = []
    for i in range(n):
        cid = int(ids[i])
        if cid not in info:
            raise ValueError(f"{ANNOTATIONS}, line {lines[cid]}: clip_id {cid} is missing from {CLIP_INFO}.")
        artist, path, line, track = info[cid]
        tracks.append(track)
        if path != mp3[i]:
            raise ValueError(
                f"{CLIP_INFO}, line {line}: mp3_path {path!r} of clip {cid} differs from "
                f"{mp3[i]!r} on line {lines[cid]} of {ANNOTATIONS}."
            )
        artists.append(artist)

    # --- tag selection over the whole matrix ------------------------------
    counts = matrix.sum(axis=0, dtype=np.int64)
    order = np.argsort(-counts, kind="stable")  # stable: ties keep column order
    order = order[counts[order] > 0][:n_tags]

    # --- splits and skipped clips -----------------------------------------
    split_of = {ch: name for name, chars in folders.items() for ch in chars}
    splits = np.array([split_of.get(p[0], "") for p in mp3], dtype=str)
    broken = np.isin(ids, BROKEN_CLIPS)
    keep = ~broken & (splits != "")
    if split is not None:
        keep &= splits == split
    skipped = tuple((int(c), "known broken MagnaTagATune clip") for c in ids[broken])
    index = np.flatnonzero(keep)

    return ClipDataset(
        root=root,
        clip_ids=_readonly(ids[index]),
        paths=_readonly(np.array([os.path.join(root, *mp3[i].split("/")) for i in index], dtype=str).reshape(-1)),
        tags=_readonly(np.ascontiguousarray(matrix[np.ix_(index, order)])),
        tag_names=tuple(all_tags[j] for j in order),
        artists=_readonly(np.array([artists[i] for i in index], dtype=str).reshape(-1)),
        splits=_readonly(splits[index]),
        skipped=skipped,
        tracks=_readonly(np.array([tracks[i] for i in index], dtype=str).reshape(-1)),
    )


def iter_audio(dataset, *, sr=16000, failures=None):
    """Decode the clips of a dataset one at a time, skipping and reporting broken ones.

    A clip whose file is missing, empty, truncated or not decodable is never
    fatal: it is skipped and reported with its id and the reason. Clips are
    decoded with :func:`msk.load_audio` (mono float32, resampled to ``sr``).

    Parameters
    ----------
    dataset : ClipDataset
        From :func:`load_magnatagatune` (or its ``subset``).
    sr : int, default=16000
        Sampling rate of the waveforms.
    failures : list or None, default=None
        Where the failures go: ``(clip_id, path, reason)`` tuples are appended
        as they happen. With ``None`` they are collected internally and one
        ``UserWarning`` listing them is issued when the iteration ends.

    Yields
    ------
    clip_id : int
        The clip's id.
    y : ndarray of shape (n_samples,), dtype float32
        Its waveform.

    Examples
    --------
    >>> import os, shutil, tempfile, msk
    >>> root = tempfile.mkdtemp(); os.mkdir(os.path.join(root, "0"))
    >>> _ = shutil.copy(msk.example_audio(), os.path.join(root, "0", "ok.mp3"))
    >>> q = lambda *f: "\\t".join(f'"{x}"' for x in f) + "\\n"
    >>> rows = [("1", "1", "0/ok.mp3"), ("2", "1", "0/gone.mp3")]
    >>> with open(os.path.join(root, "annotations_final.csv"), "w") as f:
    ...     _ = f.write(q("clip_id", "rock", "mp3_path") + "".join(q(*r) for r in rows))
    >>> with open(os.path.join(root, "clip_info_final.csv"), "w") as f:
    ...     _ = f.write(q("clip_id", "artist", "mp3_path") + q("1", "A", "0/ok.mp3") + q("2", "A", "0/gone.mp3"))
    >>> failed = []
    >>> for clip_id, y in msk.datasets.iter_audio(msk.datasets.load_magnatagatune(root), failures=failed):
    ...     print(clip_id, y.dtype, round(len(y) / 16000, 1))
    1 float32 29.2
    >>> [(cid, reason.split(":")[-1].strip()) for cid, path, reason in failed]
    [(2, 'no such file.')]
    """
    from .audio import load_audio

    if not isinstance(dataset, ClipDataset):
        raise TypeError(f"`dataset` must be a ClipDataset from load_magnatagatune; got {type(dataset).__name__}.")
    sr = check_int("sr", sr, low=1)
    if failures is not None and not hasattr(failures, "append"):
        raise TypeError(f"`failures` must be a list (or None); got {type(failures).__name__}.")
    report = [] if failures is None else failures
    n_failed = 0
    for cid, path in zip(dataset.clip_ids.tolist(), dataset.paths.tolist()):
        try:
            y = load_audio(path, sr=sr)
        except (FileNotFoundError, ValueError) as exc:
            report.append((cid, path, str(exc)))
            n_failed += 1
            continue
        yield cid, y
    if failures is None and n_failed:
        listed = "; ".join(f"{cid}: {reason}" for cid, _, reason in report[:5])
        more = f" (and {n_failed - 5} more)" if n_failed > 5 else ""
        warnings.warn(
            f"{n_failed} clip(s) could not be read and were skipped: {listed}{more}. "
            "Pass `failures=[]` to collect them instead of this warning.",
            UserWarning,
            stacklevel=2,
        )


# =====================================================================================
# Your own labels: a CSV of keys (or paths) and tags
# =====================================================================================


@dataclass(frozen=True, eq=False, repr=False)
class Labels:
    """Labels of clips read from a CSV file by :func:`load_labels`.

    Every per-clip field is a read-only array of length ``n_clips`` in the
    order of the file.

    Attributes
    ----------
    path : str
        The CSV file (absolute).
    keys : ndarray of shape (n_clips,), dtype str
        The key column: feature-store keys or audio paths.
    tags : ndarray of shape (n_clips, n_tags), dtype uint8
        Binary tag matrix. For single-label files, one column per class
        (one-hot).
    tag_names : tuple of str
        Names of the columns of ``tags``: the tag columns' headers, or the
        class names (sorted) of a single-label file.
    kind : {"multilabel", "single-label"}
        One 0/1 column per tag, or one column of class names.
    label_column : str or None
        The column of class names of a single-label file.
    groups : ndarray of shape (n_clips,), dtype str, or None
        The group column's values (e.g. the artist or album), if a group
        column was named.
    group_column : str or None
        Its header.
    lines : ndarray of shape (n_clips,), dtype int64
        Line of the file each clip was read from (1-based).
    """

    path: str
    keys: np.ndarray
    tags: np.ndarray
    tag_names: tuple
    kind: str
    label_column: str = None
    groups: np.ndarray = None
    group_column: str = None
    lines: np.ndarray = None

    def __len__(self):
        return int(self.keys.shape[0])

    @property
    def n_tags(self):
        """Number of tags (classes of a single-label file)."""
        return len(self.tag_names)

    def __repr__(self):
        return (f"Labels(path={self.path!r}, n_clips={len(self)}, n_tags={self.n_tags}, kind={self.kind!r}"
                + ("" if self.group_column is None else f", group_column={self.group_column!r}") + ")")

    def rows_for(self, keys, paths=None):
        """Row of each given clip in the labels, or -1 for an unlabelled clip.

        A clip matches a row whose key equals its key; failing that, a row
        whose key is a path naming the same file as the clip's path (or its
        key). A relative path in the CSV is taken relative to the CSV's
        folder, then relative to the current directory.

        Parameters
        ----------
        keys : sequence of str
            The clips' keys (e.g. a feature store's keys).
        paths : sequence of str or None, default=None
            Each clip's audio path (e.g. recorded in the store), or None to
            use the keys as paths.

        Returns
        -------
        rows : ndarray of shape (len(keys),), dtype intp
        """
        keys = [str(k) for k in keys]
        if paths is not None:
            paths = list(paths)
            if len(paths) != len(keys):
                raise ValueError(f"`paths` must have one entry per key; got {len(paths)} for {len(keys)} keys.")
        paths = keys if paths is None else [k if p is None else str(p) for k, p in zip(keys, paths)]
        exact = {k: i for i, k in enumerate(self.keys.tolist())}
        by_path = {}
        base = os.path.dirname(self.path)
        for i, k in enumerate(self.keys.tolist()):
            for p in (os.path.join(base, k), os.path.abspath(k)):
                by_path.setdefault(os.path.normpath(p), i)
        rows = np.full(len(keys), -1, dtype=np.intp)
        for j, (k, p) in enumerate(zip(keys, paths)):
            i = exact.get(k)
            if i is None and p is not None:
                i = by_path.get(os.path.normpath(os.path.abspath(p)))
            if i is not None:
                rows[j] = i
        return rows

    def column(self, name):
        """The values of one column as class names, for colouring or grouping.

        Parameters
        ----------
        name : str
            A tag column (values become ``name`` or ``"not name"``), the
            label column of a single-label file (the class of each clip) or
            the group column.

        Returns
        -------
        values : ndarray of shape (n_clips,), dtype str
        """
        if name is not None and name == self.group_column:
            return self.groups
        if self.kind == "single-label" and name in (self.label_column, None):
            return np.asarray(self.tag_names, dtype=str)[np.argmax(self.tags, axis=1)]
        if self.kind == "multilabel" and name in self.tag_names:
            j = self.tag_names.index(name)
            return np.where(self.tags[:, j] == 1, name, f"not {name}")
        known = list((self.label_column,) if self.kind == "single-label" else self.tag_names)
        if self.group_column is not None:
            known.append(self.group_column)
        raise ValueError(
            f"`column` must be one of the columns of {os.path.basename(self.path)!r} "
            f"({', '.join(map(repr, known))}); got {name!r}."
        )


_LABELS_LAYOUT = (
    "a labels file is a CSV with a header line: a key column (a feature-store key or an audio path), "
    "then either one 0/1 column per tag or one column of class names"
)


def _read_csv(path, delimiter):
    """Header and (line, row) pairs of a CSV file; blank lines skipped."""
    name = os.path.basename(path)
    rows, header, header_line, line = [], None, 0, 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            if delimiter is None:
                first = f.readline()
                delimiter = "\t" if "\t" in first and "," not in first else ","
                f.seek(0)
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if header is None:
                    header, header_line = [c.strip() for c in row], line
                else:
                    rows.append((line, row))
    except csv.Error as exc:
        raise ValueError(f"{name}, line {line + 1}: malformed CSV ({exc}); file {path!r}.") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start}); file {path!r}.") from None
    if header is None:
        raise ValueError(f"{name}: the file is empty; {_LABELS_LAYOUT}.")
    seen = {}
    for i, c in enumerate(header):
        if not c:
            raise ValueError(f"{name}, line {header_line}: column {i + 1} of the header has no name.")
        if c in seen:
            raise ValueError(f"{name}, line {header_line}: duplicate column {c!r} (columns {seen[c] + 1} and {i + 1}).")
        seen[c] = i
    for ln, row in rows:
        if len(row) != len(header):
            raise ValueError(f"{name}, line {ln}: {len(row)} fields; the header has {len(header)}.")
    if not rows:
        raise ValueError(f"{name}: the file has a header but no clips; file {path!r}.")
    return header, rows


def _column_index(name, header, what, value):
    if value not in header:
        raise ValueError(f"{name}: `{what}` {value!r} is not a column; the columns are "
                         f"{', '.join(map(repr, header))}.")
    return header.index(value)


def load_labels(path, *, key_column=None, label_column=None, group_column=None, delimiter=None):
    """Read clip labels from a CSV file: a key column plus tags or a class.

    Two layouts are read, both with a header line:

    * **multilabel**: a key column, then one column per tag holding ``0`` or
      ``1``::

          key,rock,piano,vocals
          songs/a.mp3,1,0,1

    * **single-label**: a key column and one column of class names (found
      automatically when it is the only other column and holds something
      other than 0 and 1, or named by ``label_column``)::

          key,genre
          songs/a.mp3,rock

    A key is a feature-store key or an audio path (see
    :meth:`Labels.rows_for`). Quoting follows the ``csv`` module (fields
    with commas in double quotes), a UTF-8 byte-order mark is ignored,
    surrounding spaces of values are dropped and blank lines are skipped.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file.
    key_column : str or None, default=None
        Header of the key column; None takes the first column.
    label_column : str or None, default=None
        Header of a column of class names: read as a single-label file
        (columns other than the key, label and group columns are then
        ignored). None detects the layout.
    group_column : str or None, default=None
        Header of a column grouping clips (e.g. artist or album) that must
        not be split between training and validation. Not a tag.
    delimiter : str or None, default=None
        Field separator; None takes a tab if the header line has tabs and
        no comma, else a comma.

    Returns
    -------
    labels : Labels

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is empty, has no label column, a malformed or ragged
        line, an empty or duplicate key, a tag value other than 0 or 1, an
        empty class name, or a single-label column with one class. The
        message names the file and the line.

    Warns
    -----
    UserWarning
        If a tag column is 1 on every clip or on none (no tagger can learn
        it).

    Examples
    --------
    >>> import os, tempfile
    >>> from msk.datasets import load_labels
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "labels.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("key,rock,piano\\na.mp3,1,0\\nb.mp3,0,1\\nc.mp3,1,1\\n")
    >>> labels = load_labels(path)
    >>> labels.kind, labels.tag_names, labels.tags.tolist()
    ('multilabel', ('rock', 'piano'), [[1, 0], [0, 1], [1, 1]])
    >>> tmp.cleanup()
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`path` must be a str or os.PathLike; got {type(path).__name__}.")
    path = os.path.abspath(os.fspath(path))
    for arg, value in (("key_column", key_column), ("label_column", label_column),
                       ("group_column", group_column), ("delimiter", delimiter)):
        if value is not None and (not isinstance(value, str) or not value):
            raise TypeError(f"`{arg}` must be a non-empty str or None; got {value!r}.")
    if delimiter is not None and len(delimiter) != 1:
        raise ValueError(f"`delimiter` must be one character; got {delimiter!r}.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r}: no such labels file; {_LABELS_LAYOUT}.")
    name = os.path.basename(path)
    header, rows = _read_csv(path, delimiter)
    k = 0 if key_column is None else _column_index(name, header, "key_column", key_column)
    g = None if group_column is None else _column_index(name, header, "group_column", group_column)
    if g == k:
        raise ValueError(f"{name}: `group_column` {group_column!r} is the key column.")
    if label_column is not None:
        lab = _column_index(name, header, "label_column", label_column)
        if lab in (k, g):
            raise ValueError(f"{name}: `label_column` {label_column!r} is the key or group column.")
        value_columns = [lab]
    else:
        value_columns = [i for i in range(len(header)) if i not in (k, g)]
    if not value_columns:
        raise ValueError(f"{name}: no label column (only {', '.join(map(repr, header))}); {_LABELS_LAYOUT}.")
    lines = np.array([ln for ln, _ in rows], dtype=np.int64)
    keys, first_line = [], {}
    for ln, row in rows:
        key = row[k].strip()
        if not key:
            raise ValueError(f"{name}, line {ln}: empty key in column {header[k]!r}.")
        if key in first_line:
            raise ValueError(f"{name}, line {ln}: duplicate key {key!r} (first on line {first_line[key]}).")
        first_line[key] = ln
        keys.append(key)
    values = [[row[i].strip() for i in value_columns] for _, row in rows]
    single = label_column is not None or (
        len(value_columns) == 1 and any(v[0] not in ("0", "1") for v in values))
    if single:
        col = header[value_columns[0]]
        for ln, v in zip(lines.tolist(), values):
            if not v[0]:
                raise ValueError(f"{name}, line {ln}: empty class name in column {col!r}.")
        classes, codes = np.unique(np.array([v[0] for v in values], dtype=str), return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"{name}: column {col!r} holds one class only ({classes.tolist()[0]!r}); "
                             "a classifier needs at least two.")
        tags = np.zeros((len(rows), len(classes)), dtype=np.uint8)
        tags[np.arange(len(rows)), codes] = 1
        tag_names, kind = tuple(classes.tolist()), "single-label"
    else:
        tags = np.empty((len(rows), len(value_columns)), dtype=np.uint8)
        for r, (ln, v) in enumerate(zip(lines.tolist(), values)):
            for c, x in enumerate(v):
                if x not in ("0", "1"):
                    raise ValueError(
                        f"{name}, line {ln}: value {x!r} in column {header[value_columns[c]]!r} is not 0 or 1 "
                        "(a tag column holds 0 or 1; for one column of class names give it as "
                        "`label_column`)."
                    )
                tags[r, c] = x == "1"
        tag_names, kind, col = tuple(header[i] for i in value_columns), "multilabel", None
        count = tags.sum(axis=0)
        flat = [t for t, n in zip(tag_names, count.tolist()) if n in (0, len(rows))]
        if flat:
            warnings.warn(
                f"{name}: tag(s) {', '.join(map(repr, flat))} are 1 on every clip or on none; no "
                "tagger can learn them (label clips of both kinds or drop the column).",
                UserWarning, stacklevel=2,
            )
    groups = None
    if g is not None:
        groups = np.array([row[g].strip() for _, row in rows], dtype=str)
        for ln, v in zip(lines.tolist(), groups.tolist()):
            if not v:
                raise ValueError(f"{name}, line {ln}: empty group in column {header[g]!r}.")
        groups = _readonly(groups)
    return Labels(
        path=path, keys=_readonly(np.array(keys, dtype=str)), tags=_readonly(tags), tag_names=tag_names,
        kind=kind, label_column=col, groups=groups, group_column=None if g is None else header[g],
        lines=_readonly(lines),
    )
