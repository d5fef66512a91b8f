"""msk.datasets: the MagnaTagATune-layout loader on a fake tree built in tmp_path.

The fixture is hand-checked (see FIXTURE below): real audio cut from the
shipped example clip, one broken MP3, one missing file, and a known broken
MTAT clip id. Every malformed-table case checks the file, the line and the
problem in the message.
"""

import csv
import os

import numpy as np
import pytest
import soundfile as sf

import msk
from msk.datasets import BROKEN_CLIPS, ClipDataset, iter_audio, load_magnatagatune

TAGS = ["guitar", "classical", "slow", "techno", "piano", "rare"]
# clip_id, mp3_path, artist, tags (in TAGS order), audio ('ok', 'broken' or 'missing')
FIXTURE = [
    (2, "0/ann-first-01-a-0-29.mp3", "Ann", (1, 0, 1, 0, 1, 0), "ok"),
    (6, "5/ann-first-02-b-0-29.mp3", "Ann", (1, 1, 0, 0, 0, 0), "ok"),
    (10, "b/bob-songs-01-c-0-29.mp3", "Bob", (0, 1, 1, 0, 1, 0), "ok"),
    (11, "c/cat-album-01-d-0-29.mp3", "Cat", (1, 0, 0, 1, 0, 0), "ok"),
    (35644, "d/dan-x-01-e-0-29.mp3", "Dan", (1, 1, 1, 1, 1, 0), "missing"),  # known broken MTAT id
    (20, "d/dan-x-02-f-0-29.mp3", "Dan", (0, 0, 1, 0, 1, 0), "ok"),
    (21, "f/eve-y-01-g-0-29.mp3", "Eve", (0, 1, 0, 0, 0, 0), "broken"),
    (22, "e/eve-y-02-h-0-29.mp3", "Eve", (1, 0, 0, 0, 0, 0), "missing"),
]
# Counts over the whole matrix (35644 included): guitar 5, classical 4, slow 4,
# techno 2, piano 4, rare 0. Ties keep column order: classical, slow, piano
# (alphabetical order would put piano before slow).
TOP = ("guitar", "classical", "slow", "piano", "techno")
INFO_COLS = [
    "clip_id", "track_number", "title", "artist", "album", "url",
    "segmentStart", "segmentEnd", "original_url", "mp3_path",
]


def ann_rows(fixture=FIXTURE):
    return [["clip_id", *TAGS, "mp3_path"]] + [[str(c), *map(str, t), p] for c, p, _, t, _ in fixture]


def info_rows(fixture=FIXTURE):
    rows = [INFO_COLS]
    for i, (c, p, a, _, _) in enumerate(fixture):
        rows.append([str(c), str(i + 1), f"Song {c}", a, f"Album of {a}", "http://x", "0", "29", "", p])
    return rows


def write_table(path, rows, lineterminator="\r\n"):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator=lineterminator)
        w.writerows(rows)


@pytest.fixture(scope="module")
def audio_pieces():
    y = msk.load_audio(msk.example_audio())
    return [y[i * 32000 : (i + 1) * 32000] for i in range(len(FIXTURE))]


@pytest.fixture
def mtat(tmp_path, audio_pieces):
    """A fake MagnaTagATune tree; returns its root."""
    root = tmp_path / "mtat"
    for d in "0123456789abcdef":
        (root / d).mkdir(parents=True)
    for (cid, path, _, _, kind), y in zip(FIXTURE, audio_pieces):
        if kind == "ok":
            sf.write(root / path, y, 16000, format="MP3")
        elif kind == "broken":
            (root / path).write_bytes(b"this is not an MP3 stream " * 40)
    write_table(root / "annotations_final.csv", ann_rows())
    write_table(root / "clip_info_final.csv", info_rows())
    return root


def test_loader_matches_hand_checked_expectations(mtat):
    ds = load_magnatagatune(mtat)
    assert isinstance(ds, ClipDataset)
    assert ds.clip_ids.tolist() == [2, 6, 10, 11, 20, 21, 22]
    assert ds.clip_ids.dtype == np.int64
    assert ds.tag_names == TOP
    expected = {c: dict(zip(TAGS, t)) for c, _, _, t, _ in FIXTURE}
    want = np.array([[expected[c][t] for t in TOP] for c in ds.clip_ids.tolist()], dtype=np.uint8)
    np.testing.assert_array_equal(ds.tags, want)
    assert ds.tags.dtype == np.uint8 and ds.tags.flags.c_contiguous
    assert ds.artists.tolist() == ["Ann", "Ann", "Bob", "Cat", "Dan", "Eve", "Eve"]
    assert ds.splits.tolist() == ["train", "train", "train", "valid", "test", "test", "test"]
    assert ds.split_names == ("train", "valid", "test")
    assert ds.paths[0] == os.path.join(str(mtat), "0", "ann-first-01-a-0-29.mp3")
    assert all(os.path.isabs(p) for p in ds.paths)
    assert ds.skipped == ((35644, "known broken MagnaTagATune clip"),)
    assert ds.root == str(mtat)
    assert len(ds) == 7 and ds.n_tags == 5
    assert "n_clips=7" in repr(ds) and "train=3" in repr(ds)


@pytest.mark.parametrize("n_tags, names", [(1, TOP[:1]), (3, TOP[:3]), (5, TOP), (6, TOP), (50, TOP)])
def test_top_n_tags_by_count_ties_by_column_order(mtat, n_tags, names):
    ds = load_magnatagatune(mtat, n_tags=n_tags)
    assert ds.tag_names == names  # 'rare' (no positives) is never kept
    assert ds.tags.shape == (7, len(names))


def test_split_argument_and_subset_agree(mtat):
    full = load_magnatagatune(mtat)
    sizes = {}
    for split in ("train", "valid", "test"):
        a = load_magnatagatune(mtat, split=split)
        b = full.subset(split)
        sizes[split] = len(a)
        assert a.tag_names == full.tag_names  # tag selection does not depend on the split
        for name in ("clip_ids", "paths", "tags", "artists", "splits", "tracks"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert set(a.splits.tolist()) == {split}
    assert sizes == {"train": 3, "valid": 1, "test": 3}
    assert full.subset(full.artists == "Eve").clip_ids.tolist() == [21, 22]
    assert full.subset(np.array([4, 0])).clip_ids.tolist() == [20, 2]


def test_tracks_group_clips_of_one_recording(mtat):
    ds = load_magnatagatune(mtat)
    # every FIXTURE clip has its own track_number and title: one track per clip
    assert ds.tracks[0] == "Ann/Album of Ann/1/Song 2"
    assert len(set(ds.tracks.tolist())) == len(ds)
    assert ds.subset("test").tracks.tolist() == ds.tracks[ds.splits == "test"].tolist()
    # two clips of one track (same artist, album, number and title) share it
    rows = info_rows()
    rows[2][1:3] = rows[1][1:3]  # clip 6 becomes another piece of clip 2's track
    write_table(mtat / "clip_info_final.csv", rows)
    ds = load_magnatagatune(mtat)
    assert ds.tracks[0] == ds.tracks[1] and len(set(ds.tracks.tolist())) == len(ds) - 1
    # without track columns every clip is its own track, named by its id
    write_table(mtat / "clip_info_final.csv", [[r[0], r[3], r[9]] for r in info_rows()])
    assert load_magnatagatune(mtat).tracks.tolist() == [str(c) for c in ds.clip_ids.tolist()]
    assert not load_magnatagatune(mtat).tracks.flags.writeable


def test_subset_rejects_bad_selections(mtat):
    ds = load_magnatagatune(mtat)
    with pytest.raises(ValueError, match=r"`split` must be one of the dataset's splits.*'validation'"):
        ds.subset("validation")
    with pytest.raises(ValueError, match=r"boolean mask must have shape \(7,\)"):
        ds.subset(np.ones(3, dtype=bool))
    with pytest.raises(TypeError, match="`split` must be a split name"):
        ds.subset(np.array([0.5]))


def test_custom_folder_rule(mtat):
    ds = load_magnatagatune(mtat, folders={"train": "0123456789", "dev": "bc", "eval": "def"})
    assert ds.splits.tolist() == ["train", "train", "dev", "dev", "eval", "eval", "eval"]
    part = load_magnatagatune(mtat, folders={"a": "0", "b": "f"})  # unnamed folders are left out
    assert part.clip_ids.tolist() == [2, 21]


def test_arrays_are_read_only(mtat):
    ds = load_magnatagatune(mtat)
    with pytest.raises(ValueError, match="read-only"):
        ds.tags[0, 0] = 0
    with pytest.raises(ValueError, match="read-only"):
        ds.subset("train").clip_ids[0] = 1
    with pytest.raises(AttributeError):
        ds.tags = None


def test_lf_line_endings_and_minimal_clip_info(mtat):
    write_table(mtat / "annotations_final.csv", ann_rows(), lineterminator="\n")
    rows = [[r[0], r[3], r[9]] for r in info_rows()]
    write_table(mtat / "clip_info_final.csv", rows, lineterminator="\n")
    ds = load_magnatagatune(mtat)
    assert ds.artists.tolist()[-1] == "Eve" and len(ds) == 7


def test_root_from_environment(mtat, monkeypatch):
    monkeypatch.setenv("MSK_DATA", str(mtat))
    assert load_magnatagatune().clip_ids.tolist()[:2] == [2, 6]
    # an explicit root wins over MSK_DATA
    monkeypatch.setenv("MSK_DATA", str(mtat / "nowhere"))
    assert len(load_magnatagatune(mtat)) == 7


def test_missing_root_names_the_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("MSK_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match=r"pass `root` or set the MSK_DATA.*annotations_final\.csv"):
        load_magnatagatune()
    monkeypatch.setenv("MSK_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"MSK_DATA .*absent.* is not a folder.*clip_info_final\.csv"):
        load_magnatagatune()
    with pytest.raises(FileNotFoundError, match=r"`root` .*absent.* is not a folder.*sub-folders '0'"):
        load_magnatagatune(tmp_path / "absent")


@pytest.mark.parametrize("missing", ["annotations_final.csv", "clip_info_final.csv"])
def test_missing_table(mtat, missing):
    (mtat / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{missing}' not found; a MagnaTagATune-layout dataset is"):
        load_magnatagatune(mtat)


def test_bad_arguments(mtat):
    with pytest.raises(ValueError, match="`n_tags` must be a positive integer; got 0"):
        load_magnatagatune(mtat, n_tags=0)
    with pytest.raises(TypeError, match="`n_tags` must be an integer"):
        load_magnatagatune(mtat, n_tags=2.5)
    with pytest.raises(ValueError, match=r"`split` must be None or one of 'train', 'valid', 'test'; got 'val'"):
        load_magnatagatune(mtat, split="val")
    with pytest.raises(TypeError, match="`root` must be a str"):
        load_magnatagatune(42)
    with pytest.raises(ValueError, match="`folders` puts folder 'c' in both 'train' and 'test'"):
        load_magnatagatune(mtat, folders={"train": "0abc", "test": "c"})
    with pytest.raises(ValueError, match=r"`folders\['x'\]` holds 'g'"):
        load_magnatagatune(mtat, folders={"x": "g"})
    with pytest.raises(TypeError, match="`folders` must be a non-empty dict"):
        load_magnatagatune(mtat, folders="0123")


def _set(rows, r, c, value):
    rows = [list(x) for x in rows]
    rows[r][c] = value
    return rows


A, I = "annotations_final.csv", "clip_info_final.csv"
# (which table, how to change its rows, the expected message). Row r of the
# table is line r + 1 of the file (the header is line 1).
MALFORMED = {
    "first column": (A, lambda r: _set(r, 0, 0, "id"), r"annotations_final\.csv, line 1: the first column must be 'clip_id'; got 'id'"),
    "no mp3_path": (A, lambda r: [x[:-1] for x in r], r"annotations_final\.csv, line 1: the last column must be 'mp3_path'; got 'rare'"),
    "no tag columns": (A, lambda r: [[x[0], x[-1]] for x in r], r"annotations_final\.csv, line 1: no tag columns"),
    "duplicate column": (A, lambda r: _set(r, 0, 2, "guitar"), r"annotations_final\.csv, line 1: duplicate column 'guitar' \(columns 2 and 3\)"),
    "empty column name": (A, lambda r: _set(r, 0, 4, " "), r"annotations_final\.csv, line 1: column 5 has an empty name"),
    "value 2": (A, lambda r: _set(r, 3, 2, "2"), r"annotations_final\.csv, line 4: tag 'classical' must be \"0\" or \"1\"; got '2'"),
    "value empty": (A, lambda r: _set(r, 5, 6, ""), r"annotations_final\.csv, line 6: tag 'rare' must be \"0\" or \"1\"; got ''"),
    "value true": (A, lambda r: _set(r, 2, 1, "true"), r"annotations_final\.csv, line 3: tag 'guitar' must be"),
    "duplicate id": (A, lambda r: _set(r, 4, 0, "6"), r"annotations_final\.csv, line 5: duplicate clip_id 6 \(first on line 3\)"),
    "bad id": (A, lambda r: _set(r, 3, 0, "x7"), r"annotations_final\.csv, line 4: clip_id must be a non-negative integer; got 'x7'"),
    "negative id": (A, lambda r: _set(r, 3, 0, "-3"), r"annotations_final\.csv, line 4: clip_id must be a non-negative integer"),
    "ragged short": (A, lambda r: r[:3] + [r[3][:-2] + r[3][-1:]] + r[4:], r"annotations_final\.csv, line 4: ragged row with 7 fields; the header has 8"),
    "ragged long": (A, lambda r: r[:7] + [r[7] + ["0"]] + r[8:], r"annotations_final\.csv, line 8: ragged row with 9 fields"),
    "bad folder": (A, lambda r: _set(r, 2, 7, "g/x.mp3"), r"annotations_final\.csv, line 3: mp3_path must be a relative path inside one of the folders"),
    "escaping path": (A, lambda r: _set(r, 2, 7, "0/../../x.mp3"), r"annotations_final\.csv, line 3: mp3_path must be"),
    "no clips": (A, lambda r: r[:1], r"annotations_final\.csv: the table has a header but no clips"),
    "info no artist": (I, lambda r: [x[:3] + x[4:] for x in r], r"clip_info_final\.csv, line 1: missing column\(s\) 'artist'"),
    "info first column": (I, lambda r: _set(r, 0, 0, "clip"), r"clip_info_final\.csv, line 1: the first column must be 'clip_id'"),
    "info ragged": (I, lambda r: r[:2] + [r[2][:5]] + r[3:], r"clip_info_final\.csv, line 3: ragged row with 5 fields; the header has 10"),
    "info duplicate id": (I, lambda r: _set(r, 3, 0, "2"), r"clip_info_final\.csv, line 4: duplicate clip_id 2 \(first on line 2\)"),
    "info unknown id": (I, lambda r: _set(r, 8, 0, "99"), r"clip_info_final\.csv, line 9: clip_id 99 is not in annotations_final\.csv"),
    "info missing clip": (I, lambda r: r[:4] + r[5:], r"annotations_final\.csv, line 5: clip_id 11 is missing from clip_info_final\.csv"),
    "info other path": (I, lambda r: _set(r, 2, 9, "5/other.mp3"), r"clip_info_final\.csv, line 3: mp3_path '5/other\.mp3' of clip 6 differs from '5/ann-first-02-b-0-29\.mp3' on line 3 of annotations_final\.csv"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_tables_name_file_line_and_problem(mtat, case):
    table, change, message = MALFORMED[case]
    rows = ann_rows() if table == A else info_rows()
    write_table(mtat / table, change(rows))
    with pytest.raises(ValueError, match=message):
        load_magnatagatune(mtat)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", r"annotations_final\.csv: the file is empty"),
        (b'"clip_id"\t"rock"\t"mp3_path"\n"1"\t"1"\t"0/a.mp3\n', r"annotations_final\.csv, line 2: malformed CSV"),
        (b'"clip_id"\t"rock"\t"mp3_path"\n"1"\t"\xff"\t"0/a.mp3"\n', r"annotations_final\.csv: not UTF-8 text"),
        (b'"clip_id"\t"rock"\t"mp3_path"\n"1"\t"1"x\t"0/a.mp3"\n', r"annotations_final\.csv, line 2: malformed CSV"),
    ],
    ids=["empty", "unterminated quote", "not utf-8", "junk after quote"],
)
def test_unreadable_annotations(mtat, content, message):
    (mtat / "annotations_final.csv").write_bytes(content)
    with pytest.raises(ValueError, match=message):
        load_magnatagatune(mtat)


def test_blank_lines_are_ignored(mtat):
    text = (mtat / "annotations_final.csv").read_text()
    (mtat / "annotations_final.csv").write_text(text.replace("\r\n", "\r\n\r\n", 2) + "\r\n")
    ds = load_magnatagatune(mtat)
    assert len(ds) == 7


def test_iter_audio_reports_broken_and_missing_clips(mtat, audio_pieces):
    ds = load_magnatagatune(mtat)
    failures = []
    got = dict(iter_audio(ds, failures=failures))
    assert sorted(got) == [2, 6, 10, 11, 20]
    for cid, y in got.items():
        assert y.dtype == np.float32 and y.ndim == 1
        # MP3 adds encoder padding; the clip is the 2 s piece written above.
        assert 32000 <= len(y) <= 32000 + 2 * 1152 + 529
        i = [c for c, *_ in FIXTURE].index(cid)
        ref = audio_pieces[i][4000:12000]
        lag = np.argmax(np.correlate(y[:16000], ref, mode="valid"))  # encoder delay
        corr = np.corrcoef(y[lag : lag + 8000], ref)[0, 1]
        assert corr > 0.9, (cid, lag, corr)
    assert [(cid, os.path.basename(p)) for cid, p, _ in failures] == [
        (21, "eve-y-01-g-0-29.mp3"),
        (22, "eve-y-02-h-0-29.mp3"),
    ]
    assert "could not be decoded as audio" in failures[0][2]
    assert "no such file" in failures[1][2]


def test_iter_audio_warns_without_a_failure_list(mtat):
    ds = load_magnatagatune(mtat, split="test")
    with pytest.warns(UserWarning, match=r"2 clip\(s\) could not be read and were skipped: 21: .*; 22: .*failures=\[\]"):
        ids = [cid for cid, _ in iter_audio(ds, sr=8000)]
    assert ids == [20]


def test_iter_audio_resamples_and_validates(mtat):
    ds = load_magnatagatune(mtat, split="valid")
    [(cid, y)] = list(iter_audio(ds, sr=8000, failures=[]))
    assert cid == 11 and 16000 <= len(y) <= 17500
    with pytest.raises(TypeError, match="`dataset` must be a ClipDataset"):
        next(iter_audio([ds.paths[0]]))
    with pytest.raises(ValueError, match="`sr` must be a positive integer"):
        next(iter_audio(ds, sr=0))
    with pytest.raises(TypeError, match="`failures` must be a list"):
        next(iter_audio(ds, failures=()))


def test_known_broken_ids():
    assert BROKEN_CLIPS == (35644, 55753, 57881)


@pytest.mark.data
def test_real_magnatagatune():
    if not os.environ.get("MSK_DATA"):
        pytest.skip("MSK_DATA does not point at a MagnaTagATune copy")
    ds = load_magnatagatune()
    if not any(c in BROKEN_CLIPS for c, _ in ds.skipped):
        pytest.skip("MSK_DATA holds a dataset in MTAT's layout, not MagnaTagATune itself")
    assert len(ds) == 25863 - 3
    assert ds.tag_names[:3] == ("guitar", "classical", "slow")
    assert ds.n_tags == 50
    sizes = {s: len(ds.subset(s)) for s in ds.split_names}
    assert sizes["train"] > 12 * sizes["valid"] * 0.8 and sizes["test"] > 2 * sizes["valid"]


# --------------------------------------------------------------------------- labels CSV
from msk.datasets import Labels, load_labels  # noqa: E402


def write_labels(tmp_path, text, name="labels.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_labels_multilabel_with_bom_quotes_and_blank_lines(tmp_path):
    path = write_labels(tmp_path, '\ufeffkey,rock,"jazz, cool"\r\n\r\n"a,1.mp3",1,0\r\nb.mp3, 0 ,1\r\n')
    labels = load_labels(path)
    assert isinstance(labels, Labels) and labels.kind == "multilabel"
    assert labels.keys.tolist() == ["a,1.mp3", "b.mp3"]
    assert labels.tag_names == ("rock", "jazz, cool")
    assert labels.tags.tolist() == [[1, 0], [0, 1]] and labels.tags.dtype == np.uint8
    assert labels.lines.tolist() == [3, 4]
    assert not labels.tags.flags.writeable


def test_labels_single_label_detected_named_and_tab_separated(tmp_path):
    labels = load_labels(write_labels(tmp_path, "file\tgenre\nx.wav\trock\ny.wav\tjazz\nz.wav\trock\n"))
    assert labels.kind == "single-label" and labels.label_column == "genre"
    assert labels.tag_names == ("jazz", "rock")  # sorted classes, one-hot
    assert labels.tags.tolist() == [[0, 1], [1, 0], [0, 1]]
    assert labels.column(None).tolist() == ["rock", "jazz", "rock"]
    # named, with an extra column ignored and a group column
    path = write_labels(tmp_path, "key,genre,year,artist\na,rock,1999,A\nb,jazz,x,B\nc,jazz,2001,A\n", "two.csv")
    labels = load_labels(path, label_column="genre", group_column="artist")
    assert labels.tag_names == ("jazz", "rock") and labels.groups.tolist() == ["A", "B", "A"]
    assert labels.column("artist").tolist() == ["A", "B", "A"]
    with pytest.raises(ValueError, match="`column` must be one of"):
        labels.column("year")


def test_labels_one_column_of_zeros_and_ones_is_one_tag(tmp_path):
    labels = load_labels(write_labels(tmp_path, "key,loud\na,1\nb,0\n"))
    assert labels.kind == "multilabel" and labels.tag_names == ("loud",)
    assert labels.column("loud").tolist() == ["loud", "not loud"]


@pytest.mark.parametrize("text, kwargs, match", [
    ("", {}, r"labels.csv: the file is empty"),
    ("\n\n", {}, r"labels.csv: the file is empty"),
    ("key,rock\n", {}, r"labels.csv: the file has a header but no clips"),
    ("key\na\nb\n", {}, r"labels.csv: no label column"),
    ("key,rock,pop\na,1,0\nb,0,1\nc,x,1\n", {}, r"labels.csv, line 4: value 'x' in column 'rock' is not 0 or 1"),
    ("key,rock,pop\na,1,0\nb,,1\n", {}, r"labels.csv, line 3: value '' in column 'rock' is not 0 or 1"),
    ("key,rock\na,1\nb,0\na,1\n", {}, r"labels.csv, line 4: duplicate key 'a' \(first on line 2\)"),
    ("key,rock\na,1\n ,0\n", {}, r"labels.csv, line 3: empty key in column 'key'"),
    ("key,rock\na,1\nb,0,1\n", {}, r"labels.csv, line 3: 3 fields; the header has 2"),
    ("key,rock,rock\na,1,0\n", {}, r"labels.csv, line 1: duplicate column 'rock'"),
    ("key,,pop\na,1,0\n", {}, r"labels.csv, line 1: column 2 of the header has no name"),
    ("key,genre\na,rock\nb,rock\n", {}, r"labels.csv: column 'genre' holds one class only \('rock'\)"),
    ("key,genre\na,rock\nb,\n", {"label_column": "genre"}, r"labels.csv, line 3: empty class name in column 'genre'"),
    ("key,genre\na,rock\n", {"label_column": "style"}, r"labels.csv: `label_column` 'style' is not a column"),
    ("key,genre\na,rock\n", {"group_column": "key"}, r"`group_column` 'key' is the key column"),
    ('key,rock\n"a,1\n', {}, r"labels.csv, line \d+: malformed CSV"),
])
def test_labels_errors_name_the_file_and_line(tmp_path, text, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_labels(write_labels(tmp_path, text), **kwargs)


def test_labels_not_utf8_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="labels.csv: not UTF-8"):
        load_labels(write_labels(tmp_path, "key,rock\nä,1\n", encoding="latin-1"))
    with pytest.raises(FileNotFoundError, match="no such labels file"):
        load_labels(tmp_path / "nothing.csv")
    with pytest.raises(TypeError, match="`path` must be a str"):
        load_labels(3)
    with pytest.raises(TypeError, match="`label_column` must be a non-empty str"):
        load_labels(write_labels(tmp_path, "key,rock\na,1\n"), label_column="")


def test_labels_warn_about_tags_of_one_class(tmp_path):
    with pytest.warns(UserWarning, match=r"labels.csv: tag\(s\) 'pop', 'jazz' are 1 on every clip or on none"):
        load_labels(write_labels(tmp_path, "key,rock,pop,jazz\na,1,0,1\nb,0,0,1\n"))


def test_labels_rows_for_keys_and_paths(tmp_path, monkeypatch):
    (tmp_path / "music").mkdir()
    path = write_labels(tmp_path / "music", "key,rock\nsong.mp3,1\nclip-7,0\n/abs/x.wav,1\n")
    labels = load_labels(path)
    monkeypatch.chdir(tmp_path)
    rows = labels.rows_for(["clip-7", "music/song.mp3", "other", "k"],
                           ["/elsewhere/a.mp3", None, "/abs/y.wav", "/abs/x.wav"])
    assert rows.tolist() == [1, 0, -1, 2]
    # a relative path in the CSV is also tried relative to the current directory
    labels = load_labels(write_labels(tmp_path, "key,rock\nmusic/song.mp3,1\nb,0\n", "cwd.csv"))
    assert labels.rows_for([str(tmp_path / "music" / "song.mp3")]).tolist() == [0]
