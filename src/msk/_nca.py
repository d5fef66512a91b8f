"""Private NCA numerics: neighbour softmax, objective and its gradient as GEMMs.

Notation. ``X`` is (n, d), ``A`` is (m, d), the embedding is ``E = X Aᵀ``
(n, m). With squared distances ``D_ij = |e_i - e_j|²`` and an exclusion mask
(self, and optionally every pair from the same group),

    P_ij = exp(-D_ij) / Σ_k exp(-D_ik)       (excluded pairs have P_ij = 0)
    p_i  = Σ_j Y_ij P_ij                     (Y_ij = 1 when y_i == y_j)
    f    = (1 / n_valid) Σ_i p_i

where ``n_valid`` counts the rows that have at least one eligible neighbour
(rows without one have no p_i and are left out). Differentiating,
``∂f/∂D_ik = P_ik (p_i - Y_ik) / n_valid =: W_ik`` and ``∂D_ik/∂A =
2 A (x_i - x_k)(x_i - x_k)ᵀ``, so

    ∂f/∂A = 2 Σ_ik W_ik A (x_i - x_k)(x_i - x_k)ᵀ = 2 Eᵀ L X,
    L = diag(r + c) - W - Wᵀ,  r = W 1,  c = Wᵀ 1.

Every row of ``W`` sums to zero (Σ_k P_ik = 1 and Σ_k P_ik Y_ik = p_i), so
``r = 0`` and ``L E = c ⊙ E - W E - Wᵀ E``. The gradient is therefore

    ∂f/∂A = 2 (c ⊙ E - W E - Wᵀ E)ᵀ X,

five GEMMs and no (n, n, d) tensor: ``X Aᵀ`` and the last product cost
``2 n m d`` FLOPs each, the Gram matrix ``E Eᵀ``, ``W E`` and ``Wᵀ E`` cost
``2 n² m`` each. The (n, n) matrices are never held whole: rows are processed
in blocks sized so that a block stays in the L2 cache, and every elementwise
pass (softmax, masks, weights) runs on that cache-resident block.

Two further savings: ``-D_ij = 2 e_iᵀe_j - |e_j|² - |e_i|²`` and the last
term is constant along a row, so the softmax is taken over
``2 e_iᵀe_j - |e_j|²``, which one GEMM gives directly with an extra column
(``[E, 1] · [2E, -|e|²]ᵀ``); and ``E`` is centred (distances do not change, and since ``L 1 = 0``
neither does the gradient), which limits cancellation in float32.
"""

import numpy as np

# Elements of one (rows, n) block: 2**17 float32 = 512 KiB, a quarter of the L2.
_BLOCK_ELEMENTS = 1 << 17


# Logit floor and the smallest probability that still gets a gradient weight, per
# dtype, chosen so that exp(floor) * tiny / n stays a normal number for n < 1e7.
_LOGIT_FLOOR = {np.dtype(np.float32): -40.0, np.dtype(np.float64): -500.0}
_P_TINY = {np.dtype(np.float32): 1e-12, np.dtype(np.float64): 1e-30}


def block_rows(n):
    return int(max(16, min(n, _BLOCK_ELEMENTS // max(n, 1))))


def _augment(E):
    """``(Ea, Eb)`` with ``Ea[i] @ Eb[j] = 2 e_i.e_j - |e_j|²``: the Gram block and the
    row shift come out of one GEMM (one more column) instead of a GEMM and a pass."""
    n, m = E.shape
    Ea = np.empty((n, m + 1), dtype=E.dtype)
    Ea[:, :m] = E
    Ea[:, m] = 1.0
    Eb = np.empty_like(Ea)
    np.multiply(E, 2.0, out=Eb[:, :m])
    Eb[:, m] = -np.einsum("ij,ij->i", E, E)
    return Ea, Eb


def _softmax_block(Ea_rows, Eb, start, groups):
    """Unnormalised neighbour weights for rows ``start:start+len(E_rows)``.

    Returns ``T`` of shape (b, n) with ``T_ij = exp(-D_ij + min_k D_ik)`` (0 on
    excluded pairs), and the row sums ``s`` (0 for rows without neighbours).
    Logits are clipped below at ``_LOGIT_FLOOR`` so that no weight, and no
    product of a weight with a gradient coefficient, is subnormal: subnormal
    operands slow the following GEMMs down by an order of magnitude. The
    clipped weights are below the dtype's resolution relative to the largest
    one (which is 1), so the row sums do not change.
    """
    b = Ea_rows.shape[0]
    T = Ea_rows @ Eb.T  # 2 e_i.e_j - |e_j|²
    if groups is None:
        rows = np.arange(b)
        excluded = (rows, start + rows)
        T[excluded] = -np.inf
    else:
        excluded = groups[start:start + b, None] == groups[None, :]
        np.putmask(T, excluded, -np.inf)
    mx = T.max(axis=1, keepdims=True)
    mx[~np.isfinite(mx)] = 0.0  # a row with every pair excluded: zeroed below
    T -= mx
    np.maximum(T, _LOGIT_FLOOR[T.dtype], out=T)
    np.exp(T, out=T)
    if groups is None:
        T[excluded] = 0.0
    else:
        np.putmask(T, excluded, 0.0)
    s = T.sum(axis=1)
    return T, s


def _compact(codes):
    """Re-encode integer labels as 0..k-1 in the narrowest integer dtype.

    The (b, n) equality masks are the only integer work per pair; int16 codes
    make them five times cheaper than int64.
    """
    if codes is None:
        return None
    uniq, inv = np.unique(codes, return_inverse=True)
    dt = np.int16 if len(uniq) < np.iinfo(np.int16).max else np.int32
    return inv.astype(dt, copy=False)


def _embed(A, X):
    E = X @ A.T
    E -= E.mean(axis=0)
    return E


def probabilities(E, y, groups=None):
    """Per-row probability of picking a same-class neighbour; NaN where undefined.

    ``E`` (n, m) float, ``y`` (n,) int codes, ``groups`` (n,) int codes or None.
    """
    E = E - E.mean(axis=0)
    y, groups = _compact(y), _compact(groups)
    n = E.shape[0]
    Ea, Eb = _augment(E)
    out = np.empty(n, dtype=np.float64)
    b = block_rows(n)
    for start in range(0, n, b):
        T, s = _softmax_block(Ea[start:start + b], Eb, start, groups)
        same = y[start:start + b, None] == y[None, :]
        q = np.sum(T, axis=1, where=same)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start:start + b] = np.where(s > 0, q / np.where(s > 0, s, 1), np.nan)
    return out


def objective_grad(A, X, y, groups=None, *, alpha=0.0, compute_grad=True):
    """NCA objective ``mean_i p_i - alpha/2 |A|²`` and its gradient w.r.t. ``A``.

    ``A`` (m, d) and ``X`` (n, d) of one float dtype, ``y`` (n,) int codes,
    ``groups`` (n,) int codes or None. Returns ``(f, grad)`` with ``f`` a
    Python float and ``grad`` of ``A``'s shape and dtype (None when
    ``compute_grad`` is false). Rows without an eligible neighbour are left
    out of the mean; if no row has one, ``f`` is 0 and the data gradient 0.
    """
    n = X.shape[0]
    y, groups = _compact(y), _compact(groups)
    E = _embed(A, X)
    Ea, Eb = _augment(E)
    b = block_rows(n)
    p_sum = 0.0
    n_valid = 0
    if compute_grad:
        WE = np.empty_like(E)
        WtE = np.zeros_like(E)
        colsum = np.zeros(n, dtype=E.dtype)
    # First pass computes p for every row; n_valid is only known afterwards,
    # so the 1/n_valid factor is applied to the small (n, m) products at the end.
    for start in range(0, n, b):
        stop = min(start + b, n)
        T, s = _softmax_block(Ea[start:stop], Eb, start, groups)
        same = y[start:stop, None] == y[None, :]
        q = np.sum(T, axis=1, where=same)
        valid = s > 0
        inv_s = np.zeros_like(s)
        np.divide(1.0, s, out=inv_s, where=valid)
        p = q * inv_s
        p_sum += float(p.sum(dtype=np.float64))
        n_valid += int(valid.sum())
        if not compute_grad:
            continue
        # W_ij = T_ij / s_i * (p_i - Y_ij): one pass builds the coefficient, one
        # applies it. Rows with p_i < tiny get no weight off their class (the
        # term is p_i-small anyway); this keeps the products normal numbers.
        p_w = np.where(p < _P_TINY[p.dtype], 0.0, p).astype(p.dtype, copy=False)
        coef = np.where(same, ((p_w - 1.0) * inv_s)[:, None], (p_w * inv_s)[:, None])
        T *= coef
        colsum += T.sum(axis=0)
        np.matmul(T, E, out=WE[start:stop])
        WtE += T.T @ E[start:stop]
    if n_valid == 0:
        f = 0.0
        scale = 0.0
    else:
        f = p_sum / n_valid
        scale = 1.0 / n_valid
    if alpha:
        f -= 0.5 * alpha * float(np.vdot(A, A))
    if not compute_grad:
        return f, None
    K = colsum[:, None] * E
    K -= WE
    K -= WtE
    grad = K.T @ X
    grad *= 2.0 * scale
    if alpha:
        grad -= alpha * A
    return f, grad


def gemm_flops(n, d, m):
    """FLOPs of the five GEMMs in one objective + gradient evaluation."""
    return 4 * n * m * d + 6 * n * n * m
