"""The pure parts of scripts/build_heldout_corpus.py on tiny fixtures (no network, no packages).

The script is imported by path (it is not part of the package). The one test that reads a
built held-out corpus is marked ``data`` and runs only when MSK_HELDOUT names one.
"""

import csv
import hashlib
import os
import re
import struct

import pytest

from conftest import load_script

# The format of openttd-openmsx's readme.txt, section 5 (abridged, with one credit per case).
README = """\
4 License
=========

The OpenMSX music set ... is licensed under GPL v2.



5 Credits
=========

OpenMSX is created by the following people:

Programming and coordination:
    Ingo von Borstel (planetmaker)
Musicians:
  All 'Ezy Street' tracks
  The Hobo
    Jim Redfarn <http://example.org/MidiPage.htm>
  All 'Modern' tracks
    Tistou Blomberg
  Unidentified Flying Scotsman
  Chugga Chugga Cha-ching
    imuh3
  Modern Motion
    Kyle Timmerman (Mr.Ksoft)
  Trolley Trev
    Keep on Rolling
  Lost Song
    Nobody Known


Song notes:
  Moo Moo Boogie: inspired by Cow Cow Boogie
"""

OBM = """\
[metadata]
name        = OpenMSX
description = OpenMSX base music set. For full credits see "readme.txt" [OpenMSX 0.4.2]

[files]
theme =  tttheme2.mid
old_0 =  keep_on_rolling.mid
old_1 =  flying_scotsman.mid
old_2 =  modern_motion.mid
old_3 =  chuggachugga.mid
old_4 =  the_hobo_redfarn.mid
new_0 =  ultimate_run.mid
new_1 =  wood_whistles.mid
ezy_0 =  moo_redfarn.mid
ezy_1 =  say_what_redfarn.mid

[names]
tttheme2.mid                     = OpenTTD journey
keep_on_rolling.mid              = Keep on Rolling
flying_scotsman.mid              = Unidentifed Flying Scotsman
modern_motion.mid                = Modern Motion
chuggachugga.mid                 = Chugga Chugga Cha-ching
the_hobo_redfarn.mid             = The Hobo
ultimate_run.mid                 = Ultimate run
wood_whistles.mid                = Wood whistles
moo_redfarn.mid                  = Moo Moo Boogie
say_what_redfarn.mid             = Say What
"""


@pytest.fixture(scope="module")
def heldout():
    return load_script("build_heldout_corpus")


def _midi(tag):
    return b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x00\x60" + tag


def _wad(lumps, magic=b"IWAD"):
    """The bytes of a WAD holding ``lumps`` ([(name, bytes), ...]), directory at the end."""
    body, entries, offset = b"", [], 12
    for name, data in lumps:
        entries.append(struct.pack("<ii8s", offset, len(data), name.encode()))
        body += data
        offset += len(data)
    return struct.pack("<4sii", magic, len(lumps), offset) + body + b"".join(entries)


LUMPS = [("MAP01", b"level"), ("D_RUNNIN", _midi(b"a")), ("F_START", b""), ("D_STALKS", _midi(b"bb")),
         ("D_MUSFMT", b"MUS\x1a..."), ("DEMO1", b"\x00" * 7)]


def test_read_wad_directory_and_music(heldout, tmp_path):
    path = tmp_path / "ok.wad"
    path.write_bytes(_wad(LUMPS))
    entries = heldout.read_wad_directory(str(path))
    assert [e[0] for e in entries] == [n for n, _ in LUMPS]
    assert [e[2] for e in entries] == [len(d) for _, d in LUMPS]
    assert entries[0][1] == 12
    music, skipped = heldout.read_wad_music(str(path))
    assert music == [("D_RUNNIN", _midi(b"a")), ("D_STALKS", _midi(b"bb"))]
    assert skipped == [("D_MUSFMT", "not a standard MIDI file (starts with b'MUS\\x1a')")]
    path.write_bytes(_wad(LUMPS[:1], magic=b"PWAD"))
    assert heldout.read_wad_music(str(path)) == ([], [])
    path.write_bytes(_wad([]))
    assert heldout.read_wad_directory(str(path)) == []


def _crafted():
    good = _wad(LUMPS)
    n, offset = len(LUMPS), len(good) - 16 * len(LUMPS)
    header = lambda magic=b"IWAD", count=n, at=offset: struct.pack("<4sii", magic, count, at)  # noqa: E731

    def entry(i, start, size):
        at = offset + 16 * i
        return good[:at] + struct.pack("<ii8s", start, size, LUMPS[i][0].encode()) + good[at + 16:]

    return {
        "wrong magic": (header(magic=b"WAD2") + good[12:], "not a WAD file: magic b'WAD2'"),
        "shorter than the header": (good[:10], "shorter than the 12-byte header"),
        "lying count": (header(count=n + 1) + good[12:], f"claims {n + 1} lumps"),
        "huge count": (header(count=2**31 - 1) + good[12:], "beyond the end"),
        "negative count": (header(count=-1) + good[12:], "must be non-negative"),
        "directory beyond the end": (header(at=len(good) + 16) + good[12:], "beyond the end"),
        "negative directory offset": (header(at=-16) + good[12:], "must be non-negative"),
        "truncated directory": (good[:-8], "beyond the end"),
        "lump offset beyond the end": (entry(1, len(good) + 1, 4), "lump 1 ('D_RUNNIN') claims 4 bytes"),
        "lump runs past the end": (entry(3, offset - 4, 2**31 - 1), "outside the"),
        "negative size": (entry(1, 12, -5), "claims -5 bytes"),
        "negative offset": (entry(3, -1, 4), "at byte -1"),
    }


@pytest.mark.parametrize("case", sorted(_crafted()))
def test_crafted_wads_are_refused_with_the_file_name(heldout, tmp_path, case):
    data, message = _crafted()[case]
    path = tmp_path / "crafted.wad"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=re.escape(str(path))) as e:
        heldout.read_wad_music(str(path))
    assert message in str(e.value)


def test_freedoom_table_entries(heldout):
    assert len(heldout.FREEDOOM) >= 40
    shas = [sha for sha, _, _ in heldout.FREEDOOM.values()]
    assert len(set(shas)) == len(shas)  # one credit per distinct piece of music
    for lump, (sha, title, composer) in heldout.FREEDOOM.items():
        assert re.fullmatch(r"D_[A-Z0-9_]{1,6}", lump), lump
        assert re.fullmatch(r"[0-9a-f]{64}", sha), lump
        assert title.strip() == title and title, lump
        assert composer.strip() == composer and composer, lump
        # the first-named person, without the nickname in quotes
        assert not re.search(r'"| & | and |, |remix|originally', composer), (lump, composer)


def test_freedoom_selection(heldout):
    a, b, c, d = _midi(b"a"), _midi(b"b"), _midi(b"c"), _midi(b"d")
    sha = lambda data: hashlib.sha256(data).hexdigest()  # noqa: E731
    table = {"D_A": (sha(a), "Song A", "Composer A"), "D_C": (sha(b"other bytes"), "Song C", "Composer C"),
             "D_DUP": (sha(d), "Song D", "Composer D")}
    lumps = [("one.wad", "D_A", a), ("one.wad", "D_B", b), ("one.wad", "D_C", c), ("two.wad", "D_D", d),
             ("two.wad", "D_DUP", d), ("two.wad", "D_A2", a)]
    kept, left_out = heldout.freedoom_selection(lumps, table)
    # identical bytes are one track, named by its first lump, credited through any of its names
    assert kept == [("one.wad", "D_A", a, "Song A", "Composer A", ["D_A2"]),
                    ("two.wad", "D_D", d, "Song D", "Composer D", ["D_DUP"])]
    reasons = {(w, n): r for w, n, r in left_out}
    assert reasons[("one.wad", "D_B")] == "no upstream credit for these bytes (not in FREEDOOM)"
    assert reasons[("one.wad", "D_C")].startswith("its bytes differ from the credited upstream file")
    assert reasons[("two.wad", "D_A2")] == "the same bytes as D_A (one track)"
    assert reasons[("two.wad", "D_DUP")] == "the same bytes as D_D (one track)"
    assert len(left_out) == 4
    assert heldout.freedoom_selection(lumps[:1])[0] == []  # the real table does not credit these bytes


def test_parse_obm(heldout):
    obm = heldout.parse_obm(OBM)
    assert list(obm) == ["metadata", "files", "names"]
    assert obm["files"][:2] == [("theme", "tttheme2.mid"), ("old_0", "keep_on_rolling.mid")]
    assert dict(obm["names"])["flying_scotsman.mid"] == "Unidentifed Flying Scotsman"
    assert dict(obm["metadata"])["description"].startswith("OpenMSX base music set.")


def test_openmsx_credits_parser(heldout):
    credits = heldout.openmsx_credits(README)
    assert credits == [
        ("Jim Redfarn", ["All 'Ezy Street' tracks", "The Hobo"]),
        ("Tistou Blomberg", ["All 'Modern' tracks"]),
        ("imuh3", ["Unidentified Flying Scotsman", "Chugga Chugga Cha-ching"]),
        ("Kyle Timmerman", ["Modern Motion"]),
        ("Keep on Rolling", ["Trolley Trev"]),  # as the readme lays it out
        ("Nobody Known", ["Lost Song"]),
    ]
    with pytest.raises(ValueError, match="no 'Credits' section"):
        heldout.openmsx_credits("1 About\n=======\n")
    with pytest.raises(ValueError, match="no 'Musicians:' list"):
        heldout.openmsx_credits("5 Credits\n=========\n\nProgramming:\n    someone\n")


def test_openmsx_composers(heldout):
    obm = heldout.parse_obm(OBM)
    slots, names = dict(obm["files"]), dict(obm["names"])
    composers, messages = heldout.openmsx_composers(heldout.openmsx_credits(README), slots, names)
    assert composers == {
        "moo_redfarn.mid": "Jim Redfarn", "say_what_redfarn.mid": "Jim Redfarn",
        "the_hobo_redfarn.mid": "Jim Redfarn",
        "ultimate_run.mid": "Tistou Blomberg", "wood_whistles.mid": "Tistou Blomberg",
        "flying_scotsman.mid": "imuh3",  # the obm misspells the title; 98 % similar
        "chuggachugga.mid": "imuh3",
        "modern_motion.mid": "Kyle Timmerman",  # a title, not the 'Modern' style
        "keep_on_rolling.mid": "Trolley Trev",  # the swapped credit, read the other way round
    }
    assert "tttheme2.mid" not in composers  # not credited in this excerpt: the builder leaves it out
    assert any("read as 'Keep on Rolling' by Trolley Trev" in m for m in messages)
    assert any("'Lost Song' (Nobody Known) names no file" in m for m in messages)

    # a file credited to two musicians has no established composer
    twice = heldout.openmsx_credits(README) + [("Someone Else", ["The Hobo"])]
    composers, messages = heldout.openmsx_composers(twice, slots, names)
    assert "the_hobo_redfarn.mid" not in composers and "moo_redfarn.mid" in composers
    assert any("left out the_hobo_redfarn.mid: credited to Jim Redfarn, Someone Else" in m for m in messages)
    with pytest.raises(ValueError, match="'Classic'"):
        heldout.openmsx_composers([("X", ["All 'Classic' tracks"])], slots, names)


def test_match_title(heldout):
    names = {"a.mid": "Run!", "b.mid": "Run 2", "c.mid": "Harp harmony 'n humor"}
    assert heldout.match_title("run", names) == "a.mid"
    assert heldout.match_title("Harp Harmony n' Humor", names) == "c.mid"
    assert heldout.match_title("Harp melody", names) is None  # not close enough
    assert heldout.match_title("Run 3", {"b.mid": "Run 2", "d.mid": "Run 4"}) is None  # ambiguous


def test_musician_name(heldout):
    assert heldout.musician_name("  Jim Redfarn <http://x/y.htm>") == "Jim Redfarn"
    assert heldout.musician_name("Kyle Timmerman (Mr.Ksoft)") == "Kyle Timmerman"
    assert heldout.musician_name("-lucas-") == "-lucas-"


def test_heldout_packages_are_reserved_and_used_nowhere_else(heldout):
    heldout.check_independent()
    corpus, pool = heldout.corpus, heldout.pool
    assert heldout.SOUNDFONT == ("fluid-soundfont-gm", "usr/share/sounds/sf2/FluidR3_GM.sf2")
    assert set(heldout.PACKAGES) == {"openttd-openmsx", "freedoom", "fluid-soundfont-gm"}
    dev = set(corpus.PACKAGES) | set(corpus.DISCOVER) | {corpus.SOUNDFONT[0]}
    pool_packages = {s.package for s in pool.SOURCES} | {sf.package for sf in pool.SOUNDFONTS}
    for package in heldout.PACKAGES:
        assert package in pool.RESERVED
        assert package not in dev and package not in pool_packages
        with pytest.raises(ValueError, match=package):
            pool.check_not_reserved([package])  # the pool refuses them
    assert all("fluid" not in p.lower() for p in dev | pool_packages)  # no other copy of the Fluid R3 samples
    assert heldout.SOUNDFONT[0] != corpus.SOUNDFONT[0]
    with pytest.raises(ValueError, match="not a held-out corpus package"):
        heldout.fetch_heldout(corpus.SOUNDFONT[0], "/nonexistent")  # refused before any download


def test_check_independent_refuses_shared_packages(heldout, monkeypatch):
    monkeypatch.setitem(heldout.PACKAGES, "mma", "GPL-2+")
    with pytest.raises(ValueError, match="'mma' is not reserved"):
        heldout.check_independent()
    monkeypatch.setitem(heldout.pool.RESERVED, "mma", "test")
    with pytest.raises(ValueError, match="'mma' is used by the development corpus or the pool"):
        heldout.check_independent()


def test_build_assembles_with_the_fluid_soundfont(heldout, tmp_path, monkeypatch):
    """The held-out build is the corpus's assembly with the Fluid R3 SoundFont and its own tracks."""
    calls = {}
    tracks = [object()]

    def heldout_tracks(cache, version):
        calls["version"] = version
        return tracks

    monkeypatch.setattr(heldout, "fetch_heldout", lambda package, cache: ("/x/" + package, "3.1-5.3"))
    monkeypatch.setattr(heldout, "heldout_tracks", heldout_tracks)

    def assemble(out, cache, got_tracks, soundfont, *, jobs):
        calls.update(out=out, tracks=got_tracks, soundfont=soundfont, jobs=jobs)
        return [], "3.1-5.3"

    monkeypatch.setattr(heldout.corpus, "assemble", assemble)
    monkeypatch.setattr(heldout.corpus, "summary", lambda out, seconds: None)
    heldout.build(str(tmp_path / "out"), str(tmp_path / "cache"), jobs=1)
    assert calls == dict(version="3.1-5.3", out=str(tmp_path / "out"), tracks=tracks,
                         soundfont=("fluid-soundfont-gm", "usr/share/sounds/sf2/FluidR3_GM.sf2"), jobs=1)
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "Fluid R3" in readme and "fluid-soundfont-gm 3.1-5.3" in readme
    assert "never used to choose anything" in readme


@pytest.mark.data
def test_built_heldout_corpus(heldout):
    root = os.environ.get("MSK_HELDOUT")
    if not root:
        pytest.skip("set MSK_HELDOUT to a corpus built by scripts/build_heldout_corpus.py")
    from msk.datasets import load_magnatagatune

    ds = load_magnatagatune(root, n_tags=len(heldout.corpus.TAG_NAMES))
    assert len(ds) > 0 and all(os.path.exists(p) for p in ds.paths)
    packages = _source_packages(os.path.join(root, "SOURCES.tsv"))
    assert packages == {"openttd-openmsx", "freedoom"}
    assert os.path.exists(os.path.join(root, "LICENSES", "fluid-soundfont-gm.copyright"))
    data = os.environ.get("MSK_DATA")
    if data and os.path.exists(os.path.join(data, "SOURCES.tsv")):
        assert not _source_packages(os.path.join(data, "SOURCES.tsv")) & packages


def _source_packages(path):
    with open(path, newline="", encoding="utf-8") as f:
        return {row["package"] for row in csv.DictReader(f, delimiter="\t")}
