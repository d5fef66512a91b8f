"""Hypothesis fuzzing of every compiled kernel entry, run in a child process.

``tests/test_kernels.py`` runs this file with ``python tests/_fuzz_kernels.py``: a kernel
that reads or writes out of bounds may crash the process, and a crash must fail that test
instead of killing pytest. Each fuzz target calls one kernel entry (directly, with shapes
drawn near the valid ones and often inconsistent, and through its Python wrapper, with
odd dtypes, layouts and values) and checks that it either raises ValueError/TypeError or
returns what a NumPy reference computes. Exit status 0 means every target passed.

The number of examples per target is ``MSK_FUZZ_EXAMPLES`` (default 200); the examples are
derandomised so that CI runs the same ones every time. Set ``MSK_FUZZ_SEED`` to draw others.
"""

import collections
import faulthandler
import os
import sys
import traceback
import warnings

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import msk
from msk._core import _encode, _kmeans, _pyramid, _spectral
from msk._encoding import WindowEncoder

faulthandler.enable()

N_EXAMPLES = int(os.environ.get("MSK_FUZZ_EXAMPLES", "200"))
SEED = os.environ.get("MSK_FUZZ_SEED")
FUZZ = settings(
    max_examples=N_EXAMPLES,
    deadline=None,
    derandomize=SEED is None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
CLEAN = (ValueError, TypeError)
DTYPES = (np.float32, np.float64)
ACCEPTED = collections.Counter()  # calls that returned a result, per target
RTOL = {np.float32: 2e-3, np.float64: 1e-9}  # sums of a few hundred products in float32


class Sizes:
    """Draws array sizes for one example: all valid, one of them wrong, or any of them wrong.

    ``sizes(n)`` returns ``n``, or (for the chosen size, or at random) ``n - 1``, ``n + 1``
    or 0, so that about half the examples reach the kernel's computation and the rest its
    shape checks one mistake at a time.
    """

    def __init__(self, data):
        self.data = data
        self.mode = data.draw(st.sampled_from(["valid", "valid", "one", "one", "any"]))
        self.target = data.draw(st.integers(0, 11))
        self.count = 0

    def __call__(self, n):
        i, self.count = self.count, self.count + 1
        if self.mode == "valid" or (self.mode == "one" and i != self.target):
            return n
        if self.mode == "any" and self.data.draw(st.booleans()):
            return n
        return self.data.draw(st.sampled_from([max(n - 1, 0), n + 1, 0]))


def close(actual, desired, dtype, what, scale=None):
    desired = np.asarray(desired, dtype=np.float64)
    if scale is None:
        scale = float(np.abs(desired).max(initial=0.0))
    scale = max(1.0, scale)
    np.testing.assert_allclose(actual, desired, rtol=RTOL[dtype], atol=RTOL[dtype] * scale, err_msg=what)


# ----- references -------------------------------------------------------------------------

def ref_smooth(G):
    """[1, 4, 6, 4, 1] / 16 along axis 0, whole-sample mirror borders."""
    if len(G) <= 1:
        return G.copy()
    P = np.pad(G, ((2, 2), (0, 0)), mode="reflect")
    return (P[:-4] + 4 * P[1:-3] + 6 * P[2:-2] + 4 * P[3:-1] + P[4:]) / 16


def ref_expand(c, n):
    if n == 1:
        return c[:1].copy()
    U = np.zeros((n, c.shape[1]))
    U[::2] = c
    return 2 * ref_smooth(U)


def ref_gaussian(S, levels):
    G = [np.asarray(S, np.float64)]
    for _ in range(levels - 1):
        G.append(ref_smooth(G[-1])[::2])
    return G


def ref_laplacian(S, levels):
    G = ref_gaussian(S, levels)
    return [G[l] - ref_expand(G[l + 1], len(G[l])) for l in range(levels - 1)] + [G[-1]]


def ref_reconstruct(L):
    G = np.asarray(L[-1], np.float64)
    for l in range(len(L) - 2, -1, -1):
        G = L[l] + ref_expand(G, len(L[l]))
    return G


def ref_mel(y, n_fft, hop, center, start, offset, weights, power, log, log_scale, log_offset):
    y = np.asarray(y, np.float64)
    pad = n_fft // 2 if center else 0
    yp = np.pad(y, pad)
    n_frames = 1 + (len(yp) - n_fft) // hop if len(yp) >= n_fft else 0
    frames = np.stack([yp[t * hop : t * hop + n_fft] for t in range(n_frames)]) if n_frames > 0 else np.zeros((0, n_fft))
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    spec = np.abs(np.fft.rfft(frames * window, axis=1)) ** power
    mel = np.zeros((n_frames, len(start)))
    for b in range(len(start)):
        w = weights[offset[b] : offset[b + 1]].astype(np.float64)
        mel[:, b] = spec[:, start[b] : start[b] + len(w)] @ w
    return np.log(log_scale * mel + log_offset) if log else mel


def ref_encode_pool(frames, width, first, second, bias, encoding, threshold, normalize_eps,
                    hidden_bias, center_sq, pool, n_positions, stats):
    f = frames.astype(np.float64)
    n_mels = frames.shape[1]
    x = np.stack([f[t : t + width].ravel() for t in range(n_positions)])
    if normalize_eps is not None:
        x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + normalize_eps)
    codes = x @ first.astype(np.float64)
    if encoding == 3:
        h = codes + hidden_bias
        norm = np.linalg.norm(h, axis=1, keepdims=True)
        h = np.divide(h, norm, out=np.zeros_like(h), where=norm > 0)
        z = np.sqrt(np.maximum(1 + center_sq - 2 * (h @ second), 0))
        codes = np.maximum(z.mean(1, keepdims=True) - z, 0)
    else:
        if second.shape[0]:
            codes = codes @ second
        codes = codes + bias
        if encoding == 1:
            codes = np.maximum(codes, 0)
        elif encoding == 2:
            codes = np.hstack([np.maximum(codes - threshold, 0), np.maximum(-codes - threshold, 0)])
    rows = []
    for p0 in range(0, n_positions, pool):
        block = codes[p0 : p0 + pool]
        rows.append(np.concatenate([fn(block, axis=0) for s, fn in
                                    (("max", np.max), ("mean", np.mean), ("std", np.std)) if s in stats]))
    return np.array(rows).reshape(len(rows), -1)


# ----- raw kernel entries: shapes near the valid ones -------------------------------------

@FUZZ
@given(st.data())
def fuzz_whiten_encode_pool(data):
    near = Sizes(data)
    dt = data.draw(st.sampled_from(DTYPES))
    T = data.draw(st.integers(0, 12))
    n_mels = data.draw(st.integers(1, 4))
    width = data.draw(st.integers(1, 3))
    n_first = data.draw(st.integers(1, 4))
    encoding = data.draw(st.sampled_from([0, 0, 1, 2, 3]))
    staged = encoding == 3 or data.draw(st.booleans())
    normalize = data.draw(st.booleans())
    K = data.draw(st.integers(1, 4)) if staged else n_first
    n_out = 2 * K if encoding == 2 else K
    pool = data.draw(st.integers(1, 5))
    n_pos_valid = max(T - width + 1, 0)
    n_positions = near(n_pos_valid) if data.draw(st.booleans()) else max(n_pos_valid - 2, 0)
    tile = near(data.draw(st.sampled_from([1, 2, 3, 7])))
    stats = data.draw(st.sets(st.sampled_from(["max", "mean", "std"]), max_size=3))
    do = [s in stats for s in ("max", "mean", "std")]
    n_pools = -(-max(n_positions, 0) // pool)
    n_work = (max(tile, 1) + 6) * n_out + (max(tile, 1) * n_first if staged else 0)
    if normalize:
        n_work += (max(tile, 1) + width - 1) * (n_mels + 3)
    shapes = dict(
        frames=(near((T)), near((n_mels))),
        first=(near((width * n_mels)), near((n_first))),
        second=(near((n_first)), near((K))) if staged else (0, 0),
        bias=(near((K)),),
        first_sums=(near(width), near(n_first)) if normalize else (0, 0),
        hidden_bias=(near(n_first),) if encoding == 3 else (0,),
        center_sq=(near(K),) if encoding == 3 else (0,),
        work=(near(n_work),),
        out=(near((n_pools)), near((n_out * sum(do)))),
    )
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    arrays = {k: rng.standard_normal(v).astype(dt) for k, v in shapes.items()}
    if (normalize and arrays["first"].shape == (width * n_mels, n_first)
            and arrays["first_sums"].shape == (width, n_first)):
        # the sums the kernel's correction assumes (any values are safe, these are checked)
        arrays["first_sums"] = arrays["first"].reshape(width, n_mels, -1).sum(axis=1).astype(dt)
    if encoding == 3:
        arrays["center_sq"] = np.abs(arrays["center_sq"])
    odd = data.draw(st.sampled_from([None, None, None, "dtype", "strided", "none"]))
    if odd is not None:
        name = data.draw(st.sampled_from(sorted(arrays)))
        a = arrays[name]
        arrays[name] = (a.astype(np.float32 if dt == np.float64 else np.float64) if odd == "dtype"
                        else None if odd == "none"
                        else np.repeat(a, 2, axis=-1)[..., ::2])
        if odd == "strided" and arrays[name].flags.c_contiguous:
            odd = None  # e.g. an empty or one-row view: contiguous, nothing odd about it
    threshold = data.draw(st.sampled_from([0.0, 0.3, float("nan")] if encoding == 2 else [0.25]))
    eps = data.draw(st.sampled_from([0.5, 0.0] if normalize else [1.0]))
    a = arrays
    try:
        n_bad = _encode.whiten_encode_pool(a["frames"], width, a["first"], a["second"], a["bias"], encoding,
                                           threshold, a["first_sums"], eps, a["hidden_bias"], a["center_sq"],
                                           pool, n_positions, tile, *do, a["work"], a["out"])
    except CLEAN:
        return
    # Accepted: the shapes must have been valid, and the result right.
    ACCEPTED['fuzz_whiten_encode_pool'] += 1
    s = {k: (None if v is None else v.shape) for k, v in arrays.items()}
    assert odd is None, f"kernel accepted a {odd} argument: {s}"
    Tf, nm = s["frames"]
    nf = s["first"][1]
    Kk = s["second"][1] if s["second"][0] else nf
    no = 2 * Kk if encoding == 2 else Kk
    norm = s["first_sums"][0] > 0
    assert nm >= 1 and nf >= 1 and Kk >= 1 and tile >= 1 and any(do), (s, tile, do)
    assert n_positions == 0 or 0 < n_positions <= Tf - width + 1, (s, n_positions, width)  # 0 reads nothing
    assert s["first"][0] == width * nm, (s, width)
    assert s["second"] == (0, 0) or s["second"][0] == nf, s
    assert s["first_sums"] in ((0, 0), (width, nf)) and (not norm or eps > 0), (s, eps)
    assert encoding != 2 or np.isfinite(threshold), threshold
    if encoding == 3:
        assert s["second"][0] and s["hidden_bias"] == (nf,) and s["center_sq"] == (Kk,), s
    else:
        assert s["hidden_bias"] == (0,) and s["center_sq"] == (0,), s
    assert s["bias"] == (Kk,) and s["out"] == (-(-n_positions // pool), no * sum(do)), (s, n_positions, pool)
    need = (tile + 6) * no + (tile * nf if s["second"][0] else 0) + ((tile + width - 1) * (nm + 3) if norm else 0)
    assert s["work"][0] >= need, (s, tile)
    assert n_bad == np.count_nonzero(~np.isfinite(a["out"]))
    if n_positions:
        ref = ref_encode_pool(a["frames"], width, a["first"], a["second"], a["bias"], encoding, threshold,
                              eps if norm else None, a["hidden_bias"], a["center_sq"], pool, n_positions, stats)
        # normalised windows are divided by sqrt(var + eps) >= sqrt(0.5): values stay O(1)
        close(a["out"], ref, dt, "whiten_encode_pool")


@FUZZ
@given(st.data())
def fuzz_assign_update(data):
    near = Sizes(data)
    dt = data.draw(st.sampled_from(DTYPES))
    n = data.draw(st.integers(0, 20))
    p = data.draw(st.integers(1, 5))
    K = data.draw(st.integers(1, 6))
    tile = data.draw(st.sampled_from([1, 3, 8, 64, 0]))
    m = min(max(tile, 1), max(n, 1))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((near((n)), near((p)))).astype(dt)
    D = rng.standard_normal((near((K)), near((p)))).astype(dt)
    labels = np.zeros(near((n)), np.int32)
    values = np.zeros(near((n)), dt)
    with_accum = data.draw(st.booleans())
    accum = np.zeros((near((K)), near((p))), dt) if with_accum else None
    energy = np.zeros(data.draw(st.sampled_from([1, 1, 0, 2])))
    work = np.zeros(near((m * K)), dt)
    order = np.zeros(near((m + K + 1)), np.int32)
    if data.draw(st.integers(0, 5)) == 0:
        X = X.astype(np.float32 if dt == np.float64 else np.float64)
    try:
        bad = _kmeans.assign_update(X, D, tile, labels, values, accum, energy, work, order)
    except CLEAN:
        return
    ACCEPTED['fuzz_assign_update'] += 1
    n, p = X.shape
    K = D.shape[0]
    m = min(tile, n)
    assert X.dtype == dt and D.shape == (K, p) and K >= 1 and p >= 1 and tile >= 1, (X.shape, D.shape, tile)
    assert labels.shape == (n,) and values.shape == (n,) and energy.shape[0] >= 1
    assert accum is None or accum.shape == (K, p)
    if n:
        assert work.shape[0] >= m * K and order.shape[0] >= m + K + 1, (work.shape, order.shape, m, K)
    assert bad == 0
    P = X.astype(np.float64) @ D.astype(np.float64).T
    ref_labels = np.argmax(np.abs(P), axis=1)
    ok = np.abs(P[np.arange(n), labels]) >= np.abs(P[np.arange(n), ref_labels]) * (1 - 1e-5)  # near-ties
    assert ok.all(), (labels, ref_labels)
    close(values, P[np.arange(n), labels], dt, "values")
    close(energy[0], np.sum(P[np.arange(n), labels] ** 2), dt, "energy")
    if accum is not None:
        ref = np.zeros((K, p))
        np.add.at(ref, labels, P[np.arange(n), labels][:, None] * X)
        close(accum, ref, dt, "accum")


@FUZZ
@given(st.data())
def fuzz_pyramid_entries(data):
    near = Sizes(data)
    dt = data.draw(st.sampled_from(DTYPES))
    n = data.draw(st.integers(0, 12))
    nb = data.draw(st.integers(0, 3))
    levels = data.draw(st.integers(0, 9))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    src = rng.standard_normal((n, nb)).astype(dt)
    shapes, rows = [], n
    for _ in range(levels):
        shapes.append((near((rows)), near((nb))))
        rows = (rows + 1) // 2
    out = [np.zeros(s, dt) for s in shapes]
    kind = data.draw(st.sampled_from(["gaussian", "laplacian", "expand"]))
    if data.draw(st.integers(0, 5)) == 0 and out:
        out[data.draw(st.integers(0, len(out) - 1))] = np.zeros(shapes[0], np.float32 if dt == np.float64 else np.float64)
    valid_shapes = [(-(-n // 2**l), nb) for l in range(levels)]
    try:
        if kind == "gaussian":
            if out:
                out[0] = src if shapes[0] == (n, nb) and out[0].dtype == dt else out[0]
            ok = _pyramid.blur_decimate(src, out)
        elif kind == "laplacian":
            ok = _pyramid.blur_decimate_subtract(src, out)
        else:
            lap = [rng.standard_normal(s).astype(o.dtype) for s, o in zip(shapes, out)]
            work = [np.zeros(s, dt) for s in shapes[:-1]]
            if data.draw(st.booleans()) and work:
                work.append(np.zeros(shapes[-1], dt))  # one too many
            bad = _pyramid.expand_add(lap, work)
    except CLEAN:
        return
    ACCEPTED['fuzz_pyramid_entries'] += 1
    assert 2 <= levels <= 8, levels
    assert [o.shape for o in out] == valid_shapes and all(o.dtype == dt for o in out), ([o.shape for o in out], valid_shapes)
    if kind == "gaussian":
        assert ok
        for got, ref in zip(out[1:], ref_gaussian(src, levels)[1:]):
            close(got, ref, dt, "blur_decimate")
    elif kind == "laplacian":
        assert ok
        for got, ref in zip(out, ref_laplacian(src, levels)):
            close(got, ref, dt, "blur_decimate_subtract")
    else:
        assert len(work) == levels - 1 and bad == -1
        close(work[0], ref_reconstruct([x.astype(np.float64) for x in lap]), dt, "expand_add")


@FUZZ
@given(st.data())
def fuzz_mel_power(data):
    near = Sizes(data)
    dt = data.draw(st.sampled_from(DTYPES))
    n = data.draw(st.integers(0, 200))
    n_fft = data.draw(st.sampled_from([16, 32, 64])) if near(1) == 1 else data.draw(st.sampled_from([8, 48, 0]))
    hop = near(data.draw(st.sampled_from([1, 7, 16, 40])))
    center = data.draw(st.booleans())
    n_mels = near(data.draw(st.integers(1, 4)))
    n_mels = n_mels if n_mels <= 5 else 5
    bins = n_fft // 2 + 1
    widths = [data.draw(st.integers(0, 4)) for _ in range(n_mels)]
    start = np.array([data.draw(st.integers(0, max(bins - w, 0))) for w in widths], np.int64)
    if n_mels and near(1) != 1:
        start[data.draw(st.integers(0, n_mels - 1))] = data.draw(st.sampled_from([-1, bins]))
    offset = np.concatenate([[0], np.cumsum(widths)]).astype(np.int64)
    if n_mels and near(1) != 1:
        offset[data.draw(st.integers(0, n_mels))] += data.draw(st.sampled_from([-3, 5]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    weights = rng.random(near(max(int(offset[-1]), 0) if n_mels else 0)).astype(dt)
    y = rng.standard_normal(n).astype(dt)
    pad = n_fft // 2 if center else 0
    n_frames = 1 + (n + 2 * pad - n_fft) // max(hop, 1) if n + 2 * pad >= n_fft else 0
    out = np.zeros((near((n_frames)), near((n_mels))), dt)
    power = data.draw(st.sampled_from([1, 2, 2, 3]))
    log = data.draw(st.booleans())
    if data.draw(st.integers(0, 5)) == 0:
        weights = weights.astype(np.float32 if dt == np.float64 else np.float64)
    if data.draw(st.integers(0, 6)) == 0:
        out = np.zeros((out.shape[1], out.shape[0]), dt).T  # right shape, wrong layout
    try:
        _spectral.mel_power(y, n_fft, hop, center, start, offset, weights, power, log, 1.0, 1e-3,
                            data.draw(st.integers(1, 3)), out)
    except CLEAN:
        return
    ACCEPTED['fuzz_mel_power'] += 1
    assert out.flags.c_contiguous and weights.dtype == dt
    assert n_fft in (16, 32, 64) and hop >= 1 and power in (1, 2) and n_mels >= 1
    assert out.shape == (n_frames, n_mels) and len(start) == n_mels
    assert np.all(start >= 0) and np.all(np.diff(offset) >= 0) and offset[0] >= 0 and offset[-1] <= len(weights)
    assert np.all(start + np.diff(offset) <= bins), (start, offset)
    ref = ref_mel(y, n_fft, hop, center, start, offset, weights, power, log, 1.0, 1e-3)
    close(out, ref, dt, "mel_power")


# ----- Python wrappers: odd dtypes, layouts, sizes and values -----------------------------

ODD_DTYPES = st.sampled_from([np.float32, np.float64, np.float16, np.int32, np.bool_, np.complex64])
EXTREME = st.sampled_from([0.0, 1.0, -1.0, 1e-40, 1e30, -3e38, 1e300, np.nan, np.inf, -np.inf])


def odd_array(data, ndim, max_side=9):
    dtype = data.draw(ODD_DTYPES)
    shape = tuple(data.draw(st.integers(0, max_side)) for _ in range(ndim))
    base = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e3, 1e3, allow_nan=False)))
    if base.size and data.draw(st.booleans()):
        base.flat[data.draw(st.integers(0, base.size - 1))] = data.draw(EXTREME)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        arr = base.astype(dtype)
    layout = data.draw(st.sampled_from(["c", "f", "strided"]))
    if layout == "f":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim and arr.shape[0]:
        arr = np.repeat(arr, 2, axis=0)[::2]
    return arr


def finite_input(x):
    return x.dtype.kind != "c" and x.size and bool(np.isfinite(x.astype(np.float64)).all())


@FUZZ
@given(st.data())
def fuzz_wrappers_pyramid(data):
    S = odd_array(data, 2)
    levels = data.draw(st.integers(1, 8))
    fn = data.draw(st.sampled_from([msk.gaussian_pyramid, msk.laplacian_pyramid]))
    try:
        out = fn(S, levels=levels)
    except CLEAN:
        return
    ACCEPTED['fuzz_wrappers_pyramid'] += 1
    assert finite_input(S), S
    for x in out:
        assert np.isfinite(x).all(), "silent non-finite pyramid level"
    dt = out[0].dtype.type
    ref = (ref_gaussian if fn is msk.gaussian_pyramid else ref_laplacian)(S.astype(np.float64), levels)
    magnitude = float(np.abs(S.astype(np.float64)).max())
    for got, want in zip(out, ref):
        close(got, want, dt if dt in RTOL else np.float64, fn.__name__, scale=4 * magnitude)
    try:
        back = msk.reconstruct_laplacian(out)
    except CLEAN:
        return
    assert np.isfinite(back).all(), "silent non-finite reconstruction"


@FUZZ
@given(st.data())
def fuzz_wrappers_mel(data):
    y = odd_array(data, 1, max_side=3000)
    try:
        S = msk.log_melspectrogram(y, sr=8000, n_fft=256, hop_length=64, n_mels=8)
    except CLEAN:
        return
    except UserWarning:
        return  # n_fft longer than the signal: a legal, announced case
    ACCEPTED['fuzz_wrappers_mel'] += 1
    assert finite_input(y)
    assert np.isfinite(S).all(), "silent non-finite spectrogram"


@FUZZ
@given(st.data())
def fuzz_wrappers_kmeans(data):
    X = odd_array(data, 2)
    K = data.draw(st.integers(1, 4))
    try:
        km = msk.SphericalKMeans(n_clusters=K, max_iter=3, random_state=0).fit(X)
    except CLEAN:
        return
    ACCEPTED['fuzz_wrappers_kmeans'] += 1
    assert finite_input(X)
    assert np.isfinite(km.cluster_centers_).all(), "silent non-finite centroids"
    assert np.isfinite(km.inertia_)
    assert ((km.labels_ >= 0) & (km.labels_ < K)).all()


@FUZZ
@given(st.data())
def fuzz_wrappers_encoder(data):
    frames = odd_array(data, 2)
    n_mels = data.draw(st.integers(1, 4))
    width = data.draw(st.integers(1, 3))
    scale = data.draw(st.sampled_from([1.0, 1e20, 1e200]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    encoding = data.draw(st.sampled_from(["linear", "threshold", "split", "triangle"]))
    enc = WindowEncoder(rng.standard_normal(n_mels * width), rng.standard_normal((3, n_mels * width)) * scale,
                        rng.standard_normal((4, 3)), width=width, pool=data.draw(st.integers(1, 5)),
                        pooling=data.draw(st.sampled_from([("max",), ("max", "mean", "std")])),
                        encoding=encoding, normalization=data.draw(st.sampled_from(["none", "standardize"])),
                        factorization="staged" if encoding == "triangle"
                        else data.draw(st.sampled_from(["fused", "staged"])))
    call = data.draw(st.sampled_from(["public", "unchecked"]))
    try:
        if call == "public":
            out = enc(frames)
        else:
            if frames.dtype not in (np.float32, np.float64) or not frames.flags.c_contiguous:
                return  # _encode's documented contract; the kernel would raise TypeError/ValueError
            out = enc._encode(frames)
    except CLEAN:
        return
    ACCEPTED['fuzz_wrappers_encoder'] += 1
    assert np.isfinite(out).all(), "silent non-finite features"
    if call == "public":
        assert finite_input(frames)


TARGETS = [fuzz_whiten_encode_pool, fuzz_assign_update, fuzz_pyramid_entries, fuzz_mel_power,
           fuzz_wrappers_pyramid, fuzz_wrappers_mel, fuzz_wrappers_kmeans, fuzz_wrappers_encoder]


def main(names):
    warnings.simplefilter("error")  # as pytest's filterwarnings=error
    warnings.filterwarnings("ignore", category=UserWarning, module="msk.spectral")
    failed = []
    for target in TARGETS:
        if names and target.__name__ not in names:
            continue
        try:
            target()
            print(f"ok     {target.__name__} ({ACCEPTED[target.__name__]} calls returned a result)", flush=True)
        except Exception:
            failed.append(target.__name__)
            print(f"FAILED {target.__name__}", flush=True)
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
