"""Private input checks shared by the public functions and estimators.

Every message names the argument, the constraint and the value received
(STYLE.md rule 27). Kernels in ``msk._core`` trust what these return.
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


def float_dtype(x):
    """float32 and float64 are kept, everything else becomes float64 (STYLE.md rule 21)."""
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
