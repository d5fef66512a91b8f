"""msk: multiscale music audio feature learning.

An implementation of Dieleman & Schrauwen, "Multiscale approaches to music
audio feature learning" (ISMIR 2013) with a compiled core: audio -> log-mel
spectrogram -> multiscale representation (multiresolution spectrograms,
Gaussian or Laplacian pyramid) -> PCA whitening -> spherical K-means ->
max-pooled features.
"""

from importlib.metadata import PackageNotFoundError, version

from . import datasets, evaluation, heads, plot, store, tagger
from .audio import example_audio, load_audio
from .batch import extract, extract_many
from .kmeans import SphericalKMeans
from .multiscale import MultiscaleFeatures
from .pca import PCAWhitening
from .pyramid import gaussian_pyramid, laplacian_pyramid, reconstruct_laplacian
from .spectral import mel_filters, log_melspectrogram, multiresolution

try:
    __version__ = version("msk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "MultiscaleFeatures",
    "PCAWhitening",
    "SphericalKMeans",
    "datasets",
    "evaluation",
    "heads",
    "plot",
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
