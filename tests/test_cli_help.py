"""The `msk` command teaches: defaults in --help, progress, usage errors (exit 2), msk info of arrays."""

import argparse
import json
import re

import numpy as np
import pytest
import soundfile as sf

import msk
from msk.cli import build_parser, main


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three 4 s pieces of the shipped clip as WAV files."""
    root = tmp_path_factory.mktemp("clips")
    y = msk.load_audio(msk.example_audio())
    for i in range(3):
        sf.write(root / f"piece{i}.wav", y[i * 64000:(i + 1) * 64000], 16000)
    return root


def run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def usage_error(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


def subparsers(parser, name="msk"):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from subparsers(sub, f"{name} {sub_name}")


def test_every_default_is_shown_in_help():
    checked = 0
    for name, parser in subparsers(build_parser()):
        for action in parser._actions:
            text = " ".join(parser._get_formatter()._format_action(action).split())
            default = action.default
            if default is None or default is False or default is argparse.SUPPRESS or action.nargs == 0:
                continue
            shown = " ".join(map(str, default)) if isinstance(default, list) else str(default)
            assert f"[{shown}]" in text, f"{name} {action.option_strings}: default {shown!r} not in its help"
            checked += 1
    assert checked >= 40


def test_top_level_help_lists_commands_and_examples(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in ("extract", "fit", "info", "similar", "train-tagger", "tag", "index", "store", "export"):
        assert re.search(rf"^\s+{re.escape(command)}\s+\S", out, re.M) or f"  {command}\n" in out, command
    examples = out.split("examples:", 1)[1]
    assert "msk extract" in examples and "exit codes" in examples.lower()


def test_every_command_help_has_examples(capsys):
    for name, parser in subparsers(build_parser()):
        if name.count(" ") == 1 and name != "msk store":
            assert "examples:" in parser.format_help(), name


def test_help_examples_of_extract_and_info_are_true(tmp_path, capsys, monkeypatch):
    """`msk extract song.mp3 -o song.npz --times` then `msk info song.npz`, as the help says."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, ["extract", msk.example_audio(), "-o", "song.npz", "--times"])
    assert code == 0, err
    code, out, err = run(capsys, ["info", "song.npz"])
    assert code == 0, err
    info = json.loads(out)
    with np.load(tmp_path / "song.npz") as data:
        F, start, end = data["features"], data["start"], data["end"]
    assert info["n_windows"] == F.shape[0] and info["n_features"] == F.shape[1]
    assert info["arrays"]["start"] == {"shape": list(start.shape), "dtype": str(start.dtype)}
    assert info["last_window_end_s"] == pytest.approx(float(end.max()))
    assert info["first_window_s"] == pytest.approx([float(start[0]), float(end[0])])


def test_info_reads_npy_and_export_npz(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.zeros((7, 5), np.float32))
    code, out, err = run(capsys, ["info", str(tmp_path / "f.npy")])
    assert code == 0, err
    info = json.loads(out)
    assert (info["n_windows"], info["n_features"]) == (7, 5)
    assert info["arrays"]["features"]["dtype"] == "float32"
    np.savez(tmp_path / "e.npz", keys=np.array(["a", "b"]), clip_index=np.array([0, 0, 1]),
             start=np.zeros(3), end=np.ones(3), features=np.zeros((3, 4), np.float32),
             tracks=np.zeros((2, 4), np.float32))
    code, out, err = run(capsys, ["info", str(tmp_path / "e.npz")])
    assert code == 0, err
    info = json.loads(out)
    assert info["clips"] == 2 and info["n_windows"] == 3 and info["track_vectors"] == [2, 4]


def test_info_refuses_other_files_as_usage_errors(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    assert "notes.txt" in usage_error(capsys, ["info", str(tmp_path / "notes.txt")])
    (tmp_path / "fake.npz").write_text("not a zip")
    err = usage_error(capsys, ["info", str(tmp_path / "fake.npz")])
    assert "fake.npz" in err and "not an array file msk reads" in err
    assert "no such file" in usage_error(capsys, ["info", str(tmp_path / "gone.npy")])
    (tmp_path / "folder").mkdir()
    assert "not a feature store" in usage_error(capsys, ["info", str(tmp_path / "folder")])


@pytest.mark.parametrize("argv, option", [
    (["extract", "x.wav", "-o", "s.zarr", "--n-jobs", "0"], "--n-jobs"),
    (["extract", "x.wav", "-o", "s.zarr", "--n-jobs", "two"], "--n-jobs"),
    (["extract", "x.wav", "-o", "s.zarr", "--wait", "-1"], "--wait"),
    (["extract", "x.wav", "-o", "s.zarr", "--summary", "median"], "--summary"),
    (["fit", "x.wav", "-o", "m.npz", "--levels", "0"], "--levels"),
    (["fit", "x.wav", "-o", "m.npz", "--n-clusters", "-3"], "--n-clusters"),
    (["fit", "x.wav", "-o", "m.npz", "--n-samples", "0"], "--n-samples"),
    (["fit", "x.wav", "-o", "m.npz", "--variance", "1.5"], "--variance"),
    (["fit", "x.wav", "-o", "m.npz", "--max-iter", "0"], "--max-iter"),
    (["fit", "x.wav", "-o", "m.npz", "--seed", "-1"], "--seed"),
    (["evaluate", "s.zarr", "--labels", "l.csv", "--runs", "0"], "--runs"),
    (["experiment", "root", "-o", "out", "--workers", "0"], "--workers"),
    (["experiment", "root", "-o", "out", "--n-jobs", "0"], "--n-jobs"),
    (["similar", "q", "--store", "s.zarr", "-k", "0"], "-k"),
    (["train-tagger", "s.zarr", "--labels", "l.csv", "-o", "t.npz", "--valid-fraction", "1"], "--valid-fraction"),
    (["train-tagger", "s.zarr", "--labels", "l.csv", "-o", "t.npz", "--learning-rate", "0"], "--learning-rate"),
    (["tag", "x.wav", "--tagger", "t.npz", "--top", "0"], "--top"),
    (["index", "s.zarr", "--method", "fast"], "--method"),
])
def test_usage_errors_exit_2_and_name_the_option(capsys, argv, option):
    err = usage_error(capsys, argv)
    assert f"argument {option}" in err or f"{option}:" in err, err


def test_output_of_the_wrong_kind_is_a_usage_error(clips, capsys):
    err = usage_error(capsys, ["extract", str(clips), "-o", str(clips / "features.txt")])
    assert "features.txt" in err and ".zarr" in err


def test_store_of_another_model_speaks_cli(clips, tmp_path, capsys):
    store = tmp_path / "s.zarr"
    code, out, err = run(capsys, ["extract", str(clips), "-o", str(store), "-q"])
    assert code == 0, err
    code, out, err = run(capsys, ["extract", str(clips), "-o", str(store), "-q", "--representation", "gaussian"])
    assert code == 1
    assert "mode=" not in err and "another store" in err
    code, out, err = run(capsys, ["extract", str(clips), "-o", str(store), "-q", "--summary", "mean+max"])
    assert code == 1
    assert "--summary" in err


FIT = ["--levels", "2", "--n-clusters", "4", "--n-samples", "400", "--max-iter", "3"]


def test_fit_shows_progress_on_stderr_and_quiet_silences_it(clips, tmp_path, capsys):
    code, out, err = run(capsys, ["fit", str(clips), "-o", str(tmp_path / "m.npz"), *FIT])
    assert code == 0, err
    assert "msk fit: sampling" in err and "3/3" in err
    for level in (0, 1):
        assert f"level {level}: PCA keeps" in err
        assert re.search(rf"level {level}: K-means iteration \d+/3, objective [0-9.e+-]+", err)
    assert json.loads(out)["clips"] == 3
    code, out, err = run(capsys, ["fit", str(clips), "-o", str(tmp_path / "q.npz"), *FIT, "-q"])
    assert code == 0
    assert "sampling" not in err and "K-means" not in err and "PCA" not in err


def test_multiscale_fit_reports_progress(clips):
    paths = sorted(str(p) for p in clips.glob("*.wav"))
    events = []
    model = msk.MultiscaleFeatures(levels=2, n_clusters=4, n_samples=400, max_iter=5, random_state=0).fit(
        paths, progress=lambda *e: events.append(e))
    assert [e[:4] for e in events if e[0] == "sample"] == [("sample", None, i, 3) for i in (1, 2, 3)]
    pca = [e for e in events if e[0] == "pca"]
    assert [(e[1], e[2], e[3], e[4]) for e in pca] == [
        (lev, lev + 1, 2, int(model.pca_[lev].n_components_)) for lev in (0, 1)]
    for lev in (0, 1):
        km = [e for e in events if e[0] == "kmeans" and e[1] == lev]
        assert [e[2] for e in km] == list(range(model.kmeans_[lev].n_iter_ + 1))
        assert all(e[3] == 5 for e in km)
        assert km[-1][4] == pytest.approx(model.kmeans_[lev].inertia_)
    # a generator has no length: total is None; no progress is the default and changes nothing
    events.clear()
    again = msk.MultiscaleFeatures(levels=2, n_clusters=4, n_samples=400, max_iter=5, random_state=0).fit(
        (p for p in paths), progress=lambda *e: events.append(e))
    assert [e[3] for e in events if e[0] == "sample"] == [None] * 3
    silent = msk.MultiscaleFeatures(levels=2, n_clusters=4, n_samples=400, max_iter=5, random_state=0).fit(paths)
    for a, b in zip(again.kmeans_, silent.kmeans_):
        np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    with pytest.raises(TypeError, match="progress"):
        msk.MultiscaleFeatures(levels=2, n_clusters=4).fit(paths, progress="yes")


def test_kmeans_callback_reports_every_iteration():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 6))
    seen = []
    km = msk.SphericalKMeans(n_clusters=5, max_iter=10, random_state=0).fit(
        X, callback=lambda i, v: seen.append((i, v)))
    assert [i for i, _ in seen] == list(range(km.n_iter_ + 1))
    assert seen[-1][1] == pytest.approx(km.inertia_)
    # the objective of every iteration, recomputed from the same start with one iteration fewer
    for i, value in seen[1:-1]:
        ref = msk.SphericalKMeans(n_clusters=5, max_iter=i, random_state=0, tol=0.0).fit(X)
        assert value == pytest.approx(ref.inertia_)
    with pytest.raises(TypeError, match="callback"):
        msk.SphericalKMeans(n_clusters=5).fit(X, callback=3)


def _mp3_with_garbage(path, n_garbage, seed):
    """A 10 s sine MP3 (written by libsndfile) with random bytes inserted in the middle."""
    sr = 22050
    t = np.arange(10 * sr) / sr
    clean = path.with_suffix(".clean.mp3")
    sf.write(clean, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, format="MP3")
    data = clean.read_bytes()
    clean.unlink()
    mid = len(data) // 2
    garbage = np.random.default_rng(seed).integers(0, 256, n_garbage, dtype=np.uint8).tobytes()
    path.write_bytes(data[:mid] + garbage + data[mid:])


def test_decoder_chatter_stays_out_of_the_progress_bar(tmp_path):
    """mpg123 prints to file descriptor 2 from C; msk extract shows it only to explain a failure."""
    import subprocess
    import sys

    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    lib = tmp_path / "lib"
    lib.mkdir()
    _mp3_with_garbage(lib / "broken.mp3", 3000, 1)     # fails to decode, after printing
    _mp3_with_garbage(lib / "noisy.mp3", 200, 2)       # decodes, after printing
    sf.write(lib / "fine.wav", msk.load_audio(msk.example_audio())[:64000], 16000)
    probe = subprocess.run([sys.executable, "-c", "import soundfile as sf, sys; sf.read(sys.argv[1])",
                            str(lib / "broken.mp3")], capture_output=True, text=True)
    assert "Illegal Audio-MPEG-Header" in probe.stderr  # the decoder does print on its own

    cmd = [sys.executable, "-m", "msk", "extract", str(lib), "--n-jobs", "2", "-o"]
    res = subprocess.run([*cmd, str(tmp_path / "s.zarr")], capture_output=True, text=True)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.splitlines()
    report = next(i for i, line in enumerate(lines) if "file(s) failed" in line)
    decoder = [i for i, line in enumerate(lines) if "MPEG" in line or "mpg123" in line or "Xing" in line]
    assert decoder, res.stderr  # the failure is explained by what the decoder said ...
    # ... under the failed file's line in msk's report, and nowhere else
    assert lines[report + 1].startswith("  broken.mp3: ")
    explained = [i for i, line in enumerate(lines) if line.startswith("    | decoder: ")]
    assert explained == list(range(report + 2, len(lines))) and set(decoder) <= set(explained)
    failed = json.loads(res.stdout)["failed"]
    assert list(failed) == ["broken.mp3"] and "\ndecoder: " in failed["broken.mp3"]
    # the store's record of the file holds the same explanation
    assert msk.store.FeatureStore(tmp_path / "s.zarr", mode="r").record("broken.mp3")["reason"] == failed["broken.mp3"]

    (lib / "broken.mp3").unlink()
    res = subprocess.run([*cmd, str(tmp_path / "t.zarr")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "MPEG" not in res.stderr and "mpg123" not in res.stderr and "part2_3_length" not in res.stderr
    assert "2 new" in res.stderr  # msk's own progress and summary still reach stderr
