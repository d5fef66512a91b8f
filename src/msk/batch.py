"""Feature extraction as a product: one clip, a batch on one machine, a batch on a Dask cluster.

- :func:`extract` turns one file or waveform into multiscale features with a
  fitted model (by default the model shipped with msk for the representation):
  argument checks, model lookup, then :meth:`MultiscaleFeatures.transform`
  (which analyses long audio in segments of bounded memory).
- :func:`extract_many` runs :func:`extract` over many files on a thread pool
  (the kernels release the GIL) or on a Dask cluster, writing every clip's
  features to a :class:`msk.store.FeatureStore` as soon as they are computed.
  A bad file is recorded with its reason and the batch goes on; a re-run skips
  what is done; a run killed at any moment loses no completed clip and leaves
  no corrupt entry.
"""

import dataclasses
import functools
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from importlib import resources

import numpy as np

from ._blas_threads import SingleThreadedBlas
from ._validation import as_float_array, check_int, check_option, check_sample_rate
from .multiscale import REPRESENTATIONS, MultiscaleFeatures

__all__ = ["BatchSummary", "default_model", "extract", "extract_many"]


# =====================================================================================
# Models
# =====================================================================================


def _check_representation(representation):
    if representation is not None:
        check_option("representation", representation, REPRESENTATIONS)
    return representation


@functools.lru_cache(maxsize=None)
def _shipped_model(representation):
    resource = resources.files("msk").joinpath("models", f"{representation}.npz")
    if not resource.is_file():
        raise FileNotFoundError(
            f"msk's default {representation} model (msk/models/{representation}.npz, expected at "
            f"{str(resource)!r}) is not installed in this copy of msk. Train the shipped models "
            "with `python scripts/train_models.py` in msk's source tree (it writes "
            "src/msk/models/*.npz) and reinstall, or pass `model=` a fitted MultiscaleFeatures "
            "or the path of a model saved with MultiscaleFeatures.save."
        )
    with resources.as_file(resource) as path:
        return MultiscaleFeatures.load(path)


def default_model(representation="laplacian"):
    """The fitted model shipped with msk for ``representation`` (loaded once per process).

    Parameters
    ----------
    representation : {"laplacian", "gaussian", "multiresolution"}, default="laplacian"
        Which model: K = 500 means, 6 levels; windows of 1 frame (Laplacian,
        multiresolution) or 2 frames (Gaussian).

    Returns
    -------
    model : MultiscaleFeatures
        Shared by every caller in the process: do not refit it.

    Raises
    ------
    FileNotFoundError
        If this installation of msk has no model file for ``representation``.
    """
    check_option("representation", representation, REPRESENTATIONS)
    return _shipped_model(representation)


@functools.lru_cache(maxsize=8)
def _model_from_file(path, mtime_ns, size):
    return MultiscaleFeatures.load(path)


def _load_model_file(path):
    path = os.path.realpath(os.fspath(path))
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path!r}: no such model file.") from None
    return _model_from_file(path, st.st_mtime_ns, st.st_size)


def _resolve_model(model, representation):
    """The fitted model to use, from ``model`` (estimator, path or None) and ``representation``."""
    if model is None:
        return default_model(representation or "laplacian")
    if isinstance(model, (str, os.PathLike)):
        model = _load_model_file(model)
    elif not isinstance(model, MultiscaleFeatures):
        raise TypeError(
            "`model` must be a fitted MultiscaleFeatures, the path of a saved model, or None "
            f"(the shipped default); got {type(model).__name__}."
        )
    if not hasattr(model, "pca_"):
        raise ValueError("`model` is not fitted: call model.fit(clips) first.")
    if representation is not None and representation != model.representation:
        raise ValueError(
            f"`representation`={representation!r} does not match the model's representation "
            f"{model.representation!r}; leave representation out when passing a model."
        )
    return model


def extract(path_or_array, *, representation=None, model=None, sr=None):
    """Multiscale features of one clip: one row per pooling window of about 4 s.

    Parameters
    ----------
    path_or_array : str, os.PathLike or array-like of shape (n_samples,)
        An audio file (WAV, FLAC, OGG/Vorbis, MP3, ...; channels are averaged,
        any rate is resampled to the model's), or a mono waveform with its
        rate given as ``sr``.
    representation : {"laplacian", "gaussian", "multiresolution"} or None, default=None
        The multiscale representation. With ``model=None`` it picks the
        shipped model (None means "laplacian"); with a model it must match
        the model's representation or be None.
    model : MultiscaleFeatures, str, os.PathLike or None, default=None
        A fitted model, the path of one saved with
        :meth:`MultiscaleFeatures.save` (loaded once per process and file
        version), or None for the default model shipped with msk (K = 500, 6
        levels), loaded once per process.
    sr : int or None, default=None
        Sampling rate of a waveform (required for arrays; resampled with soxr
        when it differs from the model's). Ignored for a file, whose header
        gives the rate.

    Returns
    -------
    features : ndarray of shape (n_pools, n_features), dtype float32
        ``n_features = model.n_features_out_`` (3000 for the shipped models);
        ``n_pools`` is the number of full pooling windows of 128 frames (a
        clip shorter than one gives one row pooled over what there is).

    Raises
    ------
    FileNotFoundError
        If the file does not exist, or ``model=None`` and the shipped model
        file is not installed (the message says how to get it).
    TypeError
        If ``path_or_array`` or ``model`` is of the wrong kind.
    ValueError
        If the file cannot be decoded (the message names it), the waveform is
        not 1-D or not finite, ``sr`` is missing for a waveform or outside
        1 Hz to 1 MHz, the audio lasts longer than ``msk.audio.MAX_DURATION``
        (24 hours), or the representation is unknown or contradicts the model.

    See Also
    --------
    extract_many : many files into a feature store, in parallel or on a cluster.
    MultiscaleFeatures : fit a model of your own.

    Notes
    -----
    The work is :meth:`MultiscaleFeatures.transform`: audio longer than
    about 4.4 minutes is decoded, resampled and analysed in segments, so that
    the memory used does not grow with the length of the recording, with the
    same features as the whole signal (see its Notes).

    Examples
    --------
    >>> import msk
    >>> model = msk.MultiscaleFeatures("laplacian", levels=3, n_clusters=16,
    ...                                n_samples=2000, random_state=0)
    >>> model = model.fit([msk.example_audio()])
    >>> F = msk.extract(msk.example_audio(), model=model)
    >>> F.shape, F.dtype
    ((7, 48), dtype('float32'))
    """
    rep = _check_representation(representation)
    model = _resolve_model(model, rep)
    if isinstance(path_or_array, (str, os.PathLike)):
        return model.transform(os.fspath(path_or_array))
    if isinstance(path_or_array, (bytes, dict)) or path_or_array is None:
        raise TypeError(
            "`path_or_array` must be an audio file path or a 1-D waveform; got "
            f"{type(path_or_array).__name__}."
        )
    if sr is None:
        raise ValueError(
            "`sr` must be given with a waveform (its sampling rate in Hz); got sr=None."
        )
    sr = check_sample_rate("sr", sr)
    y = np.asarray(path_or_array)
    if y.ndim != 1:
        raise ValueError(
            f"`path_or_array` must be a mono waveform of shape (n_samples,); got shape {y.shape}. "
            "Mix channels first, e.g. y.mean(axis=1) for (n_samples, n_channels)."
        )
    if y.shape[0] == 0:
        raise ValueError("`path_or_array` must hold at least one sample; got an empty array.")
    y = as_float_array("path_or_array", y, ndim=1, dtype=np.float32)
    return model.transform(y, sr=sr)


# =====================================================================================
# Batches
# =====================================================================================


@dataclasses.dataclass(frozen=True)
class BatchSummary:
    """What :func:`extract_many` did.

    Attributes
    ----------
    store : str
        Path of the feature store.
    done : int
        Clips extracted and stored by this run.
    skipped : int
        Clips already in the store before this run (not recomputed).
    failed : dict of str to str
        Clips that failed in this run, by key, with the reason (also recorded
        in the store's manifest: see ``FeatureStore.failures``).
    seconds : float
        Wall-clock time of the run.
    """

    store: str
    done: int
    skipped: int
    failed: dict
    seconds: float

    @property
    def total(self):
        """Clips in the batch."""
        return self.done + self.skipped + len(self.failed)

    def as_dict(self):
        """A JSON-serialisable dict of the summary."""
        return dataclasses.asdict(self)

    def __str__(self):
        return (
            f"{self.done} extracted, {self.skipped} already done, {len(self.failed)} failed "
            f"in {self.seconds:.1f} s -> {self.store}"
        )


def _list_paths(paths):
    """The files to process: a directory's files (recursively, sorted), one file, or an iterable."""
    if isinstance(paths, (str, os.PathLike)):
        root = os.fspath(paths)
        if not os.path.isdir(root):
            return [root]
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            found += [os.path.join(dirpath, f) for f in sorted(filenames) if not f.startswith(".")]
        return found
    if isinstance(paths, (bytes, np.ndarray)) or not hasattr(paths, "__iter__"):
        raise TypeError(
            f"`paths` must be an iterable of file paths or a directory; got {type(paths).__name__}."
        )
    out = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise TypeError(f"`paths` must hold str or os.PathLike items; got {type(p).__name__} ({p!r}).")
        out.append(os.fspath(p))
    return out


def _check_n_jobs(n_jobs):
    n_jobs = check_int("n_jobs", n_jobs)
    n_cpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if n_jobs == 0:
        raise ValueError("`n_jobs` must be a positive number of threads or negative (-1: all cores); got 0.")
    return max(1, n_cpu + 1 + n_jobs) if n_jobs < 0 else n_jobs


def _failure_reason(exc):
    return f"{type(exc).__name__}: {exc}"


def _extract_one(model, path):
    """(features, None) or (None, reason) for one file: never raises for a bad file."""
    try:
        return model.transform(path), None
    except Exception as exc:  # any decoder or analysis error is this file's failure
        return None, _failure_reason(exc)


def _run_threads(model, todo, n_jobs):
    """Yield (key, path, features, reason) as the clips are done, on ``n_jobs`` threads."""
    if n_jobs == 1:
        for key, path in todo:
            yield (key, path, *_extract_one(model, path))
        return
    queue = deque(todo)
    with ThreadPoolExecutor(n_jobs, thread_name_prefix="msk-extract") as pool:
        pending = {}
        try:
            while queue or pending:
                while queue and len(pending) < 2 * n_jobs:
                    key, path = queue.popleft()
                    pending[pool.submit(_extract_one, model, path)] = (key, path)
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    key, path = pending.pop(fut)
                    yield (key, path, *fut.result())
        finally:
            for fut in pending:
                fut.cancel()


# -- Dask ------------------------------------------------------------------------------------

_WORKER_MODELS = {}
_WORKER_LOCK = threading.Lock()


def _model_bytes(model):
    import tempfile

    with tempfile.TemporaryDirectory(prefix="msk-model-") as tmp:
        path = os.path.join(tmp, "model.npz")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def _worker_model(fingerprint, payload):
    """The model of ``fingerprint`` in this worker process, loaded from ``payload`` once."""
    with _WORKER_LOCK:
        model = _WORKER_MODELS.get(fingerprint)
        if model is None:
            import tempfile

            with tempfile.TemporaryDirectory(prefix="msk-model-") as tmp:
                path = os.path.join(tmp, "model.npz")
                with open(path, "wb") as f:
                    f.write(payload)
                model = MultiscaleFeatures.load(path)
            _WORKER_MODELS[fingerprint] = model
    return model


def _dask_task(path, fingerprint, payload):
    """Run on a Dask worker: the features of one file, or the reason it failed."""
    model = _worker_model(fingerprint, payload)
    with SingleThreadedBlas():
        return _extract_one(model, path)


def _check_scheduler(scheduler):
    if isinstance(scheduler, str):
        if "://" not in scheduler:
            raise ValueError(
                f"`scheduler` must be a Dask scheduler address such as 'tcp://host:8786'; got {scheduler!r}."
            )
        return
    client_type = getattr(sys.modules.get("distributed"), "Client", None)
    if client_type is None or not isinstance(scheduler, client_type):
        raise TypeError(
            "`scheduler` must be a Dask scheduler address such as 'tcp://host:8786', a "
            f"distributed.Client, or None; got {type(scheduler).__name__}."
        )


def _run_dask(model, fingerprint, todo, scheduler):
    """Yield (key, path, features, reason) as a Dask cluster finishes the clips."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ImportError(
            "`scheduler` needs Dask's distributed scheduler: pip install 'msk[dask]'."
        ) from None
    if isinstance(scheduler, str):
        client, own = Client(scheduler, set_as_default=False), True
    else:
        client, own = scheduler, False
    try:
        [payload] = client.scatter([_model_bytes(model)], broadcast=True, hash=False)
        window = max(8, 4 * sum(client.nthreads().values()))
        queue = deque(todo)
        names = {}

        def submit():
            key, path = queue.popleft()
            fut = client.submit(_dask_task, path, fingerprint, payload, pure=False)
            names[fut.key] = (key, path)
            return fut

        futures = as_completed([submit() for _ in range(min(window, len(queue)))])
        for fut in futures:
            key, path = names.pop(fut.key)
            try:
                X, reason = fut.result()
            except Exception as exc:  # e.g. KilledWorker: the file crashed its workers
                X, reason = None, _failure_reason(exc)
            fut.release()
            yield key, path, X, reason
            if queue:
                futures.add(submit())
    finally:
        if own:
            client.close()


def extract_many(paths, *, store, model=None, representation=None, n_jobs=-1, scheduler=None,
                 keys=None, progress=True):
    """Extract the features of many files into a feature store, in parallel, resumably.

    Every file's features (:func:`extract`) are written to ``store`` as soon
    as they are computed, each entry atomically. A file that cannot be read
    or analysed is recorded in the store's manifest with its reason and the
    batch goes on. Keys already in the store are skipped, so re-running the
    same call after an interruption (a crash, a killed job, a power cut)
    finishes the work without redoing any of it.

    Parameters
    ----------
    paths : iterable of str or os.PathLike, or a directory
        The audio files. A directory means every file under it, recursively
        and sorted (hidden files and folders excluded); files that are not
        audio are recorded as failed.
    store : FeatureStore, str or os.PathLike
        The feature store, or its path (opened with mode "a": created if
        missing, resumed if it exists). The store records the model; a store
        made with another model is refused.
    model : MultiscaleFeatures, str, os.PathLike or None, default=None
        As in :func:`extract` (None: the shipped model of ``representation``).
    representation : str or None, default=None
        As in :func:`extract`.
    n_jobs : int, default=-1
        Threads (the compiled kernels release the GIL): -1 uses every core,
        -2 all but one, 1 runs in the calling thread. BLAS is limited to one
        thread while the batch runs. Ignored with ``scheduler``.
    scheduler : str, distributed.Client or None, default=None
        Run on a Dask cluster instead: the scheduler's address
        (``"tcp://host:8786"``) or a connected ``distributed.Client``. Needs
        the ``dask`` extra; see the Notes.
    keys : sequence of str or None, default=None
        The store key of each path, in order (e.g. clip ids). None uses the
        paths as given (``os.fspath``), so the same call resumes the same keys.
    progress : bool, default=True
        Show a progress bar (tqdm) on stderr with counts, rate and ETA.

    Returns
    -------
    summary : BatchSummary
        Counts of clips extracted, skipped (already done) and failed (with
        reasons) by this run.

    Raises
    ------
    TypeError, ValueError
        For bad arguments (duplicate keys, a store made with another model, ...).
    OSError
        If the store cannot be written (the batch stops: what was stored stays).

    See Also
    --------
    extract : one clip.
    msk.store.FeatureStore : reading the results (``get``, ``concatenated``, ``failures``).

    Notes
    -----
    Features do not depend on ``n_jobs`` or on the scheduler: every clip is
    computed by single-threaded kernels in the same way.

    With a Dask ``scheduler``, the model is sent to every worker once (as its
    ``.npz`` bytes) and loaded once per worker process, cached by its
    fingerprint; the workers read the audio files themselves, so the paths
    must be valid on the workers (a shared file system), and need msk
    installed. Workers return the features to this process, which alone
    writes the store and its manifest: a store on a network file system then
    has one writer, and a worker that dies loses no stored work. A file that
    kills the workers repeatedly is recorded as failed (``KilledWorker``).

    Examples
    --------
    >>> import os, tempfile, msk
    >>> model = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=8,
    ...                                n_samples=1000, random_state=0)
    >>> model = model.fit([msk.example_audio()])
    >>> tmp = tempfile.TemporaryDirectory()
    >>> out = os.path.join(tmp.name, "features.zarr")
    >>> summary = msk.extract_many([msk.example_audio()], model=model, store=out,
    ...                            keys=["example"], progress=False)
    >>> summary.done, summary.failed
    (1, {})
    >>> msk.store.FeatureStore(out, mode="r").get("example").shape
    (7, 16)
    >>> tmp.cleanup()
    """
    from tqdm.auto import tqdm

    from .store import FeatureStore, model_fingerprint

    rep = _check_representation(representation)
    model = _resolve_model(model, rep)
    info = model_fingerprint(model)
    if isinstance(store, FeatureStore):
        if store.mode == "r":
            raise ValueError(f"`store` {store.path!r} is open read-only; open it with mode='a'.")
        store.check_model(info)
    elif isinstance(store, (str, os.PathLike)):
        store = FeatureStore(store, mode="a", model_info=info)
    else:
        raise TypeError(f"`store` must be a FeatureStore or a path; got {type(store).__name__}.")
    paths = _list_paths(paths)
    if keys is None:
        keys = list(paths)
    else:
        if isinstance(keys, (str, bytes)):
            raise TypeError("`keys` must be a sequence of str, one per path; got a single string.")
        keys = list(keys)
        if len(keys) != len(paths):
            raise ValueError(f"`keys` must have one key per path: {len(keys)} keys for {len(paths)} paths.")
        for k in keys:
            if not isinstance(k, str) or not k:
                raise TypeError(f"`keys` must hold non-empty str; got {k!r}.")
    seen, dups = set(), []
    for k in keys:
        if k in seen:
            dups.append(k)
        seen.add(k)
    if dups:
        raise ValueError(f"`keys` must be unique; repeated: {', '.join(map(repr, dups[:5]))}.")
    if scheduler is None:
        n_jobs = _check_n_jobs(n_jobs)
    else:
        _check_scheduler(scheduler)
    todo = [(k, p) for k, p in zip(keys, paths) if not store.done(k)]
    skipped = len(keys) - len(todo)

    start = time.perf_counter()
    done, failed = 0, {}
    bar = tqdm(total=len(keys), initial=skipped, unit="clip", desc="msk extract", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    lock = threading.Lock()

    def record(key, path, X, reason):
        nonlocal done
        if reason is None:
            meta = {"path": os.path.abspath(path), "n_pools": int(X.shape[0])}
            store.put(key, X, meta=meta, overwrite=store.done(key))
            with lock:
                done += 1
        else:
            store.fail(key, reason)
            with lock:
                failed[key] = reason
        with lock:
            bar.update(1)
            if failed:
                bar.set_postfix(failed=len(failed), refresh=False)

    results = (
        _run_threads(model, todo, n_jobs) if scheduler is None
        else _run_dask(model, info["fingerprint"], todo, scheduler)
    )
    # Writes (with their fsyncs) run on their own threads so that computing never waits on the disk.
    n_writers = 4
    with SingleThreadedBlas(), ThreadPoolExecutor(n_writers, thread_name_prefix="msk-store") as writer:
        writes = set()
        try:
            for item in results:
                writes.add(writer.submit(record, *item))
                if len(writes) >= 4 * n_writers:
                    finished, writes = wait(writes, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        fut.result()  # a store error stops the batch
            for fut in writes:
                fut.result()
        finally:
            results.close()
            for fut in writes:
                fut.cancel()
            bar.close()
    return BatchSummary(store=store.path, done=done, skipped=skipped, failed=dict(sorted(failed.items())),
                        seconds=time.perf_counter() - start)
