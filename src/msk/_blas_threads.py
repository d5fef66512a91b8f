"""BLAS thread control: msk's kernels call BLAS on small tiles, single-threaded.

On small GEMMs BLAS's own threads cost more than they give, and on a busy machine
they can make a call 10-100x slower (threads spin while waiting for a core). msk
parallelises over clips and row chunks itself, so every kernel that calls BLAS
runs inside :class:`_SingleThreadedBlas`.
"""

import threading

_blas_controller = None


def _blas_libraries():
    """threadpoolctl controllers of the BLAS libraries loaded in the process (cached)."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_controller


def _blas_threads():
    """The number of threads the BLAS is currently allowed (1 if unknown)."""
    libs = _blas_libraries()
    return max(1, min((lib.num_threads for lib in libs), default=1))


class _SingleThreadedBlas:
    """Context manager: BLAS limited to one thread while msk's kernels run.

    The kernels call BLAS on small tiles, where BLAS's own threads cost more than they
    give; msk runs its own threads instead. Entries are reference-counted under a lock,
    so that concurrent fits in several Python threads restore the caller's setting
    exactly once, when the last one leaves. Cheaper than ``threadpoolctl.threadpool_limits``
    (no library scan per call), which matters for ``partial_fit`` on small batches.
    """

    _lock = threading.Lock()
    _depth = 0
    _saved = ()

    def __enter__(self):
        cls = type(self)
        with cls._lock:
            if cls._depth == 0:
                cls._saved = [(lib, lib.num_threads) for lib in _blas_libraries()]
                for lib, _ in cls._saved:
                    lib.set_num_threads(1)
            cls._depth += 1
        return self

    def __exit__(self, *exc):
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                for lib, n in cls._saved:
                    lib.set_num_threads(n)
                cls._saved = ()
        return False
