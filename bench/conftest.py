"""Benchmark configuration: one thread everywhere, recorded in every result.

Run with ``python -m pytest bench --benchmark-only`` (add ``--benchmark-autosave`` to keep
the JSON). The thread pins are set before numpy's BLAS and OpenMP runtimes start, and
threadpoolctl re-applies them at run time in case a library was loaded earlier.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pytest  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402


def pytest_collect_file(file_path, parent):
    """Collect bench_*.py when the bench directory is given (they are not test_*.py)."""
    if (file_path.suffix == ".py" and file_path.name.startswith("bench_")
            and not parent.session.isinitpath(file_path)):
        return pytest.Module.from_parent(parent, path=file_path)
    return None


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Limit BLAS/OpenMP pools to one thread for the whole session."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture
def record_threads(benchmark):
    """Write the thread configuration into the benchmark's JSON record."""
    benchmark.extra_info["OMP_NUM_THREADS"] = os.environ.get("OMP_NUM_THREADS")
    benchmark.extra_info["OPENBLAS_NUM_THREADS"] = os.environ.get("OPENBLAS_NUM_THREADS")
    benchmark.extra_info["threadpools"] = [
        {k: info[k] for k in ("internal_api", "num_threads")} for info in threadpool_info()
    ]
    return benchmark


@pytest.fixture(scope="module")
def terminal_summary(request):
    """``show(results, write_summary)``: print a module's summary table past pytest's capture.

    ``write_summary(write)`` writes the lines with ``write(line)``; nothing is printed when
    ``results`` is empty (e.g. the module's benchmarks were deselected).
    """

    def show(results, write_summary):
        tr = request.config.pluginmanager.getplugin("terminalreporter")
        capture = request.config.pluginmanager.getplugin("capturemanager")
        if tr is None or not results:
            return
        with capture.global_and_fixture_disabled():
            write_summary(tr.write_line)

    return show
