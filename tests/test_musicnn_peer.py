"""The launcher half of scripts/musicnn_peer.py, without TensorFlow.

The worker half (TensorFlow, musicnn's weights) runs in its own venv and is
exercised by hand (see scripts/README_musicnn.md); here the argument handling,
the embeddings file format, the matching of clip ids with a dataset and the
evaluation with msk's heads are checked on fake embeddings files.
"""

import csv
import io
import json
import pathlib

import numpy as np
import pytest

from conftest import load_script

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "musicnn_peer.py"


@pytest.fixture(scope="module")
def peer():
    return load_script("musicnn_peer")


def _write_table(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as f:
        csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)


def make_dataset(root, n_per_folder=6, tags=("a", "b")):
    """A MagnaTagATune-layout tree (tables only: nothing here decodes audio).

    Clip ids are scrambled (not 0..n-1) so that id/row confusions show. Two
    clips per track (segments 0-29 and 29-58), three artists.
    """
    root = pathlib.Path(root)
    rng = np.random.default_rng(7)
    ann = [["clip_id", *tags, "mp3_path"]]
    info = [["clip_id", "artist", "mp3_path"]]
    cid = 1000
    for folder in "0123456789abcdef":
        for j in range(n_per_folder):
            track = f"artist{j % 3}-album-{folder}{j // 2:02d}-song"
            path = f"{folder}/{track}-{29 * (j % 2)}-{29 * (j % 2) + 29}.mp3"
            cid += int(rng.integers(1, 5))
            ann.append([str(cid), *(str(int(v)) for v in rng.integers(0, 2, len(tags))), path])
            info.append([str(cid), f"artist{j % 3}", path])
    root.mkdir(parents=True, exist_ok=True)
    _write_table(root / "annotations_final.csv", ann)
    _write_table(root / "clip_info_final.csv", info)
    return root


def save_embeddings(path, X, clip_ids, clip_index, **extra):
    np.savez(path, X=X, clip_ids=np.asarray(clip_ids), clip_index=np.asarray(clip_index), **extra)
    return path


# --------------------------------------------------------------------------- arguments
def test_parse_args_defaults(peer, tmp_path):
    args = peer.parse_args(["all", str(tmp_path), "--out", str(tmp_path / "o")])
    assert args.command == "all"
    assert args.models == ["MTT_musicnn", "MSD_musicnn"]
    assert args.layers == ["penultimate", "taggram"]
    assert (args.threads, args.n_runs, args.n_trials, args.n_hidden, args.nca_components) == (1, 10, 10, 1000, 50)
    assert args.limit is None and not args.force
    assert args.venv == peer.VENV


def test_parse_args_per_command_options(peer, tmp_path):
    args = peer.parse_args(["--venv", "/x/v", "extract", str(tmp_path), "--out", "o", "--models", "MSD_musicnn",
                            "MSD_musicnn", "--threads", "2", "--limit", "5", "--force"])
    assert args.venv == "/x/v"
    assert args.models == ["MSD_musicnn"]  # duplicates dropped, order kept
    assert (args.threads, args.limit, args.force) == (2, 5, True)
    assert not hasattr(args, "n_runs")  # evaluation options belong to evaluate/all
    args = peer.parse_args(["evaluate", str(tmp_path), "--out", "o", "--layers", "max_pool", "--n-runs", "3"])
    assert args.layers == ["max_pool"] and args.n_runs == 3
    assert not hasattr(args, "threads")
    assert peer.parse_args(["setup"]).command == "setup"


@pytest.mark.parametrize("argv, message", [
    (["extract", "{root}", "--out", "o", "--models", "MTT_vgg"], "invalid choice: 'MTT_vgg'"),
    (["evaluate", "{root}", "--out", "o", "--n-runs", "0"], "must be a positive integer; got '0'"),
    (["extract", "{root}", "--out", "o", "--threads", "two"], "must be a positive integer; got 'two'"),
    (["evaluate", "{root}", "--out", "o", "--layers", "cnn1"], "invalid choice: 'cnn1'"),
    (["extract", "{root}/nope", "--out", "o"], "is not a folder"),
    (["extract", "{root}"], "--out"),
    ([], "required: command"),
])
def test_parse_args_rejects_bad_input(peer, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        peer.parse_args([a.format(root=tmp_path) for a in argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_worker_env_pins_threads_and_isolates_the_venv(peer, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/somewhere/with/numpy2")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")
    env = peer._worker_env(1)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        assert env[key] == "1"
    assert "PYTHONPATH" not in env and env["PYTHONNOUSERSITE"] == "1"
    assert peer._worker_env(3)["OMP_NUM_THREADS"] == "3"


def test_ensure_venv_is_a_no_op_when_complete(peer, tmp_path, monkeypatch):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / peer._MARKER).write_text("\n".join(peer.REQUIREMENTS + (peer.MUSICNN,)) + "\n")

    def refuse(*a, **k):
        raise AssertionError("nothing may be installed into a complete venv")

    monkeypatch.setattr(peer.subprocess, "run", refuse)
    assert peer.ensure_venv(str(venv)) == str(venv / "bin" / "python")
    # other pins: the venv is installed into again
    (venv / peer._MARKER).write_text("tensorflow-cpu==2.14.0\n")
    with pytest.raises(AssertionError, match="nothing may be installed"):
        peer.ensure_venv(str(venv))


def test_run_worker_command_line(peer, monkeypatch):
    calls = []
    monkeypatch.setattr(peer.subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    peer.run_worker("/v", "/o/clips.tsv", "/o", models=["MSD_musicnn"], threads=2, force=True, check=False)
    (cmd, kw), = calls
    assert cmd[0] == "/v/bin/python" and cmd[1] == str(SCRIPT) and cmd[2] == "_worker"
    assert cmd[3:] == ["--clips", "/o/clips.tsv", "--out", "/o", "--models", "MSD_musicnn", "--threads", "2",
                       "--force", "--no-check"]
    assert kw["check"] is True and kw["env"]["OMP_NUM_THREADS"] == "2"


# --------------------------------------------------------------------------- files
def test_clip_list_round_trip(peer, tmp_path):
    path = tmp_path / "clips.tsv"
    peer.write_clip_list(path, np.array([5, 17, 3]), ["/a b/x.mp3", "/c\t/y.mp3", "/z.mp3"])
    assert peer.read_clip_list(path) == ([5, 17, 3], ["/a b/x.mp3", "/c\t/y.mp3", "/z.mp3"])
    path.write_text("5\t/a.mp3\nseven\t/b.mp3\n")
    with pytest.raises(ValueError, match="line 2: expected 'clip_id<TAB>path'"):
        peer.read_clip_list(path)


def test_embeddings_paths(peer):
    assert peer.embeddings_path("/o", "MTT_musicnn", "taggram") == "/o/musicnn_MTT_musicnn_taggram.npz"
    assert peer.timing_path("/o", "MSD_musicnn") == "/o/musicnn_MSD_musicnn_timing.json"


def test_read_embeddings(peer, tmp_path, rng):
    X = rng.standard_normal((7, 4)).astype(np.float32)
    path = save_embeddings(tmp_path / "e.npz", X, [30, 10], [0, 0, 0, 1, 1, 1, 1],
                           patch_start=np.zeros(7, np.float32), model=np.array("MTT_musicnn"))
    X2, clip_index, clip_ids = peer.read_embeddings(path)
    np.testing.assert_array_equal(X2, X)
    assert X2.dtype == np.float32
    np.testing.assert_array_equal(clip_index, [0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(clip_ids, [30, 10])


@pytest.mark.parametrize("X, ids, index, message", [
    (np.zeros((3, 2)), [1], [0, 0], r"`clip_index` must be integers of shape \(3,\)"),
    (np.zeros((3, 2)), [1], [0.0, 0.0, 0.0], "`clip_index` must be integers"),
    (np.zeros(3), [1], [0, 0, 0], "`X` must be a non-empty 2-D array"),
    (np.zeros((0, 2)), [1], np.zeros(0, int), "`X` must be a non-empty 2-D array"),
    (np.zeros((3, 2)), [1, 2], [0, 0, 2], r"must lie in \[0, 2\); got values in \[0, 2\]"),
    (np.zeros((3, 2)), [1, 2], [0, 0, -1], r"must lie in \[0, 2\)"),
    (np.zeros((3, 2)), [1, 2, 3], [0, 0, 1], "every clip in `clip_ids` must own at least one row"),
    (np.zeros((3, 2)), [4, 4], [0, 1, 1], "`clip_ids` has duplicates"),
    (np.zeros((3, 2)), [[1, 2]], [0, 1, 1], "`clip_ids` must be a 1-D integer array"),
    (np.array([[0.0, np.nan], [1, 1], [2, 2]]), [1, 2], [0, 1, 1], "NaN or infinite"),
])
def test_read_embeddings_rejects_bad_files(peer, tmp_path, X, ids, index, message):
    path = save_embeddings(tmp_path / "e.npz", np.asarray(X), ids, index)
    with pytest.raises(ValueError, match=message):
        peer.read_embeddings(path)


def test_read_embeddings_rejects_other_files(peer, tmp_path):
    path = tmp_path / "e.npz"
    np.savez(path, X=np.zeros((2, 2)), clip_ids=np.array([1]))
    with pytest.raises(ValueError, match=r"missing array\(s\) \['clip_index'\]"):
        peer.read_embeddings(path)


# --------------------------------------------------------------------------- matching with the dataset
def test_align_to_dataset_orders_and_reports_missing(peer):
    dataset_ids = np.array([11, 22, 33, 44, 55])
    clip_ids = np.array([44, 11, 33])  # file order differs from the dataset's; 22 and 55 failed
    clip_index = np.array([0, 0, 1, 2, 2, 2])
    present, index, missing = peer.align_to_dataset(dataset_ids, clip_index, clip_ids)
    np.testing.assert_array_equal(present, [0, 2, 3])  # dataset rows, dataset order
    np.testing.assert_array_equal(dataset_ids[present][index], clip_ids[clip_index])
    np.testing.assert_array_equal(index, [2, 2, 0, 1, 1, 1])
    np.testing.assert_array_equal(missing, [22, 55])


def test_align_to_dataset_rejects_foreign_clips(peer):
    with pytest.raises(ValueError, match=r"2 clip id\(s\) that the dataset does not have \(7, 9\)"):
        peer.align_to_dataset([1, 2, 3], np.array([0, 1, 2, 3]), np.array([1, 7, 2, 9]))


def test_align_to_dataset_matches_the_loader(peer, tmp_path, rng):
    import msk

    root = make_dataset(tmp_path / "ds", n_per_folder=2)
    ds = msk.datasets.load_magnatagatune(root)
    keep = ds.clip_ids[rng.permutation(len(ds))[: len(ds) - 3]]
    clip_index = np.repeat(np.arange(len(keep)), 2)
    present, index, missing = peer.align_to_dataset(ds.clip_ids, clip_index, keep)
    sub = ds.subset(present)
    np.testing.assert_array_equal(sub.clip_ids[index], keep[clip_index])
    assert sorted(missing.tolist()) == sorted(set(ds.clip_ids.tolist()) - set(keep.tolist()))


# --------------------------------------------------------------------------- evaluation with msk's heads
def test_evaluate_writes_results_with_msk_heads(peer, tmp_path, rng):
    """Fake embeddings where tag 'a' and the artist are written into the features."""
    import msk

    root = make_dataset(tmp_path / "ds", n_per_folder=9)
    ds = msk.datasets.load_magnatagatune(root)
    out = tmp_path / "out"
    out.mkdir()
    order = rng.permutation(len(ds))[:-2]  # file order scrambled, two clips "failed"
    ids = ds.clip_ids[order]
    clip_index = np.repeat(np.arange(len(ids)), 3)
    a = ds.tags[order, ds.tag_names.index("a")]
    artist = np.array([int(s[-1]) for s in ds.artists[order]])
    X = 0.3 * rng.standard_normal((len(clip_index), 6)).astype(np.float32)
    X[:, 0] += 2.0 * a[clip_index]
    X[:, 1:4] += 2.0 * np.eye(3, dtype=np.float32)[artist[clip_index]]
    save_embeddings(peer.embeddings_path(out, "MTT_musicnn", "penultimate"), X, ids, clip_index)
    (out / "musicnn_MTT_musicnn_timing.json").write_text(json.dumps(
        {"seconds_per_clip": 0.5, "x_real_time": 58.2, "threads": 1}))

    res = peer.evaluate(root, out, models=["MTT_musicnn"], layers=["penultimate"], n_runs=2, n_trials=2,
                        random_state=0, mlp_params={"n_hidden": 16, "max_iter": 100, "batch_size": 32, "patience": 20},
                        nca_params={"n_components": 3, "learning_rate": 0.05, "max_iter": 40},
                        log=io.StringIO())
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(peer._finite(res)))
    r = on_disk["architectures"]["musicnn:MTT_musicnn:penultimate"]
    assert (r["n_features"], r["n_windows"], r["n_clips"]) == (6, len(X), len(ds) - 2)
    assert sorted(r["missing_clip_ids"]) == sorted(np.setdiff1d(ds.clip_ids, ids).tolist())
    s = r["summary"]
    assert s["tag_auc_mean"] == pytest.approx(np.mean(r["tagging"]["run_aucs"]))
    assert len(r["tagging"]["run_aucs"]) == 2
    tag_a, tag_b = (r["tagging"]["per_tag_auc"][ds.tag_names.index(t)] for t in "ab")
    assert tag_a > 0.95 and abs(tag_b - 0.5) < 0.3  # learnable tag vs random tag
    assert s["nca_probability"] > 0.8 and s["nn_accuracy"] > 0.8  # artists separable
    assert s["nn_accuracy_other_tracks"] is not None  # groups (tracks) were passed
    assert (s["seconds_per_clip"], s["x_real_time"], s["threads"]) == (0.5, 58.2, 1)
    assert on_disk["dataset"]["tag_names"] == list(ds.tag_names)
    assert on_disk["settings"]["n_runs"] == 2

    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [row["architecture"] for row in rows] == ["musicnn:MTT_musicnn:penultimate"]
    assert float(rows[0]["tag_auc_mean"]) == pytest.approx(s["tag_auc_mean"])
    assert float(rows[0]["x_real_time"]) == 58.2


def test_evaluate_adds_layers_to_results_of_the_same_settings(peer, tmp_path, rng):
    import msk

    root = make_dataset(tmp_path / "ds", n_per_folder=6)
    ds = msk.datasets.load_magnatagatune(root)
    out = tmp_path / "out"
    out.mkdir()
    clip_index = np.repeat(np.arange(len(ds)), 2)
    for layer in ("taggram", "max_pool"):
        X = rng.standard_normal((len(clip_index), 4)).astype(np.float32)
        X[:, :3] += 3 * np.eye(3, dtype=np.float32)[[int(a[-1]) for a in ds.artists[clip_index]]]
        save_embeddings(peer.embeddings_path(out, "MSD_musicnn", layer), X, ds.clip_ids, clip_index)
    kw = dict(models=["MSD_musicnn"], n_runs=1, n_trials=1, mlp_params={"n_hidden": 4, "max_iter": 3},
              nca_params={"n_components": 2, "max_iter": 3}, log=io.StringIO())
    peer.evaluate(root, out, layers=["taggram"], **kw)
    peer.evaluate(root, out, layers=["max_pool"], **kw)
    names = list(json.loads((out / "results.json").read_text())["architectures"])
    assert names == ["musicnn:MSD_musicnn:taggram", "musicnn:MSD_musicnn:max_pool"]
    assert len((out / "results.csv").read_text().splitlines()) == 3
    peer.evaluate(root, out, layers=["max_pool"], **{**kw, "n_runs": 2})  # other settings: start afresh
    names = list(json.loads((out / "results.json").read_text())["architectures"])
    assert names == ["musicnn:MSD_musicnn:max_pool"]


def test_evaluate_rejects_embeddings_of_another_dataset(peer, tmp_path):
    root = make_dataset(tmp_path / "ds", n_per_folder=2)
    out = tmp_path / "out"
    out.mkdir()
    save_embeddings(peer.embeddings_path(out, "MSD_musicnn", "taggram"), np.ones((2, 3), np.float32),
                    [1, 2], [0, 1])
    with pytest.raises(ValueError, match="extracted from another dataset"):
        peer.evaluate(root, out, models=["MSD_musicnn"], layers=["taggram"], n_runs=1, n_trials=1,
                      log=io.StringIO())


def test_finite_replaces_nan(peer):
    assert peer._finite({"a": [1.0, float("nan")], "b": (float("inf"), "x")}) == {"a": [1.0, None], "b": [None, "x"]}


def test_write_store_keys_rows_by_clip_id(peer, tmp_path, rng):
    """The feature store run_experiment(external=...) reads: each clip's own patches, in order."""
    import msk

    out = tmp_path / "out"
    out.mkdir()
    ids = np.array([1007, 1003, 1012])
    clip_index = np.array([1, 0, 1, 2, 0, 2, 2])  # patches of the clips interleaved
    X = rng.standard_normal((7, 4)).astype(np.float32)
    save_embeddings(peer.embeddings_path(out, "MTT_musicnn", "penultimate"), X, ids, clip_index)
    (out / "musicnn_MTT_musicnn_timing.json").write_text(json.dumps({"seconds_per_clip": 0.4}))
    path = peer.write_store(str(out), "MTT_musicnn", "penultimate")
    assert path == peer.store_path(str(out), "MTT_musicnn", "penultimate") and path.endswith(".zarr")
    store = msk.store.FeatureStore(path, mode="r")
    assert sorted(store.keys()) == ["1003", "1007", "1012"]
    for j, cid in enumerate(ids.tolist()):
        np.testing.assert_array_equal(store.get(str(cid)), X[clip_index == j])
    info = store.model_info
    assert (info["model"], info["layer"], info["n_features"]) == ("MTT_musicnn", "penultimate", 4)
    assert info["extract_ms_per_clip"] == pytest.approx(400.0)
    # written again (new embeddings): replaced, not mixed
    save_embeddings(peer.embeddings_path(out, "MTT_musicnn", "penultimate"), X[:2], ids[:2], [0, 1])
    store = msk.store.FeatureStore(peer.write_store(str(out), "MTT_musicnn", "penultimate"), mode="r")
    assert sorted(store.keys()) == ["1003", "1007"]
