"""Run msk's pipeline, as far as it exists, on the real music clip shipped with the package.

    python scripts/demo.py [audio file]

Prints the shape and the time of every stage. No arguments: the shipped example clip.
"""

import sys
import time

import numpy as np

import msk


def timed(label, fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    dt = (time.perf_counter() - t0) * 1e3
    shapes = [a.shape for a in out] if isinstance(out, list) else out.shape
    print(f"{label:<34s} {dt:8.2f} ms   {shapes}")
    return out


def main(argv):
    path = argv[1] if len(argv) > 1 else msk.example_audio()
    print(f"msk {msk.__version__}: {path}")
    y = timed("load_audio (16 kHz mono)", msk.load_audio, path)
    msk.melspectrogram(y)  # first call builds the cached mel filters
    S = timed("melspectrogram (n_frames, 200)", msk.melspectrogram, y)
    timed("multiresolution (6 levels)", msk.multiresolution, y)
    print(f"log-mel range: {S.min():.2f} .. {S.max():.2f}, mean {S.mean():.2f}")
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3, suppress=True)
    sys.exit(main(sys.argv))
