"""The pure parts of scripts/build_dev_corpus.py on small inputs.

The script is imported by path (it is not part of the package). Tests that need
mido (the corpus extra) are skipped when it is absent.
"""

import csv
import math

import numpy as np
import pytest

from conftest import load_script


@pytest.fixture(scope="module")
def corpus():
    return load_script("build_dev_corpus")


def test_segment_consecutive_full_clips(corpus):
    assert corpus.CLIP_LEN == 465600  # 29.1 s at 16 kHz
    assert corpus.segment(10, clip_len=4) == [(0, 4), (4, 8)]
    assert corpus.segment(12, clip_len=4) == [(0, 4), (4, 8), (8, 12)]
    assert corpus.segment(3, clip_len=4) == []
    assert corpus.segment(100, clip_len=4, max_clips=2) == [(0, 4), (4, 8)]
    clips = corpus.segment(3 * 465600 + 100)
    assert clips == [(0, 465600), (465600, 931200), (931200, 1396800)]


def test_assign_folders_balanced_and_deterministic(corpus):
    rng = np.random.default_rng(7)
    sizes = {f"pkg:track{i:03d}": int(rng.integers(1, 7)) for i in range(120)}
    a = corpus.assign_folders(sizes)
    assert a == corpus.assign_folders(dict(reversed(list(sizes.items()))))  # order-independent
    assert set(a) == set(sizes) and set(a.values()) <= set("0123456789abcdef")
    load = {f: 0 for f in "0123456789abcdef"}
    for key, folder in a.items():
        load[folder] += sizes[key]
    # greedy largest-first: every folder within one track (<= 6 clips) of the others
    assert max(load.values()) - min(load.values()) <= max(sizes.values())
    assert sum(load.values()) == sum(sizes.values())


def test_assign_folders_uses_the_hash_for_ties(corpus):
    # equal sizes into empty folders: the folder is the hash's start position
    sizes = {"x": 1}
    assert corpus.assign_folders(sizes) == {"x": "0123456789abcdef"[corpus.stable_hash("x") % 16]}
    assert corpus.stable_hash("x") == int("2d711642b726b044", 16)  # SHA-256 prefix, not Python's hash()


@pytest.mark.parametrize(
    "program, channel, tags",
    [
        (0, 0, {"piano"}),
        (6, 3, {"piano", "harpsichord"}),
        (11, 0, {"mallets"}),
        (19, 0, {"organ"}),
        (21, 0, {"accordion"}),
        (25, 0, {"guitar"}),
        (33, 0, {"bass"}),
        (40, 0, {"strings", "violin"}),
        (48, 0, {"strings"}),
        (46, 0, {"harp"}),
        (47, 0, {"timpani"}),
        (52, 0, {"choir"}),
        (56, 0, {"brass"}),
        (65, 0, {"sax", "woodwind"}),
        (71, 0, {"woodwind"}),
        (73, 0, {"woodwind", "flute"}),
        (81, 0, {"synth"}),
        (90, 0, {"synth"}),
        (105, 0, set()),
        (120, 0, set()),
        (0, 9, {"drums"}),
        (56, 9, {"drums"}),
    ],
)
def test_gm_tags(corpus, program, channel, tags):
    assert corpus.gm_tags(program, channel) == tags
    assert tags <= set(corpus.INSTRUMENT_TAGS)


def _msg(kind, time, **kw):
    mido = pytest.importorskip("mido")
    if kind == "set_tempo":
        return mido.MetaMessage("set_tempo", tempo=kw["tempo"], time=time)
    return mido.Message(kind, time=time, **kw)


def test_notes_from_messages(corpus):
    msgs = [
        _msg("set_tempo", 0.0, tempo=500000),  # 120 BPM at 0 replaces the default
        _msg("program_change", 0.0, channel=0, program=40),
        _msg("note_on", 0.0, channel=0, note=60, velocity=80),
        _msg("note_on", 1.0, channel=9, note=36, velocity=90),
        _msg("note_off", 0.25, channel=9, note=36),
        _msg("note_on", 0.75, channel=0, note=60, velocity=0),  # note-off as velocity 0
        _msg("control_change", 0.0, channel=1, control=7, value=0),
        _msg("note_on", 0.0, channel=1, note=50, velocity=70),  # muted channel: not sounding
        _msg("note_on", 0.0, channel=2, note=50, velocity=0),  # velocity 0: nothing
        _msg("set_tempo", 1.0, tempo=1000000),  # 60 BPM from t = 3 s
        _msg("note_on", 0.0, channel=0, note=62, velocity=80),  # held to the end
        _msg("note_off", 2.0, channel=1, note=50),
    ]
    notes, tempo_map = corpus.notes_from_messages(msgs)
    assert tempo_map == [(0.0, 120.0), (3.0, 60.0)]
    got = [(n.start, n.end, n.channel, n.program) for n in notes]
    assert got == [(0.0, 2.0, 0, 40), (1.0, 1.25, 9, 0), (3.0, 5.0, 0, 40)]


def test_instrument_tags_need_sounding_time_or_onsets(corpus):
    N = corpus.Note
    notes = [N(0.0, 10.0, 0, 0)]  # a long piano note from before the clip
    notes += [N(5.0 + 0.1 * i, 5.05 + 0.1 * i, 9, 0) for i in range(4)]  # 4 short drum hits
    notes += [N(6.0, 6.5, 1, 33), N(7.0, 7.5, 1, 33)]  # 1 s of bass: too little
    notes += [N(20.0, 25.0, 2, 56)]  # brass after the clip
    assert corpus.instrument_tags(notes, 2.0, 10.0) == {"piano", "drums"}
    assert corpus.instrument_tags(notes, 2.0, 10.0, min_seconds=1.0) == {"piano", "drums", "bass"}
    assert corpus.instrument_tags(notes, 9.0, 9.5) == set()  # 0.5 s of piano only
    assert corpus.instrument_tags(notes, 0.0, 30.0) == {"piano", "drums", "brass"}
    assert corpus.instrument_tags([], 0.0, 29.1) == set()


def test_mean_bpm_and_tempo_tags(corpus):
    tmap = [(0.0, 120.0), (10.0, 60.0)]
    assert corpus.mean_bpm(tmap, 0.0, 10.0) == 120.0
    assert corpus.mean_bpm(tmap, 5.0, 15.0) == 90.0
    assert corpus.mean_bpm(tmap, 20.0, 30.0) == 60.0
    assert [corpus.tempo_tag(b) for b in (60, 89.9, 90, 129.9, 130, 200)] == [
        "slow", "slow", "medium", "medium", "fast", "fast",
    ]


def test_loudness(corpus, rng):
    y = 0.1 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)
    assert math.isclose(corpus.rms_dbfs(y), 20 * math.log10(0.1 / math.sqrt(2)), abs_tol=1e-6)
    assert corpus.rms_dbfs(np.zeros(10)) == -math.inf
    assert corpus.loudness_tag(corpus.QUIET_DBFS - 0.1) == "quiet"
    assert corpus.loudness_tag(corpus.LOUD_DBFS + 0.1) == "loud"
    assert corpus.loudness_tag((corpus.QUIET_DBFS + corpus.LOUD_DBFS) / 2) is None
    noise = rng.standard_normal(16000).astype(np.float32)
    assert math.isclose(corpus.rms_dbfs(noise), 10 * math.log10(np.mean(noise.astype(np.float64) ** 2)))


def test_names_and_tables(corpus, tmp_path):
    assert corpus.slug("Journey's End (Remix)") == "journey_s_end_remix"
    assert corpus.slug("!!!") == "untitled"
    name = corpus.clip_file_name("Mattias Westlund", "The Battle for Wesnoth OST", 3, "Silvan Sanctuary", 2)
    assert name == "mattias_westlund-the_battle_for_wesnoth_ost-03-silvan_sanctuary-58-87.mp3"
    path = tmp_path / "t.csv"
    corpus.write_mtat_table(str(path), ["clip_id", "a b", "mp3_path"], [["1", 'say "hi"', "0/x.mp3"]])
    assert path.read_bytes() == b'"clip_id"\t"a b"\t"mp3_path"\n"1"\t"say ""hi"""\t"0/x.mp3"\n'
    with open(path, newline="") as f:
        assert list(csv.reader(f, delimiter="\t"))[1] == ["1", 'say "hi"', "0/x.mp3"]
    assert corpus.write_if_changed(str(path), path.read_bytes()) is False


def test_mma_song(corpus):
    text = corpus.mma_song("BossaNova", ("C", "G7"), 96, 4)
    assert text.splitlines()[1:] == ["RndSeed 1", "Tempo 96", "Groove BossaNova", "1 C", "2 G7", "3 C", "4 G7"]


def test_tag_vocabulary(corpus):
    assert len(set(corpus.TAG_NAMES)) == len(corpus.TAG_NAMES)
    assert corpus.TAG_NAMES[-5:] == ("slow", "medium", "fast", "quiet", "loud")
    # every instrument tag is reachable from some GM program
    reachable = set().union(*(corpus.gm_tags(p, c) for p in range(128) for c in (0, 9)))
    assert reachable == set(corpus.INSTRUMENT_TAGS)


def test_clip_tags(corpus):
    assert corpus.clip_tags(["piano"], 70.0, -40.0) == {"piano", "slow", "quiet"}
    assert corpus.clip_tags([], 110.0, (corpus.QUIET_DBFS + corpus.LOUD_DBFS) / 2) == {"medium"}
    assert corpus.clip_tags(["drums", "bass"], 150.0, -3.0) == {"drums", "bass", "fast", "loud"}


def test_mma_song_switches_groove(corpus):
    text = corpus.mma_song("Rock", ("C",), 120, 4, [(2, "RockSus"), (3, "Rock1")])
    assert text.splitlines()[4:] == ["1 C", "2 C", "Groove RockSus", "3 C", "Groove Rock1", "4 C"]


def test_mma_variants(corpus):
    # per later clip: the first listed suffix the style defines, never one already played
    grooves = ["Swing", "SwingSus", "SwingPlus", "Swing1", "SwingEnd"]
    assert corpus.mma_variants("Swing", grooves, (("Sus", "Plus"), ("Sus", "1"))) == ["SwingSus", "Swing1"]
    assert corpus.mma_variants("Swing", grooves, (("Plus",), ("Plus",))) == ["SwingPlus", None]
    # case-insensitive, as MMA's groove names are
    assert corpus.mma_variants("swing", ["SWING", "swingsus"], (("Sus",),)) == ["swingsus"]
    assert corpus.mma_variants("Rock", ["Rock"]) == [None] * (corpus.MMA_CLIPS - 1)
    assert len(corpus.MMA_VARIANTS) == corpus.MMA_CLIPS - 1


def _two_track_file():
    mido = pytest.importorskip("mido")
    f = mido.MidiFile(type=1, ticks_per_beat=480)
    meta = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0),  # 120 BPM: 960 ticks/s
                           mido.MetaMessage("set_tempo", tempo=1000000, time=1920),  # 60 BPM from 2 s
                           mido.MetaMessage("end_of_track", time=4800)])  # 12 s
    notes = mido.MidiTrack([mido.Message("program_change", channel=0, program=40, time=0),
                            mido.Message("note_on", channel=0, note=60, velocity=80, time=0),
                            mido.Message("note_off", channel=0, note=60, time=960),  # 0-1 s
                            mido.Message("note_on", channel=0, note=62, velocity=80, time=960),  # 2 s
                            mido.Message("note_off", channel=0, note=62, time=1920),  # 6 s
                            mido.Message("note_on", channel=9, note=36, velocity=90, time=480),  # 7 s
                            mido.Message("note_off", channel=9, note=36, time=480),  # 8 s
                            mido.MetaMessage("end_of_track", time=0)])
    f.tracks.extend([meta, notes])
    return f


@pytest.mark.parametrize("seconds, expected", [
    (4.0, [(0.0, 1.0, 0, 40), (2.0, 4.0, 0, 40)]),  # the held note ends at the cut
    (7.5, [(0.0, 1.0, 0, 40), (2.0, 6.0, 0, 40), (7.0, 7.5, 9, 0)]),
    (2.0, [(0.0, 1.0, 0, 40)]),  # an event exactly at the cut is dropped
])
def test_truncate_midi(corpus, seconds, expected):
    import io

    mido = pytest.importorskip("mido")
    f = _two_track_file()
    assert f.length == pytest.approx(12.0)
    t = corpus.truncate_midi(f, seconds)
    assert t is not f and t.length == pytest.approx(seconds)
    buf = io.BytesIO()
    t.save(file=buf)  # a valid file: fluidsynth renders what mido re-reads
    buf.seek(0)
    again = mido.MidiFile(file=buf)
    for g in (t, again):
        notes, tempo_map = corpus.notes_from_messages(iter(g))
        got = [(round(n.start, 6), round(n.end, 6), n.channel, n.program) for n in notes]
        assert got == expected
        assert tempo_map == [(0.0, 120.0)] + ([(2.0, 60.0)] if seconds > 2.0 else [])
    assert len(f.tracks[1]) == 8  # the original is untouched
    assert corpus.truncate_midi(f, 12.0) is f and corpus.truncate_midi(f, 30.0) is f
