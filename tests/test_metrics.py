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
