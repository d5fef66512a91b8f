"""scikit-learn API conformance of every msk estimator."""

from sklearn.utils.estimator_checks import parametrize_with_checks

import msk

ESTIMATORS = [
    msk.PCAWhitening(),
    msk.PCAWhitening(whitening="zca"),
    # n_clusters is lowered because the checks fit on 20-100 samples (sklearn's own test
    # suite lowers KMeans' n_clusters the same way).
    msk.SphericalKMeans(n_clusters=3, max_iter=10, random_state=0),
]

EXPECTED_FAILED_CHECKS = {}


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}))
def test_sklearn_compatible(estimator, check):
    check(estimator)
