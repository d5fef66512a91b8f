"""The feature store: layout readable without msk, commits, crashes, writers, damage, keys, export."""

import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from threadpoolctl import threadpool_limits

import msk
from msk.cli import main
from msk.store import FeatureStore

SR = 16000
STEP = 128 * 512 / SR  # seconds per pooling window of the models below


@pytest.fixture(scope="module")
def y():
    return msk.load_audio(msk.example_audio())


@pytest.fixture(scope="module")
def model(y):
    with threadpool_limits(1):
        return msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=6, n_samples=800, max_iter=3,
                                      random_state=0).fit([y[: 12 * SR], y[12 * SR :]])


@pytest.fixture(scope="module")
def model_path(model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "model.npz")
    model.save(path)
    return path


def _write_clips(folder, y, n, seed=0):
    """``n`` short WAV clips (1.5 to 13 s: some shorter than one window) in ``folder`` and a subfolder."""
    rng = np.random.default_rng(seed)
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        seconds = rng.uniform(1.5, 13.0)
        a = rng.integers(0, len(y) - int(13 * SR))
        path = folder / ("sub" if i % 3 == 0 else "") / f"clip{i:04d}.wav"
        sf.write(path, y[a : a + int(seconds * SR)], SR, subtype="PCM_16")
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def library(tmp_path_factory, y):
    root = tmp_path_factory.mktemp("library")
    _write_clips(root, y, 12)
    (root / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (root / ".hidden.wav").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def store_path(library, model, tmp_path_factory):
    out = tmp_path_factory.mktemp("stores") / "features.zarr"
    msk.extract_many(library, store=out, model=model, n_jobs=2, progress=False)
    return out


def _contents(path):
    st = FeatureStore(path, mode="r")
    return {k: (st.get(k), *st.times(k)) for k in st.keys()}, st.failures()


# -- the dataset, read without msk -------------------------------------------------------------


def test_layout_opens_with_xarray_dask_and_zarr(store_path, library, model):
    xr = pytest.importorskip("xarray")
    da = pytest.importorskip("dask.array")
    import zarr

    st = FeatureStore(store_path, mode="r")
    keys = st.keys()
    X, clip_index = st.concatenated()
    ds = xr.open_zarr(store_path)
    assert dict(ds.windows.sizes) == {"window": X.shape[0], "feature": model.n_features_out_}
    assert dict(ds.tracks.sizes) == {"clip": 12, "track_feature": model.n_features_out_}
    assert sorted(ds["clip"].values.tolist()) == keys  # the keys index the clip dimension
    assert set(ds.status.values.tolist()) == {"ok"}
    # rows of one clip, found through the dataset alone
    key = "sub/clip0003.wav"
    i = ds["clip"].values.tolist().index(key)
    rows = ds.windows.values[ds.clip_index.values == i]
    np.testing.assert_array_equal(rows, st.get(key))
    np.testing.assert_array_equal(rows, msk.extract(library / key, model=model))
    np.testing.assert_array_equal(ds.start.values[ds.clip_index.values == i], st.times(key)[0])
    # dask and plain zarr: the same matrix
    np.testing.assert_array_equal(da.from_zarr(str(store_path), component="windows").compute(),
                                  ds.windows.values)
    # no stray files: listing without the consolidated metadata warns about nothing
    members = dict(zarr.open_group(str(store_path), mode="r", use_consolidated=False).members())
    assert {"windows", "tracks", "clip", "clip_index", "start", "end", "status"} <= set(members)
    assert set(xr.open_datatree(store_path, engine="zarr").to_dataset().data_vars) == set(ds.data_vars)
    group = zarr.open_group(str(store_path), mode="r")
    assert group.attrs["msk"]["format"] == "msk.FeatureStore"
    assert group["windows"].dtype == np.float32
    np.testing.assert_array_equal(group["windows"][:], ds.windows.values)
    assert {c["name"] for c in group["windows"].metadata.to_dict()["codecs"]} == {"sharding_indexed"}
    assert "crc32c" in json.dumps(group["windows"].metadata.to_dict()["codecs"])
    assert "crc32c" in json.dumps(group["clip"].metadata.to_dict()["codecs"])
    # concatenated() in store order is the dataset's rows of the live clips
    order = [ds["clip"].values.tolist().index(k) for k in keys]
    np.testing.assert_array_equal(X, np.vstack([ds.windows.values[ds.clip_index.values == j] for j in order]))


def test_times_cover_each_window_and_short_clips(store_path, library):
    st = FeatureStore(store_path, mode="r")
    seen_short = False
    for key in st.keys():
        start, end = st.times(key)
        duration = sf.info(library / key).duration
        n = len(start)
        assert n == st.get(key).shape[0] == st.record(key)["n_windows"]
        assert st.record(key)["duration"] == pytest.approx(duration, abs=1 / SR)
        if duration < STEP:  # one window over what there is
            seen_short = True
            assert n == 1 and start[0] == 0 and end[0] == pytest.approx(duration)
        else:
            np.testing.assert_allclose(start, np.arange(n) * STEP)
            np.testing.assert_allclose(end[:-1], (np.arange(n - 1) + 1) * STEP)
            assert end[-1] == pytest.approx(duration)  # the kept last window ends with the audio
            assert start[-1] < duration <= start[-1] + STEP
    assert seen_short


def test_many_clips_few_files(tmp_path, y, model):
    """Files grow with batches, not clips (the 0.1 store had 5 per clip)."""
    lib = tmp_path / "lib"
    _write_clips(lib, y, 150, seed=1)
    out = tmp_path / "s.zarr"
    summary = msk.extract_many(lib, store=out, model=model, n_jobs=2, progress=False)
    assert summary.new == 150
    n_files = sum(len(files) for _, _, files in os.walk(out))
    assert n_files < 40, n_files


def _plain_view(path):
    """What readers without msk see: dask (each array's own zarr.json) and xarray (the consolidated root)."""
    xr = pytest.importorskip("xarray")
    da = pytest.importorskip("dask.array")
    ds = xr.open_zarr(path)
    return {"dask": {name: da.from_zarr(str(path), component=name).compute()
                     for name in ("windows", "clip_index", "start", "tracks", "clip", "status", "offset")},
            "xarray": ds}


def _committed(path):
    """Rows and clips the table commits (what msk reads), with the rows of each committed clip."""
    st = FeatureStore(path, mode="r")
    recs = [st.record(k) for k in st.keys()] + [st.record(k) for k in st.failures()]
    n_rows = max([r["offset"] + r["n_windows"] for r in recs], default=0)
    n_clips = max([r["clip"] + 1 for r in recs], default=0)
    return st, n_rows, n_clips


def test_readers_without_msk_never_see_uncommitted_rows(tmp_path, monkeypatch):
    """Rows are written beyond the published shapes; the shapes move only after the table commits them."""
    out = tmp_path / "s.zarr"
    rng = np.random.default_rng(0)
    first = {f"a{i}": rng.standard_normal((3, 5)).astype(np.float32) for i in range(4)}
    with FeatureStore(out, mode="w", batch_size=100) as st:
        for k, X in first.items():
            st.put(k, X, start=np.arange(3.0), end=np.arange(3.0) + 1)
    plain = _plain_view(out)
    assert plain["dask"]["windows"].shape == (12, 5) and plain["xarray"].sizes["clip"] == 4

    # a writer killed after writing a batch's rows, before its commit line
    def killed(self, records):
        raise KeyboardInterrupt("killed before the commit")

    monkeypatch.setattr(FeatureStore, "_commit", killed)
    st = FeatureStore(out, mode="a", batch_size=100)
    for i in range(3):
        st.put(f"b{i}", np.full((40, 5), 7.0, np.float32))
    with pytest.raises(KeyboardInterrupt):
        st.flush()
    assert os.path.getsize(out / "windows" / "c" / "0" / "0") > 12 * 5 * 4  # the rows are on disk...
    plain = _plain_view(out)  # ...and invisible
    for name, want in (("windows", 12), ("clip_index", 12), ("start", 12), ("tracks", 4), ("clip", 4),
                       ("status", 4), ("offset", 4)):
        assert plain["dask"][name].shape[0] == want, name
    assert dict(plain["xarray"].windows.sizes) == {"window": 12, "feature": 5}
    assert plain["xarray"].sizes["clip"] == 4 and not (plain["xarray"].windows.values == 7).any()
    np.testing.assert_array_equal(plain["dask"]["windows"], np.vstack(list(first.values())))
    st._writer_lock.release()  # the killed process's lock is released by the system
    monkeypatch.undo()

    # a writer killed after its commit, before publishing the shapes: msk reads what is committed,
    # readers without msk see the previous commit, `check` says so, the next writer publishes
    def killed_after(self, force=False):
        raise KeyboardInterrupt("killed before publishing")

    with FeatureStore(out, mode="a", batch_size=100) as st:  # cuts the uncommitted rows
        assert st.keys() == sorted(first)
        monkeypatch.setattr(FeatureStore, "_publish", killed_after)
        st.put("c0", np.full((2, 5), 3.0, np.float32))
        with pytest.raises(KeyboardInterrupt):
            st.flush()
        st._pending = []
    monkeypatch.undo()
    st, n_rows, n_clips = _committed(out)
    assert (n_rows, n_clips) == (14, 5) and "c0" in st.keys()
    np.testing.assert_array_equal(st.get("c0"), np.full((2, 5), 3.0, np.float32))
    assert _plain_view(out)["dask"]["windows"].shape == (12, 5)
    assert any("zarr.json" in p for p in st.check()["problems"])
    FeatureStore(out, mode="a").close()
    plain = _plain_view(out)
    assert plain["dask"]["windows"].shape == (14, 5) and plain["xarray"].sizes["clip"] == 5
    assert FeatureStore(out, mode="r").check()["problems"] == []


# -- keys and reruns ---------------------------------------------------------------------------


def test_keys_from_three_working_directories_give_one_entry(tmp_path, y, model, monkeypatch):
    lib = tmp_path / "lib"
    paths = _write_clips(lib, y, 4, seed=2)
    out = str(tmp_path / "s.zarr")
    monkeypatch.chdir(tmp_path)
    first = msk.extract_many("lib", store=out, model=model, progress=False)
    monkeypatch.chdir(lib)
    second = msk.extract_many(".", store=out, model=model, progress=False)
    monkeypatch.chdir(lib / "sub")
    third = msk.extract_many(str(lib), store=out, model=model, progress=False)
    assert (first.new, second.unchanged, third.unchanged) == (4, 4, 4)
    # files given one by one: relative to --root, whatever the working directory
    fourth = msk.extract_many([os.path.relpath(p) for p in paths], root="../", store=out, model=model,
                              progress=False)
    assert fourth.unchanged == 4 and fourth.new == 0
    st = FeatureStore(out, mode="r")
    assert st.keys() == sorted(os.path.relpath(p, lib).replace(os.sep, "/") for p in paths)
    assert len(st) == 4 and all("./" not in k and not k.startswith("/") for k in st.keys())


def test_rerun_is_change_aware_and_prunes(tmp_path, y, model):
    lib = tmp_path / "lib"
    paths = _write_clips(lib, y, 6, seed=3)
    out = tmp_path / "s.zarr"
    msk.extract_many(lib, store=out, model=model, progress=False)
    before, _ = _contents(out)
    changed, touched, deleted = paths[1], paths[2], paths[4]
    sf.write(changed, y[5 * SR : 14 * SR], SR, subtype="PCM_16")  # new audio
    st = os.stat(touched)
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # same content, new mtime
    os.remove(deleted)
    summary = msk.extract_many(lib, store=out, model=model, progress=False)
    assert (summary.new, summary.changed, summary.unchanged, summary.pruned) == (0, 1, 4, 0)
    key = lambda p: os.path.relpath(p, lib).replace(os.sep, "/")  # noqa: E731
    after, _ = _contents(out)
    np.testing.assert_array_equal(after[key(changed)][0], msk.extract(changed, model=model))
    assert not np.array_equal(after[key(changed)][0][:1], before[key(changed)][0][:1])
    assert key(deleted) in after  # kept without --prune
    pruned = msk.extract_many(lib, store=out, model=model, prune=True, progress=False)
    assert (pruned.pruned, pruned.unchanged) == (1, 5)
    final, _ = _contents(out)
    assert sorted(final) == sorted(key(p) for p in paths if p != deleted)
    for k in final:
        for a, b in zip(final[k], (after[k])):
            np.testing.assert_array_equal(a, b)
    # the dataset view marks the replaced and the pruned clips
    xr = pytest.importorskip("xarray")
    ds = xr.open_zarr(out)
    status = dict(zip(range(ds.sizes["clip"]), ds.status.values.tolist()))
    assert sorted(status.values()) == ["ok"] * 5 + ["pruned", "replaced"]
    ok = ds["clip"].values[ds.status.values == "ok"].tolist()
    assert sorted(ok) == sorted(final)


def test_non_utf8_file_name_round_trips(tmp_path, y, model):
    lib = tmp_path / "lib"
    lib.mkdir()
    name = os.fsdecode(b"caf\xe9 \xff.wav")
    buffer = io.BytesIO()
    sf.write(buffer, y[: 5 * SR], SR, format="WAV", subtype="PCM_16")
    try:
        with open(os.path.join(os.fsencode(lib), b"caf\xe9 \xff.wav"), "wb") as f:
            f.write(buffer.getvalue())
    except OSError:
        pytest.skip("the file system refuses non-UTF-8 file names")
    sf.write(lib / "plain.wav", y[SR : 6 * SR], SR, subtype="PCM_16")
    out = tmp_path / "s.zarr"
    summary = msk.extract_many(lib, store=out, model=model, progress=False)
    assert summary.new == 2 and not summary.failed
    st = FeatureStore(out, mode="r")
    assert st.keys() == sorted([name, "plain.wav"])
    np.testing.assert_array_equal(st.get(name), msk.extract(os.path.join(lib, name), model=model))
    assert os.fsencode(st.record(name)["path"]) == os.path.join(os.fsencode(lib), b"caf\xe9 \xff.wav")
    again = msk.extract_many(lib, store=out, model=model, progress=False)
    assert again.unchanged == 2
    xr = pytest.importorskip("xarray")
    assert "caf\\xe9 \\xff.wav" in xr.open_zarr(out)["clip"].values.tolist()


def test_track_vectors(tmp_path, library, model, model_path, capsys):
    """Every summary msk computes: through extract_many, and through `msk extract --summary`."""
    assert msk.multiscale.SUMMARIES == ("mean", "mean+max", "mean+std")
    for summary in msk.multiscale.SUMMARIES:
        out = tmp_path / f"{summary}.zarr"
        msk.extract_many(library, store=out, model=model, summary=summary, progress=False)
        cli_out = tmp_path / f"cli-{summary}.zarr"
        assert main(["extract", str(library), "-o", str(cli_out), "--summary", summary, "--model", model_path,
                     "-q"]) == 0
        capsys.readouterr()
        st = FeatureStore(out, mode="r")
        keys, T = st.tracks()
        assert keys == st.keys() and T.dtype == np.float32
        assert T.shape == (len(keys), model.n_features_out_ * (1 if summary == "mean" else 2))
        for k, row in zip(keys, T):
            X = st.get(k).astype(np.float64)
            expected = X.mean(axis=0)
            if summary == "mean+max":
                expected = np.concatenate([expected, X.max(axis=0)])
            elif summary == "mean+std":
                expected = np.concatenate([expected, np.sqrt(((X - expected) ** 2).mean(axis=0))])
            np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-6)
        cli = FeatureStore(cli_out, mode="r")
        assert cli.summary == summary and cli.keys() == keys
        np.testing.assert_array_equal(cli.tracks()[1], T)
        other = "mean" if summary != "mean" else "mean+std"
        with pytest.raises(ValueError, match=f"got {other!r}".replace("+", "\\+")):
            FeatureStore(out, mode="a", summary=other)
    with pytest.raises(ValueError, match="`summary` must be one of 'mean', 'mean\\+max' or 'mean\\+std'; got 'max'"):
        FeatureStore(tmp_path / "new.zarr", mode="a", summary="max")


# -- crashes, writers, damage -------------------------------------------------------------------


_RUN = textwrap.dedent("""
    import sys, msk
    store = msk.store.FeatureStore(sys.argv[2], batch_size=int(sys.argv[4]))
    msk.extract_many(sys.argv[3], model=sys.argv[1], store=store, n_jobs=2, progress=False)
    store.close()
""")


def _table_lines(out):
    table = out / "clip" / "msk-table.jsonl"
    return table.read_bytes().count(b"\n") if table.exists() else 0


def _kill_and_resume(tmp_path, y, model, model_path, n_clips, n_kills, batch):
    lib = tmp_path / "lib"
    _write_clips(lib, y, n_clips, seed=4)
    reference = tmp_path / "reference.zarr"
    msk.extract_many(lib, store=reference, model=model, n_jobs=2, progress=False)
    out = tmp_path / "killed.zarr"
    rng = np.random.default_rng(5)
    kills = 0
    for _ in range(n_kills):
        proc = subprocess.Popen([sys.executable, "-c", _RUN, model_path, str(out), str(lib), str(batch)])
        target = _table_lines(out) + int(rng.integers(1, 2 * batch))
        deadline = time.monotonic() + 120
        while _table_lines(out) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(float(rng.uniform(0, 0.05)))  # somewhere inside the next batch
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        st, rows_committed, clips_committed = _committed(out)  # opens between runs
        if clips_committed:  # readers without msk see committed rows only, the same values as msk
            import zarr

            windows = zarr.open_array(str(out / "windows"), mode="r")
            clip = zarr.open_array(str(out / "clip"), mode="r")
            assert windows.shape[0] <= rows_committed and clip.shape[0] <= clips_committed
            X, _ = st.concatenated()
            assert windows.shape[0] == 0 or np.isin(windows[-1], X).all()
    assert kills >= 1
    done = len(FeatureStore(out, mode="r"))
    summary = msk.extract_many(lib, store=out, model=model, n_jobs=2, progress=False)
    assert summary.unchanged == done and summary.new == n_clips - done and not summary.failed
    got, failures = _contents(out)
    want, _ = _contents(reference)
    assert not failures and got.keys() == want.keys()
    for k in want:
        for a, b in zip(got[k], want[k]):
            np.testing.assert_array_equal(a, b, err_msg=k)
    np.testing.assert_array_equal(FeatureStore(out, mode="r").tracks()[1],
                                  FeatureStore(reference, mode="r").tracks()[1])
    assert FeatureStore(out, mode="r").check()["problems"] == []


def test_killed_runs_resume_to_an_uninterrupted_result(tmp_path, y, model, model_path):
    _kill_and_resume(tmp_path, y, model, model_path, n_clips=80, n_kills=4, batch=8)


@pytest.mark.slow
def test_killed_runs_of_1000_clips(tmp_path, y, model, model_path):
    _kill_and_resume(tmp_path, y, model, model_path, n_clips=1000, n_kills=8, batch=32)


_HOLD = textwrap.dedent("""
    import sys, time, msk
    store = msk.store.FeatureStore(sys.argv[1])
    print("locked", flush=True)
    time.sleep(600)
""")


def test_second_writer_is_refused_and_a_dead_writer_lock_is_taken_over(tmp_path, store_path):
    out = tmp_path / "s.zarr"
    FeatureStore(out, mode="w").close()
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ValueError, match=f"being written by host .* pid {proc.pid}"):
            FeatureStore(out, mode="a")
        with pytest.raises(ValueError, match="being written"):
            FeatureStore(out, mode="w")
        FeatureStore(out, mode="r")  # readers need no lock
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    with FeatureStore(out, mode="a") as st:  # the dead writer's lock is taken over
        st.put("x", np.ones((2, 3), np.float32))
        with pytest.raises(ValueError, match=f"pid {os.getpid()}"):
            FeatureStore(out, mode="a")  # one writer per store, in one process too
    # waiting instead of refusing
    holder = FeatureStore(out, mode="a")
    threading.Timer(0.3, holder.close).start()
    with FeatureStore(out, mode="a", wait=60) as st:
        st.put("y", np.ones((1, 3), np.float32))
    assert FeatureStore(out, mode="r").keys() == ["x", "y"]


def test_two_concurrent_extract_runs(tmp_path, y, model_path):
    """Two `msk extract` runs on one store: the second waits (--wait) or is refused; none aborts halfway."""
    lib = tmp_path / "lib"
    _write_clips(lib, y, 20, seed=6)
    out = tmp_path / "s.zarr"
    cmd = [sys.executable, "-m", "msk", "extract", str(lib), "-o", str(out), "--model", model_path, "-q"]
    a = subprocess.Popen(cmd + ["--wait", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    b = subprocess.Popen(cmd + ["--wait", "120"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    results = [p.communicate() for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, results
    summaries = sorted((json.loads(out_)["new"], json.loads(out_)["unchanged"]) for out_, _ in results)
    assert summaries == [(0, 20), (20, 0)]
    assert len(FeatureStore(out, mode="r")) == 20


def test_corrupt_and_torn_table_lines(tmp_path, library, model):
    out = tmp_path / "s.zarr"
    msk.extract_many(library, store=out, model=model, progress=False)
    keys = FeatureStore(out, mode="r").keys()
    table = out / "clip" / "msk-table.jsonl"
    lines = table.read_bytes().split(b"\n")
    victim = json.loads(lines[3])["record"]["key"]
    lines[3] = lines[3].replace(b'"n_windows": ', b'"n_windows": 9', 1)  # a changed digit: CRC fails
    table.write_bytes(b"\n".join(lines) + b'{"crc": 1, "rec')  # and a torn last line
    with pytest.warns(UserWarning, match="line 4 is corrupt"):
        st = FeatureStore(out, mode="r")
    assert st.keys() == [k for k in keys if k != victim]
    assert any("line 4" in d for d in st.damage) and any("torn" in d for d in st.damage)
    X, _ = st.concatenated()  # everything else reads
    assert X.shape[0] > 0
    with pytest.warns(UserWarning, match="line 4"):
        assert main(["store", "check", str(out)]) == 1
    with pytest.warns(UserWarning, match="line 4"):
        assert main(["store", "check", "--repair", str(out)]) == 0
    st = FeatureStore(out, mode="r")  # no warning: repaired
    assert st.damage == [] and victim not in st.keys() and st.check()["problems"] == []
    rerun = msk.extract_many(library, store=out, model=model, progress=False)
    assert (rerun.new, rerun.unchanged) == (1, len(keys) - 1)
    np.testing.assert_array_equal(FeatureStore(out, mode="r").get(victim),
                                  msk.extract(library / victim, model=model))


def test_flipped_bit_in_a_chunk_is_detected(tmp_path, library, model):
    out = tmp_path / "s.zarr"
    msk.extract_many(library, store=out, model=model, progress=False)
    chunk = out / "windows" / "c" / "0" / "0"
    data = bytearray(chunk.read_bytes())
    data[100] ^= 0x04
    chunk.write_bytes(bytes(data))
    st = FeatureStore(out, mode="r")
    key = st.keys()[0]
    with pytest.raises(ValueError, match=f"{out}.*'windows'.*damaged"):
        st.get(key)
    with pytest.raises(ValueError, match="damaged"):
        st.concatenated()
    report = st.check()
    assert report["problems"] and report["damaged_keys"]
    with FeatureStore(out, mode="a") as writable:
        fixed = writable.check(repair=True)
    assert set(fixed["damaged_keys"]) <= set(FeatureStore(out, mode="r").failures())
    rerun = msk.extract_many(library, store=out, model=model, progress=False)
    assert rerun.new == len(fixed["damaged_keys"]) and not rerun.failed
    st = FeatureStore(out, mode="r")
    for k in fixed["damaged_keys"]:
        np.testing.assert_array_equal(st.get(k), msk.extract(library / k, model=model))
    # a damaged chunk of the keys array: msk reads its table; the repair rebuilds the view
    chunk = out / "clip" / "c" / "0"
    data = bytearray(chunk.read_bytes())
    data[5] ^= 0x10
    chunk.write_bytes(bytes(data))
    xr = pytest.importorskip("xarray")
    with pytest.raises(ValueError, match="checksum"):
        xr.open_zarr(out)["clip"].values
    assert FeatureStore(out, mode="r").keys() == st.keys()
    with FeatureStore(out, mode="a") as writable:
        assert writable.check(repair=True)["damaged_keys"] == []
    ds = xr.open_zarr(out)
    assert sorted(ds["clip"].values[ds.status.values == "ok"].tolist()) == st.keys()


def test_tampered_metadata_and_odd_chunk_files_are_refused(tmp_path, library, model):
    out = tmp_path / "s.zarr"
    msk.extract_many(library, store=out, model=model, progress=False)
    root_path = out / "zarr.json"
    original = root_path.read_text()

    def tamper(**changes):  # msk reads the arrays' metadata from the root (consolidated)
        root = json.loads(original)
        root["consolidated_metadata"]["metadata"]["windows"].update(changes)
        root_path.write_text(json.dumps(root))
        return FeatureStore(out, mode="r")

    n = model.n_features_out_
    with pytest.raises(ValueError, match="'windows' has data type int32"):
        tamper(data_type="int32").concatenated()
    rows = json.loads(original)["consolidated_metadata"]["metadata"]["windows"]["shape"][0]
    with pytest.raises(ValueError, match=f"'windows' has {2 * n} columns"):
        tamper(shape=[rows // 2, 2 * n]).concatenated()
    st = tamper(shape=[10**9, n])  # msk reads the rows the table commits, whatever the shape says
    assert st.concatenated()[0].shape[0] == rows
    root_path.write_text(original)
    # the arrays' own zarr.json (what readers without msk use) must agree with the root: check says so
    meta_path = out / "windows" / "zarr.json"
    published = meta_path.read_text()
    meta_path.write_text(json.dumps(dict(json.loads(published), shape=[rows - 1, n])))
    assert FeatureStore(out, mode="r").concatenated()[0].shape[0] == rows
    report = FeatureStore(out, mode="r").check()
    assert any("'windows'" in p and "zarr.json" in p for p in report["problems"])
    with FeatureStore(out, mode="a") as writable:
        assert any("published" in r for r in writable.check(repair=True)["repaired"])
    assert json.loads(meta_path.read_text()) == json.loads(published)
    assert FeatureStore(out, mode="r").check()["problems"] == []
    # stray directories (in the store, in an array's folder) do not block opening for writing
    (out / "stray").mkdir()
    (out / "clip" / "stray").mkdir()
    keys = FeatureStore(out, mode="r").keys()
    with FeatureStore(out, mode="a") as writable:
        assert writable.keys() == keys
    chunk = out / "windows" / "c" / "0" / "0"
    chunk.unlink()
    chunk.symlink_to("/dev/zero")
    with pytest.raises(ValueError, match="not a regular file"):
        FeatureStore(out, mode="r").concatenated()
    chunk.unlink()
    os.mkfifo(chunk)
    assert stat.S_ISFIFO(os.lstat(chunk).st_mode)
    with pytest.raises(ValueError, match="not a regular file"):
        FeatureStore(out, mode="r").get(FeatureStore(out, mode="r").keys()[0])
    chunk.unlink()
    chunk.write_bytes(b"\0" * (64 << 20))
    with pytest.raises(ValueError, match="more than a chunk"):
        FeatureStore(out, mode="r").concatenated()


# -- the 0.1 store ------------------------------------------------------------------------------


def test_store_of_msk_01_is_detected_and_migrated(tmp_path, model, y):
    import _store_v01

    old = tmp_path / "old.zarr"
    store = _store_v01.FeatureStore(old, mode="w", model_info=model)
    rng = np.random.default_rng(0)
    want = {}
    for i in range(5):
        X = rng.standard_normal((i + 1, model.n_features_out_)).astype(np.float32)
        store.put(f"music/{i}.mp3", X, meta={"path": f"/lib/music/{i}.mp3", "n_pools": i + 1})
        want[f"music/{i}.mp3"] = X
    store.fail("bad.mp3", "could not be decoded")
    with pytest.raises(ValueError, match="msk 0.1.*msk store migrate"):
        FeatureStore(old, mode="r")
    new = tmp_path / "new.zarr"
    assert main(["store", "migrate", str(old), str(new)]) == 0
    st = FeatureStore(new, mode="r")
    assert st.keys() == sorted(want) and st.failures() == {"bad.mp3": "could not be decoded"}
    with open(old / "zarr.json") as f:
        assert st.model_info == json.load(f)["attributes"]["msk"]["model"]  # the model, as recorded
    for k, X in want.items():
        np.testing.assert_array_equal(st.get(k), X)
        np.testing.assert_allclose(st.times(k)[0], np.arange(len(X)) * STEP)
    assert st.record("music/2.mp3")["path"] == "/lib/music/2.mp3"
    with pytest.raises(ValueError, match="exists"):
        msk.store.migrate(old, new)
    with pytest.raises(ValueError, match="needs no migration"):
        msk.store.migrate(new, tmp_path / "third.zarr")
    (tmp_path / "other").mkdir()
    with pytest.raises(ValueError, match="not a readable msk 0.1"):
        msk.store.migrate(tmp_path / "other", tmp_path / "third.zarr")


def test_migrate_fills_sources_under_the_root_so_a_rerun_skips_unchanged_files(tmp_path, y, model, model_path,
                                                                                 monkeypatch, capsys):
    import _store_v01

    lib = tmp_path / "lib"
    paths = _write_clips(lib, y, 5, seed=8)
    monkeypatch.chdir(tmp_path)
    old = tmp_path / "old.zarr"
    store = _store_v01.FeatureStore(old, mode="w", model_info=model)
    for p in paths:  # msk 0.1 keyed clips by the path as typed, recorded the absolute path, dropped partial windows
        X = msk.extract(p, model=model, last_window="drop")
        store.put(os.path.relpath(p), X, meta={"path": os.path.abspath(p), "n_pools": len(X)})
    # the same file typed another way, a file deleted since, a file whose audio changed since
    store.put(os.path.abspath(paths[0]), msk.extract(paths[0], model=model, last_window="drop"),
              meta={"path": paths[0]})
    gone = lib / "gone.wav"
    sf.write(gone, y[: 6 * SR], SR, subtype="PCM_16")
    store.put("lib/gone.wav", msk.extract(gone, model=model, last_window="drop"), meta={"path": str(gone)})
    os.remove(gone)
    sf.write(paths[3], y[: 25 * SR], SR, subtype="PCM_16")  # much longer than what was extracted
    new = tmp_path / "new.zarr"
    assert main(["store", "migrate", str(old), str(new), "--root", str(lib), "--model", model_path]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["filled"], printed["not_filled"], printed["merged"]) == (4, 2, 1)
    assert any(k.startswith("lib/gone.wav") for k in printed["not_filled_keys"])
    st = FeatureStore(new, mode="r")
    key = lambda p: os.path.relpath(p, lib).replace(os.sep, "/")  # noqa: E731
    assert st.keys() == sorted([key(p) for p in paths] + ["gone.wav"])  # keys relative to the root
    meta = st.meta(key(paths[1]))
    assert meta["size"] == os.path.getsize(paths[1]) and meta["hash"] == msk.store.file_hash(paths[1])
    assert "hash" not in st.meta(key(paths[3]))  # changed since extraction: not filled
    rerun = msk.extract_many(lib, store=new, model=model, prune=True, progress=False)
    assert (rerun.unchanged, rerun.changed, rerun.new, rerun.pruned) == (4, 1, 0, 1)
    np.testing.assert_array_equal(FeatureStore(new, mode="r").get(key(paths[3])),
                                  msk.extract(paths[3], model=model, last_window="drop"))
    assert FeatureStore(new, mode="r").settings["last_window"] == "drop"
    assert FeatureStore(new, mode="r").record(key(paths[3]))["duration"] == pytest.approx(sf.info(paths[3]).duration)
    # another model is refused: its features of a found file differ
    other = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=6, n_samples=800, max_iter=3,
                                   random_state=1).fit([y[: 12 * SR], y[12 * SR :]])
    with pytest.raises(ValueError, match="differ from what `model`"):
        msk.store.migrate(old, tmp_path / "other.zarr", root=lib, model=other)
    with pytest.raises(ValueError, match="needs no migration"):
        msk.store.migrate(new, tmp_path / "again.zarr")


def test_store_of_format_2_reads_and_is_upgraded_by_a_writer(tmp_path, library, model):
    """A store of format 2 (five more per-clip arrays) opens as it is; the first writer upgrades it in place."""
    import zarr

    out = tmp_path / "s.zarr"
    msk.extract_many(library, store=out, model=model, progress=False)
    want, failures = _contents(out)
    # format 2: the same table and arrays, plus path, size, mtime, hash and reason per clip
    st = FeatureStore(out, mode="r")
    n = len(st.keys()) + len(st.failures())
    group = zarr.open_group(str(out), mode="r+", use_consolidated=False)
    for name, dtype in (("path", str), ("size", np.int64), ("mtime", np.int64), ("hash", str), ("reason", str)):
        group.create_array(name, shape=(n,), chunks=(16384,), dtype=dtype, dimension_names=["clip"])
    root = json.loads((out / "zarr.json").read_text())
    root["attributes"]["msk"]["format_version"] = 2
    for name in ("path", "size", "mtime", "hash", "reason"):
        root["consolidated_metadata"]["metadata"][name] = json.loads((out / name / "zarr.json").read_text())
    (out / "zarr.json").write_text(json.dumps(root))
    got, got_failures = _contents(out)  # read as it is
    assert got.keys() == want.keys() and got_failures == failures
    assert FeatureStore(out, mode="r").settings == st.settings
    with FeatureStore(out, mode="a") as writable:  # upgraded in place
        assert writable.check()["problems"] == []
    assert json.loads((out / "zarr.json").read_text())["attributes"]["msk"]["format_version"] == 3
    assert not (out / "path").exists() and not (out / "hash").exists()
    got, _ = _contents(out)
    for k in want:
        for a, b in zip(got[k], want[k]):
            np.testing.assert_array_equal(a, b)
    xr = pytest.importorskip("xarray")
    assert "path" not in xr.open_zarr(out).data_vars
    assert msk.extract_many(library, store=out, model=model, progress=False).unchanged == len(want)


# -- export -------------------------------------------------------------------------------------


@pytest.mark.parametrize("ext", [".npz", ".csv", ".parquet"])
def test_export_round_trips(tmp_path, store_path, ext):
    st = FeatureStore(store_path, mode="r")
    keys = st.keys()
    X, clip_index = st.concatenated()
    start = np.concatenate([st.times(k)[0] for k in keys])
    end = np.concatenate([st.times(k)[1] for k in keys])
    out = tmp_path / f"features{ext}"
    assert main(["export", str(store_path), "-o", str(out)]) == 0
    if ext == ".npz":
        with np.load(out) as z:
            assert z["keys"].tolist() == keys
            np.testing.assert_array_equal(z["features"], X)
            np.testing.assert_array_equal(z["clip_index"], clip_index)
            np.testing.assert_array_equal(z["start"], start)
            np.testing.assert_array_equal(z["end"], end)
            np.testing.assert_array_equal(z["tracks"], st.tracks()[1])
        return
    if ext == ".csv":
        import csv

        with open(out, newline="") as f:
            rows = list(csv.reader(f))
        header, rows = rows[0], rows[1:]
        got_keys = [r[0] for r in rows]
        table = np.array([[float(v) for v in r[1:]] for r in rows])
    else:
        pq = pytest.importorskip("pyarrow.parquet")
        t = pq.read_table(out)
        header = t.column_names
        got_keys = t.column("key").to_pylist()
        table = np.column_stack([t.column(c).to_numpy() for c in header[1:]])
    assert header[:4] == ["key", "start", "end", "f0"] and len(header) == 3 + X.shape[1]
    assert got_keys == [keys[i] for i in clip_index]
    np.testing.assert_array_equal(table[:, 0], start)
    np.testing.assert_array_equal(table[:, 1], end)
    np.testing.assert_array_equal(table[:, 2:].astype(np.float32), X)


def test_export_without_pyarrow_says_how_to_get_it(tmp_path, store_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(ImportError, match=r"msk\[export\]"):
        msk.store.export(store_path, tmp_path / "x.parquet")
    assert main(["export", str(store_path), "-o", str(tmp_path / "x.parquet")]) == 1
    assert "msk[export]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["export", str(store_path), "-o", str(tmp_path / "x.xlsx")])
    assert exc.value.code == 2


# -- CLI output kinds and the folder rule --------------------------------------------------------


def test_cli_output_kinds(tmp_path, library, model_path, model, capsys):
    clip = max((str(p) for p in library.rglob("*.wav") if not p.name.startswith(".")),
               key=lambda p: sf.info(p).duration)  # several windows
    for bad in ("t.csv", "features"):
        with pytest.raises(SystemExit) as exc:
            main(["extract", str(library), "-o", str(tmp_path / bad), "--model", model_path, "-q"])
        assert exc.value.code == 2 and not (tmp_path / bad).exists()
    with pytest.raises(SystemExit) as exc:
        main(["extract", clip, "-o", str(tmp_path / "x.npy"), "--times", "--model", model_path])
    assert exc.value.code == 2
    capsys.readouterr()
    assert main(["extract", clip, "-o", str(tmp_path / "x.npz"), "--times", "--summary", "mean+max",
                 "--model", model_path]) == 0
    with np.load(tmp_path / "x.npz") as z:
        F = msk.extract(clip, model=model)
        np.testing.assert_array_equal(z["features"], F)
        np.testing.assert_allclose(z["start"], np.arange(len(F)) * STEP)
        np.testing.assert_allclose(z["end"][:-1], (np.arange(len(F) - 1) + 1) * STEP)
        assert z["end"][-1] == pytest.approx(sf.info(clip).duration)
        np.testing.assert_allclose(z["track"], np.concatenate([F.mean(axis=0), F.max(axis=0)]), rtol=1e-6)


def test_one_rule_for_what_a_folder_holds(tmp_path, y, model_path, capsys):
    lib = tmp_path / "lib"
    _write_clips(lib, y, 3, seed=7)
    (lib / "notes.txt").write_text("x")
    (lib / "LOUD.WAV").write_bytes((lib / "clip0001.wav").read_bytes())
    (lib / ".hidden").mkdir()
    (lib / ".hidden" / "x.wav").write_bytes((lib / "clip0001.wav").read_bytes())
    audio, other = msk.audio.audio_files(lib)
    assert [os.path.relpath(p, lib) for p in audio] == ["LOUD.WAV", "clip0001.wav", "clip0002.wav",
                                                        os.path.join("sub", "clip0000.wav")]
    assert other == [str(lib / "notes.txt")]
    # a store inside the folder it reads is never an input, however often it runs
    out = lib / "features.zarr"
    for _ in range(2):
        assert main(["extract", str(lib), "-o", str(out), "--model", model_path, "-q"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["failed"] == {} and summary["not_audio"] == [str(lib / "notes.txt")]
    assert msk.audio.audio_files(lib) == (audio, other)
    assert summary["unchanged"] == 4
