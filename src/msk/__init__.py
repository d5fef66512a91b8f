"""msk: multiscale music audio feature learning.

An implementation of Dieleman & Schrauwen, "Multiscale approaches to music
audio feature learning" (ISMIR 2013) with a compiled core: audio -> log-mel
spectrogram -> multiscale representation (multiresolution spectrograms,
Gaussian or Laplacian pyramid) -> PCA whitening -> spherical K-means ->
max-pooled features.
"""

from importlib.metadata import PackageNotFoundError, version

from .audio import example_audio, load_audio
from .learn import PCAWhitening, SphericalKMeans

try:
    __version__ = version("msk")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "__version__",
    "PCAWhitening",
    "SphericalKMeans",
    "example_audio",
    "load_audio",
]
