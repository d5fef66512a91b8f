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


def build_tiny_corpus(root):
    """Write the corpus under ``root``; return the clip ids of the broken and the missing clip."""
    y = msk.load_audio(msk.example_audio())
    n = int(CLIP_SECONDS * SR)
    hop = (len(y) - n) // len(LAYOUT)
    rng = np.random.default_rng(5)
    ann = [_q("clip_id", *TAGS, "mp3_path")]
    info = [_q("clip_id", "track_number", "title", "artist", "album", "url", "segmentStart", "segmentEnd",
               "original_url", "mp3_path")]
    for d in "0123456789abcdef":
        os.makedirs(os.path.join(root, d), exist_ok=True)
    entries = [(i + 1, *row) for i, row in enumerate(LAYOUT)]
    entries += [(101, "5", "Bob", 20), (102, "e", "Cat", 21)]  # broken, missing
    for cid, folder, artist, track in entries:
        path = f"{folder}/{artist.lower()}-album-{track:02d}-song-{cid}.mp3"
        if cid <= len(LAYOUT):
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
