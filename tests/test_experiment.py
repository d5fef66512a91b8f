"""The experiment end to end on a tiny MagnaTagATune-layout corpus built in tmp_path.

The corpus (``tiny_corpus``) cuts the shipped example clip into 16 short
overlapping MP3 clips by three "artists" whose audio differs audibly (the
original, a quiet copy, a time-reversed copy), with tags that follow the
artists plus one random tag, two clips per track, one clip that does not
decode and one that is missing. Feature learning runs with 3 levels, pooling
windows of 32 frames and tiny dictionaries, the heads with tiny networks, so
the whole experiment takes seconds.
"""

import csv
import glob
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

import msk
from msk.experiment import (
    BASELINE_ARCHITECTURES,
    DEFAULT_SEARCH,
    PAPER_ARCHITECTURES,
    parse_architecture,
    run_experiment,
)

SR = 16000
CLIP_SECONDS = 6.0
# (folder, artist, track): two clips per track; 8 train, 4 valid, 4 test (+ one broken, one missing)
LAYOUT = [
    ("0", "Ann", 1), ("0", "Ann", 1), ("3", "Bob", 2), ("3", "Bob", 2),
    ("7", "Cat", 3), ("7", "Cat", 3), ("a", "Ann", 4), ("a", "Bob", 5),
    ("c", "Ann", 6), ("c", "Bob", 7), ("c", "Cat", 8), ("c", "Cat", 8),
    ("d", "Ann", 9), ("e", "Bob", 10), ("f", "Cat", 11), ("f", "Ann", 12),
]
TAGS = ["quiet", "reversed", "coin"]


def _q(*fields):
    return "\t".join(f'"{x}"' for x in fields) + "\n"


def build_tiny_corpus(root, layout=LAYOUT, clip_seconds=CLIP_SECONDS):
    """Write the corpus under ``root``; return the clip ids of the broken and the missing clip."""
    y = msk.load_audio(msk.example_audio())
    n = int(clip_seconds * SR)
    hop = (len(y) - n) // len(layout)
    rng = np.random.default_rng(5)
    ann = [_q("clip_id", *TAGS, "mp3_path")]
    info = [_q("clip_id", "track_number", "title", "artist", "album", "url", "segmentStart", "segmentEnd",
               "original_url", "mp3_path")]
    for d in "0123456789abcdef":
        os.makedirs(os.path.join(root, d), exist_ok=True)
    entries = [(i + 1, *row) for i, row in enumerate(layout)]
    entries += [(101, "5", "Bob", 200), (102, "e", "Cat", 201)]  # broken, missing
    for cid, folder, artist, track in entries:
        path = f"{folder}/{artist.lower()}-album-{track:02d}-song-{cid}.mp3"
        if cid <= len(layout):
            piece = y[(cid - 1) * hop:(cid - 1) * hop + n].copy()
            if artist == "Bob":
                piece *= 0.05
            elif artist == "Cat":
                piece = piece[::-1].copy()
            sf.write(os.path.join(root, path), piece, SR, format="MP3")
        elif cid == 101:
            with open(os.path.join(root, path), "wb") as f:
                f.write(b"not an mp3 at all " * 50)
        tags = [int(artist == "Bob"), int(artist == "Cat"), int(rng.random() < 0.5)]
        ann.append(_q(cid, *tags, path))
        info.append(_q(cid, track, f"song {track}", artist, f"album of {artist}", "x", 0, 6, "", path))
    with open(os.path.join(root, "annotations_final.csv"), "w", encoding="utf-8") as f:
        f.writelines(ann)
    with open(os.path.join(root, "clip_info_final.csv"), "w", encoding="utf-8") as f:
        f.writelines(info)
    return 101, 102


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_mtat")
    build_tiny_corpus(str(root))
    return str(root)


FAST = dict(
    n_runs=1, n_trials=2, random_state=3, progress=False,
    features={"levels": 3, "pool_size": 32, "n_samples": 3000, "max_iter": 5},
    mlp={"n_hidden": 16, "batch_size": 32, "max_iter": 6, "patience": 3},
    nca={"n_components": 4, "max_iter": 10, "batch_size": 50},
    learning_rate_range=(1e-3, 1e-2),
)
ARCHS = ["laplacian-w1-k8", "gaussian-w2-pca", "single-w1-k8", "mfcc"]


def _has_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def test_architecture_names():
    assert len(PAPER_ARCHITECTURES) == 28 and len(set(PAPER_ARCHITECTURES)) == 28
    parsed = [parse_architecture(a) for a in PAPER_ARCHITECTURES]
    assert {(a.representation, a.frames) for a in parsed} == {
        ("gaussian", 1), ("gaussian", 2), ("gaussian", 4), ("laplacian", 1), ("laplacian", 2),
        ("laplacian", 4), ("multiresolution", 1)}
    assert {a.n_means for a in parsed} == {None, 200, 500, 1000}
    assert all(a.levels == 6 for a in parsed)
    single = parse_architecture(BASELINE_ARCHITECTURES[0])
    assert (single.levels, single.n_means, single.frames) == (1, 500, 1)
    assert parse_architecture("logmel-stats").kind == "logmel-stats"
    for bad in ("laplacian-w0-k500", "laplacian-k500", "pyramid-w1-k5", "laplacian-w1-k", "mfccs"):
        with pytest.raises(ValueError, match="`name` must look like"):
            parse_architecture(bad)
    with pytest.raises(TypeError, match="`name` must be an architecture name"):
        parse_architecture(5)
    assert all(set(c) <= {"variance", "eps", "encoding", "threshold", "pooling", "log_offset"} for c in DEFAULT_SEARCH)


def test_bad_arguments_fail_before_any_work(tiny_corpus, tmp_path):
    out = str(tmp_path / "never")
    with pytest.raises(ValueError, match="`name` must look like"):
        run_experiment(tiny_corpus, architectures=["laplacian-w1-k8", "lapalcian-w1-k8"], out=out)
    with pytest.raises(ValueError, match="`features` has unknown keys \\['n_mean'\\]"):
        run_experiment(tiny_corpus, architectures=["mfcc"], out=out, features={"n_mean": 3})
    with pytest.raises(ValueError, match="`mlp` cannot set 'alpha'"):
        run_experiment(tiny_corpus, architectures=["mfcc"], out=out, mlp={"alpha": 1.0})
    with pytest.raises(ValueError, match="`n_runs` must be a positive integer; got 0"):
        run_experiment(tiny_corpus, architectures=["mfcc"], out=out, n_runs=0)
    with pytest.raises(ValueError, match="`architectures` lists a name twice"):
        run_experiment(tiny_corpus, architectures=["mfcc", "mfcc"], out=out)
    with pytest.raises(TypeError, match="`search` must be a bool or a list"):
        run_experiment(tiny_corpus, architectures=["mfcc"], out=out, search="yes")
    with pytest.raises(ValueError, match="`per_level` must name one of"):
        run_experiment(tiny_corpus, architectures=["mfcc"], out=out, per_level="laplacian-w1-k8")
    with pytest.raises(ValueError, match="`representation`|`pool_size` must be a positive integer"):
        run_experiment(tiny_corpus, architectures=["laplacian-w1-k8"], out=out, features={"pool_size": 0})
    assert not os.path.exists(out)


def test_experiment_end_to_end(tiny_corpus, tmp_path):
    out = str(tmp_path / "results")
    res = run_experiment(tiny_corpus, architectures=ARCHS, out=out, search=[{"variance": 0.9}],
                         figures=_has_matplotlib(), **FAST)

    # --- results.json --------------------------------------------------------------------------
    with open(os.path.join(out, "results.json")) as f:
        saved = json.load(f)
    assert saved["complete"] is True
    rows = {r["architecture"]: r for r in saved["architectures"]}
    assert list(rows)[:4] == ARCHS
    for name in ARCHS:
        r = rows[name]
        assert 0.0 <= r["tag_auc_mean"] <= 1.0 and r["tag_auc_std"] == 0.0  # one run
        assert 0.0 <= r["nca_probability"] <= 1.0 and 0.0 <= r["nn_accuracy"] <= 1.0
        assert r["nn_accuracy_other_tracks"] is not None
        assert r["n_clips"] == 16 and r["n_failed"] == 2 and r["n_extracted"] == 16
        assert set(r["failures"]) == {"101", "102"}
        assert "no such file" in r["failures"]["102"]
        assert set(r["per_tag_auc"]) == set(TAGS)
        assert r["learning_rate_init"] > 0 and len(r["search_trials"]) == 2
        assert r["nca_components"] == 4
        assert r["extract_seconds"] > 0 and r["extract_ms_per_clip"] > 0
        assert r["reused"] is False
    assert rows["laplacian-w1-k8"]["n_features"] == 3 * 8
    assert rows["laplacian-w1-k8"]["level_columns"] == [[0, 8], [8, 16], [16, 24]]
    assert rows["single-w1-k8"]["n_features"] == 8 and rows["single-w1-k8"]["levels"] == 1
    assert rows["mfcc"]["n_features"] == 40 and rows["mfcc"]["fit_seconds"] == 0.0
    assert rows["laplacian-w1-k8"]["fit_seconds"] > 0
    assert saved["dataset"]["splits"] == {"train": 9, "valid": 4, "test": 5}  # broken and missing included
    assert saved["dataset"]["n_tracks"] == 14 and saved["dataset"]["n_artists"] == 3
    assert sorted(t["name"] for t in saved["dataset"]["tags"]) == sorted(TAGS)
    assert saved["settings"]["n_runs"] == 1 and saved["settings"]["mlp"]["n_hidden"] == 16
    assert saved["timings"]["total_seconds"] > 0
    assert res["architectures"][0]["architecture"] == ARCHS[0]

    # per-level study on the best multiscale architecture (chosen on validation)
    pl = saved["per_level"]
    best = max((r for r in saved["architectures"][:4] if r["kind"] == "multiscale" and r["levels"] > 1),
               key=lambda r: r["valid_tag_auc"])
    assert pl["architecture"] == best["architecture"]
    assert [lv["level"] for lv in pl["levels"]] == [0, 1, 2]
    assert all(set(lv["per_tag_auc"]) == set(TAGS) for lv in pl["levels"])

    # the knob search: base + one configuration, validation scores only
    s = saved["search"]
    assert s["base"] == best["architecture"]
    names = [c["name"] for c in s["configurations"]]
    assert names == [best["architecture"], best["architecture"] + "+variance=0.9"]
    assert all(0 <= c["valid_tag_auc"] <= 1 and 0 <= c["valid_nca_probability"] <= 1
               for c in s["configurations"])
    assert s["selected"] in names
    if s["selected"] != s["base"]:
        assert saved["architectures"][-1]["architecture"] == s["selected"]
        assert saved["architectures"][-1]["tuned_from"] == s["base"]
        assert saved["architectures"][-1]["fit_seconds"] > 0  # fitted during the search, timed there

    # --- results.csv and tags.txt ---------------------------------------------------------------
    with open(os.path.join(out, "results.csv"), newline="") as f:
        table = list(csv.DictReader(f))
    assert [t["architecture"] for t in table] == [r["architecture"] for r in saved["architectures"]]
    assert float(table[0]["tag_auc_mean"]) == pytest.approx(rows[ARCHS[0]]["tag_auc_mean"], rel=1e-5)
    assert table[1]["n_means"] == "" and table[0]["n_means"] == "8"
    with open(os.path.join(out, "tags.txt")) as f:
        assert f.read().split() == [t["name"] for t in saved["dataset"]["tags"]]

    # --- model and cache on disk ----------------------------------------------------------------
    model = msk.MultiscaleFeatures.load(os.path.join(out, "laplacian-w1-k8", "model.npz"))
    F = model.transform(os.path.join(tiny_corpus, "0", "ann-album-01-song-1.mp3"))
    assert F.shape[1] == 24
    model_mtime = os.path.getmtime(os.path.join(out, "laplacian-w1-k8", "model.npz"))

    # --- figures --------------------------------------------------------------------------------
    if _has_matplotlib():
        written = saved["figures"]
        assert {os.path.basename(p) for p in written} >= {
            "fig2_representations.png", "fig3_features.png", "fig4_tagging.png", "fig5_similarity.png",
            "fig6_levels.png"}
        for p in written:
            assert os.path.getsize(os.path.join(out, p)) > 5000

    # --- second run: nothing is refitted or re-extracted; heads reused or rerun -----------------
    again = run_experiment(tiny_corpus, architectures=ARCHS, out=out, search=[{"variance": 0.9}],
                           figures=False, **FAST)
    for r in again["architectures"]:
        assert r["n_extracted"] == 0 and r["fitted"] is False and r["reused"] is True
    assert os.path.getmtime(os.path.join(out, "laplacian-w1-k8", "model.npz")) == model_mtime
    assert [r["tag_auc_mean"] for r in again["architectures"]] == [r["tag_auc_mean"] for r in saved["architectures"]]
    # other head settings: heads rerun on the cached features, still nothing extracted
    third = run_experiment(tiny_corpus, architectures=ARCHS[:2], out=out, per_level=False, figures=False,
                           **dict(FAST, n_runs=2))
    for r in third["architectures"]:
        assert r["n_extracted"] == 0 and r["reused"] is False and len(r["tag_auc_runs"]) == 2
        assert r["learning_rate_init"] == rows[r["architecture"]]["learning_rate_init"]  # search reused

    # other feature settings on the same folder are refused
    with pytest.raises(ValueError, match="computed with other settings"):
        run_experiment(tiny_corpus, architectures=["laplacian-w1-k8"], out=out, figures=False,
                       **dict(FAST, features={"levels": 3, "pool_size": 16, "n_samples": 3000, "max_iter": 5}))


def test_worker_processes_give_the_same_rows(tiny_corpus, tmp_path):
    archs = ["laplacian-w1-k8", "mfcc", "logmel-stats"]
    kw = dict(FAST, per_level=False, figures=False)
    serial = run_experiment(tiny_corpus, architectures=archs, out=str(tmp_path / "one"), **kw)
    parallel = run_experiment(tiny_corpus, architectures=archs, out=str(tmp_path / "two"), n_workers=2, **kw)
    assert [r["architecture"] for r in parallel["architectures"]] == archs
    for a, b in zip(serial["architectures"], parallel["architectures"]):
        for key in ("tag_auc_mean", "per_tag_auc", "nca_probability", "nn_accuracy", "learning_rate_init",
                    "n_windows", "n_failed"):
            assert a[key] == b[key], (a["architecture"], key)
    with pytest.raises(ValueError, match="`n_workers` must be a positive integer"):
        run_experiment(tiny_corpus, architectures=archs, out=str(tmp_path / "two"), n_workers=0, **kw)


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _children(pid):
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.split("/")[2]))
    return out


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads /proc to find the worker processes")
def test_killed_run_leaves_no_worker_processes(tiny_corpus, tmp_path):
    code = (f"from msk.experiment import run_experiment\n"
            f"run_experiment({tiny_corpus!r}, architectures=['laplacian-w1-k8', 'gaussian-w1-k8'], "
            f"out={str(tmp_path / 'out')!r}, n_workers=2, progress=False, figures=False, "
            f"features={{'levels': 3, 'pool_size': 32, 'n_samples': 3000, 'max_iter': 5}}, "
            f"mlp={{'n_hidden': 16, 'max_iter': 1000, 'patience': 1000}})\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    try:
        workers = []
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            workers = [p for p in _children(parent.pid) if "spawn_main" in _cmdline(p)]
        assert len(workers) == 2, "the worker processes did not start"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{p}") for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}")]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, "worker processes outlived their killed parent"


def test_msk_evaluate_scores_an_experiment_store_as_the_experiment_does(tiny_corpus, tmp_path, capsys):
    # one evaluation: `msk evaluate` with the row's seed and the same head settings gives the row's figures
    from msk.cli import main

    out = str(tmp_path / "res")
    res = run_experiment(tiny_corpus, architectures=["mfcc"], out=out, n_runs=1, n_trials=2, random_state=3,
                         progress=False, per_level=False, figures=False, features={"pool_size": 32},
                         mlp={"n_hidden": 16})
    row = res["architectures"][0]
    assert res["settings"]["mlp"]["max_iter"] == msk.heads.MLPTagger().max_iter  # the heads' defaults
    code = main(["evaluate", os.path.join(out, "mfcc", "features.zarr"), "--dataset", tiny_corpus, "--runs", "1",
                 "--trials", "2", "--hidden", "16", "--seed", str(row["heads_seed"])])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("tag_auc_mean", "nca_probability", "nn_accuracy_other_tracks"):
        assert summary[key] == row[key], key


def test_new_clips_are_extracted_incrementally(tiny_corpus, tmp_path):
    out = str(tmp_path / "inc")
    kw = dict(FAST, per_level=False, figures=False)
    run_experiment(tiny_corpus, architectures=["mfcc"], out=out, **kw)
    # forget three cached clips: the next run extracts exactly those
    store = msk.store.FeatureStore(os.path.join(out, "mfcc", "features.zarr"), mode="r")
    assert len(store) == 16 and set(store.failures()) == {"101", "102"}
    with msk.store.FeatureStore(os.path.join(out, "mfcc", "features.zarr"), mode="a") as writable:
        assert writable.prune(["1", "7", "16"]) == 3
    res = run_experiment(tiny_corpus, architectures=["mfcc"], out=out, **kw)
    assert res["architectures"][0]["n_extracted"] == 3
    assert len(msk.store.FeatureStore(os.path.join(out, "mfcc", "features.zarr"), mode="r")) == 16


def test_external_features_get_the_same_heads(tiny_corpus, tmp_path):
    """A feature store made elsewhere (as scripts/musicnn_peer.py writes musicnn's) is one more row."""
    data = msk.datasets.load_magnatagatune(tiny_corpus)
    rng = np.random.default_rng(0)
    store = msk.store.FeatureStore(str(tmp_path / "peer.zarr"), mode="w",
                                   model_info={"name": "peer", "extract_ms_per_clip": 250.0})
    for i, cid in enumerate(data.clip_ids.tolist()):
        if cid in (101, 102, 16):  # the broken and missing clips, and one the peer "failed" on
            continue
        X = 0.2 * rng.standard_normal((3, 5)).astype(np.float32)
        X[:, :3] += 2.0 * data.tags[i]  # every tag written into the features: all learnable
        # keyed by clip id, one by its path relative to the dataset: both are found
        store.put(os.path.relpath(data.paths[i], data.root) if cid == 3 else str(cid), X)
    store.close()
    out = str(tmp_path / "ext")
    fast = dict(FAST, mlp={"n_hidden": 16, "batch_size": 8, "max_iter": 60, "patience": 20},
                learning_rate_range=(0.03, 0.1))  # enough steps to learn from 33 training windows
    res = run_experiment(tiny_corpus, architectures=["mfcc"], out=out, figures=False, per_level=False,
                         external={"my-peer": store.path}, **fast)
    rows = {r["architecture"]: r for r in res["architectures"]}
    assert list(rows) == ["mfcc", "my-peer"]
    r = rows["my-peer"]
    assert r["kind"] == "external" and r["n_features"] == 5 and r["n_clips"] == 15
    assert r["n_windows"] == 45 and r["extract_ms_per_clip"] == 250.0
    # 3 test clips, one positive per tag: AUCs are 0, 0.5 or 1 (chance: 0.5 on average)
    assert r["tag_auc_mean"] > 0.8 and 0.0 <= r["nca_probability"] <= 1.0
    assert r["nca_components"] == 4 and r["learning_rate_init"] > 0
    with open(os.path.join(out, "results.csv"), newline="") as f:
        assert [t["architecture"] for t in csv.DictReader(f)] == ["mfcc", "my-peer"]
    # external only; cached the second time
    again = run_experiment(tiny_corpus, architectures=[], out=out, figures=False, per_level=False,
                           external={"my-peer": store.path}, **fast)
    assert again["architectures"][0]["reused"] is True
    assert again["architectures"][0]["tag_auc_mean"] == r["tag_auc_mean"]
    # the store changed (the peer finished clip 16): evaluated afresh
    with msk.store.FeatureStore(store.path, mode="a") as writable:
        writable.put("16", np.zeros((3, 5), np.float32))
    third = run_experiment(tiny_corpus, architectures=[], out=out, figures=False, per_level=False,
                           external={"my-peer": store.path}, **fast)
    assert third["architectures"][0]["reused"] is False and third["architectures"][0]["n_clips"] == 16

    bad = [({"laplacian-w1-k8": store.path}, "is an architecture's name"),
           ({"a/b": store.path}, "names become folder names"),
           ({"peer": str(tmp_path / "nowhere")}, "must be the folder of a feature store"),
           ({"mfcc2": str(tmp_path)}, "cannot open the feature store")]
    for external, message in bad:
        with pytest.raises(ValueError, match=message):
            run_experiment(tiny_corpus, architectures=[], out=str(tmp_path / "bad"), figures=False,
                           external=external, **FAST)
    with pytest.raises(ValueError, match="at least one architecture"):
        run_experiment(tiny_corpus, architectures=[], out=out, **FAST)


def test_plot_functions_check_their_input(tmp_path):
    pytest.importorskip("matplotlib")
    res = {"architectures": [], "dataset": {"tags": []}, "settings": {"n_runs": 1}, "per_level": None}
    with pytest.raises(ValueError, match="no per-level study"):
        msk.plot.levels_figure(res, tmp_path / "x.png")
    with pytest.raises(TypeError, match="`results` must be a results dict"):
        msk.plot.tagging_figure(3, tmp_path / "x.png")
    # Figure 2 from a waveform; an empty grid still gives a (blank) Figure 4
    y = msk.load_audio(msk.example_audio())[: 5 * SR]
    p = msk.plot.representations_figure(y, tmp_path / "fig2.png", levels=3)
    assert os.path.getsize(p) > 5000
    assert os.path.getsize(msk.plot.tagging_figure(res, tmp_path / "fig4.png")) > 1000


# --------------------------------------------------------------------------- the cross-validated protocol
# 16 folders of 3 clips each: two clips of one track and one of another track by another artist
_ARTISTS = ("Ann", "Bob", "Cat")
CV_LAYOUT = [row for k, folder in enumerate("0123456789abcdef")
             for row in ((folder, _ARTISTS[k % 3], 2 * k + 1), (folder, _ARTISTS[k % 3], 2 * k + 1),
                         (folder, _ARTISTS[(k + 1) % 3], 2 * k + 2))]
CV_FAST = dict(FAST, n_runs=2, n_resamples=200)


@pytest.fixture(scope="module")
def cv_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_mtat_cv")
    build_tiny_corpus(str(root), CV_LAYOUT)
    return str(root)


def test_cv_folds_test_every_folder_once():
    from msk.experiment import cv_folds

    for t, v in ((2, 2), (1, 1), (4, 1), (8, 3)):
        folds = cv_folds(test_folders=t, valid_folders=v)
        assert len(folds) == 16 // t
        tested = "".join(f["test"] for f in folds)
        assert sorted(tested) == sorted("0123456789abcdef")  # every folder tested exactly once
        for f in folds:
            assert len(f["test"]) == t and len(f["valid"]) == v and len(f["train"]) == 16 - t - v
            assert sorted(f["train"] + f["valid"] + f["test"]) == sorted("0123456789abcdef")
    with pytest.raises(ValueError, match="`test_folders` must divide 16"):
        cv_folds(test_folders=3)
    with pytest.raises(ValueError, match="must leave a training folder"):
        cv_folds(test_folders=8, valid_folders=8)


def test_cv_selection_folds_score_validation_and_never_touch_test():
    from msk.experiment import cv_folds

    for t, v in ((2, 2), (1, 1), (4, 2), (2, 3)):
        plain, sel = cv_folds(test_folders=t, valid_folders=v), cv_folds(test_folders=t, valid_folders=v,
                                                                          selection=True)
        assert len(sel) == len(plain)
        for p, s in zip(plain, sel):
            assert s["held_out"] == p["test"]  # the test folders are not used at all
            assert s["test"] == p["valid"]  # the validation folders are scored
            assert set(s["valid"]) <= set(p["train"]) and len(s["valid"]) == v
            assert set(s["train"]) == set(p["train"]) - set(s["valid"])
            assert sorted(s["train"] + s["valid"] + s["test"] + s["held_out"]) == sorted("0123456789abcdef")
        if v == t:  # then each clip is scored once
            assert sorted("".join(s["test"] for s in sel)) == sorted("0123456789abcdef")
    with pytest.raises(ValueError, match="2 x `valid_folders` must leave a training folder"):
        cv_folds(test_folders=8, valid_folders=4, selection=True)


def test_cv_selection_run_scores_validation_folders_only(cv_corpus, tmp_path, monkeypatch):
    from msk.experiment import cv_folds, run_cv

    seen = _spy_cv(monkeypatch)
    res = run_cv(cv_corpus, architectures=[], baselines=["mfcc"], out=str(tmp_path / "sel"), selection=True,
                 **dict(CV_FAST, rotations=(0, 3), n_runs=1, n_trials=1, n_resamples=50))
    assert res["protocol"]["scored"].startswith("validation folders")
    folds = cv_folds(selection=True)
    assert [f["held_out"] for f in res["protocol"]["folds"]] == [folds[0]["held_out"], folds[3]["held_out"]]
    for (X, idx, data), r in zip(seen["evaluate"], (0, 3)):
        held = {_folder(p, cv_corpus) for p in data.paths}
        assert not held & set(folds[r]["held_out"])  # no clip of a test folder reaches the heads
        for s in ("train", "valid", "test"):
            assert {_folder(p, cv_corpus) for p in data.paths[data.splits == s]} == set(folds[r][s])


def _spy_cv(monkeypatch):
    """Record what the heads and the feature learning of run_cv get (serial runs only)."""
    import msk.experiment as ex
    import msk.heads as heads

    seen = {"evaluate": [], "search": [], "fit": []}
    real_evaluate, real_search, real_fit = ex.evaluate_features, heads._search, msk.MultiscaleFeatures.fit

    def evaluate(X, clip_index, data, **kw):
        seen["evaluate"].append((np.asarray(X), np.asarray(clip_index), data))
        return real_evaluate(X, clip_index, data, **kw)

    def search(X, Y, idx, Xv, Yv, idx_v, *args):
        seen["search"].append(np.array(Xv))
        return real_search(X, Y, idx, Xv, Yv, idx_v, *args)

    def fit(self, clips, *args, **kw):
        clips = list(clips)
        seen["fit"].append(clips)
        return real_fit(self, clips, *args, **kw)

    monkeypatch.setattr(ex, "evaluate_features", evaluate)
    monkeypatch.setattr(heads, "_search", search)
    monkeypatch.setattr(msk.MultiscaleFeatures, "fit", fit)
    return seen


def _folder(path, root):
    return os.path.relpath(path, root).split(os.sep)[0]


def test_cv_every_clip_tested_once_and_selection_sees_validation_only(cv_corpus, tmp_path, monkeypatch):
    from sklearn.preprocessing import StandardScaler

    from msk.experiment import cv_folds, load_cv_predictions, run_cv

    seen = _spy_cv(monkeypatch)
    out = str(tmp_path / "cv")
    res = run_cv(cv_corpus, architectures=[], baselines=["mfcc"], out=out,
                 **dict(CV_FAST, n_runs=1, n_trials=1, n_resamples=50))
    folds = cv_folds()
    assert res["protocol"]["rotations"] == list(range(8))
    # every usable clip (48; the broken and missing ones fail) is a test clip exactly once
    tested = []
    for row in res["feature_sets"][0]["rotations"]:
        tested += load_cv_predictions(os.path.join(out, row["predictions"]))["clip_ids"].tolist()
    assert sorted(tested) == list(range(1, 49))
    assert res["feature_sets"][0]["n_test_clips"] == 48
    # each rotation's splits are its folders; no track crosses train/valid/test
    assert len(seen["evaluate"]) == 8 and len(seen["search"]) == 8
    for (X, idx, data), Xv, fold in zip(seen["evaluate"], seen["search"], folds):
        for s in ("train", "valid", "test"):
            assert {_folder(p, cv_corpus) for p in data.paths[data.splits == s]} == set(fold[s])
        tracks = {s: set(data.tracks[data.splits == s].tolist()) for s in ("train", "valid", "test")}
        assert not (tracks["train"] & tracks["valid"] or tracks["train"] & tracks["test"]
                    or tracks["valid"] & tracks["test"])
        # the search got exactly the validation windows (standardised with the training windows)
        split = data.splits[idx]
        scaler = StandardScaler().fit(X[split == "train"].astype(np.float64))
        expected = scaler.transform(X[split == "valid"].astype(np.float64))
        assert Xv.shape == expected.shape
        np.testing.assert_allclose(Xv, expected, rtol=1e-4, atol=1e-4)  # float32 features
        test_rows = scaler.transform(X[split == "test"].astype(np.float64))
        assert not any(np.allclose(v, t, atol=1e-6) for v in Xv for t in test_rows)
    assert seen["fit"] == []  # mfcc learns nothing


def test_cv_learned_features_fit_on_training_folders_and_results_are_paired(cv_corpus, tmp_path, monkeypatch):
    from msk.experiment import cv_folds, cv_table, load_cv_predictions, run_cv
    from msk.metrics import paired_bootstrap

    seen = _spy_cv(monkeypatch)
    out = str(tmp_path / "cv")
    kw = dict(CV_FAST, rotations=(0, 5))
    res = run_cv(cv_corpus, architectures=["single-w1-k8"], baselines=["mfcc", "logmel-stats"], out=out, **kw)
    folds = cv_folds()
    # feature learning: per rotation, on its training folders only
    assert len(seen["fit"]) == 2
    for clips, r in zip(seen["fit"], (0, 5)):
        assert {_folder(p, cv_corpus) for p in clips} <= set(folds[r]["train"])
        assert len(clips) == sum(_folder(p, cv_corpus) in folds[r]["train"] for p in
                                 msk.datasets.load_magnatagatune(cv_corpus).paths)
    for r in (0, 5):
        assert os.path.exists(os.path.join(out, "single-w1-k8", f"rot{r}", "model.npz"))
    assert os.path.isdir(os.path.join(out, "mfcc", "features.zarr"))
    assert not os.path.exists(os.path.join(out, "mfcc", "rot0", "features.zarr"))

    # paired: the same seeds and search trials for every feature set in a rotation
    sets = {fs["name"]: fs for fs in res["feature_sets"]}
    assert list(sets) == ["single-w1-k8", "mfcc", "logmel-stats"]
    for k in range(2):
        rows = [sets[n]["rotations"][k] for n in sets]
        assert len({r["heads_seed"] for r in rows}) == 1
        assert len({tuple(t["learning_rate_init"] for t in r["tagging"]["search_trials"]) for r in rows}) == 1
    # means are the means over rotations of the per-rotation means (over seeds)
    for fs in res["feature_sets"]:
        for m in ("tag_auc", "nn_accuracy_other_tracks", "nca_probability"):
            assert fs["means"][m] == pytest.approx(np.mean([r["metrics"][m] for r in fs["rotations"]]), abs=1e-12)
        for r in fs["rotations"]:
            assert r["metrics"]["tag_auc"] == pytest.approx(np.mean([t["tag_auc"] for t in r["tagging"]["runs"]]))

    # the summary's intervals are msk.metrics.paired_bootstrap on the predictions files
    preds = {n: [load_cv_predictions(os.path.join(out, r["predictions"])) for r in fs["rotations"]]
             for n, fs in sets.items()}
    comps = {(c["feature_set"], c["baseline"], c["metric"]): c for c in res["comparisons"]}
    assert len(comps) == (3 * 2 - 2) * 5
    seed = res["protocol"]["bootstrap_seed"]
    for (a, b, m), c in comps.items():
        if m == "tag_auc":
            pb = paired_bootstrap([p["tag_scores"] for p in preds[a]], [p["tag_scores"] for p in preds[b]],
                                  y_true=[p["y_true"] for p in preds[a]], groups=[p["tracks"] for p in preds[a]],
                                  n_resamples=200, random_state=seed)
        else:
            pb = paired_bootstrap([p[m] for p in preds[a]], [p[m] for p in preds[b]],
                                  groups=[p["tracks"] for p in preds[a]], n_resamples=200, random_state=seed)
        assert (c["mean"], c["baseline_mean"], c["difference"], c["low"], c["high"]) == pytest.approx(
            (pb.mean_a, pb.mean_b, pb.difference, pb.low, pb.high), abs=1e-12)
        assert c["verdict"] == ("tie" if pb.tie else "better" if pb.low > 0 else "worse")
        assert c["n_clips"] == 12

    # files: cv_results.json, cv_summary.csv, cv_table.md regenerated from the json
    with open(os.path.join(out, "cv_results.json")) as f:
        saved = json.load(f)
    assert saved["format"] == "msk.cv-results" and saved["comparisons"] == res["comparisons"]
    with open(os.path.join(out, "cv_table.md")) as f:
        assert f.read() == cv_table(saved)
    assert "| single-w1-k8 |" in cv_table(saved) and "vs logmel-stats" in cv_table(saved)
    with open(os.path.join(out, "cv_summary.csv"), newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 3 * 5 + len(comps)
    row = next(t for t in table if t["feature_set"] == "single-w1-k8" and t["baseline"] == "mfcc"
               and t["metric"] == "tag_auc")
    assert float(row["low"]) == pytest.approx(comps[("single-w1-k8", "mfcc", "tag_auc")]["low"], rel=1e-5)

    # a rerun reuses everything; another process count gives the same numbers
    again = run_cv(cv_corpus, architectures=["single-w1-k8"], baselines=["mfcc", "logmel-stats"], out=out, **kw)
    assert all(r["reused"] and not r["fitted"] for fs in again["feature_sets"] for r in fs["rotations"])
    assert again["comparisons"] == res["comparisons"]
    monkeypatch.undo()
    other = str(tmp_path / "cv2")
    parallel = run_cv(cv_corpus, architectures=["single-w1-k8"], baselines=["mfcc", "logmel-stats"], out=other,
                      n_workers=2, **kw)
    assert parallel["comparisons"] == res["comparisons"]
    for fa, fb in zip(res["feature_sets"], parallel["feature_sets"]):
        assert fa["means"] == fb["means"]
        for ra, rb in zip(fa["rotations"], fb["rotations"]):
            assert ra["predictions_sha256"] == rb["predictions_sha256"]
            assert ra["tagging"] == rb["tagging"] and ra["similarity"] == rb["similarity"]


def test_cv_bad_arguments_and_tracks_across_folders(cv_corpus, tmp_path):
    from msk.experiment import run_cv

    out = str(tmp_path / "never")
    with pytest.raises(ValueError, match="`rotations` must be"):
        run_cv(cv_corpus, architectures=[], baselines=["mfcc"], out=out, rotations=[8])
    with pytest.raises(ValueError, match="`rotations` must list distinct"):
        run_cv(cv_corpus, architectures=[], baselines=["mfcc"], out=out, rotations=[1, 1])
    with pytest.raises(ValueError, match="`test_folders` must divide 16"):
        run_cv(cv_corpus, architectures=[], baselines=["mfcc"], out=out, test_folders=3)
    with pytest.raises(ValueError, match="`name` must look like"):
        run_cv(cv_corpus, architectures=[], baselines=["mfcc", "nonsense"], out=out)
    with pytest.raises(ValueError, match="`confidence_level` must"):
        run_cv(cv_corpus, architectures=[], baselines=["mfcc"], out=out, confidence_level=1.0)
    assert not os.path.exists(out)
    # predictions files are checked on reading
    from msk.experiment import load_cv_predictions

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable predictions file"):
        load_cv_predictions(str(bad))
    np.savez(str(tmp_path / "other.npz"), header=np.frombuffer(b'{"format": "x"}', dtype=np.uint8))
    with pytest.raises(ValueError, match="not a msk.cv-predictions file"):
        load_cv_predictions(str(tmp_path / "other.npz"))
    # a track in two folders is refused by name
    root = str(tmp_path / "crossing")
    layout = list(CV_LAYOUT)
    layout[3] = ("1", "Ann", 1)  # track 1 of folder 0 also in folder 1
    build_tiny_corpus(root, layout, clip_seconds=1.0)
    with pytest.raises(ValueError, match="track 'Ann/album of Ann/1/song 1' has clips in folders '0' and '1'"):
        run_cv(root, architectures=[], baselines=["mfcc"], out=out)


def test_combine_cv_pools_the_rotations_of_several_runs(cv_corpus, tmp_path):
    from msk.experiment import combine_cv, cv_table, load_cv_predictions, run_cv
    from msk.metrics import paired_bootstrap

    kw = dict(CV_FAST, architectures=["logmel-stats"], baselines=["mfcc"])
    a = run_cv(cv_corpus, out=str(tmp_path / "a"), rotations=(0, 3), **kw)
    b = run_cv(cv_corpus, out=str(tmp_path / "b"), rotations=(5,), **kw)
    # one run alone: exactly its own comparisons
    alone = combine_cv([tmp_path / "a"])
    assert alone["comparisons"] == a["comparisons"]
    assert [fs["means"] for fs in alone["feature_sets"]] == [fs["means"] for fs in a["feature_sets"]]
    # two runs: the paired bootstrap over the three rotations as strata, each weighing the same
    both = combine_cv([tmp_path / "a", tmp_path / "b"], out=tmp_path / "ab")
    preds = {n: [load_cv_predictions(os.path.join(tmp_path / d, r["predictions"]))
                 for d, res in (("a", a), ("b", b)) for fs in res["feature_sets"] if fs["name"] == n
                 for r in fs["rotations"]] for n in ("logmel-stats", "mfcc")}
    seed = a["protocol"]["bootstrap_seed"]
    c = next(c for c in both["comparisons"] if c["metric"] == "tag_auc")
    pb = paired_bootstrap([p["tag_scores"] for p in preds["logmel-stats"]], [p["tag_scores"] for p in preds["mfcc"]],
                          y_true=[p["y_true"] for p in preds["mfcc"]], groups=[p["tracks"] for p in preds["mfcc"]],
                          n_resamples=200, random_state=seed)
    assert (c["feature_set"], c["baseline"]) == ("logmel-stats", "mfcc")
    assert (c["mean"], c["difference"], c["low"], c["high"]) == pytest.approx((pb.mean_a, pb.difference, pb.low,
                                                                                pb.high), abs=1e-12)
    rot_means = [r["metrics"]["nn_accuracy_other_tracks"] for res in (a, b) for fs in res["feature_sets"]
                 if fs["name"] == "mfcc" for r in fs["rotations"]]
    assert both["feature_sets"][1]["means"]["nn_accuracy_other_tracks"] == pytest.approx(np.mean(rot_means))
    assert both["protocol"]["n_rotations"] == 3 and len(both["protocol"]["runs"]) == 2
    with open(tmp_path / "ab" / "cv_table.md") as f:
        assert f.read() == cv_table(both)
    assert "(all 3 rotations, 2 seeds per head;" in cv_table(both)
    # refused: a folder without results, mixed kinds of folders, a baseline not in every run
    with pytest.raises(ValueError, match="holds no readable cv_results.json"):
        combine_cv([tmp_path / "a", tmp_path])
    sel = run_cv(cv_corpus, out=str(tmp_path / "sel"), rotations=(0,), selection=True, **kw)
    assert sel["protocol"]["scored"] != a["protocol"]["scored"]
    with pytest.raises(ValueError, match="the runs score different folders"):
        combine_cv([tmp_path / "a", tmp_path / "sel"])
    with pytest.raises(ValueError, match="baseline 'musicnn' is not a feature set of every run"):
        combine_cv([tmp_path / "a"], baselines=["musicnn"])
    with pytest.raises(ValueError, match="at least one"):
        combine_cv([])


def test_cli_cv_protocol_experiment_and_evaluate(cv_corpus, tmp_path, capsys):
    from msk.cli import main

    out = str(tmp_path / "cv")
    common = ["--rotations", "0", "--runs", "1", "--trials", "1", "--hidden", "16", "--resamples", "50"]
    code = main(["experiment", cv_corpus, "-o", out, "--protocol", "cv", "--architectures", "mfcc",
                 "--baselines", "logmel-stats", "-q"] + common)
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["protocol"] == "cv" and summary["rotations"] == [0]
    assert [fs["name"] for fs in summary["feature_sets"]] == ["mfcc", "logmel-stats"]
    assert {c["metric"] for c in summary["comparisons"]} == set(msk.experiment.CV_METRICS)
    assert os.path.exists(os.path.join(out, "cv_results.json")) and os.path.exists(os.path.join(out, "cv_summary.csv"))
    # msk evaluate: a store evaluated on the folds, paired with baselines computed on the fly; the store
    # holds mfcc's own features, so it ties mfcc exactly
    store = os.path.join(out, "mfcc", "features.zarr")
    code = main(["evaluate", store, "--dataset", cv_corpus, "--protocol", "cv", "-o", str(tmp_path / "ev"),
                 "--name", "same-as-mfcc", "--baselines", "mfcc"] + common)
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert [fs["name"] for fs in summary["feature_sets"]] == ["mfcc", "same-as-mfcc"]
    for c in summary["comparisons"]:
        assert c["feature_set"] == "same-as-mfcc" and c["baseline"] == "mfcc"
        assert c["difference"] == c["low"] == c["high"] == 0.0 and c["verdict"] == "tie"
    for argv in (["evaluate", store, "--dataset", cv_corpus, "--protocol", "cv"],  # no -o
                 ["experiment", cv_corpus, "-o", out, "--protocol", "cv", "--search", "small"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "--protocol cv" in capsys.readouterr().err
