"""Private help for seeds: one bound and one way to draw an int seed from a random state."""

from sklearn.utils import check_random_state

#: Seeds handed to estimators lie in [0, MAX_SEED): the range of a 32-bit signed int,
#: which every NumPy and scikit-learn random state accepts.
MAX_SEED = 2**31 - 1


def draw_seed(random_state):
    """An int seed in [0, MAX_SEED) drawn from ``random_state`` (so a RandomState is never shared)."""
    return int(check_random_state(random_state).randint(MAX_SEED))
