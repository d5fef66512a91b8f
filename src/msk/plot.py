"""Figures in the style of the paper (Dieleman & Schrauwen 2013, Figures 2-6).

matplotlib is an optional dependency (``pip install msk[plot]``); it is
imported inside the functions, so ``import msk`` never needs it. The
figures are drawn on :class:`matplotlib.figure.Figure` objects and saved
directly, without pyplot: no global state and no display backend.

* :func:`representations_figure` (Figure 2): the three multiscale
  representations of one clip, level 0 at the bottom;
* :func:`features_figure` (Figure 3): learned features of every level in the
  spectrogram domain: leading PCA components, and K-means atoms mapped back
  through the inverse of the whitening;
* :func:`tagging_figure` (Figure 4) and :func:`similarity_figure` (Figure 5):
  tag AUC and NCA probability per architecture with error bars (standard
  deviation over runs), baselines as horizontal lines;
* :func:`levels_figure` (Figure 6): per-tag AUC with each level's features
  alone and with all levels;
* :func:`figures`: all of them from an experiment's output folder.

Pictures of a library and of one file:

* :func:`map_figure`: a 2-D map of a feature store's track vectors (PCA or
  t-SNE), coloured by a label column;
* :func:`timeline_figure`: one file's features over time under its log-mel
  spectrogram, on one time axis in seconds.
"""

import json
import os
import warnings

import numpy as np

__all__ = [
    "features_figure",
    "figures",
    "levels_figure",
    "map_coordinates",
    "map_figure",
    "representations_figure",
    "similarity_figure",
    "tagging_figure",
    "timeline_figure",
]

_REP_ORDER = ("gaussian", "laplacian", "multiresolution")
_COLORS = {("gaussian", 1): "#9ecae1", ("gaussian", 2): "#4292c6", ("gaussian", 4): "#08519c",
           ("laplacian", 1): "#fdae6b", ("laplacian", 2): "#f16913", ("laplacian", 4): "#a63603",
           ("multiresolution", 1): "#41ab5d"}


def _figure(width, height):
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("msk.plot needs matplotlib: pip install 'msk[plot]' (or pip install matplotlib).") from None
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _save(fig, path):
    """Save; a PNG is stored with a 256-colour palette (the colour maps have 256 levels anyway)."""
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        fig.savefig(path)
        return path
    import io

    from PIL import Image  # a dependency of matplotlib

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    with Image.open(buf) as im:
        im.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def _load_results(results):
    if isinstance(results, dict):
        return results
    if not isinstance(results, (str, os.PathLike)):
        raise TypeError(f"`results` must be a results dict or a path to results.json; got {type(results).__name__}.")
    path = os.fspath(results)
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


# --------------------------------------------------------------------------- Figure 2
def representations_figure(clip, path, *, levels=4, seconds=None, sr=16000):
    """Figure 2: multiresolution spectrograms, Gaussian and Laplacian pyramid of one clip.

    Parameters
    ----------
    clip : str, os.PathLike or ndarray
        An audio file or a mono waveform at ``sr`` Hz.
    path : str or os.PathLike
        Output image (PNG by extension).
    levels : int, default=4
        Levels shown (the paper shows 4).
    seconds : float, default=None
        Show only the first ``seconds`` of the clip (None: all of it).
    sr : int, default=16000

    Returns
    -------
    path : str
    """
    from .audio import load_audio
    from .multiscale import MultiscaleFeatures

    y = load_audio(clip, sr=sr) if isinstance(clip, (str, os.PathLike)) else np.asarray(clip, dtype=np.float32)
    if seconds is not None:
        y = y[: int(seconds * sr)]
    reps = {r: MultiscaleFeatures(r, levels=levels, sr=sr).represent(y) for r in _REP_ORDER}
    duration = len(y) / sr
    fig = _figure(10, 1.3 * levels + 0.7)
    grid = fig.add_gridspec(levels, 3)
    titles = {"multiresolution": "(a) multiresolution spectrograms", "gaussian": "(b) Gaussian pyramid",
              "laplacian": "(c) Laplacian pyramid"}
    for col, rep in enumerate(("multiresolution", "gaussian", "laplacian")):
        for lev in range(levels):
            ax = fig.add_subplot(grid[levels - 1 - lev, col])  # level 0 at the bottom
            S = reps[rep][lev]
            if rep == "laplacian" and lev < levels - 1:
                lim = np.percentile(np.abs(S), 99) or 1.0
                kw = {"cmap": "RdBu_r", "vmin": -lim, "vmax": lim}
            else:
                kw = {"cmap": "magma", "vmin": np.percentile(S, 1), "vmax": S.max()}
            ax.imshow(S.T, origin="lower", aspect="auto", interpolation="nearest",
                      extent=(0, duration, 0, S.shape[1]), **kw)
            ax.set_yticks([])
            ax.set_ylabel(f"level {lev}", fontsize=8)
            if lev == 0:
                ax.set_xlabel("time (s)", fontsize=8)
            else:
                ax.set_xticks([])
            ax.tick_params(labelsize=7)
            if lev == levels - 1:
                ax.set_title(titles[rep], fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------- Figure 3
def _atom_strip(atoms, frames, n_mels):
    """Concatenate atoms (rows of frames * n_mels values) into one image, NaN between them."""
    tiles = []
    for a in atoms:
        img = a.reshape(frames, n_mels).T  # (n_mels, frames): frequency up, time right
        img = img / (np.abs(img).max() or 1.0)
        tiles.append(img)
        tiles.append(np.full((n_mels, max(1, frames // 2)), np.nan))
    return np.hstack(tiles[:-1])


def features_figure(model, path, *, n_atoms=12, random_state=0):
    """Figure 3: learned features of every level in the spectrogram domain.

    The top half shows the leading PCA components of each level (rows of the
    whitening's components: directions in the window space), the bottom half
    a random selection of the K-means atoms mapped back through the inverse
    of the whitening (``PCAWhitening.inverse_transform`` without the mean).
    Each atom is a small image of ``frames`` frames (time, right) by the mel
    bands (frequency, up), scaled to [-1, 1]; red is positive.

    Parameters
    ----------
    model : MultiscaleFeatures or str or os.PathLike
        A fitted model or a saved one (``.npz``).
    path : str or os.PathLike
        Output image.
    n_atoms : int, default=12
        Features shown per level and kind.
    random_state : int, default=0
        Picks the K-means atoms shown.

    Returns
    -------
    path : str
    """
    from .multiscale import MultiscaleFeatures

    if not isinstance(model, MultiscaleFeatures):
        model = MultiscaleFeatures.load(model)
    rng = np.random.default_rng(random_state)
    levels = len(model.pca_)
    kinds = ["PCA"] + (["K-means"] if model.kmeans_ is not None else [])
    frames = model.width
    n_mels = model.n_mels_
    fig = _figure(min(2 + n_atoms * (frames + 1) * 0.25, 14), 1.1 * levels * len(kinds) + 0.8)
    axes = fig.subplots(levels * len(kinds), 1, squeeze=False)[:, 0]
    for k, kind in enumerate(kinds):
        for lev in range(levels):
            pca = model.pca_[lev]
            if kind == "PCA":
                atoms = pca.components_[:n_atoms]
            else:
                D = model.kmeans_[lev].cluster_centers_
                pick = np.sort(rng.choice(len(D), size=min(n_atoms, len(D)), replace=False))
                atoms = pca.inverse_transform(D[pick].astype(np.float64)) - pca.mean_
            ax = axes[k * levels + (levels - 1 - lev)]  # level 0 at the bottom of each half
            ax.imshow(_atom_strip(atoms, frames, n_mels), origin="lower", aspect="auto", cmap="RdBu_r",
                      vmin=-1, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_ylabel(f"level {lev}", fontsize=8, rotation=0, ha="right", va="center")
            if lev == levels - 1:
                ax.set_title(f"{kind} features ({model.representation}, {frames} frame"
                             f"{'s' if frames > 1 else ''} per window)", fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------- Figures 4 and 5
def _k_label(n_means):
    return "PCA" if n_means is None else f"K={n_means}"


def _grid_plot(ax, rows, key, std_key, ylabel):
    """Paper-style panel: one series per (representation, frames), x = PCA/K, baselines as lines."""
    learned = [r for r in rows if r["kind"] == "multiscale" and (r.get("levels") or 1) > 1
               and not r.get("tuned_from") and r.get(key) is not None]
    ks = sorted({r["n_means"] for r in learned}, key=lambda k: -1 if k is None else k)
    xs = {k: i for i, k in enumerate(ks)}
    series = {}
    for r in learned:
        series.setdefault((r["representation"], r["frames"]), []).append(r)
    order = sorted(series, key=lambda s: (_REP_ORDER.index(s[0]) if s[0] in _REP_ORDER else 9, s[1]))
    n = max(1, len(order))
    width = 0.8 / n
    for j, s in enumerate(order):
        pts = sorted(series[s], key=lambda r: xs[r["n_means"]])
        x = np.array([xs[r["n_means"]] for r in pts]) - 0.4 + width * (j + 0.5)
        y = np.array([r[key] for r in pts])
        e = np.array([r.get(std_key) or 0.0 for r in pts]) if std_key else None
        ax.errorbar(x, y, yerr=e, fmt="o-", ms=4, lw=1, capsize=2, color=_COLORS.get(s),
                    label=f"{s[0]}, w={s[1]}")
    others = [r for r in rows if r not in learned and r.get(key) is not None]
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (1, 3))]
    for i, r in enumerate(others):
        label = r["architecture"] + (" (tuned)" if r.get("tuned_from") else "")
        # baselines grey, features from elsewhere (e.g. musicnn) purple, the tuned configuration red
        color = "crimson" if r.get("tuned_from") else "tab:purple" if r.get("kind") == "external" else "0.25"
        ax.axhline(r[key], color=color, ls=styles[i % len(styles)], lw=1.2, label=label)
    values = [(r[key], r.get(std_key) or 0.0) for r in learned + others]
    if values:  # axhline does not take part in autoscaling: include the baselines and a margin
        lo = min(v - e for v, e in values)
        hi = max(v + e for v, e in values)
        pad = 0.08 * (hi - lo) or 0.01
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xticks(range(len(ks)))
    ax.set_xticklabels([_k_label(k) for k in ks])
    if not ks:
        ax.set_xticks([])
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if learned or others:  # below the axes, so that it never hides a point
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False)


def tagging_figure(results, path):
    """Figure 4: test mean tag AUC per architecture (mean ± std over runs).

    Parameters
    ----------
    results : dict or str or os.PathLike
        The experiment's results (or ``results.json``, or its folder).
    path : str or os.PathLike
        Output image.

    Returns
    -------
    path : str
    """
    res = _load_results(results)
    fig = _figure(8, 5.5)
    ax = fig.add_subplot()
    _grid_plot(ax, res["architectures"], "tag_auc_mean", "tag_auc_std", "test mean tag AUC")
    ax.set_title(f"Tag prediction ({len(res['dataset']['tags'])} tags, "
                 f"{res['settings']['n_runs']} run(s) per architecture)", fontsize=10)
    return _save(fig, path)


def similarity_figure(results, path):
    """Figure 5: NCA probability of correct classification per architecture, and NN accuracy.

    The left panel is the paper's figure (test-set NCA probability, artist
    labels); the right panel the nearest-neighbour artist accuracy with
    neighbours from the clip's own track excluded.

    Parameters
    ----------
    results : dict or str or os.PathLike
    path : str or os.PathLike

    Returns
    -------
    path : str
    """
    res = _load_results(results)
    fig = _figure(14, 5.5)
    ax1, ax2 = fig.subplots(1, 2)
    _grid_plot(ax1, res["architectures"], "nca_probability", "nca_probability_std", "test NCA probability")
    ax1.set_title("Similarity: NCA probability of correct classification (artist)", fontsize=10)
    _grid_plot(ax2, res["architectures"], "nn_accuracy_other_tracks", "nn_accuracy_other_tracks_std",
               "test 1-NN artist accuracy")
    ax2.set_title("Nearest-neighbour artist accuracy, same-track neighbours excluded", fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------- Figure 6
def levels_figure(results, path, *, tags=None):
    """Figure 6: per-tag test AUC with each level's features alone and with all levels.

    Parameters
    ----------
    results : dict or str or os.PathLike
        Results with a ``"per_level"`` study.
    path : str or os.PathLike
    tags : list of str, default=None
        Tags shown (default: all, most frequent first).

    Returns
    -------
    path : str

    Raises
    ------
    ValueError
        If the results hold no per-level study.
    """
    res = _load_results(results)
    pl = res.get("per_level")
    if not pl:
        raise ValueError("`results` holds no per-level study; run the experiment with per_level=True.")
    names = tags or [t["name"] for t in res["dataset"]["tags"]]
    cols = [f"level {lv['level']}" for lv in pl["levels"]] + ["all"]
    M = np.array([[np.nan if lv["per_tag_auc"].get(t) is None else lv["per_tag_auc"][t] for lv in pl["levels"]]
                  + [np.nan if pl["all"]["per_tag_auc"].get(t) is None else pl["all"]["per_tag_auc"][t]]
                  for t in names])
    fig = _figure(1.2 + 0.75 * len(cols), 1.0 + 0.28 * len(names))
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(M), cmap="viridis", vmin=0.5, vmax=1.0, aspect="auto")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            if np.isfinite(M[i, j]):
                ax.text(j, i, f"{M[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if M[i, j] < 0.8 else "black")
            else:  # the tag has a single class on the test split: no AUC
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="0.5")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels(cols, fontsize=8)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8)
    ax.set_title(f"Per-tag test AUC by level\n{pl['architecture']}", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.6, label="AUC")
    return _save(fig, path)


# --------------------------------------------------------------------------- all of them
def figures(results_dir):
    """Write Figures 2-6 of an experiment's output folder as PNG files there.

    Figure 2 uses the first test clip of the dataset, Figure 3 the saved model
    of the best learned multiscale architecture (by validation tag AUC),
    Figure 6 the per-level study if the experiment ran one.

    Parameters
    ----------
    results_dir : str or os.PathLike
        The ``out`` folder of :func:`msk.experiment.run_experiment`.

    Returns
    -------
    written : list of str
        The files written, relative to ``results_dir``.
    """
    results_dir = os.fspath(results_dir)
    res = _load_results(results_dir)
    written = []

    def out(name):
        written.append(name)
        return os.path.join(results_dir, name)

    clip = res["dataset"].get("example_clip")
    if clip and os.path.exists(clip):
        representations_figure(clip, out("fig2_representations.png"), seconds=8.0)
    learned = [r for r in res["architectures"] if r["kind"] == "multiscale" and r.get("model")
               and (r.get("levels") or 1) > 1 and not r.get("tuned_from")]
    if learned:
        best = max(learned, key=lambda r: (r["n_means"] is not None, r.get("valid_tag_auc") or 0))
        model = os.path.join(results_dir, best["model"])
        if os.path.exists(model):
            features_figure(model, out("fig3_features.png"))
    tagging_figure(res, out("fig4_tagging.png"))
    similarity_figure(res, out("fig5_similarity.png"))
    if res.get("per_level"):
        levels_figure(res, out("fig6_levels.png"))
    return written


# --------------------------------------------------------------------------- a map of a library
_MAP_METHODS = ("pca", "tsne")
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
            "#17becf", "#393b79", "#ad494a", "#637939")
_OTHER, _UNLABELLED = "#b0b0b0", "#dcdcdc"


def _track_vectors(store):
    """Keys, audio paths and one vector per track (mean of its windows) of a feature store.

    The one place that reads the store for the map.
    """
    from .heads import clip_means
    from .store import FeatureStore

    st = store if isinstance(store, FeatureStore) else FeatureStore(store, mode="r")
    keys = st.keys()
    if not keys:
        raise ValueError(f"feature store {st.path!r} holds no clip; nothing to map.")
    X, clip_index = st.concatenated(keys)
    paths = [st.meta(k).get("path", k) for k in keys]
    return keys, paths, clip_means(X, clip_index, n_clips=len(keys))


def map_coordinates(vectors, *, method="pca", random_state=0):
    """2-D coordinates of track vectors for a map.

    The vectors are standardised (each feature to zero mean, unit variance),
    then projected on their two leading principal components
    (``method="pca"``), or embedded by scikit-learn's t-SNE
    (``method="tsne"``) after a PCA to at most 50 dimensions, with a
    perplexity of ``min(30, (n_tracks - 1) / 3)``.

    Parameters
    ----------
    vectors : array-like of shape (n_tracks, n_features)
    method : {"pca", "tsne"}, default="pca"
    random_state : int, default=0
        Seeds the PCA solver and t-SNE.

    Returns
    -------
    xy : ndarray of shape (n_tracks, 2)

    Examples
    --------
    >>> import numpy as np
    >>> from msk.plot import map_coordinates
    >>> V = np.random.default_rng(0).standard_normal((20, 6))
    >>> map_coordinates(V).shape
    (20, 2)
    """
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from ._validation import as_float_array, check_option

    check_option("method", method, _MAP_METHODS)
    V = as_float_array("vectors", vectors, ndim=2, dtype=np.float64)
    if len(V) < (2 if method == "pca" else 4):
        raise ValueError(f"a map with method={method!r} needs at least {2 if method == 'pca' else 4} tracks; "
                         f"got {len(V)}.")
    Z = StandardScaler().fit_transform(V)
    n_pca = min(2 if method == "pca" else 50, *Z.shape)
    P = PCA(n_components=n_pca, random_state=random_state).fit_transform(Z)
    if method == "pca":
        return P if P.shape[1] == 2 else np.hstack([P, np.zeros((len(P), 1))])
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(P) - 1) / 3), init="pca", random_state=random_state)
    return tsne.fit_transform(P)


def _categories(values, *, max_categories=len(_PALETTE)):
    """Legend entries and per-point colours for categorical values (None = unlabelled).

    The ``max_categories`` most frequent values (ties by name) get their own
    colour, in that order; the rest are "other", and None is "unlabelled".

    Returns
    -------
    legend : list of (name, colour, count)
    colors : list of str, one per value
    """
    counts = {}
    for v in values:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    ranked = sorted(counts, key=lambda v: (-counts[v], str(v)))
    own = {v: _PALETTE[i] for i, v in enumerate(ranked[:max_categories])}
    colors = [_UNLABELLED if v is None else own.get(v, _OTHER) for v in values]
    legend = [(str(v), own[v], counts[v]) for v in ranked[:max_categories]]
    n_other = sum(counts[v] for v in ranked[max_categories:])
    if n_other:
        legend.append((f"other ({len(ranked) - max_categories} values)", _OTHER, n_other))
    n_none = sum(v is None for v in values)
    if n_none:
        legend.append(("unlabelled", _UNLABELLED, n_none))
    return legend, colors


def _label_values(labels, color_by, keys, paths):
    """Each track's value of the column ``color_by`` (None if the track has no label)."""
    from .datasets import Labels, load_labels

    if labels is None:
        if color_by is not None:
            raise ValueError("`color_by` needs `labels` (a labels CSV).")
        return None
    if not isinstance(labels, Labels):  # any column of the file can colour the map
        labels = load_labels(labels, label_column=color_by)
    if color_by is None and labels.kind == "multilabel":
        raise ValueError(
            f"`color_by` must name the column to colour by for a file of tags: one of "
            f"{', '.join(map(repr, labels.tag_names + ((labels.group_column,) if labels.group_column else ())))}."
        )
    column = labels.column(color_by)
    rows = labels.rows_for(keys, paths)
    return [None if r < 0 else str(column[r]) for r in rows.tolist()]


def map_figure(store, path, *, labels=None, color_by=None, method="pca", random_state=0, title=None):
    """A 2-D map of a feature store's tracks, coloured by a label column.

    Each track is the mean of its windows' features; the tracks are placed by
    :func:`map_coordinates`. Tracks close on the map have similar features.
    With ``labels``, each point is coloured by its value in the column
    ``color_by`` (the most frequent values get their own colours, the rest
    "other"; tracks without a label are light grey). Up to 40 tracks are
    named by their file name.

    Parameters
    ----------
    store : str, os.PathLike or FeatureStore
        The feature store (``msk extract DIR -o STORE``).
    path : str or os.PathLike
        Output image (PNG by extension).
    labels : str, os.PathLike, Labels or None, default=None
        A labels CSV (:func:`msk.datasets.load_labels`).
    color_by : str or None, default=None
        The column to colour by: any column of a labels file given as a
        path (read as a column of classes), or a tag, group or class column
        of a :class:`~msk.datasets.Labels`. None means the class column of
        a single-label file.
    method : {"pca", "tsne"}, default="pca"
    random_state : int, default=0
    title : str or None, default=None

    Returns
    -------
    path : str
    """
    keys, paths, V = _track_vectors(store)
    values = _label_values(labels, color_by, keys, paths)
    xy = map_coordinates(V, method=method, random_state=random_state)
    fig = _figure(8.5 if values is not None else 7, 6)
    ax = fig.add_subplot()
    if values is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=22, c=_PALETTE[0], alpha=0.8, linewidths=0)
    else:
        legend, colors = _categories(values)
        order = np.argsort([c in (_OTHER, _UNLABELLED) for c in colors], kind="stable")[::-1]  # greys below
        ax.scatter(xy[order, 0], xy[order, 1], s=22, c=[colors[i] for i in order], alpha=0.85, linewidths=0)
        for name, color, count in legend:
            ax.scatter([], [], s=30, c=color, label=f"{name} ({count})")
        ax.legend(title=color_by or "class", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  title_fontsize=9, frameon=False)
    if len(keys) <= 40:
        for (x, y), p in zip(xy, paths):
            ax.annotate(os.path.splitext(os.path.basename(p))[0], (x, y), fontsize=6, xytext=(3, 3),
                        textcoords="offset points", color="#333333")
    axis = "PC" if method == "pca" else "t-SNE "
    ax.set_xlabel(f"{axis}1", fontsize=9)
    ax.set_ylabel(f"{axis}2", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.set_title(title or f"{len(keys)} tracks, {V.shape[1]} features ({'PCA' if method == 'pca' else 't-SNE'})",
                 fontsize=10)
    return _save(fig, path)


# --------------------------------------------------------------------------- one file over time
def _level_widths(model):
    """Feature columns of each block of a fitted model's rows: its levels (level 0 first), then its envelope."""
    return list(model.n_features_per_level_) + ([int(model.n_mels_)] if getattr(model, "envelope", False) else [])


def timeline_figure(audio, path, *, model=None, sr=None, title=None):
    """One file's features over time, under its log-mel spectrogram.

    The top panel is the log-mel spectrogram (:func:`msk.log_melspectrogram`,
    hop 512 samples) with the pooling windows' boundaries dotted; the bottom
    panel the pooled features (:func:`msk.extract`) of every window, one
    column per window and one row per feature, the levels separated by white
    lines (level 0 at the bottom). With three windows or more, each feature
    is shown minus its mean over the file (red above, blue below), so that
    what changes over time stands out, and the features of a level are
    ordered by the window where they peak; each level is scaled on its own,
    since levels differ in magnitude. Both panels share the time axis, in
    seconds.

    Parameters
    ----------
    audio : str, os.PathLike or array-like of shape (n_samples,)
        An audio file, or a mono waveform at ``sr`` Hz.
    path : str or os.PathLike
        Output image (PNG by extension).
    model : MultiscaleFeatures, str, os.PathLike or None, default=None
        The feature model (None: msk's shipped Laplacian model).
    sr : int or None, default=None
        Sampling rate of a waveform.
    title : str or None, default=None

    Returns
    -------
    path : str
    """
    from .audio import load_audio
    from .batch import default_model, extract
    from .multiscale import MultiscaleFeatures
    from .spectral import log_melspectrogram

    if model is None:
        model = default_model()
    elif isinstance(model, (str, os.PathLike)):
        model = MultiscaleFeatures.load(model)
    from ._validation import as_float_array, check_int

    if isinstance(audio, (str, os.PathLike)):
        name = os.path.basename(os.fspath(audio))
        sr = model.sr
        y = load_audio(audio, sr=sr)
    else:
        if sr is None:
            raise ValueError("`sr` must be given with a waveform (its sampling rate in Hz); got sr=None.")
        name, sr = "waveform", check_int("sr", sr, low=1)
        y = as_float_array("audio", audio, ndim=1, dtype=np.float32)
    F, start, end = extract(y, model=model, sr=sr, return_times=True)  # every window, the last partial
    hop = model.hop_length
    with warnings.catch_warnings():  # a clip shorter than one FFT is drawn all the same
        warnings.filterwarnings("ignore", message=r"n_fft=\d+ is longer than the signal")
        S = log_melspectrogram(y, sr=sr, hop_length=hop, log_offset=model.log_offset)
    duration = len(y) / sr
    window = model.pool_size * model.hop_length / model.sr  # pooling windows of the model's front end
    bounds = np.append(start, end[-1])
    t_end = max(bounds[-1], duration)

    fig = _figure(10, 7.5)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(1, 2.2))
    top.imshow(S.T, origin="lower", aspect="auto", cmap="magma", interpolation="nearest",
               extent=(-0.5 * hop / sr, (len(S) - 0.5) * hop / sr, 0, S.shape[1]),
               vmin=np.percentile(S, 5), vmax=S.max())
    for b in bounds:
        top.axvline(b, color="white", lw=0.8, ls=":")
    top.set_ylabel(f"mel band\n(0-{sr / 2000:g} kHz)", fontsize=8)
    top.tick_params(labelsize=7)
    top.set_title(title or f"{name}: log-mel spectrogram and {model.representation} features "
                           f"({len(F)} window{'s' if len(F) > 1 else ''} of {window:.2f} s)", fontsize=10)

    widths = _level_widths(model)
    edges = np.cumsum([0] + widths)
    relative = len(F) >= 3  # enough windows to show how each feature changes
    G = (F - F.mean(axis=0)) if relative else F
    img = np.empty((F.shape[1], len(F)), dtype=np.float32)
    n_levels = len(model.n_features_per_level_)
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        block = G[:, a:b].T
        if relative and i < n_levels:
            # rows ordered by the window where the feature peaks, so that a level reads as
            # "these features rise here" instead of noise; then the steepest rise first
            block = block[np.lexsort((-block.max(axis=1), block.argmax(axis=1)))]
            lim = np.percentile(np.abs(block), 95) or 1.0
            img[a:b] = np.clip(block / lim, -1, 1)
        elif relative:  # the envelope: its bands in frequency order
            lim = np.percentile(np.abs(block), 95) or 1.0
            img[a:b] = np.clip(block / lim, -1, 1)
        else:
            lo, hi = np.percentile(block, [2, 98])
            img[a:b] = np.clip(2 * (block - lo) / ((hi - lo) or 1.0) - 1, -1, 1)
    # one column per window, as wide as the seconds it covers (a kept last window is shorter)
    bottom.pcolormesh(bounds, np.arange(F.shape[1] + 1), img, cmap="RdBu_r" if relative else "viridis",
                      vmin=-1, vmax=1, shading="flat")
    for e in edges[1:-1]:
        bottom.axhline(e, color="black", lw=1.0)
    what = ("features minus their mean over the file\n(red above, blue below; ordered by peak window)"
            if relative else "feature values\n(each level scaled on its own)")
    bottom.set_ylabel(what, fontsize=8)
    if len(widths) > 1:
        bottom.set_yticks((edges[:-1] + edges[1:]) / 2)
        bottom.set_yticklabels([f"level {i}" if i < n_levels else "envelope" for i in range(len(widths))],
                               fontsize=8)
    bottom.tick_params(labelsize=7)
    bottom.set_xlabel("time (s)", fontsize=9)
    bottom.set_xlim(0, t_end)
    return _save(fig, path)
