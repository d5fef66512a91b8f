"""msk.tagger and the `train-tagger`, `tag`, `evaluate --labels` and `plot map/timeline` commands.

A small library of synthetic clips (tones and noise, a learnable 'tonal' tag
and a random 'coin' tag) is extracted once with a tiny fitted model.
"""

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf

import msk
from msk.cli import main
from msk.heads import MLPTagger
from msk.tagger import Tagger, split_groups, train_tagger

SR = 16000


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(0)
    t = np.arange(int(2.5 * SR)) / SR
    (root / "audio").mkdir()
    rows = ["key,tonal,coin,artist"]
    kinds = ["key,kind"]
    paths = []
    for i in range(30):
        tonal = i % 2
        if tonal:
            y = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.01 * rng.standard_normal(len(t))
        else:
            y = 0.1 * rng.standard_normal(len(t))
        p = root / "audio" / f"clip{i:02d}.wav"
        sf.write(p, y.astype(np.float32), SR)
        paths.append(str(p))
        rows.append(f"audio/clip{i:02d}.wav,{tonal},{int(rng.random() < 0.5)},a{i // 3}")
        kinds.append(f"audio/clip{i:02d}.wav,{'tone' if tonal else 'noise'}")
    (root / "grouped.csv").write_text("\n".join(rows) + "\n")
    (root / "labels.csv").write_text("\n".join(r.rsplit(",", 1)[0] for r in rows) + "\n")
    (root / "kinds.csv").write_text("\n".join(kinds) + "\n")
    model = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=None, pool_size=32, n_samples=2000, random_state=0)
    model.fit(paths[:6])
    model.save(root / "model.npz")
    other = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=None, pool_size=32, n_samples=2000, random_state=1)
    other.fit(paths[:6]).save(root / "other.npz")
    msk.extract_many(paths, store=root / "lib.zarr", model=model, progress=False, n_jobs=1)
    return root


FAST = {"n_hidden": 64, "learning_rate_init": 0.01, "max_iter": 200, "patience": 30}


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_tagger_learns_the_learnable_tag(library):
    tagger = train_tagger(library / "lib.zarr", library / "grouped.csv", group_column="artist",
                          random_state=0, **FAST)
    t = tagger.training
    assert tagger.tag_names == ("tonal", "coin") and tagger.kind == "multilabel"
    assert t["n_train_clips"] + t["n_valid_clips"] == 30 and t["n_valid_clips"] == 6  # 2 of 10 artists
    assert t["validation_auc"][0] > 0.9
    assert t["labels_without_features"] == 0 and t["grouped_by"] == "artist"
    assert tagger.model_info["fingerprint"] == msk.store.model_fingerprint(
        msk.MultiscaleFeatures.load(library / "model.npz"))["fingerprint"]
    again = train_tagger(library / "lib.zarr", library / "grouped.csv", group_column="artist",
                         random_state=0, **FAST)
    np.testing.assert_array_equal(again.coefs[0], tagger.coefs[0])  # seeded


def test_split_groups_keeps_groups_together_and_is_seeded():
    groups = np.repeat(np.arange(10), 3)
    mask = split_groups(groups, 0.3, random_state=0)
    assert mask.sum() == 9
    for g in range(10):
        assert len(set(mask[groups == g].tolist())) == 1
    np.testing.assert_array_equal(mask, split_groups(groups, 0.3, random_state=0))
    assert split_groups(["a", "b"], 0.99, random_state=0).sum() == 1
    with pytest.raises(ValueError, match="at least two groups"):
        split_groups(["a", "a"], 0.5)
    with pytest.raises(ValueError, match="`fraction` must be a finite number in"):
        split_groups(["a", "b"], 1.0)


def test_forward_pass_equals_scikit_learn(rng):
    X = rng.standard_normal((120, 5)).astype(np.float32)
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0.5], axis=1)
    for cols in (Y, Y[:, :1]):  # multilabel and scikit-learn's binary special case
        mlp = MLPTagger(n_hidden=7, max_iter=5, random_state=0).fit(X, cols)
        tagger = Tagger(tag_names=[f"t{j}" for j in range(cols.shape[1])], kind="multilabel",
                        mean=mlp.scaler_.mean_, scale=mlp.scaler_.scale_, coefs=mlp.mlp_.coefs_,
                        intercepts=mlp.mlp_.intercepts_)
        np.testing.assert_allclose(tagger.predict_proba(X), mlp.predict_proba(X), rtol=1e-4, atol=1e-6)
        clip_index = np.arange(120) // 4
        np.testing.assert_allclose(tagger.predict_proba(X, clip_index), mlp.predict_proba(X, clip_index),
                                   rtol=1e-4, atol=1e-6)
    assert tagger.ranked([0.2])[0] == ("t0", pytest.approx(0.2))
    with pytest.raises(ValueError, match="must have 5 features"):
        tagger.predict_proba(X[:, :4])


def test_save_load_round_trip_checksum_and_version(library, tmp_path):
    tagger = train_tagger(library / "lib.zarr", library / "labels.csv", **FAST)
    path = tmp_path / "tagger.npz"
    tagger.save(path)
    loaded = Tagger.load(path)
    assert loaded.tag_names == tagger.tag_names and loaded.training == json.loads(json.dumps(tagger.training))
    X = msk.store.FeatureStore(library / "lib.zarr", mode="r").get("clip01.wav")  # keys: paths relative to the files' folder
    np.testing.assert_array_equal(loaded.predict_proba(X), tagger.predict_proba(X))
    tagger.save(tmp_path / "again.npz")
    assert (tmp_path / "again.npz").read_bytes() == path.read_bytes()  # byte-reproducible
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(bytes(arrays["header"]).decode())
    assert header["format"] == "msk.Tagger" and header["format_version"] == 1 and len(header["sha256"]) == 64

    def write(name, arrays):
        out = tmp_path / name
        np.savez(out, **arrays)
        return out

    bad = dict(arrays, coef1=arrays["coef1"] + 1)
    with pytest.raises(ValueError, match="do not match its checksum"):
        Tagger.load(write("tampered.npz", bad))
    newer = dict(arrays, header=np.frombuffer(json.dumps(dict(header, format_version=99)).encode(), np.uint8))
    with pytest.raises(ValueError, match="tagger format version 99"):
        Tagger.load(write("newer.npz", newer))
    with pytest.raises(ValueError, match="not an msk tagger file"):
        Tagger.load(library / "model.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValueError, match="not a readable msk tagger file"):
        Tagger.load(tmp_path / "junk.npz")
    with pytest.raises(FileNotFoundError):
        Tagger.load(tmp_path / "none.npz")
    assert zipfile.is_zipfile(path)


def test_tag_checks_the_feature_model(library):
    tagger = train_tagger(library / "lib.zarr", library / "labels.csv", model_path=library / "model.npz", **FAST)
    ranked = tagger.tag(library / "audio" / "clip03.wav")  # the recorded model file
    assert [t for t, _ in ranked][0] == "tonal" and ranked[0][1] > 0.5
    assert tagger.tag(library / "audio" / "clip03.wav", model=library / "model.npz") == ranked
    with pytest.raises(ValueError, match="not of the given model"):
        tagger.tag(library / "audio" / "clip03.wav", model=library / "other.npz")
    plain = train_tagger(library / "lib.zarr", library / "labels.csv", **FAST)
    with pytest.raises(ValueError, match="is not any of msk's shipped models.*--model"):
        plain.feature_model()
    with pytest.raises(ValueError, match="is not the model of feature store"):
        train_tagger(library / "lib.zarr", library / "labels.csv", model_path=library / "other.npz", **FAST)


def test_train_tagger_refusals(library, tmp_path):
    (tmp_path / "none.csv").write_text("key,rock\nx,1\ny,0\n")
    with pytest.raises(ValueError, match="no clip of feature store .* is in"):
        train_tagger(library / "lib.zarr", tmp_path / "none.csv", **FAST)
    flat = "key,rock,pop\n" + "".join(f"{library}/audio/clip{i:02d}.wav,{i % 2},1\n" for i in range(30))
    (tmp_path / "flat.csv").write_text(flat)
    with pytest.warns(UserWarning, match="'pop' are 1 on every clip"):
        with pytest.raises(ValueError, match=r"tag\(s\) 'pop' are 1 on every or on no"):
            train_tagger(library / "lib.zarr", tmp_path / "flat.csv", **FAST)
    with pytest.raises(TypeError, match="`standardize` cannot be passed"):
        train_tagger(library / "lib.zarr", library / "labels.csv", standardize=False, **FAST)


# --------------------------------------------------------------------------- the command line


def test_cli_train_tagger_and_tag(library, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(library)
    out_path = tmp_path / "kinds.npz"
    code, out, err = run(capsys, ["train-tagger", "lib.zarr", "--labels", "kinds.csv", "-o", str(out_path),
                                  "--model", "model.npz", "--hidden", "64", "--patience", "30", "--learning-rate", "0.01",
                                  "--seed", "3"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["kind"] == "single-label" and summary["tags"] == ["noise", "tone"]
    assert summary["validation_auc"]["tone"] >= 0.75 and summary["train_clips"] + summary["valid_clips"] == 30
    assert "valid AUC" in err and "tone" in err

    code, out, err = run(capsys, ["tag", "audio/clip05.wav", "audio/clip06.wav", "--tagger", str(out_path),
                                  "--top", "1"])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "audio/clip05.wav" and lines[2] == "audio/clip06.wav" and len(lines) == 4
    assert lines[1].split()[0] in ("tone", "noise") and 0 <= float(lines[1].split()[1]) <= 1

    code, out, err = run(capsys, ["tag", "audio", "--tagger", str(out_path), "--json"])
    assert code == 0, err
    files = json.loads(out)["files"]
    assert len(files) == 30 and len(files[0]["tags"]) == 2
    truth = ["tone" if int(f["path"][-6:-4]) % 2 else "noise" for f in files]
    assert np.mean([f["tags"][0]["tag"] == t for f, t in zip(files, truth)]) >= 0.8

    code, out, err = run(capsys, ["tag", "audio/clip05.wav", "--tagger", str(out_path), "--model", "other.npz"])
    assert code == 1 and "not of the given model" in err
    (tmp_path / "bad.wav").write_bytes(b"RIFF nonsense")
    code, out, err = run(capsys, ["tag", "audio/clip05.wav", str(tmp_path / "bad.wav"), "--tagger",
                                  str(out_path), "--json"])
    assert code == 1 and list(json.loads(out)["failed"]) == [str(tmp_path / "bad.wav")]
    assert len(json.loads(out)["files"]) == 1


def test_cli_train_tagger_errors(library, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(library)
    (tmp_path / "bad.csv").write_text("key,pop,rock\naudio/clip00.wav,0,1\naudio/clip01.wav,1,yes\n")
    code, out, err = run(capsys, ["train-tagger", "lib.zarr", "--labels", str(tmp_path / "bad.csv"), "-o",
                                  str(tmp_path / "t.npz")])
    assert code == 1 and "bad.csv, line 3: value 'yes' in column 'rock' is not 0 or 1" in err
    code, out, err = run(capsys, ["tag", "audio/clip00.wav", "--tagger", str(tmp_path / "none.npz")])
    assert code == 1 and "no such tagger file" in err
    for argv in (["train-tagger", "lib.zarr", "--labels", "labels.csv", "-o", "t.npz", "--valid-fraction", "1.5"],
                 ["train-tagger", "lib.zarr", "--labels", "labels.csv", "-o", "t.npz", "--hidden", "0"],
                 ["train-tagger", "lib.zarr", "-o", "t.npz"],
                 ["tag", "audio/clip00.wav", "--tagger", "t.npz", "--top", "0"],
                 ["evaluate", "lib.zarr"],
                 ["evaluate", "lib.zarr", "--labels", "labels.csv", "--dataset", "somewhere"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
    capsys.readouterr()


def test_cli_evaluate_with_a_labels_csv(library, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(library)
    code, out, err = run(capsys, ["evaluate", "lib.zarr", "--labels", "grouped.csv", "--group-column", "artist",
                                  "--runs", "2", "--trials", "2", "--hidden", "64", "-o",
                                  str(tmp_path / "res.json")])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["clips"] == {"train": 21, "valid": 3, "test": 6}  # 7, 1 and 2 artists of 3 clips
    assert set(summary["per_tag_auc"]) == {"tonal", "coin"}  # quality: tests of evaluate_tagging
    assert all(0 <= a <= 1 for a in summary["per_tag_auc"].values()) and 0 <= summary["tag_auc_mean"] <= 1
    full = json.loads((tmp_path / "res.json").read_text())
    assert set(full["split"]["test"]).isdisjoint(full["split"]["train"])


# --------------------------------------------------------------------------- pictures


def png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_cli_plot_map_and_timeline(library, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(library)
    code, out, err = run(capsys, ["plot", "map", "lib.zarr", "-o", str(tmp_path / "map.png"),
                                  "--labels", "labels.csv", "--color-by", "tonal"])
    assert code == 0, err
    assert json.loads(out)["figure"] == str(tmp_path / "map.png")
    assert png_size(tmp_path / "map.png") == (935, 660)
    code, out, err = run(capsys, ["plot", "map", "lib.zarr", "-o", str(tmp_path / "plain.png"),
                                  "--method", "tsne", "--seed", "1"])
    assert code == 0, err
    assert png_size(tmp_path / "plain.png") == (770, 660)
    code, out, err = run(capsys, ["plot", "timeline", "audio/clip01.wav", "-o", str(tmp_path / "t.png"),
                                  "--model", "model.npz"])
    assert code == 0, err
    assert png_size(tmp_path / "t.png") == (1100, 825)
    code, out, err = run(capsys, ["plot", "map", "lib.zarr", "-o", str(tmp_path / "x.png"), "--color-by", "x"])
    assert code == 1 and "`color_by` needs `labels`" in err
    for argv in (["plot", "map", "lib.zarr"], ["plot", "timeline"], ["plot", "a", "b"],
                 ["plot", "map", "lib.zarr", "-o", "m.png", "--method", "umap"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
    capsys.readouterr()
