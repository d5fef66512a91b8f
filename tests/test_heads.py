"""The evaluation heads on small synthetic problems whose answer is known."""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.optimize import check_grad, minimize
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import assert_close
from msk import _nca
from msk.metrics import mean_tag_auc, per_tag_auc
from msk.heads import (NCA, MLPTagger, clip_means, evaluate_similarity, evaluate_tagging,
                       search_mlp)

# Small networks keep the whole file well under a minute.
SMALL = dict(n_hidden=16, batch_size=32, learning_rate_init=1e-2)


def _tag_problem(rng, n_clips, n_windows=3, dtype=np.float32):
    """Tag 0 is a function of the clip's vector, tag 1 is a coin flip."""
    C = rng.standard_normal((n_clips, 4))
    clip_index = np.repeat(np.arange(n_clips), n_windows)
    X = (C[clip_index] + 0.3 * rng.standard_normal((len(clip_index), 4))).astype(dtype)
    Y = np.stack([C[:, 0] + 0.5 * C[:, 1] > 0, rng.random(n_clips) < 0.5], axis=1)
    return X, Y, clip_index


@pytest.fixture
def tag_splits(rng):
    return [_tag_problem(rng, n) for n in (240, 120, 150)]


# --------------------------------------------------------------------------- clip_means
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_means_matches_loop(rng, dtype):
    X = rng.standard_normal((50, 6)).astype(dtype)
    idx = rng.permutation(np.arange(50) % 7)  # unsorted, 7 clips
    M = clip_means(X, idx)
    assert M.dtype == dtype and M.shape == (7, 6)
    for c in range(7):
        assert_close(M[c], X[idx == c].mean(axis=0))
    assert_close(clip_means(np.asfortranarray(X), idx), M)
    assert_close(clip_means(np.repeat(X, 2, axis=1)[:, ::2], idx), M)
    assert clip_means(X.astype(np.int64), idx).dtype == np.float64


def test_clip_means_bad_input(rng):
    X = rng.standard_normal((6, 2))
    with pytest.raises(ValueError, match="`clip_index` must have one entry per row of `X`"):
        clip_means(X, [0, 0, 1])
    with pytest.raises(ValueError, match="`clip_index` leaves 1 clip"):
        clip_means(X, [0, 0, 2, 2, 3, 3])
    with pytest.raises(ValueError, match=r"`clip_index` values must lie in \[0, 2\)"):
        clip_means(X, [0, 0, 1, 1, 2, 2], n_clips=2)
    with pytest.raises(TypeError, match="`clip_index` must hold integers"):
        clip_means(X, np.full(6, 0.5))
    X[1, 1] = np.nan
    with pytest.raises(ValueError, match="`X` contains NaN"):
        clip_means(X, [0, 0, 1, 1, 2, 2])


# --------------------------------------------------------------------------- MLP tagger
def test_learnable_tag_near_one_random_tag_near_half(tag_splits):
    (X, Y, ci), (Xv, Yv, civ), (Xt, Yt, cit) = tag_splits
    tagger = MLPTagger(**SMALL, max_iter=60, patience=8, random_state=0)
    tagger.fit(X, Y, ci, X_valid=Xv, Y_valid=Yv, clip_index_valid=civ)
    auc = per_tag_auc(Yt, tagger.predict_proba(Xt, cit))
    assert auc[0] > 0.95
    assert abs(auc[1] - 0.5) < 0.15
    assert tagger.mlp_.coefs_[0].dtype == np.float32  # trained in float32
    assert tagger.predict(Xt, cit).shape == Yt.shape


def test_early_stopping_stops_and_keeps_the_best_epoch(rng):
    # labels unrelated to the features: the validation AUC stops improving
    X = rng.standard_normal((300, 4)).astype(np.float32)
    Y = rng.random((300, 3)) < 0.5
    Xv = rng.standard_normal((150, 4)).astype(np.float32)
    Yv = rng.random((150, 3)) < 0.5
    tagger = MLPTagger(**SMALL, max_iter=200, patience=4, random_state=0)
    tagger.fit(X, Y, X_valid=Xv, Y_valid=Yv)
    assert tagger.n_iter_ < 200
    assert tagger.n_iter_ == tagger.best_iteration_ + 4
    assert len(tagger.validation_scores_) == tagger.n_iter_
    assert tagger.best_score_ == max(tagger.validation_scores_)
    # the weights in place are the best epoch's, not the last one's
    assert tagger.score(Xv, Yv) == pytest.approx(tagger.best_score_, rel=1e-12)
    assert tagger.validation_scores_[-1] != tagger.best_score_


def test_no_validation_trains_max_iter_epochs(tag_splits):
    X, Y, ci = tag_splits[0]
    tagger = MLPTagger(**SMALL, max_iter=3, random_state=0).fit(X, Y, ci)
    assert tagger.n_iter_ == 3 and tagger.best_score_ is None and len(tagger.loss_curve_) == 3


def test_standardisation_uses_training_statistics_only(tag_splits):
    (X, Y, ci), (Xv, Yv, civ), _ = tag_splits
    X = 5.0 * X + 3.0
    a = MLPTagger(**SMALL, max_iter=2, random_state=0).fit(X, Y, ci, X_valid=Xv, Y_valid=Yv,
                                                           clip_index_valid=civ)
    b = MLPTagger(**SMALL, max_iter=2, random_state=0).fit(X, Y, ci, X_valid=Xv + 100.0, Y_valid=Yv,
                                                           clip_index_valid=civ)
    assert_close(a.scaler_.mean_, X.mean(axis=0, dtype=np.float64), rtol=1e-6)
    assert_close(a.scaler_.scale_, X.std(axis=0, dtype=np.float64), rtol=1e-5)
    np.testing.assert_array_equal(a.scaler_.mean_, b.scaler_.mean_)
    # the training path never saw the validation data: identical weights after epoch 1
    c = MLPTagger(**SMALL, max_iter=1, random_state=0).fit(X, Y, ci)
    d = MLPTagger(**SMALL, max_iter=1, random_state=0).fit(X, Y, ci, X_valid=Xv + 100.0, Y_valid=Yv,
                                                           clip_index_valid=civ)
    for w1, w2 in zip(c.mlp_.coefs_, d.mlp_.coefs_):
        np.testing.assert_array_equal(w1, w2)


def test_clip_prediction_is_the_mean_of_window_probabilities(tag_splits):
    (X, Y, ci), (Xv, Yv, civ), _ = tag_splits
    tagger = MLPTagger(**SMALL, max_iter=3, random_state=0).fit(X, Y, ci)
    P_win = tagger.predict_proba(Xv)
    P_clip = tagger.predict_proba(Xv, civ)
    assert P_win.shape == (len(Xv), 2) and P_clip.shape == (len(Yv), 2)
    for c in (0, 7, len(Yv) - 1):
        assert_close(P_clip[c], P_win[civ == c].mean(axis=0))
    assert tagger.score(Xv, Yv, civ) == pytest.approx(mean_tag_auc(Yv, P_clip))


def test_windows_are_trained_on_their_clips_tags(rng):
    # one window per clip (clip_index=None) and the same data expanded with an
    # explicit clip index must train identically
    X = rng.standard_normal((80, 3)).astype(np.float32)
    Y = X[:, :1] > 0
    a = MLPTagger(**SMALL, max_iter=2, random_state=1).fit(X, Y)
    perm = rng.permutation(80)
    b = MLPTagger(**SMALL, max_iter=2, random_state=1).fit(X, Y[perm], np.argsort(perm))
    np.testing.assert_array_equal(a.mlp_.coefs_[0], b.mlp_.coefs_[0])


def test_mlp_is_deterministic_and_single_tag_works(tag_splits):
    (X, Y, ci), (Xv, Yv, civ), _ = tag_splits
    kw = dict(X_valid=Xv, Y_valid=Yv[:, 0], clip_index_valid=civ)
    a = MLPTagger(**SMALL, max_iter=4, random_state=3).fit(X, Y[:, 0], ci, **kw)
    b = MLPTagger(**SMALL, max_iter=4, random_state=3).fit(X, Y[:, 0], ci, **kw)
    c = MLPTagger(**SMALL, max_iter=4, random_state=4).fit(X, Y[:, 0], ci, **kw)
    np.testing.assert_array_equal(a.mlp_.coefs_[0], b.mlp_.coefs_[0])
    assert not np.array_equal(a.mlp_.coefs_[0], c.mlp_.coefs_[0])
    assert a.predict_proba(Xv, civ).shape == (len(Yv), 1)
    assert a.score(Xv, Yv[:, 0], civ) > 0.8


def test_mlp_float64_and_layouts_agree(tag_splits):
    X, Y, ci = tag_splits[0]
    a = MLPTagger(**SMALL, max_iter=2, random_state=0).fit(X, Y, ci)
    b = MLPTagger(**SMALL, max_iter=2, random_state=0).fit(np.asfortranarray(X), Y, ci)
    np.testing.assert_array_equal(a.mlp_.coefs_[0], b.mlp_.coefs_[0])
    c = MLPTagger(**SMALL, max_iter=2, random_state=0).fit(X.astype(np.float64), Y, ci)
    assert c.mlp_.coefs_[0].dtype == np.float64
    assert_close(c.predict_proba(X, ci), a.predict_proba(X, ci).astype(np.float64), rtol=0, atol=1e-3)


def test_mlp_bad_input(tag_splits):
    (X, Y, ci), (Xv, Yv, civ), _ = tag_splits
    t = MLPTagger(**SMALL, max_iter=1)
    with pytest.raises(ValueError, match="`clip_index` must have one entry per row of `X`"):
        t.fit(X, Y, ci[:-1])
    with pytest.raises(ValueError, match="`clip_index` values must lie in"):
        t.fit(X, Y[:-5], ci)
    with pytest.raises(ValueError, match="`Y` has no tag with both"):
        t.fit(X, np.zeros_like(Y), ci)
    with pytest.raises(ValueError, match="`Y_valid` has no tag with both"):
        t.fit(X, Y, ci, X_valid=Xv, Y_valid=np.ones_like(Yv), clip_index_valid=civ)
    with pytest.raises(ValueError, match="`Y_valid` must have the tags of `Y`"):
        t.fit(X, Y, ci, X_valid=Xv, Y_valid=Yv[:, :1], clip_index_valid=civ)
    with pytest.raises(ValueError, match="`X_valid` must have the features of `X`"):
        t.fit(X, Y, ci, X_valid=Xv[:, :2], Y_valid=Yv, clip_index_valid=civ)
    with pytest.raises(ValueError, match="`X_valid` and `Y_valid` must be given together"):
        t.fit(X, Y, ci, X_valid=Xv)
    X_nan = X.copy()
    X_nan[3, 2] = np.nan
    with pytest.raises(ValueError, match="`X` contains NaN"):
        t.fit(X_nan, Y, ci)
    with pytest.raises(ValueError, match="`Y` must contain only 0 and 1"):
        t.fit(X, Y * 3, ci)
    with pytest.raises(ValueError, match="`n_hidden` must be a positive integer"):
        MLPTagger(n_hidden=0).fit(X, Y, ci)
    with pytest.raises(ValueError, match="`solver` must be one of"):
        MLPTagger(solver="lbfgs").fit(X, Y, ci)
    fitted = MLPTagger(**SMALL, max_iter=1).fit(X, Y, ci)
    with pytest.raises(ValueError, match="`X` must have 4 features"):
        fitted.predict_proba(X[:, :3])


def test_search_reports_choice_within_ranges_deterministically(tag_splits):
    (X, Y, ci), (Xv, Yv, civ), _ = tag_splits
    kw = dict(X_valid=Xv, Y_valid=Yv, clip_index_valid=civ, n_trials=3, learning_rate_range=(1e-3, 1e-2),
              alpha_range=(1e-5, 1e-3), n_hidden=8, batch_size=64, max_iter=4, random_state=0)
    res = search_mlp(X, Y, ci, **kw)
    assert len(res.trials) == 3
    assert res.best_score == max(t["score"] for t in res.trials)
    assert 1e-3 <= res.best_params["learning_rate_init"] <= 1e-2
    assert 1e-5 <= res.best_params["alpha"] <= 1e-3
    assert len({t["alpha"] for t in res.trials}) == 3
    assert search_mlp(X, Y, ci, **kw) == res
    json.dumps(res.to_dict())
    with pytest.raises(ValueError, match="`alpha_range` must be a"):
        search_mlp(X, Y, ci, **{**kw, "alpha_range": (1e-2, 1e-4)})
    with pytest.raises(TypeError, match="`alpha` is set by search_mlp"):
        search_mlp(X, Y, ci, **kw, alpha=1e-3)


def test_evaluate_tagging_protocol(rng):
    X, Y, ci = _tag_problem(rng, 450)
    split = np.arange(450) % 3
    masks = dict(train=split == 0, valid=split == 1, test=split == 2)
    res = evaluate_tagging(X, Y, ci, **masks, n_runs=2, params={"learning_rate_init": 1e-2, "alpha": 1e-4},
                           n_hidden=16, batch_size=32, max_iter=40, patience=5, random_state=0)
    assert res.search is None and res.run_aucs.shape == (2,) and res.n_iter.shape == (2,)
    assert res.per_tag_auc[0] > 0.95 and abs(res.per_tag_auc[1] - 0.5) < 0.15
    assert res.mean_auc == pytest.approx(res.run_aucs.mean())
    assert res.std_auc == pytest.approx(res.run_aucs.std())
    assert len(res.skipped_tags) == 0
    json.dumps(res.to_dict())
    # with a search: the chosen values are the ones every run used
    res2 = evaluate_tagging(X, Y, ci, **masks, n_runs=1, n_trials=2, n_hidden=8, batch_size=64,
                            max_iter=3, random_state=0)
    assert res2.params == res2.search.best_params
    # per_clip keeps every run's test-clip probabilities: they give the same AUCs, and change nothing else
    res3 = evaluate_tagging(X, Y, ci, **masks, n_runs=2, params={"learning_rate_init": 1e-2, "alpha": 1e-4},
                            n_hidden=16, batch_size=32, max_iter=40, patience=5, random_state=0, per_clip=True)
    assert res.per_clip is None and res3.per_clip.shape == (2, 150, Y.shape[1]) and res3.per_clip.dtype == np.float32
    assert_close(res3.run_aucs, res.run_aucs, rtol=0, atol=0)
    for run in range(2):
        assert mean_tag_auc(Y[masks["test"]], res3.per_clip[run]) == pytest.approx(res.run_aucs[run], abs=1e-6)


def test_evaluate_tagging_search_cache_and_progress(rng):
    X, Y, ci = _tag_problem(rng, 300)
    split = np.arange(300) % 3
    kw = dict(train=split == 0, valid=split == 1, test=split == 2, n_runs=2, n_trials=2, n_hidden=8,
              batch_size=64, max_iter=4, random_state=7)

    class Cache:
        def __init__(self):
            self.saved, self.loads = None, 0

        def load(self):
            self.loads += 1
            return self.saved

        def save(self, result):
            self.saved = result

    cache, calls = Cache(), []
    first = evaluate_tagging(X, Y, ci, **kw, search_cache=cache, progress=lambda *a: calls.append(a))
    assert cache.loads == 1 and cache.saved == first.search
    assert calls == [("search", 1, 2), ("search", 2, 2), ("runs", 1, 2), ("runs", 2, 2)]
    calls.clear()
    again = evaluate_tagging(X, Y, ci, **kw, search_cache=cache, progress=lambda *a: calls.append(a))
    assert calls == [("runs", 1, 2), ("runs", 2, 2)]  # loaded, not searched again
    assert again.search == first.search
    # the runs' seeds do not depend on whether the search ran, was loaded or was skipped
    np.testing.assert_array_equal(again.run_aucs, first.run_aucs)
    given = evaluate_tagging(X, Y, ci, **kw, params=first.params)
    assert given.search is None
    np.testing.assert_array_equal(given.run_aucs, first.run_aucs)
    np.testing.assert_array_equal(given.valid_aucs, first.valid_aucs)
    assert np.all((0 <= first.valid_aucs) & (first.valid_aucs <= 1))
    with pytest.raises(TypeError, match="`search_cache` must have load"):
        evaluate_tagging(X, Y, ci, **kw, search_cache={})
    with pytest.raises(TypeError, match="`progress` must be a callable"):
        evaluate_tagging(X, Y, ci, **kw, progress="bar")


def test_evaluate_tagging_reports_single_class_test_tags(rng):
    X, Y, ci = _tag_problem(rng, 300)
    split = np.arange(300) % 3
    Y = np.concatenate([Y, (split == 0)[:, None] & (rng.random((300, 1)) < 0.5)], axis=1)  # tag 2: train only
    res = evaluate_tagging(X, Y, ci, train=split == 0, valid=split == 1, test=split == 2, n_runs=1,
                           params={"learning_rate_init": 1e-2}, n_hidden=8, max_iter=2, random_state=0)
    np.testing.assert_array_equal(res.skipped_tags, [2])
    assert np.isnan(res.per_tag_auc[2]) and res.to_dict()["per_tag_auc"][2] is None


def test_evaluate_tagging_bad_masks(rng):
    X, Y, ci = _tag_problem(rng, 30)
    split = np.arange(30) % 3
    good = dict(train=split == 0, valid=split == 1, test=split == 2)
    with pytest.raises(ValueError, match="`train` and `test` overlap"):
        evaluate_tagging(X, Y, ci, **{**good, "test": split != 1})
    with pytest.raises(TypeError, match="`valid` must be a boolean mask"):
        evaluate_tagging(X, Y, ci, **{**good, "valid": split})
    with pytest.raises(ValueError, match=r"`test` must have shape \(30,\)"):
        evaluate_tagging(X, Y, ci, **{**good, "test": (split == 2)[:-1]})
    Y1 = Y.copy()
    Y1[split == 2] = False
    with pytest.raises(ValueError, match=r"`Y\[test\]` has no tag with both"):
        evaluate_tagging(X, Y1, ci, **good)


# --------------------------------------------------------------------------- NCA numerics
def _nca_objective_loop(A, X, y, groups=None):
    """Mean p_i by a plain double loop (float64), for a fixed map A."""
    E = X @ A.T
    total, count = 0.0, 0
    for i in range(len(X)):
        num = den = 0.0
        for j in range(len(X)):
            if j == i or (groups is not None and groups[i] == groups[j]):
                continue
            w = np.exp(-np.sum((E[i] - E[j]) ** 2))
            den += w
            num += w * (y[i] == y[j])
        if den:
            total += num / den
            count += 1
    return total / count


@pytest.mark.parametrize("use_groups", [False, True])
def test_nca_objective_matches_double_loop(rng, use_groups):
    X = rng.standard_normal((35, 6))
    y = rng.integers(0, 4, 35)
    groups = rng.integers(0, 10, 35) if use_groups else None
    A = 0.5 * rng.standard_normal((3, 6))
    f, _ = _nca.objective_grad(A, X, y, groups)
    assert f == pytest.approx(_nca_objective_loop(A, X, y, groups), rel=1e-12)
    f32, g32 = _nca.objective_grad(A.astype(np.float32), X.astype(np.float32), y, groups)
    assert g32.dtype == np.float32
    assert f32 == pytest.approx(f, rel=1e-5)
    # weight decay enters as -alpha/2 |A|^2
    f_wd, _ = _nca.objective_grad(A, X, y, groups, alpha=0.3)
    assert f_wd == pytest.approx(f - 0.15 * np.sum(A * A), rel=1e-12)


@pytest.mark.parametrize("use_groups", [False, True])
def test_nca_gradient_check_grad(rng, use_groups):
    X = rng.standard_normal((30, 5))
    y = rng.integers(0, 3, 30)
    groups = rng.integers(0, 8, 30) if use_groups else None
    A = 0.5 * rng.standard_normal((3, 5))

    def fun(a):
        return _nca.objective_grad(a.reshape(3, 5), X, y, groups, alpha=0.1)[0]

    def grad(a):
        return _nca.objective_grad(a.reshape(3, 5), X, y, groups, alpha=0.1)[1].ravel()

    g = grad(A.ravel())
    assert np.linalg.norm(g) > 1e-2
    assert check_grad(fun, grad, A.ravel()) < 1e-6 * np.linalg.norm(g) + 1e-8


def test_nca_gradient_float32_matches_float64(rng):
    X = rng.standard_normal((200, 20))
    y = rng.integers(0, 10, 200)
    A = 0.2 * rng.standard_normal((5, 20))
    _, g64 = _nca.objective_grad(A, X, y)
    _, g32 = _nca.objective_grad(A.astype(np.float32), X.astype(np.float32), y)
    assert_close(g32, g64, rtol=0, atol=1e-4 * np.abs(g64).max())


def test_nca_objective_from_a_thread_pool_matches_serial(rng):
    X = rng.standard_normal((300, 40)).astype(np.float32)
    y = rng.integers(0, 8, 300)
    As = [0.1 * rng.standard_normal((6, 40)).astype(np.float32) for _ in range(6)]
    serial = [_nca.objective_grad(A, X, y) for A in As]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(lambda A: _nca.objective_grad(A, X, y), As))
    for (f1, g1), (f2, g2) in zip(serial, threaded):
        assert f1 == f2
        np.testing.assert_array_equal(g1, g2)


def test_nca_objective_equals_sklearn_lbfgs_trajectory(rng):
    # scikit-learn's NCA maximises sum_i p_i with L-BFGS-B from the identity.
    # Running scipy's public L-BFGS-B on our objective with the same settings
    # must retrace it: equal objective and gradient give equal iterates.
    n, d = 60, 4
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, d)) + 0.8 * np.eye(d)[y]
    sk = NeighborhoodComponentsAnalysis(init="identity", max_iter=15, tol=1e-5).fit(X, y)

    def neg_sum(a):
        f, g = _nca.objective_grad(a.reshape(d, d), X, y)
        return -n * f, -n * g.ravel()

    res = minimize(neg_sum, np.eye(d).ravel(), jac=True, method="L-BFGS-B", tol=1e-5,
                   options={"maxiter": 15})
    assert_close(res.x.reshape(d, d), sk.components_, rtol=0, atol=1e-7)
    f_sk, _ = _nca.objective_grad(sk.components_, X, y)
    assert -res.fun / n == pytest.approx(f_sk, rel=1e-9)
    assert f_sk == pytest.approx(_nca_objective_loop(sk.components_, X, y), rel=1e-12)


def test_nca_fit_reaches_sklearns_objective_on_separable_data(rng):
    n, d = 60, 4
    y = np.repeat(np.arange(3), 20)
    X = rng.standard_normal((n, d)) + 4.0 * np.eye(d)[y]
    sk = NeighborhoodComponentsAnalysis(init="identity", max_iter=100).fit(X, y)
    ours = NCA(n_components=None, init="identity", alpha=0.0, standardize=False, learning_rate=0.05,
               max_iter=100, random_state=0).fit(X, y)
    f_sk = _nca.objective_grad(sk.components_, X, y)[0]
    f_ours = _nca.objective_grad(ours.components_, X, y)[0]
    assert f_sk > 0.98
    assert f_ours == pytest.approx(f_sk, abs=0.01)


# --------------------------------------------------------------------------- NCA estimator
def _artist_problem(rng, n_per_class=30, n_classes=5, d=20, dtype=np.float32, offset=3.0):
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.standard_normal((len(y), d))
    X[:, :n_classes] += offset * np.eye(n_classes)[y]  # classes live in 5 of the 20 dims
    return X.astype(dtype), y


def test_nca_separates_separable_classes(rng):
    X, y = _artist_problem(rng, offset=6.0)
    Xv, yv = _artist_problem(rng, offset=6.0)
    nca = NCA(n_components=5, learning_rate=0.05, batch_size=64, max_iter=60, random_state=0)
    assert nca.fit(X, y).score(X, y) > 0.99
    nca.fit(X, y, X_valid=Xv, y_valid=yv)
    assert nca.score(Xv, yv) > 0.95
    assert nca.components_.shape == (5, 20) and nca.components_.dtype == np.float32
    assert nca.transform(Xv).dtype == np.float32
    assert_close(nca.transform(Xv), Xv @ nca.components_.T)


def test_nca_early_stopping_keeps_the_best_epoch(rng):
    X, y = _artist_problem(rng, n_per_class=8, d=60)  # few clips, many features: overfits
    Xv, yv = _artist_problem(rng, n_per_class=8, d=60)
    nca = NCA(n_components=10, alpha=0.0, learning_rate=0.05, batch_size=20, max_iter=300, patience=5,
              random_state=0).fit(X, y, X_valid=Xv, y_valid=yv)
    assert nca.n_iter_ < 300
    assert nca.n_iter_ - nca.best_iteration_ == 5
    assert len(nca.validation_scores_) == nca.n_iter_ + 1  # the initial map is scored too
    assert nca.best_score_ == pytest.approx(max(nca.validation_scores_))
    assert nca.score(Xv, yv) == pytest.approx(nca.best_score_, rel=1e-5)


def test_nca_deterministic_and_seed_dependent(rng):
    X, y = _artist_problem(rng)
    kw = dict(n_components=3, init="random", learning_rate=0.05, batch_size=40, max_iter=5)
    a = NCA(**kw, random_state=7).fit(X, y)
    b = NCA(**kw, random_state=7).fit(X, y)
    c = NCA(**kw, random_state=8).fit(X, y)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not np.array_equal(a.components_, c.components_)


def test_nca_standardisation_makes_the_fit_scale_invariant(rng):
    X, y = _artist_problem(rng, dtype=np.float64)
    scales = rng.uniform(0.1, 10.0, X.shape[1])
    kw = dict(n_components=4, init="random", learning_rate=0.05, batch_size=50, max_iter=5, random_state=0)
    a = NCA(**kw).fit(X, y)
    b = NCA(**kw).fit(X * scales + 7.0, y)
    E_a, E_b = a.transform(X), b.transform(X * scales + 7.0)
    assert_close(E_b - E_b.mean(0), E_a - E_a.mean(0), rtol=0, atol=1e-8)


def test_nca_float64_and_layouts(rng):
    X, y = _artist_problem(rng, dtype=np.float64)
    kw = dict(n_components=3, learning_rate=0.05, batch_size=50, max_iter=3, random_state=0)
    a = NCA(**kw).fit(X, y)
    assert a.components_.dtype == np.float64
    b = NCA(**kw).fit(np.asfortranarray(X), y)
    assert_close(b.components_, a.components_)
    c = NCA(**kw).fit(np.repeat(X, 2, axis=1)[:, ::2], y)
    assert_close(c.components_, a.components_)


def test_nca_groups_are_excluded_in_fit_and_score(rng):
    X, y = _artist_problem(rng, n_per_class=12)
    tracks = np.arange(len(y)) // 3  # 3 clips per track, tracks within one artist
    nca = NCA(n_components=3, learning_rate=0.05, batch_size=30, max_iter=3, random_state=0)
    nca.fit(X, y, tracks)
    E = nca.transform(X)
    assert nca.score(X, y, tracks) == pytest.approx(
        _nca_objective_loop(nca.components_.astype(np.float64), X.astype(np.float64), y, tracks), rel=1e-5)
    assert nca.score(X, y) == pytest.approx(_nca_objective_loop(np.eye(3), E.astype(np.float64), y),
                                            rel=1e-5)


def test_nca_bad_input(rng):
    X, y = _artist_problem(rng, n_per_class=5)
    nca = NCA(n_components=3, max_iter=1)
    with pytest.raises(ValueError, match="`y` must have one entry per row of `X`"):
        nca.fit(X, y[:-1])
    with pytest.raises(ValueError, match="`y` must contain at least two classes"):
        nca.fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="`y_valid` must contain at least two classes"):
        nca.fit(X, y, X_valid=X, y_valid=np.ones(len(X)))
    with pytest.raises(ValueError, match="`groups` must have one entry per row of `X`"):
        nca.fit(X, y, groups=y[:3])
    with pytest.raises(ValueError, match="`X_valid` must have the features of `X`"):
        nca.fit(X, y, X_valid=X[:, :4], y_valid=y)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        nca.fit(X_nan, y)
    with pytest.raises(ValueError, match="`n_components` must be at most n_features"):
        NCA(n_components=21).fit(X, y)
    with pytest.raises(ValueError, match="`init` must be one of"):
        NCA(n_components=3, init="lda").fit(X, y)
    with pytest.raises(ValueError, match=r"`init` must have shape \(3, 20\)"):
        NCA(n_components=3, init=np.eye(3)).fit(X, y)
    with pytest.raises(ValueError, match="init='pca' needs"):
        NCA(n_components=20, init="pca").fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="`learning_rate` must be a finite number"):
        NCA(n_components=3, learning_rate=0.0).fit(X, y)
    fitted = NCA(n_components=3, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but NCA is expecting 20"):
        fitted.transform(X[:, :5])


def test_evaluate_similarity(rng):
    n_clips, n_windows = 240, 3
    artists = np.tile(np.arange(6), n_clips // 6)
    tracks = np.arange(n_clips) // 2 * 10 + artists  # pairs of clips per track
    C = rng.standard_normal((n_clips, 12)) + 4.0 * np.eye(12)[artists]
    ci = np.repeat(np.arange(n_clips), n_windows)
    X = (C[ci] + 0.3 * rng.standard_normal((len(ci), 12))).astype(np.float32)
    split = (np.arange(n_clips) // 2) % 3  # both clips of a track in one split
    res = evaluate_similarity(X, artists, ci, train=split == 0, valid=split == 1, test=split == 2,
                              groups=tracks, n_runs=2, n_components=6, learning_rate=0.05, batch_size=40,
                              max_iter=30, random_state=0)
    assert res.probability > 0.8 and res.nn_accuracy > 0.8
    assert 0.5 < res.nn_accuracy_other_groups <= 1.0
    assert len(res.runs) == 2
    # the clip means are what NCA sees
    res_means = evaluate_similarity(clip_means(X, ci), artists, train=split == 0, valid=split == 1,
                                    test=split == 2, groups=tracks, n_runs=2, n_components=6,
                                    learning_rate=0.05, batch_size=40, max_iter=30, random_state=0)
    assert res_means.probability == pytest.approx(res.probability, rel=1e-5)
    json.dumps(res.to_dict())
    assert res.n_components == 6
    assert res.validation_probability == pytest.approx(np.mean([r["validation_score"] for r in res.runs]))
    # per_clip: the per-clip terms of every run's four figures, in test-mask order
    kept = evaluate_similarity(X, artists, ci, train=split == 0, valid=split == 1, test=split == 2,
                               groups=tracks, n_runs=2, n_components=6, learning_rate=0.05, batch_size=40,
                               max_iter=30, random_state=0, per_clip=True)
    assert res.per_clip is None and kept.runs == res.runs
    names = {"probability": "probability", "nn_accuracy": "nn_accuracy",
             "probability_other_groups": "probability_other_groups",
             "nn_accuracy_other_groups": "nn_accuracy_other_groups"}
    for key, figure in names.items():
        assert kept.per_clip[key].shape == (2, int(np.sum(split == 2)))
        for run in range(2):
            assert np.nanmean(kept.per_clip[key][run]) == pytest.approx(res.runs[run][figure], rel=1e-12)
    # n_components is capped at the features and at the training clips; progress sees every map
    calls = []
    few = evaluate_similarity(C[:, :4], artists, train=split == 0, valid=split == 1, test=split == 2,
                              n_runs=2, max_iter=2, random_state=0, progress=lambda *a: calls.append(a))
    assert few.n_components == 4 and calls == [("runs", 1, 2), ("runs", 2, 2)]
    tiny_train = (split == 0) & (np.arange(n_clips) < 12)  # 4 training clips, 12 features
    capped = evaluate_similarity(C, artists, train=tiny_train, valid=split == 1, test=split == 2, n_runs=1,
                                 n_components=50, max_iter=2, random_state=0)
    assert tiny_train.sum() == 4 and capped.n_components == 4
    with pytest.raises(ValueError, match=r"`labels\[test\]` must contain at least two classes"):
        evaluate_similarity(X, np.where(split == 2, 0, artists), ci, train=split == 0, valid=split == 1,
                            test=split == 2)


@parametrize_with_checks([NCA(n_components=2, init="identity", max_iter=3, batch_size=50)])
def test_nca_sklearn_estimator_checks(estimator, check):
    # MLPTagger is left out: its fit takes a per-clip tag matrix and a clip
    # index, a signature scikit-learn's checks cannot drive.
    check(estimator)
