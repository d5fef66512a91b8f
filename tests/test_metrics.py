"""Metrics of msk.metrics against independent oracles (scikit-learn, plain loops)."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from conftest import assert_close
from msk.metrics import mean_tag_auc, nca_probability, nearest_neighbor_accuracy, per_tag_auc


def _nca_probability_loop(E, labels, groups=None):
    """Plain double loop over pairs, float64."""
    E = np.asarray(E, dtype=np.float64)
    total, count = 0.0, 0
    for i in range(len(E)):
        num = den = 0.0
        for j in range(len(E)):
            if j == i or (groups is not None and groups[i] == groups[j]):
                continue
            w = np.exp(-np.sum((E[i] - E[j]) ** 2))
            den += w
            num += w * (labels[i] == labels[j])
        if den > 0:
            total += num / den
            count += 1
    return total / count


def _nn_accuracy_loop(E, labels, groups=None):
    E = np.asarray(E, dtype=np.float64)
    D = ((E[:, None, :] - E[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(D, np.inf)
    if groups is not None:
        D[np.asarray(groups)[:, None] == np.asarray(groups)[None, :]] = np.inf
    ok = np.isfinite(D).any(axis=1)
    nn = D.argmin(axis=1)
    return float(np.mean(np.asarray(labels)[ok] == np.asarray(labels)[nn[ok]]))


# --------------------------------------------------------------------------- AUC
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_tag_auc_matches_sklearn(rng, dtype):
    Y = rng.random((60, 7)) < 0.3
    S = (rng.random((60, 7)) + 0.5 * Y).astype(dtype)
    S[:10] = np.round(S[:10], 1)  # ties
    auc = per_tag_auc(Y, S)
    expected = [roc_auc_score(Y[:, t], S[:, t]) for t in range(7)]
    assert auc.dtype == np.float64
    assert_close(auc, expected, rtol=1e-12)
    assert mean_tag_auc(Y, S) == pytest.approx(np.mean(expected), rel=1e-12)


def test_auc_layouts_agree(rng):
    Y = rng.random((40, 5)) < 0.5
    S = rng.random((40, 10))
    base = per_tag_auc(Y, np.ascontiguousarray(S[:, ::2]))
    assert_close(per_tag_auc(Y, S[:, ::2]), base)  # strided view
    assert_close(per_tag_auc(np.asfortranarray(Y), np.asfortranarray(S[:, ::2])), base)
    assert_close(per_tag_auc(Y[:, 0], S[:, 0]), base[:1])  # 1-D = one tag


def test_single_class_tags_are_skipped_and_reported(rng):
    Y = rng.random((30, 4)) < 0.5
    Y[:, 1] = False
    Y[:, 3] = True
    S = rng.random((30, 4))
    auc = per_tag_auc(Y, S)
    assert np.isnan(auc[[1, 3]]).all() and np.isfinite(auc[[0, 2]]).all()
    mean, skipped = mean_tag_auc(Y, S, return_skipped=True)
    np.testing.assert_array_equal(skipped, [1, 3])
    assert mean == pytest.approx(np.mean([roc_auc_score(Y[:, t], S[:, t]) for t in (0, 2)]))


def test_auc_perfect_and_reversed():
    Y = np.array([0, 0, 1, 1])
    assert mean_tag_auc(Y, [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert mean_tag_auc(Y, [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert mean_tag_auc(Y, [0.5, 0.5, 0.5, 0.5]) == 0.5


def test_auc_bad_input(rng):
    Y = rng.random((10, 3)) < 0.5
    S = rng.random((10, 3))
    with pytest.raises(ValueError, match="`Y_score` must have the shape"):
        per_tag_auc(Y, S[:9])
    with pytest.raises(ValueError, match="`Y_true` must contain only 0 and 1"):
        per_tag_auc(Y * 2, S)
    S_nan = S.copy()
    S_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="`Y_score` contains NaN"):
        per_tag_auc(Y, S_nan)
    with pytest.raises(ValueError, match="`Y_true` has no tag with both"):
        mean_tag_auc(np.zeros((10, 3)), S)
    with pytest.raises(TypeError, match="`Y_true`"):
        per_tag_auc("tags", S)
    with pytest.raises(TypeError, match="`Y_score`"):
        per_tag_auc(Y, S + 1j)


# --------------------------------------------------------------------------- neighbours
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("use_groups", [False, True])
def test_nca_probability_matches_loop(rng, dtype, use_groups):
    E = rng.standard_normal((40, 3)).astype(dtype)
    labels = rng.integers(0, 4, 40)
    groups = rng.integers(0, 12, 40) if use_groups else None
    expected = _nca_probability_loop(E, labels, groups)
    assert_close(nca_probability(E, labels, groups), expected, rtol=1e-5 if dtype == np.float32 else 1e-10)


def test_nca_probability_far_apart_points_do_not_underflow():
    # squared distances of 1e4: a naive exp(-D) is 0/0; the shifted softmax is exact
    E = np.array([[0.0], [100.0], [300.0], [1000.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    assert nca_probability(E, labels) == pytest.approx(_nca_loop_far(E, labels))


def _nca_loop_far(E, labels):
    # exact: the nearest neighbour takes all the weight
    D = np.abs(E - E.T)
    np.fill_diagonal(D, np.inf)
    return float(np.mean(labels == labels[D.argmin(axis=1)]))


@pytest.mark.parametrize("use_groups", [False, True])
def test_nearest_neighbor_accuracy_matches_loop(rng, use_groups):
    E = rng.standard_normal((300, 4))
    labels = rng.integers(0, 5, 300)
    groups = rng.integers(0, 40, 300) if use_groups else None
    assert nearest_neighbor_accuracy(E, labels, groups) == pytest.approx(_nn_accuracy_loop(E, labels, groups))
    # float32, F-ordered and strided inputs give the same answer
    assert nearest_neighbor_accuracy(np.asfortranarray(E), labels, groups) == pytest.approx(
        nearest_neighbor_accuracy(E, labels, groups))
    wide = np.repeat(E, 2, axis=1)
    assert nearest_neighbor_accuracy(wide[:, ::2], labels, groups) == pytest.approx(
        nearest_neighbor_accuracy(E, labels, groups))


def test_excluding_tracks_removes_the_easy_neighbours(rng):
    # every track has 3 near-identical clips; artists are otherwise random
    centres = rng.standard_normal((30, 5))
    E = 10 * (np.repeat(centres, 3, axis=0) + 1e-3 * rng.standard_normal((90, 5)))
    tracks = np.repeat(np.arange(30), 3)
    artists = np.repeat(rng.integers(0, 10, 30), 3)
    assert nearest_neighbor_accuracy(E, artists) == 1.0
    assert nearest_neighbor_accuracy(E, artists, tracks) < 0.5
    assert nca_probability(E, artists) > 0.99
    assert nca_probability(E, artists, tracks) < 0.6


def test_string_labels_are_accepted(rng):
    E = rng.standard_normal((20, 2))
    labels = np.array(["a", "b"] * 10, dtype=object)
    assert nca_probability(E, labels) == pytest.approx(_nca_probability_loop(E, labels))


def test_neighbour_metrics_bad_input(rng):
    E = rng.standard_normal((10, 2))
    labels = np.arange(10) % 2
    for fn in (nca_probability, nearest_neighbor_accuracy):
        with pytest.raises(ValueError, match="`labels` must have one entry per row"):
            fn(E, labels[:9])
        with pytest.raises(ValueError, match="`labels` must contain at least two classes"):
            fn(E, np.zeros(10))
        with pytest.raises(ValueError, match="`groups` must have one entry per row"):
            fn(E, labels, groups=np.arange(3))
        E_nan = E.copy()
        E_nan[2, 1] = np.nan
        with pytest.raises(ValueError, match="`embedding` contains NaN"):
            fn(E_nan, labels)
        with pytest.raises(ValueError, match="no neighbour is left"):
            fn(E, labels, groups=np.zeros(10))
        with pytest.raises(ValueError, match="`embedding` must be a 2-D array"):
            fn(E[:, 0], labels)


# --------------------------------------------------------------------------- per-clip terms and the bootstrap
def test_per_clip_similarity_terms_average_to_the_metrics(rng):
    from msk.metrics import nca_probabilities, nearest_neighbor_hits

    E = rng.standard_normal((40, 3))
    labels = rng.integers(0, 4, 40)
    groups = np.repeat(np.arange(20), 2)
    for g in (None, groups):
        hits = nearest_neighbor_hits(E, labels, g)
        assert set(np.unique(hits)) <= {0.0, 1.0}
        assert np.mean(hits) == nearest_neighbor_accuracy(E, labels, g) == _nn_accuracy_loop(E, labels, g)
        p = nca_probabilities(E, labels, g)
        assert p.shape == (40,) and np.mean(p) == pytest.approx(_nca_probability_loop(E, labels, g), rel=1e-10)
    hits = nearest_neighbor_hits([[0.0], [1.0], [2.0]], ["a", "b", "a"], groups=[0, 1, 1])
    np.testing.assert_array_equal(hits, [0.0, 0.0, 1.0])
    # clips without a candidate neighbour are NaN (the mean raises when none is left)
    assert np.all(np.isnan(nearest_neighbor_hits([[0.0], [1.0]], ["a", "b"], groups=[0, 0])))
    assert np.all(np.isnan(nca_probabilities([[0.0], [1.0]], ["a", "b"], groups=[0, 0])))
    with pytest.raises(ValueError, match="no neighbour is left"):
        nearest_neighbor_accuracy([[0.0], [1.0]], ["a", "b"], groups=[0, 0])


def _reference_bootstrap(x, y_true, groups, n_resamples, seed):
    """Plain loops: expand every resample's clip indices, score with per_tag_auc or a plain mean."""
    draw = np.random.default_rng(seed)
    per_stratum = []
    for s in range(len(x)):
        units, codes = np.unique(groups[s], return_inverse=True)
        draws = draw.integers(0, len(units), size=(n_resamples, len(units)))
        values = []
        for b in range(n_resamples):
            idx = np.concatenate([np.flatnonzero(codes == u) for u in draws[b]])
            runs = []
            for run in x[s]:
                if y_true is None:
                    v = run[idx]
                    runs.append(np.mean(v[np.isfinite(v)]))
                else:
                    auc = per_tag_auc(y_true[s][idx], run[idx])
                    runs.append(np.nan if np.all(np.isnan(auc)) else np.nanmean(auc))
            values.append(np.nanmean(runs) if not np.all(np.isnan(runs)) else np.nan)
        per_stratum.append(values)
    return np.nanmean(np.array(per_stratum), axis=0)


def test_bootstrap_metric_matches_a_plain_reference(rng):
    from msk.metrics import bootstrap_metric

    # tag scores with ties (rounded), two strata of different sizes, tracks of 1-3 clips, two runs
    sizes = (23, 31)
    Y = [rng.random((n, 4)) < 0.35 for n in sizes]
    S = [np.round(rng.random((2, n, 4)) + 0.3 * Y[k], 1) for k, n in enumerate(sizes)]
    G = [rng.integers(0, n // 2, n) for n in sizes]
    value, dist = bootstrap_metric(S, y_true=Y, groups=G, n_resamples=60, random_state=11)
    assert_close(dist, _reference_bootstrap(S, Y, G, 60, 11), rtol=1e-12, atol=1e-12)
    assert value == pytest.approx(np.mean([np.mean([mean_tag_auc(Y[k], S[k][r]) for r in range(2)])
                                           for k in range(2)]), rel=1e-12)
    # per-clip values with NaN (no candidate), no groups (clips are the units), one stratum as an array
    v = rng.random((3, 40)).round()
    v[:, 5] = np.nan
    value, dist = bootstrap_metric(v, n_resamples=80, random_state=2)
    assert_close(dist, _reference_bootstrap([v], None, [np.arange(40)], 80, 2), rtol=1e-12, atol=1e-12)
    assert value == pytest.approx(np.nanmean(v), rel=1e-12)
    # sklearn's AUC on the observed data
    y = rng.random((50, 1)) < 0.4
    s = rng.random((50, 1))
    assert bootstrap_metric(s, y_true=y, n_resamples=1)[0] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))


def test_paired_bootstrap_is_paired_and_checks_its_input(rng):
    from msk.metrics import bootstrap_metric, paired_bootstrap

    y = rng.random((120, 3)) < 0.4
    a = y + rng.standard_normal((2, 120, 3))
    b = a + 0.01 * rng.standard_normal((2, 120, 3))  # almost the same system
    res = paired_bootstrap(a, b, y_true=y, n_resamples=300, random_state=5)
    (va, da), (vb, db) = (bootstrap_metric(x, y_true=y, n_resamples=300, random_state=5) for x in (a, b))
    assert (res.mean_a, res.mean_b, res.difference) == (va, vb, va - vb)
    assert_close(res.distribution, da - db, rtol=0, atol=0)
    assert (res.low, res.high) == pytest.approx(tuple(np.quantile(da - db, [0.025, 0.975])), rel=1e-12)
    # pairing: the interval of the difference is far narrower than either system's own spread
    assert res.high - res.low < 0.2 * (np.quantile(da, 0.975) - np.quantile(da, 0.025))
    d = res.to_dict()
    assert d["tie"] == res.tie and "distribution" not in d
    with pytest.raises(ValueError, match="`a` and `b` must score the same clips"):
        paired_bootstrap(a, b[:, :100], y_true=y)
    with pytest.raises(ValueError, match="`confidence_level`"):
        paired_bootstrap(a, b, y_true=y, confidence_level=1.5)
    with pytest.raises(ValueError, match="`n_resamples` must be a positive integer"):
        paired_bootstrap(a, b, y_true=y, n_resamples=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        paired_bootstrap(np.full((120, 3), np.nan), b[0], y_true=y)
    with pytest.raises(ValueError, match="`y_true` must have one array per stratum"):
        bootstrap_metric([a[0], a[0]], y_true=[y])
    with pytest.raises(TypeError, match="`x` must be an ndarray"):
        bootstrap_metric("scores")
    with pytest.raises(ValueError, match="`groups\\[0\\]`"):
        bootstrap_metric(np.ones(5), groups=[np.arange(4)])


def _coverage(make, n_datasets, n_resamples, grouped=True):
    """Fraction of datasets whose 95 % interval holds the true difference (make() -> a, b, y, groups, truth)."""
    from msk.metrics import paired_bootstrap

    hits = 0
    for i in range(n_datasets):
        a, b, y, groups, truth = make(np.random.default_rng(1000 + i))
        res = paired_bootstrap(a, b, y_true=y, groups=groups if grouped else None, n_resamples=n_resamples,
                               random_state=i)
        hits += res.low <= truth <= res.high
    return hits / n_datasets


def test_paired_bootstrap_covers_a_known_difference():
    from scipy.stats import norm

    def clips(r):  # per-clip hits, P(hit) 0.7 vs 0.6, independent clips: true difference 0.1
        return (r.random(300) < 0.7).astype(float), (r.random(300) < 0.6).astype(float), None, None, 0.1

    assert 0.9 <= _coverage(clips, 200, 300) <= 0.99

    def tags(r):  # scores N(d·y, 1): AUC = Φ(d / √2); d = 1.0 vs 0.6, shared noise (paired systems)
        y = r.random((300, 1)) < 0.3
        noise = r.standard_normal((300, 1))
        a = 1.0 * y + noise
        b = 0.6 * y + 0.8 * noise + 0.6 * r.standard_normal((300, 1))
        return a, b, y, None, norm.cdf(1.0 / np.sqrt(2)) - norm.cdf(0.6 / np.sqrt(2))

    assert 0.88 <= _coverage(tags, 100, 200) <= 0.995

    def tracks(r):  # 60 tracks of 5 clips sharing a track effect (one per system): clips are not independent
        effect_a, effect_b = np.repeat(r.standard_normal((2, 60)), 5, axis=1)
        a = (effect_a + r.standard_normal(300) > -0.5).astype(float)
        b = (effect_b + r.standard_normal(300) > 0.0).astype(float)
        truth = norm.cdf(0.5 / np.sqrt(2)) - 0.5  # P(e + n > -0.5) - P(e + n > 0), e and n standard normal
        return a, b, None, np.repeat(np.arange(60), 5), truth

    by_track = _coverage(tracks, 200, 300)
    by_clip = _coverage(tracks, 200, 300, grouped=False)
    # resampling tracks is nearly right (0.91 here: 60 units); resampling their clips undercovers (0.74 here)
    assert by_track >= 0.88 and by_clip < by_track - 0.1
