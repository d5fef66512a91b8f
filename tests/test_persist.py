"""Model files: crafted and damaged files are refused with a clear ValueError, never a crash.

Every evil file is built from the shipped Laplacian model (a format-1 file) and loaded, then
used for extraction, in a fresh interpreter: a refused file must end in msk's own ValueError
(exit code 3 here), never in a signal (a negative return code) or another exception.
"""

import io
import json
import subprocess
import sys
import zipfile
from importlib import resources

import numpy as np
import pytest

import msk

SHIPPED = resources.files("msk").joinpath("models", "laplacian.npz")
pytestmark = pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped models are not installed")

LOAD_AND_EXTRACT = """
import sys, msk
try:
    model = msk.MultiscaleFeatures.load(sys.argv[1])
    msk.extract(msk.example_audio(), model=model)
except ValueError as exc:
    print(exc)
    sys.exit(3)
print("loaded")
"""


def members():
    with zipfile.ZipFile(io.BytesIO(SHIPPED.read_bytes())) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def header_of(files):
    blob = np.lib.format.read_array(io.BytesIO(files["header.npy"]), allow_pickle=False)
    return json.loads(blob.tobytes().decode())


def npy(array):
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asarray(array), allow_pickle=False)
    return out.getvalue()


def write(path, files, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def with_header(path, edit):
    files = members()
    header = header_of(files)
    edit(header)
    files["header.npy"] = npy(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    return write(path, files)


def refused(path):
    """The message of the ValueError that loading ``path`` (and extracting) ends in."""
    run = subprocess.run([sys.executable, "-c", LOAD_AND_EXTRACT, str(path)], capture_output=True,
                         text=True)
    assert run.returncode == 3, (run.returncode, run.stdout, run.stderr[-2000:])
    assert str(path) in run.stdout
    return run.stdout


def test_the_shipped_file_loads_in_a_subprocess(tmp_path):
    path = write(tmp_path / "same.npz", members())
    run = subprocess.run([sys.executable, "-c", LOAD_AND_EXTRACT, str(path)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "loaded", run.stderr[-2000:]


def test_window_width_contradicting_the_arrays(tmp_path):
    """frames=8 with arrays for 1 frame once reached the encoder (and crashed it)."""
    path = with_header(tmp_path / "frames8.npz", lambda h: h["params"].update(frames=8))
    assert "width=8 frames of 200 mel bands make 1600" in refused(path)


@pytest.mark.parametrize("param, value, message", [
    ("sr", 2**62, "`sr` must be an integer from 1000 to 384000"),
    ("sr", 10, "`sr` must be an integer from 1000 to 384000"),
    ("levels", 9, "`levels` must be an integer from 1 to 8"),
    ("pool", 0, "`pool_size` must be an integer from 1"),
    ("n_fft", 1000, "`n_fft` must be a power of two"),
    ("n_fft", 2**20, "`n_fft` must be an integer from 16 to 65536"),
    ("n_means", 7, "7 clusters stored for n_clusters=7"),
])
def test_parameters_out_of_bounds(tmp_path, param, value, message):
    path = with_header(tmp_path / f"{param}.npz", lambda h: h["params"].update({param: value}))
    out = refused(path)
    assert "corrupt msk model file" in out
    if param == "n_means":
        assert "500 clusters stored for n_clusters=7" in out
    else:
        assert message in out


@pytest.mark.parametrize("param, value, message", [
    # a ZCA header over PCA arrays: the dictionaries would not fit the whitened space
    ("whitening", "zca", "level 0: kmeans.cluster_centers_ has shape (500, "),
    ("n_means", [500] * 5, "`n_clusters` has 5 entries for levels=6"),
    ("n_means", [500] * 5 + [400], "level 5: 500 clusters stored for n_clusters=400"),
    ("pooled_normalization", "standardize", "`n_features_out` must be an integer from 1"),
])
def test_options_contradicting_the_arrays(tmp_path, param, value, message):
    path = with_header(tmp_path / f"{param}.npz", lambda h: h["params"].update({param: value}))
    out = refused(path)
    assert "corrupt msk model file" in out and message in out


def test_the_shipped_models_keep_their_fingerprint():
    """Stores made with the shipped model stay valid: parameters added since (at the values the
    file's model used) are left out of the hash. Update only when the shipped model changes."""
    fingerprint = msk.store.model_fingerprint(msk.MultiscaleFeatures.load(SHIPPED))["fingerprint"]
    assert fingerprint == "f4e687133403a6c6e9a33a56d340fc07d2a135f4c179621f040c87f8802076f5"


def test_a_zip_bomb_member_is_refused_before_decompressing(tmp_path):
    files = members()
    name = "level0.pca.mean_.npy"
    # 64 MB of zeros compress to ~64 kB; the header declares 200 floats.
    files[name] = files[name][:128] + bytes(64 << 20)
    path = write(tmp_path / "bomb.npz", files, compression=zipfile.ZIP_DEFLATED)
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(name).compress_size < 1 << 20 < zf.getinfo(name).file_size
    out = refused(path)
    assert "level 0: pca.mean_ would decompress to" in out and "(200,)" in out


def test_unknown_and_missing_members(tmp_path):
    files = members()
    files["payload.npy"] = npy(np.zeros(3))
    assert "unknown members 'payload.npy'" in refused(write(tmp_path / "extra.npz", files))
    files = members()
    del files["level5.kmeans.cluster_centers_.npy"]
    assert "missing arrays level 5: kmeans.cluster_centers_" in refused(write(tmp_path / "gap.npz", files))


def test_non_finite_arrays(tmp_path):
    files = members()
    mean = np.lib.format.read_array(io.BytesIO(files["level2.pca.mean_.npy"]), allow_pickle=False)
    mean[3] = np.nan
    files["level2.pca.mean_.npy"] = npy(mean)
    assert "level 2: pca.mean_ holds NaN" in refused(write(tmp_path / "nan.npz", files))


def test_a_deeply_nested_header(tmp_path):
    files = members()
    depth = 200_000
    files["header.npy"] = npy(np.frombuffer(("[" * depth + "]" * depth).encode(), dtype=np.uint8))
    assert "nested too deeply" in refused(write(tmp_path / "nested.npz", files))


def test_a_non_zip_file(tmp_path):
    path = tmp_path / "notzip.npz"
    path.write_bytes(np.lib.format.magic(1, 0) + b"\x00" * 200)  # an .npy, not an .npz
    out = refused(path)
    assert "not a readable msk model file: it is not an .npz (zip) archive" in out
    assert "allow_pickle" not in out


def test_format_1_files_load_with_the_new_names():
    model = msk.MultiscaleFeatures.load(SHIPPED)
    header = header_of(members())
    assert header["format_version"] == 1 and "frames" in header["params"]
    assert (model.width, model.n_clusters, model.pool_size, model.threshold) == (
        header["params"]["frames"], header["params"]["n_means"], header["params"]["pool"],
        header["params"]["alpha"])
    assert (model.n_fft, model.hop_length, model.n_mels) == (1024, 512, 200)
