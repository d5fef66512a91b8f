"""msk.store.FeatureStore: roundtrip, resumption, crash safety, concurrency, model checks, Zarr."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import msk
from msk.store import FeatureStore, entry_name, model_fingerprint

MODEL_A = {"class": "msk.MultiscaleFeatures", "n_features": 6, "fingerprint": "a" * 64}
MODEL_B = {"class": "msk.MultiscaleFeatures", "n_features": 6, "fingerprint": "b" * 64}

ODD_KEYS = [
    "plain",
    "dir/sub/clip 1.mp3",
    "/abs/path/x.wav",
    "100%",
    ".hidden",
    "..",
    "__reserved",
    "tilde~key",
    "ünïcødé/名前.flac",
    "Case",
    "x" * 300,
    "x" * 299 + "y",
]


def features(i, n_pools=3, n_features=6, dtype=np.float32):
    """Deterministic features of entry ``i``."""
    return np.random.default_rng(i).standard_normal((n_pools + i % 3, n_features)).astype(dtype)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "features.zarr")


# -- roundtrip -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roundtrip(path, dtype):
    store = FeatureStore(path, mode="w")
    for i in range(4):
        store.put(f"clip{i}", features(i, dtype=dtype), meta={"i": i, "src": f"/a/{i}.mp3"})
    assert len(store) == 4
    assert store.keys() == ["clip0", "clip1", "clip2", "clip3"]
    assert list(store) == store.keys()
    for i in range(4):
        got = store.get(f"clip{i}")
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, features(i, dtype=dtype))
        np.testing.assert_array_equal(store[f"clip{i}"], got)
        assert store.meta(f"clip{i}") == {"i": i, "src": f"/a/{i}.mp3"}
        assert store.shape(f"clip{i}") == features(i).shape
        assert store.status(f"clip{i}") == "done"
    assert "clip0" in store and "nope" not in store and 3 not in store
    assert store.status("nope") is None


def test_fortran_and_strided_input_stored_as_values(path, rng):
    store = FeatureStore(path, mode="w")
    X = rng.standard_normal((8, 6)).astype(np.float32)
    wide = rng.standard_normal((10, 12)).astype(np.float32)
    store.put("F", np.asfortranarray(X))
    store.put("strided", wide[::2, ::2])
    store.put("int", np.arange(24).reshape(4, 6))
    np.testing.assert_array_equal(store.get("F"), X)
    np.testing.assert_array_equal(store.get("strided"), wide[::2, ::2])
    assert store.get("int").dtype == np.float64
    np.testing.assert_array_equal(store.get("int"), np.arange(24).reshape(4, 6))


def test_concatenated(path):
    store = FeatureStore(path, mode="w")
    for i in range(5):
        store.put(f"k{i}", features(i))
    keys = ["k3", "k0", "k4"]
    X, clip_index = store.concatenated(keys)
    expected = np.vstack([features(3), features(0), features(4)])
    np.testing.assert_array_equal(X, expected)
    assert X.dtype == np.float32
    np.testing.assert_array_equal(
        clip_index, np.repeat([0, 1, 2], [len(features(3)), len(features(0)), len(features(4))])
    )
    X_all, idx_all = store.concatenated()
    assert X_all.shape[0] == sum(len(features(i)) for i in range(5))
    assert idx_all.max() == 4
    with pytest.raises(KeyError, match="'missing'"):
        store.concatenated(["k0", "missing"])
    X2, idx2 = store.concatenated(["k0", "missing", "k1"], missing="skip")
    np.testing.assert_array_equal(X2, np.vstack([features(0), features(1)]))
    assert set(idx2.tolist()) == {0, 2}
    X64, _ = store.concatenated(["k1"], dtype=np.float64)
    assert X64.dtype == np.float64
    with pytest.raises(ValueError, match="`missing`"):
        store.concatenated(missing="drop")


# -- keys --------------------------------------------------------------------------------------


def test_entry_names_are_safe_and_distinct():
    names = [entry_name(k) for k in ODD_KEYS]
    assert len(set(names)) == len(names)
    for name in names:
        assert len(name) <= 200
        assert "/" not in name and not name.startswith((".", "_")) and name not in (".", "..")
    assert entry_name("dir/a b.mp3") == "dir%2Fa%20b.mp3"
    assert entry_name("100%") == "100%25"
    assert entry_name("tilde~key") == "tilde%7Ekey"
    assert "~" in entry_name("x" * 300)


def test_odd_keys_roundtrip_and_reopen(path):
    store = FeatureStore(path, mode="w")
    for i, key in enumerate(ODD_KEYS):
        store.put(key, features(i), meta={"key": key})
    reopened = FeatureStore(path, mode="r")
    assert reopened.keys() == sorted(ODD_KEYS)
    for i, key in enumerate(ODD_KEYS):
        np.testing.assert_array_equal(reopened.get(key), features(i))
        assert reopened.meta(key) == {"key": key}


def test_bad_input(path, rng):
    store = FeatureStore(path, mode="w")
    with pytest.raises(TypeError, match="key must be a str"):
        store.put(3, features(0))
    with pytest.raises(ValueError, match="non-empty"):
        store.put("", features(0))
    with pytest.raises(ValueError, match="`features` must be a 2-D"):
        store.put("a", np.zeros(6))
    with pytest.raises(ValueError, match="`features` contains NaN"):
        store.put("a", np.full((2, 6), np.nan))
    with pytest.raises(TypeError, match="`features` must be an array of numbers"):
        store.put("a", "abc")
    with pytest.raises(TypeError, match="`meta` must be JSON-serialisable"):
        store.put("a", features(0), meta={"x": object()})
    with pytest.raises(TypeError, match="`meta` must be a mapping"):
        store.put("a", features(0), meta=[1])
    store.put("a", features(0))
    with pytest.raises(ValueError, match="5 columns.*have 6"):
        store.put("b", np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="`mode`"):
        FeatureStore(path, mode="x")
    with pytest.raises(TypeError, match="`path`"):
        FeatureStore(3)
    with pytest.raises(TypeError, match="`model_info`"):
        FeatureStore(path, model_info=[1, 2])
    with pytest.raises(KeyError, match="'zz' is not in feature store"):
        store.get("zz")


# -- reopening, modes, resumption ------------------------------------------------------------


def test_modes(tmp_path, path):
    with pytest.raises(FileNotFoundError, match="no feature store"):
        FeatureStore(path, mode="r")
    store = FeatureStore(path)  # "a" creates
    store.put("a", features(0))
    ro = FeatureStore(path, mode="r")
    assert ro.keys() == ["a"]
    with pytest.raises(ValueError, match="read-only"):
        ro.put("b", features(1))
    with pytest.raises(ValueError, match="read-only"):
        ro.fail("b", "x")
    fresh = FeatureStore(path, mode="w")
    assert len(fresh) == 0 and not os.path.exists(os.path.join(path, "clips", "a"))
    other = tmp_path / "not_a_store"
    other.mkdir()
    (other / "precious.txt").write_text("keep me")
    for mode in ("w", "a"):
        with pytest.raises(ValueError, match="not an msk feature store"):
            FeatureStore(other, mode=mode)
    assert (other / "precious.txt").read_text() == "keep me"
    (other / "zarr.json").write_text('{"zarr_format": 3, "node_type": "group", "attributes": {}}')
    with pytest.raises(ValueError, match="not an msk feature store"):
        FeatureStore(other, mode="r")


def test_failures_and_resume(path):
    store = FeatureStore(path, mode="w")
    store.put("good", features(0))
    store.fail("bad", "could not be decoded: junk")
    store.fail("later-good", "transient")
    assert store.failures() == {"bad": "could not be decoded: junk", "later-good": "transient"}
    assert store.status("bad") == "failed"
    with pytest.raises(KeyError, match="it failed: could not be decoded"):
        store.get("bad")
    reopened = FeatureStore(path)
    assert reopened.failures() == store.failures()
    assert reopened.keys() == ["good"]
    reopened.put("later-good", features(1))
    assert reopened.failures() == {"bad": "could not be decoded: junk"}
    assert FeatureStore(path, mode="r").failures() == {"bad": "could not be decoded: junk"}
    with pytest.raises(ValueError, match="already in feature store.*overwrite=True"):
        reopened.put("good", features(2))
    reopened.put("good", features(2), overwrite=True)
    np.testing.assert_array_equal(FeatureStore(path, mode="r").get("good"), features(2))
    reopened.fail("good", "ignored: it is done")
    assert "good" not in FeatureStore(path).failures()


def test_manifest_records(path):
    store = FeatureStore(path, mode="w")
    store.put("a", features(0))
    store.fail("b", "why")
    with open(os.path.join(path, "_state", "manifest.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [(r["key"], r["status"]) for r in records] == [("a", "done"), ("b", "failed")]
    assert records[0]["shape"] == list(features(0).shape) and records[0]["dtype"] == "float32"
    assert records[1]["reason"] == "why"


def test_repairs_after_crash_artefacts(path):
    """What a crash can leave: a torn manifest line, an entry without its record, a temp dir."""
    store = FeatureStore(path, mode="w")
    store.put("a", features(0))
    store.put("y" * 250, features(1))  # a cut name: its key is recovered from the attributes
    manifest = os.path.join(path, "_state", "manifest.jsonl")
    with open(manifest) as f:
        lines = f.readlines()
    with open(manifest, "w") as f:  # lose the second record, tear a third
        f.write(lines[0] + '{"key": "torn", "sta')
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    import socket

    leftover = os.path.join(path, "_state", "tmp", f"{socket.gethostname()}-{dead.stdout.strip()}-abc")
    os.makedirs(os.path.join(leftover, "c", "0"))
    reopened = FeatureStore(path)
    assert reopened.keys() == sorted(["a", "y" * 250])
    np.testing.assert_array_equal(reopened.get("y" * 250), features(1))
    assert not os.path.exists(leftover)
    with open(manifest) as f:
        records = [json.loads(line) for line in f]  # every line complete again
    assert records[-1]["key"] == "y" * 250 and records[-1]["recovered"] is True
    reopened.put("b", features(2))
    assert FeatureStore(path, mode="r").keys() == sorted(["a", "b", "y" * 250])


def test_corrupt_manifest_line_is_an_error(path):
    store = FeatureStore(path, mode="w")
    store.put("a", features(0))
    with open(os.path.join(path, "_state", "manifest.jsonl"), "a") as f:
        f.write("garbage\n")
        f.write('{"key": "b", "status": "failed", "reason": "r"}\n')
    with pytest.raises(ValueError, match="line 2 of .*manifest.jsonl is corrupt"):
        FeatureStore(path)


# -- concurrency and crashes -------------------------------------------------------------------


def test_concurrent_writers_from_a_thread_pool(path):
    store = FeatureStore(path, mode="w")

    def work(i):
        if i % 7 == 3:
            store.fail(f"k{i:03d}", f"reason {i}")
        else:
            store.put(f"k{i:03d}", features(i), meta={"i": i})

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(64)))
    failed = {f"k{i:03d}" for i in range(64) if i % 7 == 3}
    reopened = FeatureStore(path, mode="r")
    assert set(reopened.failures()) == failed
    assert len(reopened) == 64 - len(failed)
    for i in range(64):
        if f"k{i:03d}" not in failed:
            np.testing.assert_array_equal(reopened.get(f"k{i:03d}"), features(i))
    with open(os.path.join(path, "_state", "manifest.jsonl")) as f:
        assert len([json.loads(line) for line in f]) == 64


_WRITER = textwrap.dedent("""
    import sys, numpy as np
    from msk.store import FeatureStore
    store = FeatureStore(sys.argv[1], durable=False)
    base = np.random.default_rng(0).standard_normal((304, 2000)).astype(np.float32)
    for i in range(100000):
        if f"k{i}" in store:  # resume: skip what is done
            continue
        store.put(f"k{i}", base[: 300 + i % 5] + i, meta={"i": i})
""")


def _expected(i):
    return np.random.default_rng(0).standard_normal((304, 2000)).astype(np.float32)[: 300 + i % 5] + i


def test_sigkill_mid_put_leaves_no_corrupt_entry(path):
    """Kill a writer at several moments; every visible entry must be complete and exact."""
    FeatureStore(path, mode="w")
    entries = os.path.join(path, "clips")

    def n_entries():
        return sum(de.is_dir() for de in os.scandir(entries))

    killed_mid_put = 0
    for round_ in range(3):
        before = n_entries()
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, path])
        deadline = time.monotonic() + 60
        while n_entries() < before + 3 + round_ and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.003 * round_)  # land somewhere inside a put
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        killed_mid_put += len(os.listdir(os.path.join(path, "_state", "tmp"))) > 1
        store = FeatureStore(path)  # reopening repairs the manifest and removes the temp dir
        assert len(store) >= before + 3
        assert os.listdir(os.path.join(path, "_state", "tmp")) == ["zarr.json"]
    store = FeatureStore(path, mode="r")
    for key in store.keys():
        i = int(key[1:])
        np.testing.assert_array_equal(store.get(key), _expected(i), err_msg=key)
        assert store.meta(key) == {"i": i}
    print(f"killed inside a put in {killed_mid_put} of 3 rounds")


# -- models ------------------------------------------------------------------------------------


def test_other_model_rejected(path):
    store = FeatureStore(path, mode="w", model_info=MODEL_A)
    store.put("a", features(0))
    assert FeatureStore(path).model_info == MODEL_A
    assert FeatureStore(path, model_info=dict(MODEL_A)).keys() == ["a"]
    with pytest.raises(ValueError, match=r"feature store '.*features\.zarr' holds features of .*aaaaaaaaaaaa.*bbbbbbbbbbbb"):
        FeatureStore(path, model_info=MODEL_B)
    # a store of an unrecorded model that already has entries cannot be vouched for
    other = os.path.join(os.path.dirname(path), "other.zarr")
    FeatureStore(other).put("a", features(0))
    with pytest.raises(ValueError, match="unrecorded model"):
        FeatureStore(other, model_info=MODEL_A)
    # an empty store adopts the model given
    empty = os.path.join(os.path.dirname(path), "empty.zarr")
    FeatureStore(empty)
    assert FeatureStore(empty, model_info=MODEL_B).model_info == MODEL_B
    with pytest.raises(ValueError, match="7 columns.*have 6"):
        FeatureStore(empty, model_info=MODEL_B).put("wide", np.zeros((1, 7), np.float32))


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    from threadpoolctl import threadpool_limits

    clips = [msk.example_audio()]
    with threadpool_limits(1):  # threaded LAPACK eigh crawls on a loaded 2-core machine
        a = msk.MultiscaleFeatures(levels=2, n_clusters=8, n_samples=400, max_iter=3, random_state=0).fit(clips)
        b = msk.MultiscaleFeatures(levels=2, n_clusters=8, n_samples=400, max_iter=3, random_state=1).fit(clips)
    saved = tmp_path_factory.mktemp("models") / "a.npz"
    a.save(saved)
    return a, b, msk.MultiscaleFeatures.load(saved)


def test_model_fingerprint(tiny_models, path):
    a, b, a_loaded = tiny_models
    fa = model_fingerprint(a)
    assert fa == model_fingerprint(a_loaded)
    assert fa["fingerprint"] != model_fingerprint(b)["fingerprint"]
    assert fa["n_features"] == a.n_features_out_ == 16
    assert fa["params"]["representation"] == "laplacian"
    json.dumps(fa)  # serialisable
    FeatureStore(path, model_info=a).put("x", np.zeros((2, 16), np.float32))
    FeatureStore(path, model_info=a_loaded)  # the same model
    with pytest.raises(ValueError, match="refusing to mix"):
        FeatureStore(path, model_info=b)
    with pytest.raises(ValueError, match="8 columns.*have 16"):
        FeatureStore(path, model_info=a).put("y", np.zeros((2, 8), np.float32))


# -- read without msk --------------------------------------------------------------------------


def test_readable_with_plain_zarr(path):
    zarr = pytest.importorskip("zarr", minversion="3")
    store = FeatureStore(path, mode="w", model_info=MODEL_A)
    for i, key in enumerate(["clip/1.mp3", "clip 2", "x" * 300]):
        store.put(key, features(i, dtype=np.float32 if i else np.float64), meta={"i": i})
    store.fail("bad", "nope")
    root = zarr.open_group(path, mode="r")
    assert root.attrs["msk"]["model"] == MODEL_A
    assert sorted(root.group_keys()) == ["_state", "clips"]
    clips = root["clips"]
    found = {}
    for name, array in clips.arrays():
        found[array.attrs["key"]] = array
        assert name == entry_name(array.attrs["key"])
    assert sorted(found) == sorted(store.keys())
    for i, key in enumerate(["clip/1.mp3", "clip 2", "x" * 300]):
        np.testing.assert_array_equal(found[key][...], store.get(key))
        assert found[key].dtype == store.get(key).dtype
        assert found[key].attrs["meta"] == {"i": i}
        assert found[key].metadata.dimension_names == ("pool", "feature")
