"""The `msk` command through `main([...])`: return codes, files written, JSON on stdout."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import msk
from msk.cli import expand_inputs, main


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """Four 6 s pieces of the shipped clip as WAV/FLAC in nested folders, plus a text file."""
    root = tmp_path_factory.mktemp("audio")
    y = msk.load_audio(msk.example_audio())
    (root / "sub").mkdir()
    for i in range(4):
        fmt = "WAV" if i % 2 == 0 else "FLAC"
        folder = root / "sub" if i >= 2 else root
        sf.write(folder / f"piece{i}.{fmt.lower()}", y[i * 96000:(i + 1) * 96000], 16000, format=fmt)
    (root / "notes.txt").write_text("not audio")
    return root


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_expand_inputs(audio_dir):
    paths = expand_inputs([str(audio_dir)])
    assert [p.rsplit("/", 1)[1] for p in paths] == ["piece0.wav", "piece1.flac", "piece2.wav", "piece3.flac"]
    assert expand_inputs([str(audio_dir / "*.wav")]) == [str(audio_dir / "piece0.wav")]
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        expand_inputs([str(audio_dir / "nothing-here")])


def test_fit_then_info(audio_dir, tmp_path, capsys):
    out_model = tmp_path / "m.npz"
    code, out, err = run(capsys, ["fit", str(audio_dir), "-o", str(out_model), "--levels", "3",
                                  "--n-clusters", "8", "--n-samples", "2000", "--seed", "1"])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["clips"] == 4 and summary["n_features"] == 24 and summary["skipped"] == []
    model = msk.MultiscaleFeatures.load(out_model)
    assert model.get_params()["random_state"] == 1
    F = model.transform(audio_dir / "piece0.wav")
    assert F.shape == (1, 24) and np.isfinite(F).all()

    code, out, err = run(capsys, ["info", str(out_model)])
    assert code == 0, err
    info = json.loads(out)
    assert info["n_features"] == 24 and len(info["levels"]) == 3
    assert info["params"]["representation"] == "laplacian"


def test_fit_pca_only_and_pooling(audio_dir, tmp_path, capsys):
    out_model = tmp_path / "p.npz"
    code, out, err = run(capsys, ["fit", str(audio_dir / "*.wav"), str(audio_dir / "sub"), "-o",
                                  str(out_model), "--levels", "2", "--n-clusters", "0",
                                  "--pooling", "max+mean", "--n-samples", "1000"])
    assert code == 0, err
    model = msk.MultiscaleFeatures.load(out_model)
    assert model.n_clusters is None and model.pooling == ("max", "mean")


def test_fit_encoder_options(audio_dir, tmp_path, capsys):
    out_model = tmp_path / "o.npz"
    code, out, err = run(capsys, ["fit", str(audio_dir), "-o", str(out_model), "--levels", "2",
                                  "--n-clusters", "8", "--n-samples", "1000", "--encoding", "split",
                                  "--threshold", "0.1", "--window-normalization", "standardize",
                                  "--window-normalization-eps", "0.3"])
    assert code == 0, err
    assert json.loads(out)["n_features"] == 2 * 2 * 8  # split: 2K per level
    model = msk.MultiscaleFeatures.load(out_model)
    assert (model.encoding, model.threshold, model.window_normalization, model.window_normalization_eps) == (
        "split", 0.1, "standardize", 0.3)
    with pytest.raises(SystemExit) as exc:
        main(["fit", str(audio_dir), "-o", str(out_model), "--threshold", "nan"])
    assert exc.value.code == 2
    assert "--threshold: must be a finite number; got nan" in capsys.readouterr().err


def test_extract_one_file_with_the_shipped_model(tmp_path, capsys):
    out_npy = tmp_path / "example.npy"
    code, out, err = run(capsys, ["extract", msk.example_audio(), "-o", str(out_npy)])
    assert code == 0, err
    width = msk.batch.default_model().n_features_out_
    assert json.loads(out)["shape"] == [8, width]  # 7 full windows and the last 0.5 s (--last-window keep)
    np.testing.assert_array_equal(np.load(out_npy), msk.extract(msk.example_audio()))


def test_extract_npz_with_times_track_and_last_window(tmp_path, capsys):
    out_npz = tmp_path / "example.npz"
    code, out, err = run(capsys, ["extract", msk.example_audio(), "-o", str(out_npz), "--times",
                                  "--summary", "mean+max", "--last-window", "drop"])
    assert code == 0, err
    assert json.loads(out)["last_window"] == "drop"
    F, start, end, track = msk.extract(msk.example_audio(), last_window="drop", return_times=True,
                                       summary="mean+max")
    with np.load(out_npz) as z:
        assert sorted(z.files) == ["end", "features", "start", "track"]
        np.testing.assert_array_equal(z["features"], F)
        np.testing.assert_array_equal(z["start"], start)
        np.testing.assert_array_equal(z["end"], end)
        np.testing.assert_array_equal(z["track"], track)
    assert F.shape == (7, msk.batch.default_model().n_features_out_) and end[-1] == 7 * 4.096
    with pytest.raises(SystemExit) as exc:
        main(["extract", msk.example_audio(), "-o", str(out_npz), "--last-window", "all"])
    assert exc.value.code == 2 and "--last-window" in capsys.readouterr().err


@pytest.mark.parametrize("summary", ["mean", "mean+max", "mean+std"])
def test_extract_npz_track_of_every_summary(tmp_path, capsys, summary):
    """`msk extract --summary` accepts every summary msk computes, as msk.extract does."""
    assert summary in msk.multiscale.SUMMARIES
    out_npz = tmp_path / "example.npz"
    code, out, err = run(capsys, ["extract", msk.example_audio(), "-o", str(out_npz), "--summary", summary])
    assert code == 0, err
    F, track = msk.extract(msk.example_audio(), summary=summary)
    width = msk.batch.default_model().n_features_out_
    assert track.shape == (width * msk.multiscale.SUMMARY_WIDTHS[summary],) and track.dtype == np.float32
    X = F.astype(np.float64)
    expected = {"mean": [X.mean(axis=0)], "mean+max": [X.mean(axis=0), X.max(axis=0)],
                "mean+std": [X.mean(axis=0), X.std(axis=0)]}[summary]
    np.testing.assert_allclose(track, np.concatenate(expected), rtol=1e-6, atol=1e-6)
    with np.load(out_npz) as z:
        np.testing.assert_array_equal(z["features"], F)
        np.testing.assert_array_equal(z["track"], track)


def test_cli_summary_choices_are_the_library_s():
    from msk.cli import build_parser

    extract = build_parser()._subparsers._group_actions[0].choices["extract"]
    action = next(a for a in extract._actions if "--summary" in a.option_strings)
    assert tuple(action.choices) == msk.multiscale.SUMMARIES


def test_extract_directory_into_a_store_lists_bad_files(audio_dir, tmp_path, capsys):
    (audio_dir / "sub" / "broken.mp3").write_bytes(b"not an mp3" * 50)
    try:
        model = tmp_path / "m.npz"
        assert main(["fit", str(audio_dir), "-o", str(model), "--levels", "2", "--n-clusters", "4",
                     "--n-samples", "500"]) == 0
        capsys.readouterr()
        store = tmp_path / "features.zarr"
        argv = ["extract", str(audio_dir), "-o", str(store), "--model", str(model), "-q", "--n-jobs", "2"]
        code, out, err = run(capsys, argv)
        assert code == 1
        summary = json.loads(out)
        assert summary["new"] == 4 and list(summary["failed"]) == ["sub/broken.mp3"]
        assert summary["not_audio"] == [str(audio_dir / "notes.txt")]
        assert "broken.mp3" in err and "skipped (not audio)" in err
        # resumable: a second run skips the four finished clips
        code, out, err = run(capsys, argv)
        assert json.loads(out)["unchanged"] == 4
        code, out, err = run(capsys, ["info", str(store)])
        assert code == 0, err
        info = json.loads(out)
        assert info["clips"] == 4 and info["n_features"] == 8 and len(info["failed"]) == 1
    finally:
        (audio_dir / "sub" / "broken.mp3").unlink()


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    from test_experiment import build_tiny_corpus

    root = tmp_path_factory.mktemp("tiny_mtat_cli")
    build_tiny_corpus(str(root))
    return str(root)


def test_experiment_then_plot(tiny_corpus, tmp_path, capsys):
    out_dir = tmp_path / "results"
    code, out, err = run(capsys, ["experiment", tiny_corpus, "-o", str(out_dir), "--architectures",
                                  "mfcc", "logmel-stats", "--runs", "1", "--trials", "1",
                                  "--hidden", "16", "-q"])
    assert code == 0, err
    rows = json.loads(out)["architectures"]
    assert [r["architecture"] for r in rows] == ["mfcc", "logmel-stats"]
    assert all(0 <= r["tag_auc_mean"] <= 1 for r in rows)
    assert (out_dir / "results.json").exists() and (out_dir / "results.csv").exists()
    # another tool's features (here: the mfcc cache itself) join the table through --external
    code, out, err = run(capsys, ["experiment", tiny_corpus, "-o", str(out_dir), "--architectures", "mfcc",
                                  "--runs", "1", "--trials", "1", "--hidden", "16", "-q",
                                  "--external", f"peer={out_dir / 'mfcc' / 'features.zarr'}"])
    assert code == 0, err
    rows = json.loads(out)["architectures"]
    assert [r["architecture"] for r in rows] == ["mfcc", "peer"]
    with pytest.raises(SystemExit) as exc:
        main(["experiment", tiny_corpus, "-o", str(out_dir), "--external", "no-equals-sign"])
    assert exc.value.code == 2
    assert "NAME=FEATURE_STORE" in capsys.readouterr().err
    pytest.importorskip("matplotlib")
    code, out, err = run(capsys, ["plot", str(out_dir)])
    assert code == 0, err
    figures = json.loads(out)["figures"]
    assert figures and all((out_dir / f).exists() for f in figures)


def test_extract_dataset_then_evaluate(tiny_corpus, tmp_path, capsys):
    model = tmp_path / "m.npz"
    assert main(["fit", "--dataset", tiny_corpus, "-o", str(model), "--levels", "2",
                 "--n-clusters", "4", "--n-samples", "500"]) == 0
    capsys.readouterr()
    store = tmp_path / "tiny.zarr"
    code, out, err = run(capsys, ["extract", tiny_corpus, "-o", str(store), "--model", str(model), "-q"])
    assert code == 1  # the corpus holds one broken MP3: listed, the rest stored
    assert json.loads(out)["new"] == 16 and "not an mp3" not in out
    code, out, err = run(capsys, ["evaluate", str(store), "--dataset", tiny_corpus, "--runs", "1",
                                  "--trials", "1", "--hidden", "16", "-o", str(tmp_path / "ev.json")])
    assert code == 0, err
    summary = json.loads(out)
    assert summary["clips"] == 16 and summary["missing"] == 2
    assert 0 <= summary["tag_auc_mean"] <= 1 and 0 <= summary["nca_probability"] <= 1
    full = json.loads((tmp_path / "ev.json").read_text())
    assert set(full) >= {"tagging", "similarity", "tag_names"}


def test_runtime_errors_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, header=np.frombuffer(b'{"format": "msk.MultiscaleFeatures", "format_version": 99}', np.uint8))
    code, out, err = run(capsys, ["info", str(bad)])
    assert code == 1 and out == ""
    assert "bad.npz" in err and "format version 99" in err
    code, out, err = run(capsys, ["fit", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "x.npz")])
    assert code == 1 and "missing.wav" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--levels", "3"])  # no -o
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["nonsense"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["extract", msk.example_audio(), msk.example_audio(), "-o", "x.npy"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["fit", "-o", "x.npz"])  # neither inputs nor --dataset
    assert exc.value.code == 2
    assert "--dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["extract", msk.example_audio(), "-o", "x.npy", "--preset", "paper", "--model", "m.npz"])
    assert exc.value.code == 2
    assert "give --model or --preset, not both" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["experiment", "corpus", "-o", "out", "--selection"])  # the split protocol has no selection folds
    assert exc.value.code == 2
    assert "--selection runs with --protocol cv only" in capsys.readouterr().err


def test_help_teaches_with_examples(capsys):
    for command in ("extract", "fit", "evaluate", "experiment", "plot", "info"):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0
        assert "examples:" in capsys.readouterr().out


def test_version_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "msk", "--version"], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == f"msk {msk.__version__}"
