"""Fused whiten -> encode -> pool (msk) against the plain NumPy pipeline, and against sgemm alone.

Run (one thread, as the targets are stated):

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python -m pytest bench/bench_encode.py \
        --benchmark-only --benchmark-min-rounds=15 --benchmark-autosave

Cases
-----
* ``clip``: a 29.1 s clip, all 6 Laplacian levels (level l has ceil(910 / 2^l) frames of 200
  bands, pooling windows of 128 / 2^l positions), for the paper's grid K in {200, 500, 1000},
  w in {1, 2, 4}. Four members per group: ``msk`` (``WindowEncoder._encode`` per level, the
  unchecked call ``MultiscaleFeatures.transform`` makes; factorisation chosen by FLOP count), ``numpy`` (windows copy -> -mean -> @ W.T -> @ D.T -> max-pool, the
  oracle in tests/_reference_encode.py) and ``sgemm`` (numpy matmul alone doing exactly the
  FLOPs msk does, on whole-level window matrices and into outputs prepared outside the timing:
  the BLAS rate to compare with) and ``scipy_sgemm`` (the same through scipy's BLAS, the library
  msk's kernel calls; it can differ from numpy's build).
* ``level``: the same per level for K = 500, w in {1, 4}.
* ``factorization``: level 0, K = 500, both factorisations at p / d in {0.25, 0.5, 0.75}: the
  one ``"auto"`` picks must be the faster.
* ``tile``: a 10-minute input (18 750 frames) at several tile sizes (how _TILE_BYTES was set).
* ``long``: the 10-minute input, msk vs NumPy, with tracemalloc peaks: msk's extra memory is
  one tile and the same as for the 29.1 s clip.
* ``paired``: the ``clip`` grid again, the four members interleaved round by round; the medians
  of the per-round ratios are the numbers to quote when other jobs load the machine.
* ``options``: level 0 of the clip (910 frames), K = 500, w in {1, 4}: each encoder option
  (threshold, split, triangle, window standardisation, combinations, three pooling statistics)
  interleaved round by round with the linear encoding; the median per-round time ratio to
  linear is each option's cost.

The PCA dimension is p = d / 2 (d = 200 w): the example clip shipped with msk keeps
146 / 200, 272 / 400 and 460 / 800 components at 99 % variance for w = 1, 2, 4 (ratios 0.73,
0.68, 0.58), and a larger corpus spreads the variance over fewer; the factorisation bench covers
the range. Frames and model are random (GEMM time does not depend on the values).

After the timings, a table of ratios is printed: msk GFLOP/s as a fraction of sgemm's on the
same FLOPs, msk's speed-up over the NumPy pipeline, and tracemalloc peaks. The machine is shared
with other jobs, so absolute numbers are noisy; medians are reported.
"""

import os
import time
import tracemalloc

import numpy as np
import pytest
from scipy.linalg.blas import sgemm as scipy_sgemm
from threadpoolctl import threadpool_info, threadpool_limits

import msk._encoding as encoding_mod
from msk._encoding import WindowEncoder, pooled_positions

from _reference_encode import encode_pool as numpy_pipeline
from _reference_encode import windows as window_copy

N_MELS = 200
CLIP_FRAMES = 910  # 29.1 s at 16 kHz, hop 512
LONG_FRAMES = 18_750  # 10 minutes
LEVELS = 6
RESULTS = {}
PAIRED_ROUNDS = 30


@pytest.fixture(scope="module", autouse=True)
def one_thread(terminal_summary):
    with threadpool_limits(1):
        yield
    terminal_summary(RESULTS, _write_summary)


def _threads():
    return {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
        "blas_threads": [i["num_threads"] for i in threadpool_info()],
    }


def make_model(seed, width, K, p_ratio=0.5):
    rng = np.random.default_rng(seed)
    d = N_MELS * width
    p = int(round(p_ratio * d))
    mean = rng.standard_normal(d)
    whitening = rng.standard_normal((p, d)) / np.sqrt(d)
    dictionary = rng.standard_normal((K, p))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    return mean, whitening, dictionary


def level_frames(seed, n_frames=CLIP_FRAMES):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((-(-n_frames // 2**lev), N_MELS), dtype=np.float32) for lev in range(LEVELS)]


class Case:
    """Everything for one (levels, w, K) case, built outside the timings.

    Every level has its own model (as in MultiscaleFeatures: PCA and dictionary are learned per
    level), and every member uses the same per-level matrices, so weight traffic is the same.
    """

    def __init__(self, width, K, levels, p_ratio=0.5, factorization="auto", pool0=128, n_frames=CLIP_FRAMES):
        self.width, self.K = width, K
        frames = level_frames(7, n_frames)
        self.frames = [frames[lev] for lev in levels]
        self.pools = [max(1, pool0 >> lev) for lev in levels]
        models = [make_model(width * 1000 + K + 7 * lev, width, K, p_ratio) for lev in levels]
        self.models32 = [[a.astype(np.float32) for a in m] for m in models]
        self.encoders = [WindowEncoder(*m, width=width, pool=pool, factorization=factorization)
                         for m, pool in zip(models, self.pools)]
        self.run_msk()  # cast the float32 operands once
        self.factorization = self.encoders[0].factorization_
        p = models[0][1].shape[0]
        d = N_MELS * width
        self.msk_flops = 0
        self.numpy_flops = 0
        self.windows, self.operands, self.sgemm_out = [], [], []
        for S, enc in zip(self.frames, self.encoders):
            n_pos = pooled_positions(S.shape[0], width, enc.pool)[1]
            self.msk_flops += enc.flops_per_position_ * n_pos
            self.numpy_flops += 2 * (S.shape[0] - width + 1) * (d * p + p * K)
            self.windows.append(np.ascontiguousarray(window_copy(S, width)[:n_pos]))
            first, second = enc._operands_for(np.dtype(np.float32))[:2]
            second = second if second.shape[0] else None
            self.operands.append((first, second))
            # sgemm writes into preallocated outputs: the pure BLAS rate, no allocation.
            self.sgemm_out.append((np.empty((n_pos, first.shape[1]), np.float32),
                                   None if second is None else np.empty((n_pos, K), np.float32)))

    def run_msk(self):
        # The path MultiscaleFeatures.transform takes: the clip is validated once, and every
        # level, computed by msk, is encoded without re-checking it (the finite check of a
        # 910 x 200 level costs ~16 us; the NumPy pipeline does no check either).
        return [enc._encode(S) for enc, S in zip(self.encoders, self.frames)]

    def run_numpy(self):
        return [numpy_pipeline(S, *m, width=self.width, pool=pool)
                for S, m, pool in zip(self.frames, self.models32, self.pools)]

    def run_scipy_sgemm(self):
        # The same products through scipy's BLAS (the library msk's kernel calls), on
        # column-major views of the row-major operands, as the kernel does.
        outs = []
        for X, (first, second), (o1, o2) in zip(self.windows, self.operands, self.sgemm_out):
            h = scipy_sgemm(1.0, first.T, X.T, c=o1.T, overwrite_c=1)
            outs.append(h if second is None else scipy_sgemm(1.0, second.T, h, c=o2.T, overwrite_c=1))
        return outs

    def run_sgemm(self):
        outs = []
        for X, (first, second), (o1, o2) in zip(self.windows, self.operands, self.sgemm_out):
            h = np.matmul(X, first, out=o1)
            outs.append(h if second is None else np.matmul(h, second, out=o2))
        return outs

    def check(self, outs):
        for got, want in zip(outs, self.run_numpy()):
            np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)


def _peak(fn):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        out = fn()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak - sum(o.nbytes for o in out)


def _run(benchmark, case, member, key):
    fn = {"msk": case.run_msk, "numpy": case.run_numpy, "sgemm": case.run_sgemm,
          "scipy_sgemm": case.run_scipy_sgemm}[member]
    out = benchmark(fn)
    median = benchmark.stats.stats.median
    flops = case.numpy_flops if member == "numpy" else case.msk_flops
    info = {"gflops": flops / median / 1e9, "median_ms": median * 1e3, "factorization": case.factorization,
            **_threads()}
    info["min_ms"] = benchmark.stats.stats.min * 1e3
    if member in ("msk", "numpy"):
        info["extra_peak_bytes"] = _peak(fn)
    benchmark.extra_info.update(info)
    RESULTS.setdefault(key, {})[member] = info
    if member == "msk":
        case.check(out)
    elif member in ("sgemm", "scipy_sgemm"):
        assert len(out) == len(case.frames) and all(np.isfinite(o).all() for o in out)
    else:
        assert all(np.isfinite(o).all() for o in out)


_CASES = {}


def _case(*args, **kwargs):
    key = (args, tuple(sorted(kwargs.items())))
    if key not in _CASES:
        _CASES[key] = Case(*args, **kwargs)
    return _CASES[key]


MEMBERS = ["msk", "numpy", "sgemm", "scipy_sgemm"]


@pytest.mark.parametrize("member", MEMBERS)
@pytest.mark.parametrize("K", [200, 500, 1000])
@pytest.mark.parametrize("width", [1, 2, 4])
def test_clip(benchmark, width, K, member):
    benchmark.group = f"clip w={width} K={K}"
    _run(benchmark, _case(width, K, tuple(range(LEVELS))), member, ("clip", width, K))


@pytest.mark.parametrize("member", MEMBERS)
@pytest.mark.parametrize("level", range(LEVELS))
@pytest.mark.parametrize("width", [1, 4])
def test_level(benchmark, width, level, member):
    benchmark.group = f"level w={width} K=500 level={level}"
    _run(benchmark, _case(width, 500, (level,)), member, ("level", width, level))


@pytest.mark.parametrize("factorization", ["fused", "staged"])
@pytest.mark.parametrize("p_ratio", [0.25, 0.5, 0.75])
@pytest.mark.parametrize("width", [1, 4])
def test_factorization(benchmark, width, p_ratio, factorization):
    benchmark.group = f"factorization w={width} K=500 p/d={p_ratio}"
    case = _case(width, 500, (0,), p_ratio=p_ratio, factorization=factorization)
    auto = _case(width, 500, (0,), p_ratio=p_ratio).factorization
    out = benchmark(case.run_msk)
    benchmark.extra_info.update({"auto_choice": auto, "flops": case.msk_flops, **_threads()})
    RESULTS.setdefault(("factorization", width, p_ratio), {})[factorization] = {
        "median_ms": benchmark.stats.stats.median * 1e3, "auto": auto}
    case.check(out)


@pytest.mark.parametrize("tile", [128, 256, 384, 512, 768, 1024])
@pytest.mark.parametrize("width,K", [(1, 500), (4, 500), (4, 1000)])
def test_tile_rows(benchmark, monkeypatch, width, K, tile):
    benchmark.group = f"tile w={width} K={K} (10-minute level 0)"
    monkeypatch.setattr(encoding_mod, "_MIN_TILE", tile)
    monkeypatch.setattr(encoding_mod, "_MAX_TILE", tile)
    monkeypatch.setattr(encoding_mod, "_TILE_BYTES", 1 << 40)
    case = _case(width, K, (0,), n_frames=LONG_FRAMES)
    n_pos = pooled_positions(LONG_FRAMES, width, 128)[1]
    assert case.encoders[0].tile_rows(n_pos) == tile
    out = benchmark(case.run_msk)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update({"gflops": case.msk_flops / median / 1e9, **_threads()})
    RESULTS.setdefault(("tile", width, K), {})[tile] = case.msk_flops / median / 1e9
    assert out[0].shape == (n_pos // 128, K)


@pytest.mark.parametrize("member", ["msk", "numpy"])
@pytest.mark.parametrize("width", [1, 4])
def test_long(benchmark, width, member):
    benchmark.group = f"10-minute input w={width} K=500 level 0"
    case = _case(width, 500, (0,), n_frames=LONG_FRAMES)
    fn = case.run_msk if member == "msk" else case.run_numpy
    benchmark.pedantic(fn, rounds=5, warmup_rounds=1)
    peak = _peak(fn)
    short_peak = _peak(_case(width, 500, (0,)).run_msk) if member == "msk" else None
    benchmark.extra_info.update({"extra_peak_bytes": peak, "clip_29s_peak_bytes": short_peak, **_threads()})
    RESULTS.setdefault(("long", width), {})[member] = {
        "median_ms": benchmark.stats.stats.median * 1e3, "peak": peak, "peak_29s": short_peak}
    if member == "msk":
        assert peak < 4 << 20  # one tile (<= 3 MiB of codes) plus small objects


@pytest.mark.parametrize("K", [200, 500, 1000])
@pytest.mark.parametrize("width", [1, 2, 4])
def test_paired(benchmark, width, K):
    """Interleaved rounds of the four members: ratios robust to load from other jobs.

    Each round runs msk, numpy, sgemm and scipy_sgemm once each, back to back, so a burst of
    load hits all of them alike; the summary reports the median of the per-round ratios.
    """
    benchmark.group = "paired ratios (29.1 s clip, 6 levels)"
    case = _case(width, K, tuple(range(LEVELS)))
    fns = {m: getattr(case, f"run_{m}") for m in MEMBERS}
    times = {m: [] for m in MEMBERS}

    def rounds():
        for _ in range(PAIRED_ROUNDS):
            for m, fn in fns.items():
                t = time.perf_counter()
                fn()
                times[m].append(time.perf_counter() - t)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    t = {m: np.array(v) for m, v in times.items()}
    info = {
        "factorization": case.factorization,
        "msk_min_ms": t["msk"].min() * 1e3,
        "msk_gflops_min": case.msk_flops / t["msk"].min() / 1e9,
        "sgemm_gflops_min": case.msk_flops / t["sgemm"].min() / 1e9,
        "numpy_over_msk": float(np.median(t["numpy"] / t["msk"])),
        "sgemm_over_msk": float(np.median(t["sgemm"] / t["msk"])),
        "scipy_over_msk": float(np.median(t["scipy_sgemm"] / t["msk"])),
        **_threads(),
    }
    benchmark.extra_info.update(info)
    RESULTS[("paired", width, K)] = info
    case.check(case.run_msk())


def _write_summary(w):
    _write_options(w)
    w("")
    w("bench_encode summary: median ms (min ms); rate = sgemm time / msk time on the same FLOPs")
    w("  numpy sgemm = numpy's BLAS; scipy sgemm = the BLAS msk calls; one BLAS thread; shared machine, noisy")
    w(f" {'case':<22} {'fact.':<6} {'msk':>15} {'numpy pipe':>15} {'numpy sgemm':>15} {'scipy sgemm':>15}"
      f" | {'msk GF/s':>8} {'sgemm GF/s':>10} {'rate med':>8} {'rate min':>8} {'vs scipy':>8}"
      f" {'numpy/msk':>9} | {'msk peak':>9} {'numpy peak':>10}")
    for key in sorted(k for k in RESULTS if k[0] in ("clip", "level")):
        r = RESULTS[key]
        if not set(MEMBERS) <= r.keys():
            continue
        m, n, s, c = (r[k] for k in MEMBERS)
        label = f"{key[0]} w={key[1]} {'K' if key[0] == 'clip' else 'level'}={key[2]}"

        def t(x):
            return f"{x['median_ms']:7.3f} ({x['min_ms']:.3f})"

        w(f" {label:<22} {m['factorization']:<6} {t(m):>15} {t(n):>15} {t(s):>15} {t(c):>15}"
          f" | {m['gflops']:8.1f} {s['gflops']:10.1f} {s['median_ms'] / m['median_ms']:8.1%}"
          f" {s['min_ms'] / m['min_ms']:8.1%} {c['min_ms'] / m['min_ms']:8.1%}"
          f" {n['median_ms'] / m['median_ms']:8.2f}x | {m['extra_peak_bytes'] / 2**20:6.2f}MiB"
          f" {n['extra_peak_bytes'] / 2**20:8.2f}MiB")
    paired = sorted(k for k in RESULTS if k[0] == "paired")
    if paired:
        w("")
        w(f" paired rounds (median of {PAIRED_ROUNDS} per-round ratios; >1 means msk is faster)")
        w(f" {'case':<14} {'fact.':<6} {'msk min ms':>10} {'msk GF/s':>8} {'sgemm GF/s':>10}"
          f" {'numpy/msk':>9} {'sgemm/msk':>9} {'scipy/msk':>9}")
        for key in paired:
            r = RESULTS[key]
            w(f" w={key[1]} K={key[2]:<8} {r['factorization']:<6} {r['msk_min_ms']:10.3f} {r['msk_gflops_min']:8.1f}"
              f" {r['sgemm_gflops_min']:10.1f} {r['numpy_over_msk']:9.2f} {r['sgemm_over_msk']:9.2f}"
              f" {r['scipy_over_msk']:9.2f}")
        w("")
    for key in sorted(k for k in RESULTS if k[0] == "factorization"):
        r = RESULTS[key]
        if {"fused", "staged"} <= r.keys():
            best = min(("fused", "staged"), key=lambda f: r[f]["median_ms"])
            w(f" factorization w={key[1]} p/d={key[2]}: fused {r['fused']['median_ms']:.3f} ms,"
              f" staged {r['staged']['median_ms']:.3f} ms; auto picks {r['fused']['auto']}, faster is {best}")
    for key in sorted(k for k in RESULTS if k[0] == "tile"):
        w(f" tile rows w={key[1]} K={key[2]}: " + ", ".join(f"{t}: {g:.0f} GF/s" for t, g in sorted(RESULTS[key].items())))
    for key in sorted(k for k in RESULTS if k[0] == "long"):
        r = RESULTS[key]
        if {"msk", "numpy"} <= r.keys():
            w(f" 10-minute w={key[1]}: msk {r['msk']['median_ms']:.1f} ms, extra peak {r['msk']['peak'] / 2**20:.2f} MiB"
              f" (29.1 s clip: {r['msk']['peak_29s'] / 2**20:.2f} MiB); numpy {r['numpy']['median_ms']:.1f} ms,"
              f" extra peak {r['numpy']['peak'] / 2**20:.1f} MiB")



OPTION_ROUNDS = 40
# name -> WindowEncoder options; "linear" (max pooling) is the reference of every ratio
OPTIONS = {
    "linear": {},
    "threshold": {"encoding": "threshold"},
    "split": {"encoding": "split"},
    "triangle": {"encoding": "triangle"},
    "standardize": {"normalization": "standardize"},
    "standardize+split": {"normalization": "standardize", "encoding": "split"},
    "standardize+triangle": {"normalization": "standardize", "encoding": "triangle"},
    "linear max+mean+std": {"pooling": ("max", "mean", "std")},
    "split max+mean+std": {"encoding": "split", "pooling": ("max", "mean", "std")},
}


@pytest.mark.parametrize("width", [1, 4])
def test_options(benchmark, width):
    """Each encoder option's time over the linear encoding's, rounds interleaved (level 0, K = 500)."""
    benchmark.group = "encoder options (level 0, 910 frames, K=500)"
    mean, whitening, dictionary = make_model(width * 1000 + 507, width, 500)
    rng = np.random.default_rng(11)
    # log-mel-like frames (values about -14 .. 5) so the standardisation sees realistic windows
    frames = (np.repeat(rng.uniform(-9, 1, 114), 8)[:CLIP_FRAMES, None] + np.linspace(0, -4, N_MELS)
              + rng.normal(0, 1.5, (CLIP_FRAMES, N_MELS))).astype(np.float32)
    encoders = {name: WindowEncoder(mean, whitening, dictionary, width=width, pool=128, **opts)
                for name, opts in OPTIONS.items()}
    for enc in encoders.values():
        enc._encode(frames)  # cast the float32 operands once
    times = {name: [] for name in OPTIONS}

    def rounds():
        for _ in range(OPTION_ROUNDS):
            for name, enc in encoders.items():
                t = time.perf_counter()
                enc._encode(frames)
                times[name].append(time.perf_counter() - t)

    benchmark.pedantic(rounds, rounds=1, iterations=1)
    t = {name: np.array(v) for name, v in times.items()}
    info = {name: {"median_ms": float(np.median(v)) * 1e3, "min_ms": float(v.min()) * 1e3,
                   "ratio": float(np.median(v / t["linear"])),
                   "factorization": encoders[name].factorization_}
            for name, v in t.items()}
    benchmark.extra_info.update({"options": info, **_threads()})
    RESULTS[("options", width)] = info
    f64 = frames.astype(np.float64)
    for name, opts in OPTIONS.items():
        enc = encoders[name]
        params = {k: v for k, v in opts.items() if k != "normalization"}
        if "normalization" in opts:
            params.update(normalization="standardize", normalization_eps=enc.normalization_eps)
        want = numpy_pipeline(f64, mean, whitening, dictionary, width=width, pool=128, **params)
        np.testing.assert_allclose(enc._encode(frames), want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


def _write_options(w):
    keys = sorted(k for k in RESULTS if k[0] == "options")
    if not keys:
        return
    w("")
    w(f" encoder options, level 0 (910 x 200), K = 500: median of {OPTION_ROUNDS} per-round time ratios to linear")
    w(f" {'option':<22} " + " ".join(f"{'w=' + str(k[1]) + ' ms':>9} {'ratio':>6} {'fact.':>6}" for k in keys))
    for name in OPTIONS:
        w(f" {name:<22} " + " ".join(f"{RESULTS[k][name]['median_ms']:9.3f} {RESULTS[k][name]['ratio']:6.2f}"
                                      f" {RESULTS[k][name]['factorization']:>6}" for k in keys))
