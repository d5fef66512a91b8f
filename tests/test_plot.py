"""msk.plot's pictures of a library and of one file: colour mapping, projections, PNG sizes."""

import subprocess
import sys

import numpy as np
import pytest

import msk
from msk.datasets import load_labels
from msk.plot import _categories, _label_values, map_coordinates

pytest.importorskip("matplotlib")


def test_categories_most_frequent_first_then_other_and_unlabelled():
    values = ["b", "a", None, "b", "c", "a", "b", "d", None]
    legend, colors = _categories(values, max_categories=2)
    assert [(name, count) for name, _, count in legend] == [
        ("b", 3), ("a", 2), ("other (2 values)", 2), ("unlabelled", 2)]
    own = {name: color for name, color, _ in legend}
    assert colors == [own["b"], own["a"], own["unlabelled"], own["b"], own["other (2 values)"], own["a"],
                      own["b"], own["other (2 values)"], own["unlabelled"]]
    assert len({own["b"], own["a"], own["other (2 values)"], own["unlabelled"]}) == 4
    legend, colors = _categories(["x", "y"])  # ties by name
    assert [name for name, _, _ in legend] == ["x", "y"] and colors[0] != colors[1]


def test_label_values_follow_the_chosen_column(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("key,genre,loud\na,rock,1\nb,jazz,0\nc,rock,1\n")
    assert _label_values(path, "genre", ["c", "zz", "a"], [None, None, None]) == ["rock", None, "rock"]
    assert _label_values(path, "loud", ["b", "a"], [None, None]) == ["0", "1"]
    tags = tmp_path / "tags.csv"
    tags.write_text("key,rock,pop\na,1,0\nb,0,1\n")
    assert _label_values(load_labels(tags), "pop", ["a", "b"], [None, None]) == ["not pop", "pop"]
    with pytest.raises(ValueError, match="`color_by` must name the column.*'rock', 'pop'"):
        _label_values(load_labels(tags), None, ["a"], [None])
    with pytest.raises(ValueError, match="`color_by` needs `labels`"):
        _label_values(None, "rock", ["a"], [None])
    assert _label_values(None, None, ["a"], [None]) is None


def test_map_coordinates(rng):
    V = rng.standard_normal((30, 8)) * np.arange(1, 9)
    V[:15] += 4 * np.arange(1, 9)  # two groups, 4 standard deviations apart in every feature
    xy = map_coordinates(V)
    assert xy.shape == (30, 2)
    np.testing.assert_allclose(xy.mean(axis=0), 0, atol=1e-9)
    assert xy[:, 0].var() >= xy[:, 1].var()
    split = xy[:15, 0].mean() - xy[15:, 0].mean()
    assert abs(split) > 3 * xy[:, 0][:15].std()  # the groups are apart on PC1
    t1 = map_coordinates(V, method="tsne", random_state=0)
    np.testing.assert_array_equal(t1, map_coordinates(V, method="tsne", random_state=0))
    assert map_coordinates(V[:, :1]).shape == (30, 2)  # one feature: PC2 is zero
    with pytest.raises(ValueError, match="`method` must be one of 'pca' or 'tsne'"):
        map_coordinates(V, method="umap")
    with pytest.raises(ValueError, match="at least 4 tracks"):
        map_coordinates(V[:3], method="tsne")


def png_size(path):
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def test_map_and_timeline_render(tmp_path, rng):
    store = msk.store.FeatureStore(tmp_path / "f.zarr", mode="w")
    for i in range(12):
        store.put(f"clip{i}", (rng.standard_normal((3, 5)) + (i % 3)).astype(np.float32))
    (tmp_path / "labels.csv").write_text("key,kind\n" + "".join(f"clip{i},k{i % 3}\n" for i in range(10)))
    out = msk.plot.map_figure(store, tmp_path / "map.png", labels=tmp_path / "labels.csv")
    assert png_size(out) == (935, 660)
    assert png_size(msk.plot.map_figure(tmp_path / "f.zarr", tmp_path / "plain.png")) == (770, 660)
    model = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=4, pool_size=32, n_samples=500, random_state=0)
    model.fit([msk.example_audio()])
    y = msk.load_audio(msk.example_audio())[: 3 * 16000]
    out = msk.plot.timeline_figure(y, tmp_path / "t.png", model=model, sr=16000)
    assert png_size(out) == (1100, 825)
    short = msk.plot.timeline_figure(y[:8000], tmp_path / "short.png", model=model, sr=16000)  # one window
    assert png_size(short) == (1100, 825)
    with pytest.raises(ValueError, match="`sr` must be given"):
        msk.plot.timeline_figure(y, tmp_path / "x.png", model=model)


def test_timeline_of_an_envelope_model(tmp_path):
    """Every column of the rows is drawn: the levels' blocks, then the envelope's."""
    model = msk.MultiscaleFeatures("laplacian", levels=2, n_clusters=4, pool_size=32, n_samples=500, envelope=True,
                                   random_state=0).fit([msk.example_audio()])
    assert msk.plot._level_widths(model) == [4, 4, 200] and sum(msk.plot._level_widths(model)) == model.n_features_out_
    y = msk.load_audio(msk.example_audio())[: 3 * 16000]
    for seconds in (3, 0.5):  # relative (several windows) and absolute (one window) colouring
        out = msk.plot.timeline_figure(y[: int(seconds * 16000)], tmp_path / f"{seconds}.png", model=model, sr=16000)
        assert png_size(out) == (1100, 825)


def test_missing_matplotlib_is_a_clear_error(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; sys.modules['matplotlib.figure'] = None\n"
        "from msk.cli import main\n"
        f"sys.exit(main(['plot', 'timeline', {msk.example_audio()!r}, '-o', {str(tmp_path / 't.png')!r}]))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 1 and "pip install 'msk[plot]'" in res.stderr and "Traceback" not in res.stderr
    code = "import sys; sys.modules['matplotlib.figure'] = None\nimport msk.plot\nmsk.plot._figure(1, 1)\n"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "ImportError: msk.plot needs matplotlib: pip install 'msk[plot]'" in res.stderr
