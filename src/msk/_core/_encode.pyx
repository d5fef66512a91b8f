# Fused whiten -> encode -> pool over the window positions of one level.
# The window product is a 1-D convolution over frames, computed as GEMMs on
# contiguous frame blocks (no window is ever copied). Codes exist only for one
# tile of positions at a time; pooling statistics are merged across tiles.

from libc.math cimport sqrt

from ._blas cimport gemm, floating


cdef extern from "_encode_pool.h" nogil:
    void seg_max_f(const float* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, float* mx)
    void seg_max_d(const double* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, double* mx)
    void seg_max_sum_f(const float* codes, Py_ssize_t n_rows, Py_ssize_t n_codes,
                       float* mx, float* sum)
    void seg_max_sum_d(const double* codes, Py_ssize_t n_rows, Py_ssize_t n_codes,
                       double* mx, double* sum)
    void seg_rectify_f(float* codes, Py_ssize_t n_rows, Py_ssize_t n_codes,
                       const float* bias, float* mx, float* sum)
    void seg_rectify_d(double* codes, Py_ssize_t n_rows, Py_ssize_t n_codes,
                       const double* bias, double* mx, double* sum)
    void seg_m2_f(const float* codes, Py_ssize_t n_rows, Py_ssize_t n_codes,
                  const float* mean, float* m2)
    void seg_m2_d(const double* codes, Py_ssize_t n_rows, Py_ssize_t n_codes,
                  const double* mean, double* m2)


cdef inline void _segment(floating* codes, Py_ssize_t n_rows, Py_ssize_t n_codes,
                          const floating* bias, bint in_place, bint need_mean, bint need_m2,
                          floating* seg_max, floating* seg_mean,
                          floating* seg_m2) noexcept nogil:
    """Summarise n_rows rows of codes.

    INOUT codes: (n_rows, n_codes); replaced by max(codes + bias, 0) if in_place
    OUT   seg_max; seg_mean if need_mean; seg_m2 (sum of squared deviations from
          the mean) if need_m2; all (n_codes,)
    """
    cdef Py_ssize_t k
    cdef floating inv = (<floating> 1) / n_rows
    if floating is float:
        if in_place:
            seg_rectify_f(codes, n_rows, n_codes, bias, seg_max, seg_mean)
        elif need_mean:
            seg_max_sum_f(codes, n_rows, n_codes, seg_max, seg_mean)
        else:
            seg_max_f(codes, n_rows, n_codes, seg_max)
    else:
        if in_place:
            seg_rectify_d(codes, n_rows, n_codes, bias, seg_max, seg_mean)
        elif need_mean:
            seg_max_sum_d(codes, n_rows, n_codes, seg_max, seg_mean)
        else:
            seg_max_d(codes, n_rows, n_codes, seg_max)
    if need_mean:
        for k in range(n_codes):
            seg_mean[k] *= inv
    if need_m2:
        if floating is float:
            seg_m2_f(codes, n_rows, n_codes, seg_mean, seg_m2)
        else:
            seg_m2_d(codes, n_rows, n_codes, seg_mean, seg_m2)


cdef inline void _merge(Py_ssize_t n_codes, Py_ssize_t n_acc, Py_ssize_t n_seg,
                        bint need_mean, bint need_m2,
                        floating* acc_max, floating* acc_mean, floating* acc_m2,
                        const floating* seg_max, const floating* seg_mean,
                        const floating* seg_m2) noexcept nogil:
    """Merge one segment's statistics into the running pool (Chan et al.'s update).

    INOUT acc_*: (n_codes,) statistics of the n_acc positions seen so far in this pool
    IN    seg_*: (n_codes,) statistics of n_seg further positions
    """
    cdef Py_ssize_t k
    cdef floating delta
    cdef floating n = n_acc + n_seg
    cdef floating wb = n_seg / n
    cdef floating wab = (<floating> n_acc) * n_seg / n
    if n_acc == 0:
        for k in range(n_codes):
            acc_max[k] = seg_max[k]
        if need_mean:
            for k in range(n_codes):
                acc_mean[k] = seg_mean[k]
        if need_m2:
            for k in range(n_codes):
                acc_m2[k] = seg_m2[k]
        return
    for k in range(n_codes):
        acc_max[k] = seg_max[k] if seg_max[k] > acc_max[k] else acc_max[k]
    if need_m2:
        for k in range(n_codes):
            delta = seg_mean[k] - acc_mean[k]
            acc_m2[k] += seg_m2[k] + delta * delta * wab
    if need_mean:
        for k in range(n_codes):
            acc_mean[k] += (seg_mean[k] - acc_mean[k]) * wb


cdef Py_ssize_t _run(const floating[:, ::1] frames, Py_ssize_t width,
               const floating[:, ::1] first, const floating[:, ::1] second,
               const floating[::1] bias, bint rectify,
               Py_ssize_t pool, Py_ssize_t n_positions, Py_ssize_t tile,
               bint do_max, bint do_mean, bint do_std,
               floating[::1] work, floating[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t n_mels = frames.shape[1]
    cdef Py_ssize_t n_first = first.shape[1]
    cdef bint staged = second.shape[0] > 0
    cdef Py_ssize_t n_codes = second.shape[1] if staged else n_first
    # work = [codes (tile, n_codes) | hidden (tile, n_first) if staged | stats (6, n_codes)]
    cdef floating* codes = &work[0]
    cdef floating* stage1 = codes + tile * n_codes if staged else codes
    cdef floating* stats = codes + tile * n_codes + (tile * n_first if staged else 0)
    # Rectified codes feed mean/std, so they are rectified in the tile; otherwise the
    # bias is added after pooling (max, mean shift by it; std ignores it) and, for a
    # max-only threshold, max(0, .) commutes with the maximum.
    cdef bint in_place = rectify and (do_mean or do_std)
    cdef bint need_mean = do_mean or do_std
    cdef floating v
    cdef Py_ssize_t t0, t1, n, j, s0, s1, p, pool_end, col, k
    cdef Py_ssize_t n_acc = 0
    cdef Py_ssize_t n_bad = 0
    cdef Py_ssize_t col_end = n_codes * (do_max + do_mean + do_std)
    cdef floating* acc_max = stats
    cdef floating* acc_mean = stats + n_codes
    cdef floating* acc_m2 = stats + 2 * n_codes
    cdef floating* seg_max = stats + 3 * n_codes
    cdef floating* seg_mean = stats + 4 * n_codes
    cdef floating* seg_m2 = stats + 5 * n_codes

    t0 = 0
    while t0 < n_positions:
        t1 = t0 + tile if t0 + tile < n_positions else n_positions
        n = t1 - t0
        # Window product as a convolution: sum over frame offsets j of the
        # contiguous block frames[t0 + j : t1 + j] times the j-th row block.
        for j in range(width):
            gemm(False, False, <int> n, <int> n_first, <int> n_mels, 1,
                 &frames[t0 + j, 0], <int> n_mels,
                 &first[j * n_mels, 0], <int> n_first,
                 0 if j == 0 else 1, stage1, <int> n_first)
        if staged:
            gemm(False, False, <int> n, <int> n_codes, <int> n_first, 1,
                 stage1, <int> n_first, &second[0, 0], <int> n_codes,
                 0, codes, <int> n_codes)
        # Split the tile at pool boundaries; each piece is merged into the
        # running pool, which is written out when its last position is seen.
        s0 = t0
        while s0 < t1:
            p = s0 // pool
            pool_end = (p + 1) * pool
            if pool_end > n_positions:
                pool_end = n_positions
            s1 = pool_end if pool_end < t1 else t1
            _segment(codes + (s0 - t0) * n_codes, s1 - s0, n_codes, &bias[0], in_place, need_mean,
                     do_std, seg_max, seg_mean, seg_m2)
            _merge(n_codes, n_acc, s1 - s0, need_mean, do_std, acc_max, acc_mean, acc_m2,
                   seg_max, seg_mean, seg_m2)
            n_acc += s1 - s0
            if s1 == pool_end:
                col = 0
                if do_max:
                    for k in range(n_codes):
                        v = acc_max[k]
                        if not in_place:
                            v = v + bias[k]
                            if rectify and v < 0:
                                v = 0
                        out[p, col + k] = v
                    col += n_codes
                if do_mean:
                    for k in range(n_codes):
                        out[p, col + k] = acc_mean[k] if in_place else acc_mean[k] + bias[k]
                    col += n_codes
                if do_std:
                    for k in range(n_codes):
                        out[p, col + k] = sqrt(acc_m2[k] / n_acc)
                # a NaN or infinity in the pooled row (v - v is NaN exactly then):
                # tested here, on the small output, instead of by a pass in Python
                for k in range(col_end):
                    v = out[p, k]
                    if not (v - v == 0):
                        n_bad += 1
                n_acc = 0
            s0 = s1
        t0 = t1
    return n_bad


cdef Py_ssize_t _INT_MAX = 2147483647  # BLAS dimensions and strides are C ints


cdef void _check_shapes(Py_ssize_t n_frames, Py_ssize_t n_mels, Py_ssize_t width,
                        Py_ssize_t first_rows, Py_ssize_t n_first,
                        Py_ssize_t second_rows, Py_ssize_t second_cols, Py_ssize_t n_bias,
                        Py_ssize_t pool, Py_ssize_t n_positions, Py_ssize_t tile, int n_stats,
                        Py_ssize_t n_work, Py_ssize_t out_rows, Py_ssize_t out_cols) except *:
    """Raise ValueError unless the shapes given to whiten_encode_pool are consistent."""
    cdef bint staged = second_rows > 0
    cdef Py_ssize_t n_codes = second_cols if staged else n_first
    cdef Py_ssize_t n_pools, need
    if width < 1 or pool < 1 or tile < 1 or n_positions < 0 or n_stats < 1:
        raise ValueError(
            f"whiten_encode_pool: width, pool, tile must be >= 1, n_positions >= 0 and at least one "
            f"statistic requested; got width={width}, pool={pool}, tile={tile}, "
            f"n_positions={n_positions}, statistics={n_stats}.")
    if n_mels < 1 or n_first < 1 or n_codes < 1:
        raise ValueError(
            f"whiten_encode_pool: frames, first and the codes must have at least one column; got "
            f"frames of shape ({n_frames}, {n_mels}), first of shape ({first_rows}, {n_first}), "
            f"second of shape ({second_rows}, {second_cols}).")
    if n_mels > _INT_MAX or n_first > _INT_MAX or n_codes > _INT_MAX or tile > _INT_MAX:
        raise ValueError(
            f"whiten_encode_pool: dimensions must fit a C int for BLAS; got frames of shape "
            f"({n_frames}, {n_mels}), first of shape ({first_rows}, {n_first}), second of shape "
            f"({second_rows}, {second_cols}), tile={tile}.")
    if first_rows % n_mels or first_rows // n_mels != width:
        raise ValueError(
            f"whiten_encode_pool: first must have width * n_mels = {width} * {n_mels} rows; got "
            f"first of shape ({first_rows}, {n_first}) and frames of shape ({n_frames}, {n_mels}).")
    if staged and second_rows != n_first:
        raise ValueError(
            f"whiten_encode_pool: second must have first.shape[1] = {n_first} rows; got second of "
            f"shape ({second_rows}, {second_cols}) and first of shape ({first_rows}, {n_first}).")
    if n_bias != n_codes:
        raise ValueError(
            f"whiten_encode_pool: bias must have {n_codes} entries (one per code); got bias of "
            f"shape ({n_bias},), first of shape ({first_rows}, {n_first}) and second of shape "
            f"({second_rows}, {second_cols}).")
    if n_positions > 0 and n_positions > n_frames - width + 1:
        raise ValueError(
            f"whiten_encode_pool: n_positions={n_positions} windows of width={width} need at least "
            f"{n_positions + width - 1} frames; got frames of shape ({n_frames}, {n_mels}).")
    n_pools = (n_positions + pool - 1) // pool
    if out_rows != n_pools or out_cols != n_codes * n_stats:
        raise ValueError(
            f"whiten_encode_pool: out must have shape ({n_pools}, {n_codes * n_stats}) "
            f"(ceil(n_positions / pool) pools, {n_stats} statistics of {n_codes} codes); got out "
            f"of shape ({out_rows}, {out_cols}).")
    need = (tile + 6) * n_codes + (tile * n_first if staged else 0)
    if n_work < need:
        raise ValueError(
            f"whiten_encode_pool: work must have at least (tile + 6) * n_codes"
            f"{' + tile * n_first' if staged else ''} = {need} entries; got work of shape ({n_work},).")


def whiten_encode_pool(const floating[:, ::1] frames not None, Py_ssize_t width,
                       const floating[:, ::1] first not None, const floating[:, ::1] second not None,
                       const floating[::1] bias not None, bint rectify,
                       Py_ssize_t pool, Py_ssize_t n_positions, Py_ssize_t tile,
                       bint do_max, bint do_mean, bint do_std,
                       floating[::1] work not None, floating[:, ::1] out not None):
    """Encode every window position of one level and pool the codes, tile by tile.

    IN  frames: (T, n_mels); window t is frames[t : t + width] flattened
    IN  first: (width * n_mels, n_first), the first (or only) projection, transposed
    IN  second: (n_first, K) second projection, transposed; shape (0, 0) for one stage
    IN  bias: (K,) added to every code (the -M mu term, minus alpha when rectifying)
    IN  rectify: codes = max(0, codes + bias) instead of codes + bias
    IN  pool: positions per pooling window; n_positions: positions encoded
        (n_pools * pool, or all positions when there are fewer than pool)
    IN  tile: positions per GEMM tile (>= 1)
    IN  do_max, do_mean, do_std: statistics written, in this order
    WORK work: (tile * K + (tile * n_first if staged else 0) + 6 * K,)
    OUT out: (n_pools, K * (do_max + do_mean + do_std)); std is the population std
    Returns the number of values of out that are NaN or infinite (tested as each pooled
    row is written). All arrays share one dtype. The shapes are checked here, once per call,
    so that no call can read or write out of bounds (ValueError naming the shapes); values
    are not.
    """
    cdef Py_ssize_t n_bad
    _check_shapes(frames.shape[0], frames.shape[1], width, first.shape[0], first.shape[1],
                  second.shape[0], second.shape[1], bias.shape[0], pool, n_positions, tile,
                  do_max + do_mean + do_std, work.shape[0], out.shape[0], out.shape[1])
    with nogil:
        n_bad = _run(frames, width, first, second, bias, rectify, pool, n_positions, tile,
                     do_max, do_mean, do_std, work, out)
    return n_bad
