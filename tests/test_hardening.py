"""Crafted and careless inputs: each gives a clear error (or works), never a crash, hang or
gigabyte allocation. Crash- and hang-prone cases run in a child process, so that a crash or a
hang (the child's timeout) fails the test instead of killing pytest."""

import io
import os
import struct
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import msk
from msk import cli

SHIPPED = resources.files("msk").joinpath("models", "laplacian.npz")
needs_models = pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped models are not installed")

# Peak resident memory allowed to a child that imports msk, loads the shipped model and
# extracts: importing and the model take about 140 MB; the bound leaves the output and a few
# bounded blocks, far below the gigabytes these inputs took.
PEAK_MB = 300

# The child's own peak resident memory: VmHWM belongs to the address space made by exec,
# whereas ru_maxrss survives exec and would report pytest's own peak.
PEAK = """
import sys
def peak_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
"""
needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")


def run_child(code, *args, timeout=120):
    """Run ``code`` in a fresh interpreter; return (returncode, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode >= 0, f"killed by signal {-proc.returncode}: {proc.stderr[-2000:]}"
    return proc.returncode, proc.stdout, proc.stderr


def noise_wav(path, n, rate):
    y = (np.random.default_rng(0).standard_normal(n) * 0.1).astype(np.float32)
    sf.write(path, y, rate, subtype="PCM_16")
    return path


def expect_value_error(body, *args, timeout=120):
    code = f"import sys, numpy as np, msk\ntry:\n{body}\nexcept ValueError as exc:\n    print(exc)\n    sys.exit(3)\n"
    rc, out, err = run_child(code, *args, timeout=timeout)
    assert rc == 3, f"rc={rc}: {out} {err[-2000:]}"
    return out


# ---------------------------------------------------------------- 2: huge sample rates


@needs_models
def test_item2_extract_with_sr_1e15_is_refused_not_hung():
    # soxr never finished on this; the child's timeout is the failure signal.
    out = expect_value_error("    msk.extract(np.zeros(16000, np.float32), sr=10**15)", timeout=60)
    assert "`sr` must be a sample rate between 1 and 1000000 Hz" in out and "1000000000000000" in out


@needs_models
def test_item2_extract_with_sr_1e12_names_the_rate():
    with pytest.raises(ValueError, match=r"`sr` must be a sample rate between 1 and 1000000 Hz; got 1000000000000\."):
        msk.extract(np.zeros(16000, np.float32), sr=10**12)


def test_item2_load_audio_with_sr_1e9_is_a_value_error_not_bad_alloc():
    out = expect_value_error("    msk.load_audio(msk.example_audio(), sr=10**9)", timeout=60)
    assert "`sr` must be a sample rate" in out


def test_item2_a_file_header_claiming_an_absurd_rate(tmp_path):
    path = noise_wav(tmp_path / "fast.wav", 16000, 16000)
    data = bytearray(path.read_bytes())
    assert data[24:28] == struct.pack("<I", 16000)
    data[24:28] = struct.pack("<I", 2_000_000_000)  # sample rate
    data[28:32] = struct.pack("<I", 4_000_000_000)  # byte rate
    path.write_bytes(bytes(data))
    out = expect_value_error("    msk.load_audio(sys.argv[1])", path, timeout=60)
    assert "fast.wav" in out and "declares a sample rate of 2000000000 Hz" in out


def test_item2_one_check_for_every_rate_argument():
    from msk._validation import SAMPLE_RATE_RANGE

    assert SAMPLE_RATE_RANGE == (1, 1_000_000)
    with pytest.raises(ValueError, match="`source_sr` must be a sample rate"):
        msk.audio.stream(np.zeros(10, np.float32), source_sr=2_000_000)
    with pytest.raises(ValueError, match="`sr` must be a sample rate"):
        msk.MultiscaleFeatures(sr=0).fit([np.zeros(16000, np.float32)])


# ---------------------------------------------------------------- 3: memory bounded by the output


@needs_models
@needs_proc
def test_item3_a_small_file_at_1_hz_is_extracted_in_bounded_memory(tmp_path):
    # 8 KB of 16-bit samples at 1 Hz: 4000 s of audio, 64 M samples at 16 kHz (the whole
    # file in one block was 256 MB as float32 and soxr's buffers several times that).
    path = noise_wav(tmp_path / "slow.wav", 4000, 1)
    code = PEAK + "import msk\nF = msk.extract(sys.argv[1])\nprint(F.shape[0], F.shape[1], peak_mb())\n"
    rc, out, err = run_child(code, path, timeout=300)
    assert rc == 0, err[-2000:]
    n_pools, n_features, peak = out.split()
    n_frames = 1 + 4000 * 16000 // 512  # centred frames
    assert int(n_pools) == -(-n_frames // 128)  # the last window kept
    assert int(n_features) == msk.batch.default_model().n_features_out_
    assert float(peak) < PEAK_MB, f"peak {peak} MB"


def test_item3_stream_blocks_are_bounded_after_resampling():
    blocks = msk.audio.stream(np.zeros(1000, np.float32), sr=16000, source_sr=1)
    sizes = [b.shape[0] for b in blocks]
    assert sum(sizes) == 16_000_000
    assert max(sizes) <= 200_000  # 64 * (800 + 1024) samples: soxr's largest burst per step


@needs_models
@needs_proc
def test_item3_a_waveform_too_long_to_analyse_is_refused_before_allocating():
    # 5e6 samples at 1 Hz: 58 days of audio (16.9 GB before MemoryError).
    code = PEAK + """import numpy as np, msk
try:
    msk.extract(np.zeros(5_000_000, np.float32), sr=1)
except ValueError as exc:
    print(peak_mb(), exc)
    sys.exit(3)
"""
    rc, out, err = run_child(code, timeout=120)
    assert rc == 3, err[-2000:]
    peak, message = out.split(" ", 1)
    assert "5000000 samples at 1 Hz" in message and "msk.audio.MAX_DURATION" in message
    assert float(peak) < PEAK_MB


def test_item3_a_file_declaring_more_than_max_duration_is_refused(tmp_path):
    # 200 000 frames at 2 Hz is 27.8 hours of audio: refused from the header.
    path = noise_wav(tmp_path / "long.wav", 200_000, 2)
    with pytest.raises(ValueError, match=r"long.wav' declares 200000 samples at 2 Hz .*MAX_DURATION"):
        msk.load_audio(path)


# ---------------------------------------------------------------- 10: truncated MP3s


def test_item10_truncated_mp3_with_a_length_header_is_refused_and_limits_documented(tmp_path):
    y = (np.random.default_rng(1).standard_normal(16000 * 20) * 0.1).astype(np.float32)
    full = tmp_path / "full.mp3"
    sf.write(full, y, 16000, format="MP3", bitrate_mode="CONSTANT")
    data = full.read_bytes()
    for fraction in (0.1, 0.5, 0.9):
        cut = tmp_path / f"cut{fraction}.mp3"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(ValueError, match=rf"cut{fraction}.mp3' is truncated: "):
            msk.load_audio(cut)
    assert msk.load_audio(full).shape[0] == 320000
    # The shipped clip has no length header (CBR, 144-byte frames): a cut inside a frame is
    # found by walking the frames; a cut on a frame boundary cannot be detected (documented).
    clip = Path(msk.example_audio()).read_bytes()
    cut = tmp_path / "clip10.mp3"
    cut.write_bytes(clip[: len(clip) // 10])
    with pytest.raises(ValueError, match=r"clip10.mp3' is truncated: the file ends inside an MP3 frame"):
        msk.load_audio(cut)
    with pytest.raises(ValueError, match="ends inside an MP3 frame"):
        list(msk.audio.stream(cut))
    for doc in (msk.audio.stream.__doc__, msk.load_audio.__doc__):
        assert "frame boundary" in " ".join(doc.split())


# ---------------------------------------------------------------- 11: misleading errors


def test_item11_a_text_file_named_mp3_is_not_audio(tmp_path):
    path = tmp_path / "notes.mp3"
    path.write_text("hello world " * 100)
    with pytest.raises(ValueError, match=r"notes.mp3' could not be decoded as audio: it is not in an audio format") as info:
        msk.load_audio(path)
    assert "pipe" not in str(info.value) and "does not exist" not in str(info.value)


def test_item11_a_symlink_loop_is_named(tmp_path):
    loop = tmp_path / "loop.wav"
    os.symlink(loop, loop)
    with pytest.raises(ValueError, match="loop.wav' is a symbolic link loop"):
        msk.load_audio(loop)
    dangling = tmp_path / "dangling.wav"
    os.symlink(tmp_path / "gone.wav", dangling)
    with pytest.raises(FileNotFoundError, match="dangling.wav' is a symbolic link to a missing file"):
        msk.load_audio(dangling)


def test_item11_a_fifo_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    out = expect_value_error("    msk.load_audio(sys.argv[1])", fifo, timeout=60)
    assert "is not a regular file" in out


def test_item11_too_loud_float64_is_not_told_to_pass_float64():
    y = np.full(4096, 1e300)
    with pytest.raises(ValueError, match="too loud for float64") as info:
        msk.log_melspectrogram(y, sr=16000)
    assert "pass float64" not in str(info.value)
    with pytest.raises(ValueError, match="or pass float64"):
        msk.log_melspectrogram(np.full(4096, 1e30, np.float32), sr=16000)


CLI = "import sys\nfrom msk import cli\nsys.exit(cli.main(sys.argv[1:]))\n"


def test_item11_cli_memory_error_is_one_line(tmp_path, monkeypatch, capsys):
    # No parameter sizes an allocation any more (a huge --n-samples samples every window there is),
    # so running out of memory is simulated where fitting allocates most.
    def fit(self, clips, y=None, *, progress=None):
        raise MemoryError("Unable to allocate 745. GiB for an array")

    monkeypatch.setattr(msk.MultiscaleFeatures, "fit", fit)
    rc = cli.main(["fit", msk.example_audio(), "-o", str(tmp_path / "m.npz"), "--levels", "2", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("msk fit: error: out of memory (Unable to allocate 745. GiB")
    assert "--n-samples" in err


@needs_models
def test_item11_cli_scheduler_without_dask_is_one_line(tmp_path):
    code = "import sys\nsys.modules['distributed'] = None  # as if not installed\n" + CLI
    rc, out, err = run_child(code, "extract", msk.example_audio(), msk.example_audio(), "-o",
                             tmp_path / "s.zarr", "--scheduler", "tcp://127.0.0.1:1", "--quiet",
                             timeout=300)
    assert rc == 1 and "Traceback" not in err, err[-2000:]
    assert "pip install 'msk[dask]'" in err


@needs_models
def test_item11_cli_deeply_nested_model_header_is_one_line(tmp_path):
    with zipfile.ZipFile(io.BytesIO(SHIPPED.read_bytes())) as zf:
        files = {i.filename: zf.read(i) for i in zf.infolist()}
    depth = 200_000
    blob = io.BytesIO()
    np.lib.format.write_array(blob, np.frombuffer(("[" * depth + "]" * depth).encode(), np.uint8),
                              allow_pickle=False)
    files["header.npy"] = blob.getvalue()
    model = tmp_path / "nested.npz"
    with zipfile.ZipFile(model, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    rc, out, err = run_child(CLI, "extract", msk.example_audio(), "-o", tmp_path / "x.npy",
                             "--model", model, timeout=300)
    assert rc == 1 and "Traceback" not in err, err[-2000:]
    assert "nested too deeply" in err


def test_item11_cli_ctrl_c_is_stopped_exit_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(msk, "extract_many", interrupted)
    monkeypatch.setattr(msk, "extract", interrupted)
    store = tmp_path / "store.zarr"
    assert cli.main(["extract", msk.example_audio(), msk.example_audio(), "-o", str(store), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("msk extract: stopped:") and "rerun the same command to resume" in err
    assert str(store) in err and "Traceback" not in err
    assert cli.main(["extract", msk.example_audio(), "-o", str(tmp_path / "x.npy")]) == 130
    err = capsys.readouterr().err
    assert err.strip() == "msk extract: stopped: interrupted."


def test_item11_cli_ctrl_c_in_a_child_process(tmp_path):
    code = ("import sys, msk\nfrom msk import cli\n"
            "def stop(*a, **k):\n    raise KeyboardInterrupt\n"
            "msk.MultiscaleFeatures.fit = stop\nsys.exit(cli.main(sys.argv[1:]))\n")
    rc, out, err = run_child(code, "fit", msk.example_audio(), "-o", tmp_path / "m.npz", timeout=120)
    assert rc == 130 and "Traceback" not in err
    assert err.strip().endswith("msk fit: stopped: interrupted.")


# ---------------------------------------------------------------- a batch goes on past a bad clip


@needs_models
def test_batch_records_a_non_finite_clip_and_goes_on(tmp_path):
    with np.load(Path(str(SHIPPED))) as z:
        arrays = dict(z)
    arrays["level0.pca.components_"] = arrays["level0.pca.components_"].astype(np.float64) * 1e200
    np.savez(tmp_path / "scaled.npz", **arrays)
    try:
        model = msk.MultiscaleFeatures.load(tmp_path / "scaled.npz")
    except ValueError:
        pytest.skip("the scaled model is refused when loading (also a clear error)")
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(16000 * 5, np.float32), 16000)
    loud = tmp_path / "loud.wav"
    sf.write(loud, (np.random.default_rng(2).standard_normal(16000 * 5) * 0.5).astype(np.float32), 16000)
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    summary = msk.extract_many([quiet, loud, text], store=tmp_path / "s.zarr", model=model,
                               keys=["quiet", "loud", "text"], n_jobs=2, progress=False)
    assert "loud" in summary.failed and "not finite" in summary.failed["loud"]
    assert "text" in summary.failed and "could not be decoded as audio" in summary.failed["text"]
    # Whatever the scaled model makes of silence, it is stored or failed with its reason;
    # the batch reaches every clip.
    assert summary.done + len(summary.failed) == 3
