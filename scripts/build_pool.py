#!/usr/bin/env python3
"""Build msk's unsupervised training pool: openly licensed music kept apart from the labelled corpus.

K-means and PCA need no labels, so the shipped models can learn from more music than the labelled
development corpus holds. One command builds the pool from nothing on a Debian machine (root,
network to Debian's archive)::

    python scripts/build_pool.py --out ~/.cache/msk/pool --cache ~/.cache/msk/debcache

It shares ``--cache`` (downloads, unpacked packages, per-track work) with
``scripts/build_dev_corpus.py`` and reuses that script's machinery: ``apt-get download`` +
``dpkg-deb -x`` (nothing is installed system-wide), fluidsynth unpacked from Debian, decoding,
rendering, resampling to 16 kHz mono, 29.1 s clips, silence rule and MP3 encoding.

Kept apart from the labelled corpus
-----------------------------------
A source track is in the corpus or in the pool, never both: every candidate track of the corpus
builder (``build_dev_corpus.corpus_tracks``, for the packages both use) is excluded here, and if a
built corpus is found at ``--corpus`` its ``SOURCES.tsv`` is checked as well (the build stops if
any pool track appears there). The packages reserved for an independent evaluation (RESERVED:
``freedoom``, ``openttd-openmsx`` and the Fluid R3 SoundFont in all its Debian packages) are
refused by name.

Sources (SOURCES and SOUNDFONTS below; scripts/README_pool.md has the table)
--------------------------------------------------------------------------------
Recorded soundtracks (Ogg Vorbis / MP3, some inside a game's .pk3 zip archive): music without
per-track composer credits is welcome, since no labels are needed. MIDI files are rendered once
with each SoundFont in SOUNDFONTS (four General MIDI sets with different timbres: sampled,
small sampled, public-domain sampled, OPL3 FM), each render a track of its own. The licence of each
file is read from its package's machine-readable (DEP-5) copyright file where the package has
one (the last paragraph whose ``Files`` pattern matches the file's path in the upstream source),
else it is the licence stated in SOURCES after reading that file.

Output
------
``--out`` holds ``<package>/<name>-<start>-<end>.mp3`` (recordings) and
``<package>/<soundfont>/<name>-<start>-<end>.mp3`` (renders): consecutive 29.1 s clips from the
start of each track, at most ``MAX_CLIPS_PER_TRACK`` per track (about 5.8 min; MIDI scores are
rendered only that far, ``RENDER_SECONDS``), silent clips dropped, 16 kHz mono MP3 at a constant 32 kbit/s - the corpus's (and MagnaTagATune's) format, so
features learned on the pool see the codec they are applied to, at a fifth of a 16 kHz FLAC's
size. ``manifest.csv`` lists every clip (file, package, version, licence, track, soundfont, start,
duration, the track's length, SHA-256 of the file), sorted by file; ``LICENSES/`` holds every
package's Debian copyright file; ``README.md`` the hours per source. Re-runs skip finished tracks
and rewrite nothing; the bytes do not depend on ``--jobs``.
"""

import argparse
import csv
import dataclasses
import fnmatch
import glob
import hashlib
import io
import os
import re
import sys
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import build_dev_corpus as corpus  # noqa: E402  (the corpus builder owns the shared machinery)

MAX_CLIPS_PER_TRACK = 12
# MIDI scores are rendered up to the end of the last clip that can be kept (some game scores are
# half-hour loops written out); the render is peak-normalised over this part
RENDER_SECONDS = MAX_CLIPS_PER_TRACK * corpus.CLIP_SECONDS
POOL_VERSION = 1  # part of every track's cache key: changing it re-processes every track

# Reserved for an independent evaluation of models trained on the pool: never read.
# scripts/build_heldout_corpus.py builds that evaluation's corpus from the first three.
RESERVED = {
    "freedoom": "reserved for independent evaluation",
    "openttd-openmsx": "reserved for independent evaluation",
    "fluid-soundfont-gm": "reserved for independent evaluation (Fluid R3 SoundFont)",
    "fluid-soundfont-gs": "the reserved Fluid R3 SoundFont's samples (GS bank)",
    "fluidr3mono-gm-soundfont": "the reserved Fluid R3 SoundFont's samples (mono, from MuseScore)",
}


@dataclasses.dataclass(frozen=True)
class Source:
    """Where a package's music is and under which licence.

    ``patterns`` are globs of the files' paths inside the unpacked package, or inside ``archive``
    (a zip file in the package) when given. The licence is ``licence`` if given, else it is looked
    up in the package's DEP-5 copyright file for the file's path in the upstream source:
    ``dep5 = (strip, prefix)`` turns a path (inside the archive, if any) into that path by
    removing ``strip`` from its start and prepending ``prefix``.
    """

    package: str
    kind: str  # 'audio' or 'midi'
    patterns: tuple
    archive: str = None
    licence: str = None
    dep5: tuple = None
    note: str = ""


@dataclasses.dataclass(frozen=True)
class SoundFont:
    package: str
    path: str
    licence: str
    short: str


SOURCES = (
    Source("asc-music", "audio", ("usr/share/games/asc/music/*.mp3",), dep5=("usr/share/games/asc/music/", ""),
           note="Advanced Strategic Command, 3 tracks by Michael Kievernagel"),
    Source("freedink-data", "midi",
           tuple(f"usr/share/games/dink/dink/Sound/{n}.mid"
                 for n in ("1003", "2", "dance", "insper", "lively", "love")),
           licence="zlib (Seth A. Robinson)",
           note="the original 1997 Dink Smallwood MIDI files (uncredited; the corpus uses the credited replacements)"),
    Source("hyperrogue-music", "audio", ("usr/share/hyperrogue/music/*.ogg",), dep5=("usr/share/hyperrogue/", ""),
           note="HyperRogue: Shawn Parrotte, Lincoln Domina, Will Savino"),
    Source("nexuiz-music", "audio", ("sound/cdtracks/*.ogg",), archive="usr/share/games/nexuiz/data/music.pk3",
           licence="GPL-2+", note="Nexuiz soundtrack (Alientrap), inside music.pk3"),
    Source("planetblupi-music-midi", "midi", ("usr/share/planetblupi/music/*.mid",),
           dep5=("usr/share/planetblupi/", ""),
           note="Planet Blupi's MIDI music (EPSITEC, Daniel Roux, Denis Dumoulin)"),
    Source("pushover-data", "audio", ("usr/share/pushover/themes/*.ogg",), dep5=("usr/share/pushover/", ""),
           note="Pushover's theme music by Roberto Lorenz"),
    Source("singularity-music", "audio",
           ("usr/share/games/singularity/music/*.ogg", "usr/share/games/singularity/music/*/*.ogg"),
           licence="CC-BY-SA-3.0", note="Endgame: Singularity, music by Max McCracken"),
    Source("ufoai-music", "audio", ("music/*.ogg",), archive="usr/share/games/ufoai/base/0music.pk3",
           dep5=("", "base/"), note="UFO: Alien Invasion soundtrack, inside 0music.pk3; per-file licences"),
)
SOUNDFONTS = (
    SoundFont(corpus.SOUNDFONT[0], corpus.SOUNDFONT[1], "MIT", "musescore"),
    SoundFont("timgm6mb-soundfont", "usr/share/sounds/sf2/TimGM6mb.sf2", "GPL-2", "timgm6mb"),
    SoundFont("csound-soundfont", "usr/share/sounds/sf2/sf_GMbank.sf2", "public-domain", "csound"),
    SoundFont("opl3-soundfont", "usr/share/sounds/sf2/OPL-3_FM_128M.sf2", "CC-BY-SA-4.0", "opl3"),
)
MANIFEST_HEADER = ("file", "package", "version", "licence", "track", "soundfont", "soundfont_licence",
                   "start_s", "duration_s", "track_s", "sha256")


# ----------------------------------------------------------------------------------------------
# Pure parts (tested in tests/test_pool.py)
# ----------------------------------------------------------------------------------------------

def check_not_reserved(packages):
    """Raise ValueError naming the first package reserved for independent evaluation, if any."""
    for package in sorted(packages):
        if package in RESERVED:
            raise ValueError(f"package {package!r} is {RESERVED[package]}; the pool must not use it")


def dep5_paragraphs(text):
    """``[(patterns, licence), ...]`` of a machine-readable (DEP-5) Debian copyright file, in order.

    Returns an empty list when the file is not in that format.
    """
    if not re.match(r"\s*Format:\s*\S*copyright-format", text):
        return []
    out = []
    for block in re.split(r"\n[ \t]*\n", text):
        fields, key = {}, None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "files" in fields and "license" in fields:
            patterns = fields["files"].split()
            licence = fields["license"].split("\n", 1)[0].strip()
            if patterns and licence:
                out.append((tuple(patterns), licence))
    return out


def dep5_licence(paragraphs, path):
    """The licence of ``path`` (a path in the upstream source): the last paragraph that matches.

    ``*`` and ``?`` match any characters including ``/``, as the DEP-5 format specifies.
    Returns None when no paragraph matches.
    """
    found = None
    for patterns, licence in paragraphs:
        if any(fnmatch.fnmatchcase(path, p) for p in patterns):
            found = licence
    return found


def source_key(package, member):
    """The identity of a source track, as the corpus builder writes it: ``package:member``."""
    return f"{package}:{member}"


def split_labelled(candidates, labelled_keys):
    """``(kept, excluded)``: candidates (objects with ``.key``) sorted by key, split by
    whether their key is one of the labelled corpus's track keys."""
    labelled_keys = set(labelled_keys)
    ordered = sorted(candidates, key=lambda c: c.key)
    kept = [c for c in ordered if c.key not in labelled_keys]
    excluded = [c for c in ordered if c.key in labelled_keys]
    return kept, excluded


def corpus_source_keys(sources_tsv):
    """Track keys (``package:file``) listed in a built corpus's SOURCES.tsv."""
    with open(sources_tsv, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0][:3] != ["package", "version", "file"]:
        raise ValueError(f"{sources_tsv}: not a corpus SOURCES.tsv (header {rows[0][:3] if rows else []})")
    return {source_key(r[0], r[2]) for r in rows[1:] if r}


def pool_file_name(package, member, soundfont_short, index):
    """``package/[soundfont/]name-START-END.mp3`` for clip ``index`` of a track."""
    stem = os.path.splitext(os.path.basename(member))[0]
    start = int(index * corpus.CLIP_SECONDS)
    end = int((index + 1) * corpus.CLIP_SECONDS)
    parts = [package] + ([soundfont_short] if soundfont_short else []) + [f"{corpus.slug(stem)}-{start}-{end}.mp3"]
    return "/".join(parts)


def write_manifest(path, rows):
    """Write the manifest (CSV, header MANIFEST_HEADER, rows sorted by file, LF endings).

    ``rows`` are dicts with the MANIFEST_HEADER keys; two rows for one file are an error.
    Returns True if the file changed.
    """
    rows = sorted(rows, key=lambda r: r["file"])
    files = [r["file"] for r in rows]
    if len(set(files)) != len(files):
        dup = sorted({f for f in files if files.count(f) > 1})
        raise ValueError(f"manifest {path}: files listed twice: {dup[:3]}")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(MANIFEST_HEADER)
    for r in rows:
        w.writerow([r[k] for k in MANIFEST_HEADER])
    return corpus.write_if_changed(path, buf.getvalue().encode("utf-8"))


def read_manifest(path):
    """The manifest's rows as dicts (strings)."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != MANIFEST_HEADER:
            raise ValueError(f"{path}: not a pool manifest (header {reader.fieldnames})")
        return list(reader)


def hours_by_source(rows):
    """``{(package, soundfont): (files, hours)}`` of manifest rows, sorted."""
    out = {}
    for r in rows:
        k = (r["package"], r["soundfont"])
        n, h = out.get(k, (0, 0.0))
        out[k] = (n + 1, h + float(r["duration_s"]) / 3600.0)
    return dict(sorted(out.items()))


# ----------------------------------------------------------------------------------------------
# Discovery
# ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Candidate:
    """A source track: a recording, or a MIDI file before it is rendered."""

    key: str  # package:member (as the corpus builder keys its tracks)
    package: str
    version: str
    member: str  # path inside the package; archive/path-inside-archive for archived files
    path: str  # file on disk
    kind: str
    licence: str


def fetch_allowed(package, cache):
    """``build_dev_corpus.fetch`` for a package that is not reserved."""
    check_not_reserved([package])
    return corpus.fetch(package, cache)


def extract_archive(archive_path, patterns, dest):
    """Extract the zip members matching ``patterns`` into ``dest`` (only when their bytes
    differ); return ``[(member, path), ...]`` sorted by member."""
    out = []
    with zipfile.ZipFile(archive_path) as z:
        for name in sorted(z.namelist()):
            if name.endswith("/") or not any(fnmatch.fnmatchcase(name, p) for p in patterns):
                continue
            if os.path.isabs(name) or ".." in name.split("/"):
                raise ValueError(f"{archive_path}: unsafe member name {name!r}")
            target = os.path.join(dest, name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            corpus.write_if_changed(target, z.read(name))
            out.append((name, target))
    return out


def discover_source(source, root, version, unzip_dir):
    """The candidates of one source in an unpacked package tree ``root``, sorted by key."""
    copyright_file = os.path.join(root, "usr/share/doc", source.package, "copyright")
    paragraphs = []
    if source.licence is None:
        with open(copyright_file, encoding="utf-8", errors="replace") as f:
            paragraphs = dep5_paragraphs(f.read())
        if not paragraphs:
            raise ValueError(f"{copyright_file}: not a DEP-5 copyright file; "
                             f"give {source.package}'s licence in SOURCES")
    if source.archive:
        archive = os.path.join(root, source.archive)
        files = [(f"{source.archive}/{name}", name, path)
                 for name, path in extract_archive(archive, source.patterns, unzip_dir)]
    else:
        paths = sorted({p for pattern in source.patterns for p in glob.glob(os.path.join(root, pattern))})
        files = [(os.path.relpath(p, root), os.path.relpath(p, root), p) for p in paths if os.path.isfile(p)]
    out = []
    for member, inner, path in files:
        licence = source.licence
        if licence is None:
            strip, prefix = source.dep5
            upstream = prefix + (inner[len(strip):] if inner.startswith(strip) else inner)
            licence = dep5_licence(paragraphs, upstream)
            if licence is None:
                raise ValueError(f"{copyright_file}: no Files paragraph covers {upstream!r}")
        out.append(Candidate(source_key(source.package, member), source.package, version, member, path,
                             source.kind, licence))
    return sorted(out, key=lambda c: c.key)


def pool_tracks(candidates, soundfonts):
    """The corpus builder's Track objects to process, sorted by key, with the SoundFont of each.

    A recording is one track; a MIDI file is one track per SoundFont. ``soundfonts`` is a list of
    ``(SoundFont, version, path)``. Returns ``[(Track, SoundFont or None, soundfont_path), ...]``.
    """
    out = []
    for c in candidates:
        renders = [(None, None, None)] if c.kind == "audio" else soundfonts
        for sf, sf_version, sf_path in renders:
            extra = {"pool": POOL_VERSION}
            key = f"pool:{c.key}"
            if sf is not None:
                extra["soundfont"] = f"{sf.package}={sf_version}"
                key += f"@{sf.short}"
            stem = os.path.splitext(os.path.basename(c.member))[0]
            track = corpus.Track(key, c.package, c.version, c.member, c.path, stem, "", c.package, c.licence,
                                 c.kind, max_clips=MAX_CLIPS_PER_TRACK, extra=extra,
                                 render_seconds=RENDER_SECONDS if c.kind == "midi" else None)
            out.append((track, sf, sf_path))
    return sorted(out, key=lambda t: t[0].key)


# ----------------------------------------------------------------------------------------------
# Assembly
# ----------------------------------------------------------------------------------------------

def assemble(out, processed):
    """Copy the processed clips into ``out`` and write ``manifest.csv``; return the rows.

    ``processed`` is ``[(Track, SoundFont or None, folder, sidecar), ...]`` as
    ``build_dev_corpus.process_track`` leaves them (clip files in ``folder``). Files of an earlier
    build that are no longer part of the pool are removed; unchanged files are not rewritten.
    """
    clips = [(pool_file_name(track.package, track.member, sf.short if sf else None, c["index"]), track, sf,
              folder, side, c)
             for track, sf, folder, side in sorted(processed, key=lambda p: p[0].key) for c in side["clips"]]
    names = [rel for rel, *_ in clips]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"two clips would share {dup[0]!r}: make the source file names unique")
    rows = []
    for rel, track, sf, folder, side, c in clips:
        with open(os.path.join(folder, c["file"]), "rb") as f:
            data = f.read()
        dest = os.path.join(out, *rel.split("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        corpus.write_if_changed(dest, data)
        rows.append(dict(
            file=rel, package=track.package, version=track.version, licence=track.licence,
            track=track.member, soundfont=sf.package if sf else "", soundfont_licence=sf.licence if sf else "",
            start_s=f"{c['index'] * corpus.CLIP_LEN / corpus.SR:.3f}",
            duration_s=f"{corpus.CLIP_LEN / corpus.SR:.3f}",
            track_s=f"{side['n_samples'] / corpus.SR:.3f}",
            sha256=hashlib.sha256(data).hexdigest(),
        ))
    expected = {r["file"] for r in rows}
    for path in sorted(glob.glob(os.path.join(out, "**", "*.mp3"), recursive=True)):
        if os.path.relpath(path, out).replace(os.sep, "/") not in expected:
            os.remove(path)
    write_manifest(os.path.join(out, "manifest.csv"), rows)
    return sorted(rows, key=lambda r: r["file"])


def pool_readme(rows, excluded):
    """The text of the pool's README.md: what it is and the hours per source."""
    lines = [
        "# msk unsupervised training pool",
        "",
        "Built by msk's scripts/build_pool.py from Debian packages (see scripts/README_pool.md there).",
        "Unlabelled: for K-means and PCA only. No source track of the labelled development corpus is",
        "here. Every clip's package, licence, source track, SoundFont and SHA-256: manifest.csv;",
        "the packages' copyright files: LICENSES/.",
        "",
        "| package | SoundFont | clips | hours |",
        "| --- | --- | ---: | ---: |",
    ]
    total_n, total_h = 0, 0.0
    for (package, sf), (n, h) in hours_by_source(rows).items():
        lines.append(f"| {package} | {sf or '-'} | {n} | {h:.2f} |")
        total_n, total_h = total_n + n, total_h + h
    lines.append(f"| **total** | | {total_n} | {total_h:.2f} |")
    lines.append("")
    if excluded:
        lines.append(f"Left out because the labelled corpus uses them: {len(excluded)} source tracks.")
        lines.append("")
    return "\n".join(lines)


def build(out, cache, *, corpus_root=None, jobs=1, only=None):
    t_start = time.monotonic()
    sources = [s for s in SOURCES if only is None or s.package in only]
    check_not_reserved([s.package for s in sources] + [sf.package for sf in SOUNDFONTS])
    os.makedirs(out, exist_ok=True)
    os.makedirs(cache, exist_ok=True)

    candidates = []
    for s in sources:
        root, version = fetch_allowed(s.package, cache)
        candidates += discover_source(s, root, version, os.path.join(cache, "pool-unzip", s.package))
    shared = {s.package for s in sources} & set(corpus.DISCOVER)
    labelled = {t.key for t in corpus.corpus_tracks(cache, packages=shared)}
    kept, excluded = split_labelled(candidates, labelled)
    for c in excluded:
        corpus.log(f"left out (in the labelled corpus): {c.key}")
    if corpus_root and os.path.exists(os.path.join(corpus_root, "SOURCES.tsv")):
        clash = sorted({c.key for c in kept} & corpus_source_keys(os.path.join(corpus_root, "SOURCES.tsv")))
        if clash:
            raise SystemExit(f"{corpus_root}/SOURCES.tsv lists pool tracks (is the corpus from another "
                             f"version of build_dev_corpus.py?): {clash[:5]}")

    soundfonts = []
    if any(c.kind == "midi" for c in kept):
        for sf in SOUNDFONTS:
            root, version = fetch_allowed(sf.package, cache)
            path = os.path.join(root, sf.path)
            if not os.path.exists(path):
                raise SystemExit(f"{sf.package} {version} has no {sf.path}; update SOUNDFONTS in this script.")
            soundfonts.append((sf, version, path))
    work = pool_tracks(kept, soundfonts)
    fluidsynth = corpus.fluidsynth_command(cache) if soundfonts else None
    soundfont_of = {t.key: sf for t, sf, _ in work}
    results = corpus.process_tracks([t for t, _, _ in work], cache, fluidsynth, [p for _, _, p in work],
                                    jobs=jobs, labels=False)
    rows = assemble(out, [(track, soundfont_of[track.key], folder, side) for track, (folder, side) in results])

    lic = os.path.join(out, "LICENSES")
    os.makedirs(lic, exist_ok=True)
    packages = sorted({r["package"] for r in rows} | {r["soundfont"] for r in rows if r["soundfont"]})
    for package in packages:
        root, _ = fetch_allowed(package, cache)
        with open(os.path.join(root, "usr/share/doc", package, "copyright"), "rb") as f:
            corpus.write_if_changed(os.path.join(lic, f"{package}.copyright"), f.read())
    for path in sorted(glob.glob(os.path.join(lic, "*.copyright"))):
        if os.path.basename(path)[: -len(".copyright")] not in packages:
            os.remove(path)
    corpus.write_if_changed(os.path.join(out, "README.md"), pool_readme(rows, excluded).encode())
    summary(out, rows, time.monotonic() - t_start)
    return rows


def summary(out, rows, seconds):
    print(f"pool: {out}")
    size = sum(os.path.getsize(os.path.join(out, r["file"])) for r in rows)
    hours = sum(float(r["duration_s"]) for r in rows) / 3600
    print(f"clips: {len(rows)} ({hours:.2f} h, {size / 2**20:.1f} MiB of MP3), built in {seconds:.0f} s")
    with open(os.path.join(out, "manifest.csv"), "rb") as f:
        print(f"manifest sha256: {hashlib.sha256(f.read()).hexdigest()}")
    for (package, sf), (n, h) in hours_by_source(rows).items():
        print(f"  {package:24s} {sf or '-':28s} {n:5d} clips {h:6.2f} h")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See scripts/README_pool.md for sources and licences.")
    p.add_argument("--out", default=os.path.expanduser("~/.cache/msk/pool"), help="pool folder [%(default)s]")
    p.add_argument("--cache", default=os.path.expanduser("~/.cache/msk/debcache"),
                   help="downloads, unpacked packages and per-track work, shared with "
                        "build_dev_corpus.py [%(default)s]")
    p.add_argument("--corpus", default=os.path.expanduser("~/.cache/msk/devcorpus"),
                   help="a built labelled corpus whose SOURCES.tsv is checked against the pool, if it "
                        "exists [%(default)s]")
    p.add_argument("--only", nargs="+", metavar="PACKAGE",
                   help="build from these source packages only (default: all of SOURCES)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="tracks processed at once (the result does not depend on it) [%(default)s]")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.only:
        try:
            check_not_reserved(args.only)
        except ValueError as e:
            p.error(str(e))
        unknown = sorted(set(args.only) - {s.package for s in SOURCES})
        if unknown:
            p.error(f"--only: not a pool source: {', '.join(unknown)} (sources: "
                    f"{', '.join(s.package for s in SOURCES)})")
    build(os.path.abspath(args.out), os.path.abspath(args.cache), corpus_root=args.corpus, jobs=args.jobs,
          only=set(args.only) if args.only else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
