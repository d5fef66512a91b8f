"""The HEAR 2021 embedding API for msk's multiscale features.

This module implements the common API of the HEAR benchmark (Holistic
Evaluation of Audio Representations, NeurIPS 2021) [1]_, so that HEAR's
evaluation kit can score msk's features as one of its "embedding modules"::

    model = msk.hear.load_model()          # the shipped Laplacian model
    emb, ts = msk.hear.get_timestamp_embeddings(audio, model)
    scene = msk.hear.get_scene_embeddings(audio, model)

``audio`` is a batch of mono waveforms of equal length at
``model.sample_rate`` Hz, an array of shape (n_sounds, n_samples), float32
(float64 is accepted). A ``torch.Tensor`` is accepted when PyTorch is
installed, and the results are then tensors on the input's device, as the
kit expects; msk never needs PyTorch.

Timestamp embeddings
--------------------
One embedding per frame of the model's finest level (hop ``hop_length /
sr``: 32 ms at 16 kHz), timestamped at the frame's centre in milliseconds
(frame ``i`` at ``1000 * i * hop_length / sr``; frames are centred on their
hop, as in :func:`msk.log_melspectrogram`). For every level ``l`` of the
multiscale representation, each window of the level's frames is encoded as
the model encodes it before pooling (PCA whitening, then the projections on
the K-means dictionary, then the soft threshold when the model uses one);
the code of the window that starts at the level's frame holding a
finest-level frame is given to that frame (level ``l`` of a pyramid has one
frame per ``2**l`` finest frames; the last ``frames - 1`` frames of a level,
where no window starts, take the last window's code), and each code is then
max-pooled over a centred window of ``pool_frames`` frames
(5 frames, 160 ms at 16 kHz, by default; the edges repeat the first and last
frame). The levels' codes are concatenated, level 0 first:
``timestamp_embedding_size = levels * K`` (3000 for the paper's models). A model with
``envelope=True`` adds, after the codes, the log of every mel band's mean power over the same
centred ``pool_frames`` frames (with ``pool_frames=1``, the frame's log-mel spectrum):
``n_mels`` more values.
With ``pool_frames=1``, max-pooling the timestamp embeddings over the model's
pooling windows (``pool`` finest frames) gives
:meth:`msk.MultiscaleFeatures.transform`'s features (up to rounding; before
its ``pooled_normalization``, when the model has one): they are the features
before pooling, at the frame rate; the envelope's columns, averaged in power over those
windows, give its envelope.

Scene embeddings
----------------
The mean and the maximum over time of the timestamp embeddings,
concatenated: ``scene_embedding_size = 2 * timestamp_embedding_size``.

Notes
-----
The per-window codes are computed here from the model's public parts
(:meth:`MultiscaleFeatures.represent`, the fitted ``pca_`` and ``kmeans_``
estimators); a public ``MultiscaleFeatures`` method returning the codes
before pooling would let this module drop that code.

References
----------
.. [1] J. Turian et al., "HEAR: Holistic Evaluation of Audio
   Representations", NeurIPS 2021 Competitions and Demonstrations Track,
   PMLR 176, 2022. https://hearbenchmark.com

Examples
--------
>>> import numpy as np
>>> from msk import hear
>>> model = hear.load_model()
>>> audio = np.zeros((2, model.sample_rate), dtype=np.float32)  # two 1 s sounds
>>> emb, ts = hear.get_timestamp_embeddings(audio, model)
>>> emb.shape, emb.dtype, ts.shape
((2, 32, 3000), dtype('float32'), (2, 32))
>>> ts[0, :3].tolist()
[0.0, 32.0, 64.0]
>>> hear.get_scene_embeddings(audio, model).shape
(2, 6000)
"""

import functools
import numbers
import os

import numpy as np

__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]

_MAX_HOP_MS = 50.0  # the HEAR API's largest hop between timestamp embeddings


def _param(model, *names, default=None):
    """A parameter of ``model`` under any of its names (they are being renamed)."""
    params = model.get_params()
    for name in names:
        if name in params:
            return params[name]
    return default


def _hop_length(model):
    return int(_param(model, "hop_length"))


class HearModel:
    """A fitted :class:`msk.MultiscaleFeatures` with the attributes HEAR asks for.

    Made by :func:`load_model`; when PyTorch is installed, the object
    returned is also a ``torch.nn.Module`` (without parameters), which is how
    HEAR's evaluation kit recognises a model.

    Attributes
    ----------
    features : MultiscaleFeatures
        The fitted model.
    sample_rate : int
        Rate of the audio to pass, in Hz (the model's ``sr``).
    timestamp_embedding_size : int
        ``levels * K``, plus ``n_mels`` with ``envelope`` (the model's
        ``n_features_out_`` for max pooling).
    scene_embedding_size : int
        ``2 * timestamp_embedding_size`` (mean and max over time).
    hop_ms : float
        Time between timestamp embeddings, in milliseconds.
    pool_frames : int
        Frames of the centred max-pooling of each timestamp embedding.
    """

    def _setup(self, features, pool_frames):
        encoding = _param(features, "encoding", default="linear")
        normalization = _param(features, "window_normalization", default="none")
        if encoding not in ("linear", "threshold") or normalization != "none":
            raise ValueError(
                "msk.hear computes the codes of models with encoding 'linear' or 'threshold' and no "
                f"window normalisation; this model has encoding={encoding!r} and "
                f"window_normalization={normalization!r}."
            )
        self.features = features
        self.sample_rate = int(_param(features, "sr"))
        self.pool_frames = pool_frames
        hop = _hop_length(features)
        self.hop_ms = 1000.0 * hop / self.sample_rate
        if self.hop_ms > _MAX_HOP_MS:
            raise ValueError(
                f"the model's frames are {self.hop_ms:.1f} ms apart (hop_length={hop} at "
                f"sr={self.sample_rate}); the HEAR API needs timestamp embeddings at most "
                f"{_MAX_HOP_MS:.0f} ms apart. Use a model with a higher sr or a shorter hop."
            )
        codes = [km.cluster_centers_.shape[0] for km in features.kmeans_] if features.kmeans_ is not None \
            else [pca.n_features_out_ for pca in features.pca_]
        self._level_sizes = codes
        self._envelope_size = int(features.n_mels_) if _param(features, "envelope", default=False) else 0
        self.timestamp_embedding_size = int(sum(codes)) + self._envelope_size
        self.scene_embedding_size = 2 * self.timestamp_embedding_size

    def __repr__(self):
        return (f"HearModel({type(self.features).__name__}, sample_rate={self.sample_rate}, "
                f"timestamp_embedding_size={self.timestamp_embedding_size}, hop_ms={self.hop_ms:g})")


@functools.cache
def _torch_model_class():
    """``HearModel`` as a ``torch.nn.Module`` when PyTorch is installed, else ``HearModel``."""
    try:
        import torch
    except ImportError:
        return HearModel

    class TorchHearModel(torch.nn.Module, HearModel):
        __doc__ = HearModel.__doc__

        def __init__(self):
            torch.nn.Module.__init__(self)

    TorchHearModel.__name__ = TorchHearModel.__qualname__ = "HearModel"
    return TorchHearModel


def load_model(model_file_path="", *, pool_frames=5):
    """Load the model whose embeddings HEAR evaluates.

    Parameters
    ----------
    model_file_path : str or os.PathLike, default=""
        A model saved with :meth:`msk.MultiscaleFeatures.save`, or "" for
        the paper's Laplacian model shipped with msk (K = 500, 6 levels;
        ``msk.batch.default_model(preset="paper")``), whose embeddings have
        the paper's sizes. The default preset's model (K = 200 and the
        envelope, learned on the unsupervised pool) can be passed by its
        path like any other.
    pool_frames : int, default=5
        Frames of the centred max-pooling of the timestamp embeddings (odd;
        1 turns it off).

    Returns
    -------
    model : HearModel
        With ``sample_rate``, ``timestamp_embedding_size`` and
        ``scene_embedding_size``; a ``torch.nn.Module`` when PyTorch is
        installed.

    Raises
    ------
    FileNotFoundError
        If ``model_file_path`` does not exist.
    ValueError
        If the file is not an msk model, the model's frames are more than
        50 ms apart, or the model uses an encoder option whose codes this
        module does not compute (``encoding`` "split" or "triangle",
        ``window_normalization`` "standardize").
    """
    from . import MultiscaleFeatures
    from .batch import default_model

    if isinstance(pool_frames, bool) or not isinstance(pool_frames, numbers.Integral) \
            or pool_frames < 1 or pool_frames % 2 == 0:
        raise ValueError(f"`pool_frames` must be a positive odd integer; got {pool_frames!r}.")
    if not isinstance(model_file_path, (str, os.PathLike)):
        raise TypeError(
            f"`model_file_path` must be a path or \"\"; got {type(model_file_path).__name__}."
        )
    if os.fspath(model_file_path) == "":
        features = default_model("laplacian", preset="paper")
    else:
        features = MultiscaleFeatures.load(model_file_path)
    model = _torch_model_class()()
    model._setup(features, int(pool_frames))
    return model


def _as_batch(audio, model):
    """(float32 array of shape (n_sounds, n_samples), torch device or None)."""
    if not isinstance(model, HearModel):
        raise TypeError(f"`model` must come from msk.hear.load_model; got {type(model).__name__}.")
    device = None
    if type(audio).__module__.split(".")[0] == "torch":
        device = audio.device
        audio = audio.detach().cpu().numpy()
    if isinstance(audio, (str, bytes, dict)) or audio is None:
        raise TypeError(f"`audio` must be an array of shape (n_sounds, n_samples); got {type(audio).__name__}.")
    a = np.asarray(audio)
    if a.dtype.kind != "f":
        raise TypeError(
            f"`audio` must hold floating-point samples (float32, in [-1, 1]); got dtype {a.dtype}."
        )
    if a.ndim != 2:
        raise ValueError(
            f"`audio` must be a batch of mono waveforms of shape (n_sounds, n_samples); got shape "
            f"{a.shape}. Add a batch axis (audio[None]) for one sound."
        )
    if a.shape[1] == 0:
        raise ValueError(f"`audio` must hold at least one sample per sound; got shape {a.shape}.")
    a = np.ascontiguousarray(a, dtype=np.float32)
    finite = np.isfinite(a).all(axis=1)
    if not finite.all():
        raise ValueError(f"`audio` must be finite; sound {int(np.flatnonzero(~finite)[0])} holds NaN or inf.")
    return a, device


def _output(array, device):
    if device is None:
        return array
    import torch

    return torch.from_numpy(array).to(device)


def _level_codes(features, frames, level):
    """Codes of every window position of one level, before pooling: (n_positions, n_codes)."""
    pca = features.pca_[level]
    n_mels = frames.shape[1]
    width = pca.n_features_in_ // n_mels
    if frames.shape[0] < width:  # as MultiscaleFeatures: repeat the edge frames
        frames = np.pad(frames, ((0, width - frames.shape[0]), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(frames, width, axis=0)  # (n_pos, n_mels, width)
    windows = np.ascontiguousarray(windows.transpose(0, 2, 1)).reshape(-1, width * n_mels)
    codes = pca.transform(windows)
    if features.kmeans_ is not None:
        codes = features.kmeans_[level].transform(codes)
    if _param(features, "encoding", default="linear") == "threshold":
        alpha = _param(features, "threshold", "alpha")
        codes = np.maximum(codes - np.float32(alpha), 0, dtype=codes.dtype)
    return np.asarray(codes, dtype=np.float32), width


def _frame_embeddings(model, y):
    """Timestamp embeddings of one waveform: (n_frames, timestamp_embedding_size)."""
    from scipy.ndimage import maximum_filter1d

    features = model.features
    if model._envelope_size:
        features._check_params()
        levels, S = features._levels_and_log_mel(y)  # the log-mel frames the envelope is measured on
    else:
        levels = features.represent(y)
    n_frames = levels[0].shape[0]
    pyramid = _param(features, "representation") != "multiresolution"
    out = np.empty((n_frames, model.timestamp_embedding_size), dtype=np.float32)
    col, i = 0, np.arange(n_frames)
    for lev, frames in enumerate(levels):
        codes, width = _level_codes(features, frames, lev)
        step = (1 << lev) if pyramid else 1
        # the window starting at the level's frame that holds frame i (the model's pooling
        # windows group positions the same way); the last frames reuse the last window
        pos = np.minimum(i // step, codes.shape[0] - 1)
        held = codes[pos]
        if model.pool_frames > 1:
            held = maximum_filter1d(held, model.pool_frames, axis=0, mode="nearest")
        out[:, col : col + codes.shape[1]] = held
        col += codes.shape[1]
    if model._envelope_size:
        from scipy.ndimage import uniform_filter1d

        # log of the mean power over the centred frames, each band's largest value factored out
        S = S.astype(np.float64)
        top = S.max(axis=0)
        power = uniform_filter1d(np.exp(S - top), model.pool_frames, axis=0, mode="nearest")
        out[:, col:] = np.log(power) + top
    return out


def get_timestamp_embeddings(audio, model):
    """Embeddings at regular times (one per finest-level frame) of each sound.

    Parameters
    ----------
    audio : ndarray or torch.Tensor of shape (n_sounds, n_samples)
        Mono waveforms at ``model.sample_rate`` Hz, float32 (float64 accepted).
    model : HearModel
        From :func:`load_model`.

    Returns
    -------
    embeddings : ndarray or torch.Tensor of shape (n_sounds, n_timestamps, model.timestamp_embedding_size)
        float32; a tensor on ``audio``'s device when ``audio`` is one.
    timestamps : ndarray or torch.Tensor of shape (n_sounds, n_timestamps)
        The centre of each embedding's frame in milliseconds (float32),
        ``model.hop_ms`` apart, starting at 0.

    Raises
    ------
    TypeError
        If ``audio`` is not floating point or ``model`` is not a HearModel.
    ValueError
        If ``audio`` is not 2-D, has no samples or is not finite.
    """
    a, device = _as_batch(audio, model)
    per_sound = [_frame_embeddings(model, y) for y in a]
    n_t = per_sound[0].shape[0] if per_sound else 1 + a.shape[1] // _hop_length(model.features)
    emb = np.stack(per_sound) if per_sound else np.empty((0, n_t, model.timestamp_embedding_size), np.float32)
    ts = np.broadcast_to(np.arange(n_t, dtype=np.float64) * model.hop_ms, (a.shape[0], n_t))
    return _output(emb, device), _output(np.ascontiguousarray(ts, dtype=np.float32), device)


def get_scene_embeddings(audio, model):
    """One embedding per sound: the mean and the max over time of its timestamp embeddings.

    Parameters
    ----------
    audio : ndarray or torch.Tensor of shape (n_sounds, n_samples)
        As in :func:`get_timestamp_embeddings`.
    model : HearModel
        From :func:`load_model`.

    Returns
    -------
    embeddings : ndarray or torch.Tensor of shape (n_sounds, model.scene_embedding_size)
        float32: the mean over time, then the max.
    """
    a, device = _as_batch(audio, model)
    out = np.empty((a.shape[0], model.scene_embedding_size), dtype=np.float32)
    d = model.timestamp_embedding_size
    for s, y in enumerate(a):
        E = _frame_embeddings(model, y)
        out[s, :d] = E.mean(axis=0, dtype=np.float64)
        out[s, d:] = E.max(axis=0)
    return _output(out, device)
