"""Private input checks shared by the public functions and estimators.

Every message names the argument, the constraint and the value received,
so that a user can fix the call from the message alone. Kernels in ``msk._core``
trust the values these return and check only the shapes they index with.
"""

import numbers

import numpy as np


def check_option(name, value, options):
    """Return ``value`` if it is one of ``options``, else raise ValueError."""
    if isinstance(value, str) and value in options:
        return value
    listed = repr(options[0]) if len(options) == 1 else (
        ", ".join(repr(o) for o in options[:-1]) + f" or {options[-1]!r}")
    raise ValueError(f"`{name}` must be one of {listed}; got {value!r}.")


def check_int(name, value, *, low=None, high=None):
    """Return ``value`` as an int within [low, high], else raise TypeError/ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer; got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            bound = "a positive integer" if low == 1 else f"an integer >= {low}"
        elif low is None:
            bound = f"an integer <= {high}"
        else:
            bound = f"an integer between {low} and {high}"
        raise ValueError(f"`{name}` must be {bound}; got {value}.")
    return value


# Sample rates msk accepts, in Hz, from an argument or a file's header: from 1 Hz (a valid if
# odd file) to 1 MHz (above every PCM rate in use, 768 kHz included). soxr resamples any ratio
# within this range in bounded memory; far outside it it allocates without bound or never ends.
SAMPLE_RATE_RANGE = (1, 1_000_000)


def check_sample_rate(name, value, *, path=None):
    """Return the sample rate ``value`` as an int in :data:`SAMPLE_RATE_RANGE`, else raise.

    ``name`` is the argument; with ``path`` the rate comes from that file's
    header and the message names the file instead.
    """
    low, high = SAMPLE_RATE_RANGE
    if path is None:
        value = check_int(name, value)
        if not low <= value <= high:
            raise ValueError(
                f"`{name}` must be a sample rate between {low} and {high} Hz; got {value}.")
        return value
    if not low <= int(value) <= high:
        raise ValueError(
            f"{path!r} declares a sample rate of {int(value)} Hz, outside the {low} to {high} Hz "
            "that msk reads: the header is corrupt or the file is not audio.")
    return int(value)


def check_float(name, value, *, low=None, high=None, low_inclusive=True, high_inclusive=True):
    """Return ``value`` as a finite float within the bounds, else raise TypeError/ValueError."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number; got {value!r} of type {type(value).__name__}.")
    value = float(value)
    bad = not np.isfinite(value)
    if low is not None:
        bad |= value < low if low_inclusive else value <= low
    if high is not None:
        bad |= value > high if high_inclusive else value >= high
    if bad:
        lo = "" if low is None else ("[" if low_inclusive else "(") + f"{low}"
        hi = "" if high is None else f"{high}" + ("]" if high_inclusive else ")")
        rng = f" in {lo or '(-inf'}, {hi or 'inf)'}" if (low is not None or high is not None) else ""
        raise ValueError(f"`{name}` must be a finite number{rng}; got {value}.")
    return value


def check_log_range(name, value):
    """A (low, high) pair of positive numbers with low <= high (a log-uniform search range), as floats."""
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in value)
            or value[0] > value[1]):
        raise ValueError(f"`{name}` must be a (low, high) pair of positive numbers with low <= high; got {value!r}.")
    return float(value[0]), float(value[1])


def float_dtype(x):
    """float32 and float64 are kept, everything else becomes float64 (the kernels' two dtypes)."""
    if np.issubdtype(x.dtype, np.complexfloating):
        raise TypeError(f"complex input is not supported; got dtype {x.dtype}.")
    return x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)


def as_float_array(name, x, *, ndim, dtype=None, min_len=1, finite=True):
    """Return ``x`` as a C-contiguous, finite float array of ``ndim`` dimensions.

    Copies only when needed. ``dtype=None`` applies the float32/float64 rule;
    otherwise the array is cast to ``dtype``. ``finite=False`` skips the NaN/inf
    test, for callers whose kernel tests the values in the pass that reads them
    anyway and reports back (msk.pyramid); they must raise the same error.
    """
    if isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"`{name}` must be an array of numbers; got {type(x).__name__}.")
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"`{name}` must be an array of numbers; got dtype {arr.dtype}.")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"`{name}` must be real; got complex dtype {arr.dtype}.")
    dt = float_dtype(arr) if dtype is None else np.dtype(dtype)
    if arr.ndim != ndim:
        raise ValueError(f"`{name}` must be a {ndim}-D array; got shape {arr.shape}.")
    if arr.shape[0] < min_len:
        raise ValueError(f"`{name}` must have at least {min_len} element(s) along axis 0; got shape {arr.shape}.")
    if ndim > 1 and 0 in arr.shape[1:]:
        raise ValueError(f"`{name}` must not have an empty axis; got shape {arr.shape}.")
    arr = np.ascontiguousarray(arr, dtype=dt)
    if finite and not all_finite(arr):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return arr


def all_finite(arr):
    """Whether every value of a float array is finite.

    min and max propagate NaN and expose +-inf: two SIMD reductions, no boolean
    temporary the size of the array.
    """
    return arr.size == 0 or bool(np.isfinite(arr.min()) and np.isfinite(arr.max()))


def one_per_row(name, value, n, *, n_name="X", what="an array"):
    """``value`` as a 1-D array with one entry per row of ``n_name`` (``n`` rows)."""
    if value is None or isinstance(value, (str, bytes)):
        raise TypeError(f"`{name}` must be {what}; got {type(value).__name__}.")
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D array; got shape {arr.shape}.")
    if len(arr) != n:
        raise ValueError(
            f"`{name}` must have one entry per row of `{n_name}`; got {len(arr)} entries for {n} rows."
        )
    return arr


def label_codes(name, labels, n, *, n_name="X"):
    """Integer codes 0..n_classes-1 of a 1-D array of ``n`` labels (any hashable dtype)."""
    arr = one_per_row(name, labels, n, n_name=n_name, what="an array of labels")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    if arr.dtype == object:
        arr = arr.astype(str)
    return np.unique(arr, return_inverse=True)[1]


# float32 and float64 are kept, anything else becomes float64 (scikit-learn's dtype rule).
FLOAT_DTYPES = [np.float64, np.float32]


def check_2d(X, name="X"):
    """Reject anything that is not 2-D with a message naming the argument.

    The message keeps scikit-learn's "Reshape your data" hint, which its API checks expect.
    """
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"`{name}` must be a 2-D array of numbers; got {type(X).__name__}.")
    shape = getattr(X, "shape", None)
    if shape is None:
        try:
            shape = np.shape(np.asarray(X))
        except Exception:  # let validate_data report what it is
            return
    if shape is not None and len(shape) != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (n_samples, n_features); got shape {tuple(shape)}. "
            "Reshape your data with X.reshape(-1, 1) if it has a single feature or "
            "X.reshape(1, -1) if it is a single sample."
        )


def check_fitted_features(estimator, X, *, ensure_all_finite=True):
    """Validate ``X`` for a fitted estimator (shape, dtype, n_features_in_)."""
    from sklearn.utils.validation import check_is_fitted, validate_data

    check_is_fitted(estimator)
    check_2d(X)
    return validate_data(
        estimator, X, reset=False, dtype=FLOAT_DTYPES, order="C", ensure_all_finite=ensure_all_finite
    )


def check_kmeans_range(name, X, sum_squares):
    """Refuse ``X`` if spherical K-means on it could overflow, whatever K.

    ``sum_squares`` is the sum of the squared entries of ``X`` (float64, as
    computed by the caller: inf when a row's sum overflows). Every quantity the
    K-means pass computes is bounded by it: a projection by a row's norm, each
    row of the update ``S^T X`` (a sum of ``s_i x_i`` with ``|s_i| <= ||x_i||``)
    in norm by ``sum_squares``, the energy likewise, and the float64 norms of the
    updated centroids by its square. Below a quarter of the dtype's largest value
    (and of the square root of float64's, for float64 ``X``) none of them can
    overflow, for any number of clusters; above it, some assignment of the
    samples could, so ``X`` is refused whatever K and the draw of the centroids.
    """
    limit = min(float(np.finfo(X.dtype).max), float(np.sqrt(np.finfo(np.float64).max))) / 4
    if np.isfinite(sum_squares) and sum_squares <= limit:
        return
    if not all_finite(X):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    with np.errstate(over="ignore"):  # error path only; inf is a fine answer here
        exact = sum(float(np.square(row, dtype=np.float64).sum()) for row in X)
    raise ValueError(
        f"`{name}` is too large for spherical K-means in {X.dtype}: the sum of its squared entries "
        f"is {exact:.3g} (largest magnitude {float(np.abs(X).max()):.3g}), and it must be at most "
        f"{limit:.3g} so that the centroid updates cannot overflow. Rescale `{name}` (e.g. divide it "
        "by its largest magnitude)."
    )
