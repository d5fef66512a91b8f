"""The pure parts of scripts/build_pool.py on tiny fixtures (no network, no audio decoding).

The script is imported by path (it is not part of the package). The one test that reads a
built pool is marked ``data`` and runs only when MSK_POOL names one.
"""

import hashlib
import os
import pathlib
import random
import zipfile

import pytest

from conftest import load_script

DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2020 Someone
License: GPL-2+

Files:
 base/music/a.ogg
 base/music/b.ogg
Copyright: 2021 Composer A
License: CC-BY-SA-3.0
 Long licence text: with a colon.
 .
 More text.

Files: base/music/pd-*
Copyright: none
License: public-domain

License: GPL-2+
 On Debian systems ...
"""


@pytest.fixture(scope="module")
def pool():
    return load_script("build_pool")


def _write(path, data=b"x"):
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.mark.parametrize("package", ["freedoom", "openttd-openmsx", "fluid-soundfont-gm", "fluid-soundfont-gs",
                                     "fluidr3mono-gm-soundfont"])
def test_reserved_packages_are_refused(pool, package, tmp_path):
    with pytest.raises(ValueError, match=package):
        pool.check_not_reserved(["hyperrogue-music", package])
    with pytest.raises(ValueError, match="reserved"):
        pool.fetch_allowed(package, str(tmp_path))  # refused before any download
    with pytest.raises(SystemExit) as e:  # the command line refuses them too
        pool.main(["--only", package, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "c")])
    assert e.value.code == 2
    assert not (tmp_path / "out").exists()


def test_sources_use_no_reserved_package(pool):
    pool.check_not_reserved(["hyperrogue-music", "timgm6mb-soundfont"])  # no error
    packages = [s.package for s in pool.SOURCES] + [sf.package for sf in pool.SOUNDFONTS]
    pool.check_not_reserved(packages)
    assert len(set(packages)) == len(packages)
    assert len(pool.SOUNDFONTS) > 1  # timbral variety for MIDI
    assert pool.SOUNDFONTS[0].package == pool.corpus.SOUNDFONT[0]  # owned by the corpus builder
    for s in pool.SOURCES:
        assert s.kind in ("audio", "midi")
        assert (s.licence is None) != (s.dep5 is None), s.package


def test_only_rejects_unknown_packages(pool, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        pool.main(["--only", "no-such-package", "--out", str(tmp_path / "out")])
    assert e.value.code == 2
    assert "no-such-package" in capsys.readouterr().err


def test_dep5_licence_last_matching_paragraph(pool):
    paragraphs = pool.dep5_paragraphs(DEP5)
    assert paragraphs == [(("*",), "GPL-2+"), (("base/music/a.ogg", "base/music/b.ogg"), "CC-BY-SA-3.0"),
                          (("base/music/pd-*",), "public-domain")]
    assert pool.dep5_licence(paragraphs, "base/music/a.ogg") == "CC-BY-SA-3.0"
    assert pool.dep5_licence(paragraphs, "base/music/c.ogg") == "GPL-2+"
    assert pool.dep5_licence(paragraphs, "base/music/pd-1.ogg") == "public-domain"
    assert pool.dep5_licence(paragraphs, "src/deep/x.c") == "GPL-2+"  # '*' crosses '/'
    assert pool.dep5_licence(paragraphs[1:], "other.ogg") is None
    assert pool.dep5_paragraphs("This package was debianized by ...\n\nLicense: GPL\n") == []


def _fake_package(root, package):
    _write(root / "usr/share/doc" / package / "copyright", DEP5)
    for name in ("b.ogg", "a.ogg", "c.ogg", "notes.txt"):
        _write(root / "usr/share/demo/music" / name)
    with zipfile.ZipFile(root / "usr/share/demo/music.pk3", "w") as z:
        for name in ("music/pd-2.ogg", "music/a.ogg", "sound/click.ogg"):
            z.writestr(name, name.encode())
        z.writestr("music/", b"")


def test_discover_source_files_archives_and_licences(pool, tmp_path):
    root = tmp_path / "x" / "demo"
    _fake_package(root, "demo")
    plain = pool.Source("demo", "audio", ("usr/share/demo/music/*.ogg",), dep5=("usr/share/demo/", "base/"))
    found = pool.discover_source(plain, str(root), "1.0-1", str(tmp_path / "unzip"))
    assert [c.key for c in found] == [f"demo:usr/share/demo/music/{n}" for n in ("a.ogg", "b.ogg", "c.ogg")]
    assert [c.licence for c in found] == ["CC-BY-SA-3.0", "CC-BY-SA-3.0", "GPL-2+"]
    assert all(c.version == "1.0-1" and c.kind == "audio" and os.path.isfile(c.path) for c in found)

    packed = pool.Source("demo", "audio", ("music/*.ogg",), archive="usr/share/demo/music.pk3", dep5=("", "base/"))
    found = pool.discover_source(packed, str(root), "1.0-1", str(tmp_path / "unzip"))
    assert [c.member for c in found] == ["usr/share/demo/music.pk3/music/a.ogg",
                                         "usr/share/demo/music.pk3/music/pd-2.ogg"]
    assert [c.licence for c in found] == ["CC-BY-SA-3.0", "public-domain"]
    assert pathlib.Path(found[1].path).read_bytes() == b"music/pd-2.ogg"
    assert not (tmp_path / "unzip" / "sound").exists()

    fixed = pool.Source("demo", "midi", ("usr/share/demo/music/c.ogg",), licence="zlib")
    found = pool.discover_source(fixed, str(root), "1", str(tmp_path))
    assert [(c.licence, c.kind) for c in found] == [("zlib", "midi")]


def test_discover_source_errors(pool, tmp_path):
    root = tmp_path / "pkg"
    _write(root / "usr/share/doc/pkg/copyright", "Not machine-readable.\n")
    _write(root / "m/a.ogg")
    with pytest.raises(ValueError, match="not a DEP-5"):
        pool.discover_source(pool.Source("pkg", "audio", ("m/*.ogg",), dep5=("", "")), str(root), "1", str(tmp_path))
    _write(root / "usr/share/doc/pkg/copyright", DEP5.replace("Files: *\n", "Files: src/*\n"))
    with pytest.raises(ValueError, match="no Files paragraph covers 'm/a.ogg'"):
        pool.discover_source(pool.Source("pkg", "audio", ("m/*.ogg",), dep5=("", "")), str(root), "1", str(tmp_path))
    with zipfile.ZipFile(root / "evil.zip", "w") as z:
        z.writestr("../escape.ogg", b"x")
    with pytest.raises(ValueError, match="unsafe member"):
        pool.extract_archive(str(root / "evil.zip"), ("*.ogg",), str(tmp_path / "dest"))
    assert not (tmp_path / "escape.ogg").exists()


def test_labelled_corpus_tracks_are_excluded(pool, tmp_path, monkeypatch):
    """The exclusion list is the corpus builder's own track list, in its own key format."""
    corpus = pool.corpus
    root = tmp_path / "x" / "freedink-data"
    for name in sorted(corpus.FREEDINK) + ["2.mid", "love.mid", "dance.mid"]:
        _write(root / corpus.FREEDINK_DIR / name)
    monkeypatch.setattr(corpus, "fetch", lambda package, cache: (str(root), "9.9"))
    labelled = {t.key for t in corpus.corpus_tracks(str(tmp_path), packages={"freedink-data"})}
    assert len(labelled) == len(corpus.FREEDINK)

    every_midi = pool.Source("freedink-data", "midi", (corpus.FREEDINK_DIR + "/*.mid",), licence="zlib")
    candidates = pool.discover_source(every_midi, str(root), "9.9", str(tmp_path / "u"))
    shuffled = candidates[:]
    random.Random(3).shuffle(shuffled)
    kept, excluded = pool.split_labelled(shuffled, labelled)
    names = lambda cs: [os.path.basename(c.member) for c in cs]  # noqa: E731
    assert names(kept) == ["2.mid", "dance.mid", "love.mid"]
    assert sorted(names(excluded)) == sorted(n for n in corpus.FREEDINK if n.endswith(".mid"))
    assert [c.key for c in kept] == sorted(c.key for c in kept)

    # a built corpus's SOURCES.tsv names the same tracks in the same key format
    tsv = tmp_path / "SOURCES.tsv"
    corpus.write_mtat_table(str(tsv), ["package", "version", "file", "title"],
                            [[t.package, t.version, t.member, t.title] for t in
                             corpus.corpus_tracks(str(tmp_path), packages={"freedink-data"})])
    assert pool.corpus_source_keys(str(tsv)) == labelled
    _write(tmp_path / "bad.tsv", "a\tb\n")
    with pytest.raises(ValueError, match="not a corpus SOURCES.tsv"):
        pool.corpus_source_keys(str(tmp_path / "bad.tsv"))


def test_configured_freedink_files_are_not_corpus_tracks(pool):
    (freedink,) = [s for s in pool.SOURCES if s.package == "freedink-data"]
    members = {p.rsplit("/", 1)[1] for p in freedink.patterns}
    assert members and not members & set(pool.corpus.FREEDINK)


def _candidates(pool, tmp_path):
    return [pool.Candidate(f"p:{m}", "p", "1", m, str(tmp_path / m), kind, "GPL-2+")
            for m, kind in (("b/song.mid", "midi"), ("a/rec.ogg", "audio"))]


def test_pool_tracks_render_midi_once_per_soundfont(pool, tmp_path):
    sfs = [(sf, f"v{i}", f"/sf/{sf.short}") for i, sf in enumerate(pool.SOUNDFONTS)]
    work = pool.pool_tracks(_candidates(pool, tmp_path), sfs)
    keys = [t.key for t, _, _ in work]
    assert keys == sorted(keys)
    audio = [w for w in work if w[0].kind == "audio"]
    midi = [w for w in work if w[0].kind == "midi"]
    assert len(audio) == 1 and audio[0][1] is None and audio[0][2] is None
    assert audio[0][0].render_seconds is None  # recordings are decoded whole
    assert pool.RENDER_SECONDS == pytest.approx(pool.MAX_CLIPS_PER_TRACK * 29.1)
    assert all(t.render_seconds == pool.RENDER_SECONDS for t, _, _ in midi)
    assert sorted(sf.short for _, sf, _ in midi) == sorted(sf.short for sf in pool.SOUNDFONTS)
    for track, sf, path in midi:
        assert track.extra["soundfont"].startswith(sf.package + "=v")
        assert path == f"/sf/{sf.short}" and track.key.endswith("@" + sf.short)
    assert all(t.max_clips == pool.MAX_CLIPS_PER_TRACK and t.key.startswith("pool:p:") for t, _, _ in work)
    assert len({t.key for t, _, _ in work}) == len(work)  # distinct per-track cache folders


def _processed(pool, tmp_path):
    sf = pool.SOUNDFONTS[1]
    work = pool.pool_tracks(_candidates(pool, tmp_path), [(sf, "1", "/x.sf2")])
    out = []
    for n, (track, soundfont, _) in enumerate(work):
        folder = tmp_path / "clips" / str(n)
        clips = []
        for index in (0, 2):
            _write(folder / f"{index:03d}.mp3", f"{track.key}/{index}".encode())
            clips.append(dict(file=f"{index:03d}.mp3", index=index, start_s=0.0, rms_dbfs=-20.0))
        out.append((track, soundfont, str(folder), dict(n_samples=1_500_000, clips=clips)))
    return out


def test_assemble_writes_clips_and_manifest_deterministically(pool, tmp_path):
    out = tmp_path / "pool"
    processed = _processed(pool, tmp_path)
    rows = pool.assemble(str(out), processed)
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.mp3"))
    assert files == sorted(r["file"] for r in rows) == [r["file"] for r in rows]
    assert files == ["p/rec-0-29.mp3", "p/rec-58-87.mp3", "p/timgm6mb/song-0-29.mp3", "p/timgm6mb/song-58-87.mp3"]
    manifest = pool.read_manifest(str(out / "manifest.csv"))
    assert manifest == rows
    for r in manifest:
        data = (out / r["file"]).read_bytes()
        assert r["sha256"] == hashlib.sha256(data).hexdigest()
        assert r["duration_s"] == "29.100" and r["track_s"] == "93.750"
        assert r["licence"] == "GPL-2+"
    song = [r for r in manifest if "song" in r["file"]]
    assert {r["soundfont"] for r in song} == {"timgm6mb-soundfont"} and song[1]["start_s"] == "58.200"
    assert {r["soundfont"] for r in manifest if "rec" in r["file"]} == {""}
    two_clips = (2, 2 * 29.1 / 3600)
    assert pool.hours_by_source(manifest) == {("p", ""): two_clips, ("p", "timgm6mb-soundfont"): two_clips}

    # a second run (inputs in another order) rewrites nothing and gives the same bytes
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    stale = _write(out / "p" / "old-0-29.mp3")
    assert pool.assemble(str(out), processed[::-1]) == rows
    assert not stale.exists()
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_assemble_refuses_two_clips_with_one_name(pool, tmp_path):
    processed = _processed(pool, tmp_path)
    track, sf, folder, side = processed[0]
    twin = pool.corpus.Track("pool:other", track.package, track.version, "other/dir/" + os.path.basename(track.member),
                             track.path, track.title, "", track.album, track.licence, track.kind)
    with pytest.raises(ValueError, match="two clips would share"):
        pool.assemble(str(tmp_path / "out"), processed + [(twin, sf, folder, side)])


def test_manifest_rejects_duplicates_and_foreign_files(pool, tmp_path):
    row = {k: "1" for k in pool.MANIFEST_HEADER}
    with pytest.raises(ValueError, match="listed twice"):
        pool.write_manifest(str(tmp_path / "m.csv"), [row, dict(row)])
    _write(tmp_path / "other.csv", "a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a pool manifest"):
        pool.read_manifest(str(tmp_path / "other.csv"))


def test_pool_readme_totals(pool, tmp_path):
    rows = pool.assemble(str(tmp_path / "pool"), _processed(pool, tmp_path))
    text = pool.pool_readme(rows, excluded=[object()])
    assert "| **total** | | 4 | 0.03 |" in text
    assert "Left out because the labelled corpus uses them: 1 source tracks." in text


@pytest.mark.data
def test_built_pool_matches_its_manifest(pool):
    root = os.environ.get("MSK_POOL")
    if not root:
        pytest.skip("set MSK_POOL to a pool built by scripts/build_pool.py")
    rows = pool.read_manifest(os.path.join(root, "manifest.csv"))
    assert rows and [r["file"] for r in rows] == sorted(r["file"] for r in rows)
    pool.check_not_reserved({r["package"] for r in rows} | {r["soundfont"] for r in rows if r["soundfont"]})
    for r in rows:
        with open(os.path.join(root, r["file"]), "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == r["sha256"], r["file"]
