"""BLAS thread control: msk's kernels call BLAS on small tiles, single-threaded.

On small GEMMs BLAS's own threads cost more than they give, and on a busy machine
they can make a call 10-100x slower (threads spin while waiting for a core). msk
parallelises over clips and row chunks itself, so every kernel that calls BLAS
runs inside :class:`_SingleThreadedBlas`.

Single-threaded BLAS is also what makes results independent of the thread count:
OpenBLAS's GEMM kernels round differently when a call is split across threads.
Recent OpenBLAS builds ignore ``openblas_set_num_threads`` when it is called from a
thread other than the one that started the library's thread pool, while
``openblas_set_num_threads_local`` takes effect from any thread, so the limit is set
through the latter where the library has it.
"""

import ctypes
import threading

_blas_controller = None
_setter_cache = None


def _blas_libraries():
    """threadpoolctl controllers of the BLAS libraries loaded in the process (cached)."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController

        _blas_controller = ThreadpoolController().select(user_api="blas").lib_controllers
    return _blas_controller


def _setters():
    """``(library, set_num_threads)`` for every BLAS loaded (cached).

    OpenBLAS's ``openblas_set_num_threads_local`` when the library exports it (it
    works from any thread), else threadpoolctl's setter.
    """
    global _setter_cache
    if _setter_cache is None:
        out = []
        for lib in _blas_libraries():
            setter = lib.set_num_threads
            if lib.internal_api == "openblas":
                fn = getattr(lib.dynlib, "openblas_set_num_threads_local", None)
                if fn is not None:
                    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
                    setter = fn
            out.append((lib, setter))
        _setter_cache = out
    return _setter_cache


def _blas_threads():
    """The number of threads the caller allows BLAS (1 if unknown).

    Inside :class:`_SingleThreadedBlas` this is the setting it replaced, so that
    msk's own thread pools follow the caller's limit, not msk's own.
    """
    saved = _SingleThreadedBlas._saved
    if saved:
        return max(1, min(n for _, n in saved))
    libs = _blas_libraries()
    return max(1, min((lib.num_threads for lib in libs), default=1))


class _SingleThreadedBlas:
    """Context manager: BLAS limited to one thread while msk's kernels run.

    The kernels call BLAS on small tiles, where BLAS's own threads cost more than they
    give; msk runs its own threads instead. The process-wide limit is reference-counted
    under a lock, so that concurrent fits in several Python threads restore the caller's
    setting exactly once, when the last one leaves. Cheaper than
    ``threadpoolctl.threadpool_limits`` (no library scan per call), which matters for
    ``partial_fit`` on small batches.
    """

    _lock = threading.Lock()
    _depth = 0
    _saved = ()

    def __enter__(self):
        cls = type(self)
        with cls._lock:
            if cls._depth == 0:
                cls._saved = [(setter, lib.num_threads) for lib, setter in _setters()]
                for setter, _ in cls._saved:
                    setter(1)
            cls._depth += 1
        return self

    def __exit__(self, *exc):
        cls = type(self)
        with cls._lock:
            cls._depth -= 1
            if cls._depth == 0:
                for setter, n in cls._saved:
                    setter(n)
                cls._saved = ()
        return False
