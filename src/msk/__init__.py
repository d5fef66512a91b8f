"""msk: multiscale music audio feature learning.

An implementation of Dieleman & Schrauwen, "Multiscale approaches to music
audio feature learning" (ISMIR 2013) with a compiled core: audio -> log-mel
spectrogram -> multiscale representation (multiresolution spectrograms,
Gaussian or Laplacian pyramid) -> PCA whitening -> spherical K-means ->
max-pooled features.

The submodules of the evaluation and of storage (``msk.baselines``,
``msk.datasets``, ``msk.experiment``, ``msk.heads``, ``msk.metrics``,
``msk.plot``, ``msk.store``, ``msk.tagger``), which pull in scikit-learn's networks, zarr or
matplotlib, are attributes of the package like the rest but are imported
when first touched, so that ``import msk`` costs about what its front end and
estimators need.
"""

import importlib

from ._persist import msk_version
from .audio import example_audio, load_audio
from .batch import extract, extract_many
from .kmeans import SphericalKMeans
from .multiscale import MultiscaleFeatures
from .pca import PCAWhitening
from .pyramid import gaussian_pyramid, laplacian_pyramid, reconstruct_laplacian
from .spectral import mel_filters, log_melspectrogram, multiresolution

__version__ = msk_version()

#: Public submodules imported on first attribute access (PEP 562), so that
#: ``import msk`` costs only what the front end and the estimators need.
_LAZY_SUBMODULES = ("baselines", "datasets", "experiment", "heads", "hear", "metrics", "plot", "projection",
                    "search", "store", "tagger")

__all__ = [
    "__version__",
    "MultiscaleFeatures",
    "PCAWhitening",
    "SphericalKMeans",
    "baselines",
    "datasets",
    "experiment",
    "heads",
    "hear",
    "metrics",
    "plot",
    "projection",
    "search",
    "store",
    "tagger",
    "example_audio",
    "extract",
    "extract_many",
    "gaussian_pyramid",
    "laplacian_pyramid",
    "load_audio",
    "mel_filters",
    "log_melspectrogram",
    "multiresolution",
    "reconstruct_laplacian",
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module  # later lookups skip this function
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
