# Fused whiten -> encode -> pool over the window positions of one level.
# The window product is a 1-D convolution over frames, computed as GEMMs on
# contiguous frame blocks (no window is ever copied). Codes exist only for one
# tile of positions at a time; pooling statistics are merged across tiles.

from libc.math cimport sqrt

from ._blas cimport gemm, floating


cdef extern from "_encode_pool.h" nogil:
    void seg_max_f(const float* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, float* mx)
    void seg_max_d(const double* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, double* mx)
    void seg_max_min_f(const float* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, float* mx, float* mn)
    void seg_max_min_d(const double* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, double* mx, double* mn)
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
    void frame_center_f(const float* frames, Py_ssize_t n_frames, Py_ssize_t n_mels, float* out,
                        float* c, float* s1, float* q)
    void frame_center_d(const double* frames, Py_ssize_t n_frames, Py_ssize_t n_mels, double* out,
                        double* c, double* s1, double* q)
    void row_normalize_f(float* rows, Py_ssize_t n_rows, Py_ssize_t n_cols, Py_ssize_t ld,
                         const float* sums, Py_ssize_t width, Py_ssize_t n_mels, const float* c,
                         const float* s1, const float* q, double eps)
    void row_normalize_d(double* rows, Py_ssize_t n_rows, Py_ssize_t n_cols, Py_ssize_t ld,
                         const double* sums, Py_ssize_t width, Py_ssize_t n_mels, const double* c,
                         const double* s1, const double* q, double eps)
    void row_unit_f(float* rows, Py_ssize_t n_rows, Py_ssize_t n_cols, Py_ssize_t ld, const float* bias)
    void row_unit_d(double* rows, Py_ssize_t n_rows, Py_ssize_t n_cols, Py_ssize_t ld, const double* bias)
    void tile_split_f(float* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, const float* bias, float alpha)
    void tile_split_d(double* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, const double* bias,
                      double alpha)
    void tile_triangle_f(float* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, const float* cn2)
    void tile_triangle_d(double* codes, Py_ssize_t n_rows, Py_ssize_t n_codes, const double* cn2)


# Encodings (the `encoding` argument of whiten_encode_pool).
cdef enum:
    LINEAR = 0      # codes + bias
    THRESHOLD = 1   # max(0, codes + bias)
    SPLIT = 2       # [max(0, f - threshold), max(0, -f - threshold)], f = codes + bias
    TRIANGLE = 3    # max(0, mean_k z - z_k), z_k = ||h / ||h|| - c_k||


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
               const floating[::1] bias, int encoding, double threshold,
               const floating[:, ::1] first_sums, double normalize_eps,
               const floating[::1] hidden_bias, const floating[::1] center_sq,
               Py_ssize_t pool, Py_ssize_t n_positions, Py_ssize_t tile,
               bint do_max, bint do_mean, bint do_std,
               floating[::1] work, floating[:, ::1] out) noexcept nogil:
    cdef Py_ssize_t n_mels = frames.shape[1]
    cdef Py_ssize_t n_first = first.shape[1]
    cdef bint staged = second.shape[0] > 0
    cdef bint normalize = first_sums.shape[0] > 0
    cdef Py_ssize_t n_codes = second.shape[1] if staged else n_first
    cdef Py_ssize_t n_out = 2 * n_codes if encoding == SPLIT else n_codes
    # work = [codes (tile, n_out) | hidden (tile, n_first) if staged | stats (6, n_out)
    #         | if normalize: centred frames (tile + width - 1, n_mels), then their
    #           centres, sums and sums of squares (3 x (tile + width - 1))]
    cdef floating* codes = &work[0]
    cdef floating* stage1 = codes + tile * n_out if staged else codes
    cdef Py_ssize_t ld1
    cdef floating* stats = codes + tile * n_out + (tile * n_first if staged else 0)
    cdef Py_ssize_t n_block = tile + width - 1
    cdef floating* centred = stats + 6 * n_out
    cdef floating* f_c = centred + n_block * n_mels
    cdef floating* f_s1 = f_c + n_block
    cdef floating* f_q = f_s1 + n_block
    cdef const floating* a_rows
    # Rectified codes feed mean/std, so they are rectified in the tile; otherwise the
    # bias is added after pooling (max, mean shift by it; std ignores it) and, for a
    # max-only threshold, max(0, .) commutes with the maximum. Split and triangle codes
    # are made final in the tile (bias and nonlinearity applied) before pooling.
    cdef bint rectify = encoding == THRESHOLD
    cdef bint need_mean = do_mean or do_std
    cdef bint in_place = rectify and need_mean
    # Split with max pooling alone: the maximum and the minimum of the linear codes give
    # both halves (max(0, max f - alpha) and max(0, -min f - alpha)), so codes stay K wide.
    cdef bint min_max = encoding == SPLIT and not need_mean
    cdef Py_ssize_t ld = n_codes if min_max else n_out  # row stride of the codes in the tile
    cdef bint final = (encoding == SPLIT and not min_max) or encoding == TRIANGLE
    cdef floating alpha = <floating> threshold
    cdef floating v
    cdef Py_ssize_t t0, t1, n, j, s0, s1, p, pool_end, col, k
    cdef Py_ssize_t n_acc = 0
    cdef Py_ssize_t n_bad = 0
    cdef Py_ssize_t col_end = n_out * (do_max + do_mean + do_std)
    cdef floating* acc_max = stats
    cdef floating* acc_mean = stats + n_out
    cdef floating* acc_m2 = stats + 2 * n_out
    cdef floating* seg_max = stats + 3 * n_out
    cdef floating* seg_mean = stats + 4 * n_out
    cdef floating* seg_m2 = stats + 5 * n_out

    ld1 = n_first if staged else ld  # row stride of the first product
    t0 = 0
    while t0 < n_positions:
        t1 = t0 + tile if t0 + tile < n_positions else n_positions
        n = t1 - t0
        if normalize:
            # Each frame minus its own mean (a constant per frame, rounded to the dtype),
            # so the GEMM sees values near zero whatever the level's offset; the window's
            # mean and variance follow from the frames' centres, sums and sums of squares.
            if floating is float:
                frame_center_f(&frames[t0, 0], n + width - 1, n_mels, centred, f_c, f_s1, f_q)
            else:
                frame_center_d(&frames[t0, 0], n + width - 1, n_mels, centred, f_c, f_s1, f_q)
            a_rows = centred
        else:
            a_rows = &frames[t0, 0]
        # Window product as a convolution: sum over frame offsets j of the
        # contiguous block frames[t0 + j : t1 + j] times the j-th row block.
        for j in range(width):
            gemm(False, False, <int> n, <int> n_first, <int> n_mels, 1,
                 a_rows + j * n_mels, <int> n_mels,
                 &first[j * n_mels, 0], <int> n_first,
                 0 if j == 0 else 1, stage1, <int> ld1)
        if normalize:
            # M (x - m 1) / s = (M x_c + sum_j (c_j - m) M_j 1) / s, M_j 1 = first_sums[j]
            if floating is float:
                row_normalize_f(stage1, n, n_first, ld1, &first_sums[0, 0], width, n_mels,
                                f_c, f_s1, f_q, normalize_eps)
            else:
                row_normalize_d(stage1, n, n_first, ld1, &first_sums[0, 0], width, n_mels,
                                f_c, f_s1, f_q, normalize_eps)
        if encoding == TRIANGLE:
            # the whitened window h = W (x - mu), scaled to unit length
            if floating is float:
                row_unit_f(stage1, n, n_first, ld1, &hidden_bias[0])
            else:
                row_unit_d(stage1, n, n_first, ld1, &hidden_bias[0])
        if staged:
            gemm(False, False, <int> n, <int> n_codes, <int> n_first, 1,
                 stage1, <int> n_first, &second[0, 0], <int> n_codes,
                 0, codes, <int> ld)
        if encoding == SPLIT and not min_max:
            if floating is float:
                tile_split_f(codes, n, n_codes, &bias[0], alpha)
            else:
                tile_split_d(codes, n, n_codes, &bias[0], alpha)
        elif encoding == TRIANGLE:
            if floating is float:
                tile_triangle_f(codes, n, n_codes, &center_sq[0])
            else:
                tile_triangle_d(codes, n, n_codes, &center_sq[0])
        # Split the tile at pool boundaries; each piece is merged into the
        # running pool, which is written out when its last position is seen.
        s0 = t0
        while s0 < t1:
            p = s0 // pool
            pool_end = (p + 1) * pool
            if pool_end > n_positions:
                pool_end = n_positions
            s1 = pool_end if pool_end < t1 else t1
            if min_max:
                # seg_mean / acc_mean hold the minima (no mean is computed)
                if floating is float:
                    seg_max_min_f(codes + (s0 - t0) * ld, s1 - s0, n_codes, seg_max, seg_mean)
                else:
                    seg_max_min_d(codes + (s0 - t0) * ld, s1 - s0, n_codes, seg_max, seg_mean)
                for k in range(n_codes):
                    if n_acc == 0 or seg_max[k] > acc_max[k]:
                        acc_max[k] = seg_max[k]
                    if n_acc == 0 or seg_mean[k] < acc_mean[k]:
                        acc_mean[k] = seg_mean[k]
            else:
                _segment(codes + (s0 - t0) * n_out, s1 - s0, n_out, &bias[0], in_place, need_mean,
                         do_std, seg_max, seg_mean, seg_m2)
                _merge(n_out, n_acc, s1 - s0, need_mean, do_std, acc_max, acc_mean, acc_m2,
                       seg_max, seg_mean, seg_m2)
            n_acc += s1 - s0
            if s1 == pool_end:
                col = 0
                if min_max:
                    for k in range(n_codes):
                        v = acc_max[k] + bias[k] - alpha
                        out[p, k] = 0 if v < 0 else v
                        v = -(acc_mean[k] + bias[k]) - alpha
                        out[p, n_codes + k] = 0 if v < 0 else v
                elif do_max:
                    for k in range(n_out):
                        v = acc_max[k]
                        if not (in_place or final):
                            v = v + bias[k]
                            if rectify and v < 0:
                                v = 0
                        out[p, col + k] = v
                    col += n_out
                if do_mean:
                    for k in range(n_out):
                        out[p, col + k] = acc_mean[k] if (in_place or final) else acc_mean[k] + bias[k]
                    col += n_out
                if do_std:
                    for k in range(n_out):
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
                        int encoding, double threshold,
                        Py_ssize_t sums_rows, Py_ssize_t sums_cols, double normalize_eps,
                        Py_ssize_t n_hidden_bias, Py_ssize_t n_center_sq,
                        Py_ssize_t pool, Py_ssize_t n_positions, Py_ssize_t tile, int n_stats,
                        Py_ssize_t n_work, Py_ssize_t out_rows, Py_ssize_t out_cols) except *:
    """Raise ValueError unless the shapes given to whiten_encode_pool are consistent."""
    cdef bint staged = second_rows > 0
    cdef bint normalize = sums_rows > 0
    cdef Py_ssize_t n_codes = second_cols if staged else n_first
    cdef Py_ssize_t n_out, n_pools, need
    if width < 1 or pool < 1 or tile < 1 or n_positions < 0 or n_stats < 1:
        raise ValueError(
            f"whiten_encode_pool: width, pool, tile must be >= 1, n_positions >= 0 and at least one "
            f"statistic requested; got width={width}, pool={pool}, tile={tile}, "
            f"n_positions={n_positions}, statistics={n_stats}.")
    if encoding < LINEAR or encoding > TRIANGLE:
        raise ValueError(f"whiten_encode_pool: encoding must be 0, 1, 2 or 3; got {encoding}.")
    n_out = 2 * n_codes if encoding == SPLIT else n_codes
    if n_mels < 1 or n_first < 1 or n_codes < 1:
        raise ValueError(
            f"whiten_encode_pool: frames, first and the codes must have at least one column; got "
            f"frames of shape ({n_frames}, {n_mels}), first of shape ({first_rows}, {n_first}), "
            f"second of shape ({second_rows}, {second_cols}).")
    if (n_mels > _INT_MAX or n_first > _INT_MAX or n_out > _INT_MAX or tile > _INT_MAX
            or tile + width > _INT_MAX):
        raise ValueError(
            f"whiten_encode_pool: dimensions must fit a C int for BLAS; got frames of shape "
            f"({n_frames}, {n_mels}), first of shape ({first_rows}, {n_first}), second of shape "
            f"({second_rows}, {second_cols}), tile={tile}.")
    if first_rows % n_mels or first_rows // n_mels != width:
        raise ValueError(
            f"whiten_encode_pool: first must have width * n_mels = {width} * {n_mels} rows; got "
            f"first of shape ({first_rows}, {n_first}) and frames of shape ({n_frames}, {n_mels}).")
    if not staged and second_cols != 0:
        raise ValueError(
            f"whiten_encode_pool: second must have shape (first.shape[1], K) or (0, 0) for one stage; "
            f"got second of shape ({second_rows}, {second_cols}).")
    if staged and second_rows != n_first:
        raise ValueError(
            f"whiten_encode_pool: second must have first.shape[1] = {n_first} rows; got second of "
            f"shape ({second_rows}, {second_cols}) and first of shape ({first_rows}, {n_first}).")
    if n_bias != n_codes:
        raise ValueError(
            f"whiten_encode_pool: bias must have {n_codes} entries (one per code); got bias of "
            f"shape ({n_bias},), first of shape ({first_rows}, {n_first}) and second of shape "
            f"({second_rows}, {second_cols}).")
    if encoding == SPLIT and not (threshold == threshold and abs(threshold) < float("inf")):
        raise ValueError(f"whiten_encode_pool: threshold must be finite; got {threshold}.")
    if normalize and (sums_rows != width or sums_cols != n_first):
        raise ValueError(
            f"whiten_encode_pool: first_sums must have shape (width, first.shape[1]) = ({width}, "
            f"{n_first}) to normalise (shape (0, 0) not to); got first_sums of shape "
            f"({sums_rows}, {sums_cols}).")
    if not normalize and sums_cols != 0:
        raise ValueError(
            f"whiten_encode_pool: first_sums must have shape (width, first.shape[1]) or (0, 0); got "
            f"first_sums of shape ({sums_rows}, {sums_cols}).")
    if normalize and not (0 < normalize_eps < float("inf")):
        raise ValueError(
            f"whiten_encode_pool: normalize_eps must be a finite number > 0; got {normalize_eps}.")
    if encoding == TRIANGLE:
        if not staged or n_hidden_bias != n_first or n_center_sq != n_codes:
            raise ValueError(
                f"whiten_encode_pool: the triangle encoding needs two stages (second of shape "
                f"(first.shape[1], K)), hidden_bias of shape (first.shape[1],) = ({n_first},) and "
                f"center_sq of shape (K,) = ({n_codes if staged else 'K'},); got second of shape "
                f"({second_rows}, {second_cols}), hidden_bias of shape ({n_hidden_bias},) and "
                f"center_sq of shape ({n_center_sq},).")
    elif n_hidden_bias != 0 or n_center_sq != 0:
        raise ValueError(
            f"whiten_encode_pool: hidden_bias and center_sq are for the triangle encoding only and "
            f"must have shape (0,) otherwise; got ({n_hidden_bias},) and ({n_center_sq},).")
    if n_positions > 0 and n_positions > n_frames - width + 1:
        raise ValueError(
            f"whiten_encode_pool: n_positions={n_positions} windows of width={width} need at least "
            f"{n_positions + width - 1} frames; got frames of shape ({n_frames}, {n_mels}).")
    n_pools = (n_positions + pool - 1) // pool
    if out_rows != n_pools or out_cols != n_out * n_stats:
        raise ValueError(
            f"whiten_encode_pool: out must have shape ({n_pools}, {n_out * n_stats}) "
            f"(ceil(n_positions / pool) pools, {n_stats} statistics of {n_out} codes); got out "
            f"of shape ({out_rows}, {out_cols}).")
    need = (tile + 6) * n_out + (tile * n_first if staged else 0)
    if normalize:
        need += (tile + width - 1) * (n_mels + 3)
    if n_work < need:
        raise ValueError(
            f"whiten_encode_pool: work must have at least (tile + 6) * n_out"
            f"{' + tile * n_first' if staged else ''}"
            f"{' + (tile + width - 1) * (n_mels + 3)' if normalize else ''} = {need} entries; "
            f"got work of shape ({n_work},).")


def whiten_encode_pool(const floating[:, ::1] frames not None, Py_ssize_t width,
                       const floating[:, ::1] first not None, const floating[:, ::1] second not None,
                       const floating[::1] bias not None, int encoding, double threshold,
                       const floating[:, ::1] first_sums not None, double normalize_eps,
                       const floating[::1] hidden_bias not None, const floating[::1] center_sq not None,
                       Py_ssize_t pool, Py_ssize_t n_positions, Py_ssize_t tile,
                       bint do_max, bint do_mean, bint do_std,
                       floating[::1] work not None, floating[:, ::1] out not None):
    """Encode every window position of one level and pool the codes, tile by tile.

    IN  frames: (T, n_mels); window t is frames[t : t + width] flattened
    IN  first: (width * n_mels, n_first), the first (or only) projection, transposed
    IN  second: (n_first, K) second projection, transposed; shape (0, 0) for one stage
    IN  bias: (K,) added to every code (the -M mu term, minus alpha for encoding 1)
    IN  encoding: 0 linear (codes + bias), 1 threshold (max(0, codes + bias)), 2 split
        ([max(0, f - threshold), max(0, -f - threshold)], f = codes + bias: 2K outputs),
        3 triangle (needs two stages; h = stage-one row + hidden_bias scaled to unit length,
        z_k = sqrt(max(0, 1 + center_sq[k] - 2 h . c_k)), codes max(0, mean_k z - z_k); bias unused)
    IN  threshold: alpha of encoding 2
    IN  first_sums: (width, n_first), row j = sum of first's rows of frame offset j: each
        window x becomes (x - mean(x)) / sqrt(var(x) + normalize_eps) before the products;
        shape (0, 0) for no normalisation
    IN  hidden_bias: (n_first,) and center_sq: (K,) for encoding 3, shape (0,) otherwise
    IN  pool: positions per pooling window; n_positions: positions encoded
        (n_pools * pool, or all positions when there are fewer than pool)
    IN  tile: positions per GEMM tile (>= 1)
    IN  do_max, do_mean, do_std: statistics written, in this order
    WORK work: (tile * n_out + (tile * n_first if staged else 0) + 6 * n_out
        + ((tile + width - 1) * (n_mels + 3) if normalising else 0),), n_out = 2K for split else K
    OUT out: (n_pools, n_out * (do_max + do_mean + do_std)); std is the population std
    Returns the number of values of out that are NaN or infinite (tested as each pooled
    row is written). All arrays share one dtype. The shapes are checked here, once per call,
    so that no call can read or write out of bounds (ValueError naming the shapes); values
    are not.
    """
    cdef Py_ssize_t n_bad
    _check_shapes(frames.shape[0], frames.shape[1], width, first.shape[0], first.shape[1],
                  second.shape[0], second.shape[1], bias.shape[0], encoding, threshold,
                  first_sums.shape[0], first_sums.shape[1], normalize_eps,
                  hidden_bias.shape[0], center_sq.shape[0], pool, n_positions, tile,
                  do_max + do_mean + do_std, work.shape[0], out.shape[0], out.shape[1])
    with nogil:
        n_bad = _run(frames, width, first, second, bias, encoding, threshold, first_sums,
                     normalize_eps, hidden_bias, center_sq, pool, n_positions, tile,
                     do_max, do_mean, do_std, work, out)
    return n_bad
