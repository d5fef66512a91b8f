#!/usr/bin/env python3
"""Build msk's development corpus: real, openly licensed music in MagnaTagATune's layout.

One command builds it from nothing on a Debian machine (root, network to Debian's archive)::

    python scripts/build_dev_corpus.py --out ~/.cache/msk/devcorpus --cache ~/.cache/msk/debcache

and ``msk.datasets.load_magnatagatune(out)`` reads the result. Nothing is installed system-wide:
packages are fetched with ``apt-get download`` into ``--cache`` and unpacked there with
``dpkg-deb -x``; the synthesiser (fluidsynth) runs from the unpacked tree. A re-run skips every
track that is already done (idempotent) and writes the same bytes (reproducible: fixed
parameters, sorted iteration, no timestamps, single-threaded rendering and encoding).

Sources (every track credits its composer; see SOURCES below and scripts/README_corpus.md)
------------------------------------------------------------------------------------------
Recorded soundtracks (Ogg Vorbis / Opus in the packages):

* ``wesnoth-1.16-music`` - The Battle for Wesnoth OST, GPL-2+. Composer = the Vorbis ARTIST
  comment of each file (a nickname in parentheses is dropped); title and album from the comments.
* ``warzone2100-music`` - Warzone 2100 soundtracks, CC-BY-SA-3.0+ or GPL-2+ (LupusMechanicus'
  albums), GPL-2+ (Martin Severn's original soundtrack). Composer, title and bpm from each
  album's ``album.json``.
* ``extremetuxracer-data`` - Extreme Tux Racer music, GPL-2+. Composer from ``music/readme``
  ("<name> composed: <files>").
* ``freedink-data`` - the free replacements of Dink Smallwood's music, per-file licences
  (CC-BY-SA-3.0, EFF OAL 1.0, public domain, CC-BY-3.0, GPL-3+); composer transcribed from
  ``README-REPLACEMENTS.txt`` into FREEDINK below.

MIDI rendered with fluidsynth and the MuseScore General SoundFont (``musescore-general-soundfont``,
MIT):

* ``freedink-data`` MIDI files with credited composers (FREEDINK below; the uncredited
  originals of the 1997 game are not used).
* ``mma`` - Musical MIDI Accompaniment's standard groove library (GPL-2+): each style file's
  first groove is played over a chord progression, one song per style, for ``MMA_CLIPS`` clips.
  From the first bar line after 29.1 s on, the style's richer variant plays (``<groove>SusPlus``,
  else ``Sus``, ``Plus`` or ``1``: sustained strings or choir, solo lines); from the first bar
  line after 58.2 s on, another variant (``1``, else ``2``, ``Plus``, ``1Sus`` or ``Sus``, the
  first that differs from the second clip's: other voicings and solo instruments). Composer = the
  ``Author`` line of the style file. Progression, tempo and length are fixed per style by a
  stable hash of its name (PROGRESSIONS, MMA_TEMPI), so the score - and therefore the tempo
  tag - is a property of the rendered music. MMA's random humanisation is seeded (RndSeed 1).

Not used, on purpose: ``freedoom``, ``openttd-openmsx`` and the Fluid R3 SoundFont
(``fluid-soundfont-gm``), reserved for the independent held-out corpus that
``scripts/build_heldout_corpus.py`` builds with this script's machinery; music without per-track
composer credits (hedgewars, the original Dink MIDI files, liquidwar).

Audio and clips
---------------
Each track is decoded (soundfile) or rendered (fluidsynth, 44.1 kHz float, default reverb and
chorus, gain 0.5, from a copy of the MIDI file re-saved by mido; the render is cut 1 s after
the score's last event and peak-normalised to -1 dBFS, as mastered recordings are), mixed to mono by averaging the channels, resampled to 16 kHz with soxr (HQ)
and cut into consecutive 29.1 s clips from its start (465 600 samples; the partial last piece is
dropped). At most ``MAX_CLIPS_PER_TRACK`` clips are kept per track (``MMA_CLIPS`` per MMA song),
so that no long track or prolific composer dominates; clips quieter than ``SILENT_DBFS`` are
dropped. Clips are encoded as 16 kHz mono MP3 at a constant 32 kbit/s (libsndfile/LAME through
soundfile), MagnaTagATune's format.

Splits: all clips of a track go to one folder ``0``-``f``. Tracks are placed largest first
(ties by a SHA-256 hash of the track key), each into the least-filled folder, scanning the
folders from a start given by the track's hash: folders end up within one track of each other
in clip count, and no track crosses a split (``0``-``b`` train, ``c`` valid, ``d``-``f`` test).

Tags (one 0/1 column each; every derivation is deterministic)
-------------------------------------------------------------
* Instruments (MIDI sources only): the General MIDI programs that actually sound in the clip.
  Notes are read with mido (tempo map applied, so note times are in seconds and line up with the
  rendered audio); a note sounds in a clip for the part of [on, off) inside the clip, if its
  velocity and its channel's volume (CC 7) are above zero. A tag is positive when its notes
  sound for at least ``INSTRUMENT_MIN_SECONDS`` in total or start at least
  ``INSTRUMENT_MIN_ONSETS`` times within the clip. Programs map to tags by GM family (GM_TAGS):
  piano 0-7, mallets 8-15, organ 16-20, accordion 21-23, guitar 24-31, bass 32-39, strings 40-45
  and 48-51, harp 46, timpani 47, choir 52-54, brass 56-63, sax 64-67, woodwind 64-79, flute
  72-79, synth 80-103; channel 10 is drums; plus violin 40 and harpsichord 6. Recorded tracks
  have no instrument information: their instrument columns are 0 (unknown, as MTAT's missing
  tags are), so instrument tags are learnable only as "this MIDI clip has X".
* Tempo: slow (< 90 BPM), medium (90-130), fast (>= 130). BPM = the time-weighted mean of the
  MIDI tempo map over the clip (quarter notes per minute; default 120), else the track's
  ``bpm`` in Warzone's album.json, else librosa's tempo estimate of the clip (onset
  autocorrelation, ``librosa.feature.tempo``).
* Loudness: RMS level of the 16 kHz clip in dBFS: quiet below ``QUIET_DBFS``, loud above
  ``LOUD_DBFS``, neither in between.

Outputs in ``--out``: ``annotations_final.csv`` and ``clip_info_final.csv`` (MTAT's format:
tab-separated, every field double-quoted, clip_id first, mp3_path last), the clips in
``0/``..``f/``, ``SOURCES.tsv`` (one row per track: package, version, file, title, composer,
licence, clip ids), ``LICENSES/<package>.copyright`` (each package's Debian copyright file) and
``README.md``. ``--cache`` keeps the .deb files, their unpacked trees, rendered MIDI and the
encoded clips of each track with a JSON sidecar (what makes re-runs skip work).
"""

import argparse
import concurrent.futures
import csv
import glob
import hashlib
import io
import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

SR = 16000
CLIP_SECONDS = 29.1
CLIP_LEN = int(round(CLIP_SECONDS * SR))  # 465 600 samples
MAX_CLIPS_PER_TRACK = 6
MMA_CLIPS = 3
SILENT_DBFS = -50.0
QUIET_DBFS = -26.0
LOUD_DBFS = -16.0
SLOW_BPM = 90.0
FAST_BPM = 130.0
INSTRUMENT_MIN_SECONDS = 1.5
INSTRUMENT_MIN_ONSETS = 4
RENDER_SR = 44100
FLUIDSYNTH_GAIN = 0.5
MIDI_PEAK = 10 ** (-1.0 / 20)  # renders are peak-normalised to -1 dBFS, as mastered recordings are
MIDI_TAIL_SECONDS = 1.0  # reverb/release kept after the score's last event
MP3_OPTIONS = dict(format="MP3", subtype="MPEG_LAYER_III", bitrate_mode="CONSTANT", compression_level=0.85)
FOLDERS = "0123456789abcdef"
# Changing any parameter above invalidates the per-track cache.
PARAMS = dict(
    sr=SR, clip_len=CLIP_LEN, max_clips=MAX_CLIPS_PER_TRACK, mma_clips=MMA_CLIPS, silent=SILENT_DBFS,
    render_sr=RENDER_SR, gain=FLUIDSYNTH_GAIN, peak=MIDI_PEAK, tail=MIDI_TAIL_SECONDS, mp3=MP3_OPTIONS,
    version=2,
)

INSTRUMENT_TAGS = (
    "piano", "harpsichord", "mallets", "organ", "accordion", "guitar", "bass", "strings", "violin",
    "harp", "timpani", "choir", "brass", "sax", "woodwind", "flute", "synth", "drums",
)
TEMPO_TAGS = ("slow", "medium", "fast")
LOUDNESS_TAGS = ("quiet", "loud")
TAG_NAMES = INSTRUMENT_TAGS + TEMPO_TAGS + LOUDNESS_TAGS

# The packages read, with the licence of the material used from each (from its copyright file).
PACKAGES = {
    "wesnoth-1.16-music": "GPL-2+",
    "warzone2100-music": "CC-BY-SA-3.0+ or GPL-2+ (LupusMechanicus); GPL-2+ (Martin Severn)",
    "extremetuxracer-data": "GPL-2+",
    "freedink-data": "per file, see SOURCES.tsv",
    "mma": "GPL-2+",
    "musescore-general-soundfont": "MIT (SoundFont used for rendering)",
}
SOUNDFONT = ("musescore-general-soundfont", "usr/share/sounds/sf3/MuseScore_General_Full.sf3")
# fluidsynth and the shared libraries it needs that a minimal Debian 12 lacks; packages already
# installed on the machine are not downloaded.
FLUIDSYNTH_PACKAGES = (
    "fluidsynth", "libfluidsynth3", "libinstpatch-1.0-2", "libjack-jackd2-0", "libpulse0",
    "libsdl2-2.0-0", "libsndfile1", "libasyncns0", "libdecor-0-0", "libflac12", "libmp3lame0",
    "libmpg123-0", "libogg0", "libopus0", "libsamplerate0", "libvorbis0a", "libvorbisenc2",
    "libwayland-cursor0", "libwayland-egl1", "libwayland-client0", "libglib2.0-0", "libreadline8",
    "libasound2", "libdbus-1-3", "libgomp1", "libx11-6", "libxext6", "libxcursor1", "libxi6",
    "libxfixes3", "libxrandr2", "libxss1", "libxkbcommon0", "libxcb1", "libxrender1",
)

FREEDINK_DIR = "usr/share/games/dink/dink/Sound"
# Transcribed from freedink-data's README-REPLACEMENTS.txt (composer = artist).
FREEDINK = {
    "1.ogg": ("Ave Maria (Bach/Gounod), John Michel, cello", "Charles Gounod", "CC-BY-SA-3.0"),
    "5.ogg": ("Tavern", "Ofir Mo", "GPL-3+"),
    "106.ogg": ("Violin Concerto in E minor, Op. 64: Allegro molto appassionato, "
                "Fulda Symphonic Orchestra", "Felix Mendelssohn", "EFF Open Audio License 1.0"),
    "denube.ogg": ("The Blue Danube, Op. 314, Rytmi-Pojat 1936", "Johann Strauss II", "public domain"),
    "lovin.ogg": ("Lovin'", "Gachopin", "CC-BY-3.0"),
    "7.mid": ("Darklands", "Joshua O'Leary", "GPL-3+"),
    "12.mid": ("Inside GoodHearth Castle", "Joshua O'Leary", "GPL-3+"),
    "18.mid": ("End Boss", "Joshua O'Leary", "GPL-3+"),
    "13.mid": ("Canon in D, MIDI by Ofir Mo", "Johann Pachelbel", "public domain"),
    "104.mid": ("Serenade D 957, arranged by Sylvain Beucler", "Franz Schubert",
                "GPL-3+ or Art Libre or CC-BY-SA"),
    "105.mid": ("Reverie, arranged by Sylvain Beucler", "Claude Debussy",
                "GPL-3+ or Art Libre or CC-BY-SA"),
}
ETR_MUSIC = "usr/share/games/etr/music"
WZ_ALBUMS = "usr/share/games/warzone2100/music/albums"
WESNOTH_MUSIC = "usr/share/games/wesnoth/1.16/data/core/music"
MMA_STDLIB = "usr/share/mma/lib/stdlib"
MMA_SKIP = ("metronome", "none")
PROGRESSIONS = (
    ("C", "Am", "F", "G7"),
    ("Dm7", "G7", "Cmaj7", "Cmaj7"),
    ("C7", "F7", "C7", "C7", "F7", "F7", "C7", "C7", "G7", "F7", "C7", "G7"),
    ("Am", "Dm", "E7", "Am"),
    ("C", "G", "Am", "Em", "F", "C", "F", "G7"),
    ("F", "Bb", "C7", "F"),
)
MMA_TEMPI = (66, 80, 96, 112, 126, 140, 160, 184)
# the variant each MMA clip after the first plays: the first of its list that the style defines
# and that no earlier clip played
MMA_VARIANTS = (("SusPlus", "Sus", "Plus", "1"), ("1", "2", "Plus", "1Sus", "Sus"))


# ----------------------------------------------------------------------------------------------
# Pure parts (tested in tests/test_corpus.py)
# ----------------------------------------------------------------------------------------------

def stable_hash(text):
    """A platform-independent 64-bit hash of a string (SHA-256 prefix)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def segment(n_samples, clip_len=CLIP_LEN, max_clips=None):
    """Consecutive full clips from the start: a list of (start, stop) sample indices."""
    n = n_samples // clip_len
    if max_clips is not None:
        n = min(n, max_clips)
    return [(i * clip_len, (i + 1) * clip_len) for i in range(n)]


def assign_folders(sizes, folders=FOLDERS):
    """Map each track key to a folder so that folders hold about the same number of clips.

    ``sizes`` maps a track key to its number of clips. Tracks are placed largest first (ties by
    their hash), each into the least-filled folder, scanning the folders from a start given by
    the track's hash (so equally filled folders are chosen by the hash, not always the first).
    """
    load = {f: 0 for f in folders}
    out = {}
    for key in sorted(sizes, key=lambda k: (-sizes[k], stable_hash(k), k)):
        start = stable_hash(key) % len(folders)
        order = folders[start:] + folders[:start]
        best = min(order, key=lambda f: load[f])  # min keeps the first of equal loads
        out[key] = best
        load[best] += sizes[key]
    return out


# General MIDI program ranges (inclusive) of each instrument tag; a program may have several.
GM_TAG_RANGES = (
    ("piano", 0, 7), ("harpsichord", 6, 6), ("mallets", 8, 15), ("organ", 16, 20),
    ("accordion", 21, 23), ("guitar", 24, 31), ("bass", 32, 39), ("strings", 40, 45),
    ("strings", 48, 51), ("violin", 40, 40), ("harp", 46, 46), ("timpani", 47, 47),
    ("choir", 52, 54), ("brass", 56, 63), ("sax", 64, 67), ("woodwind", 64, 79),
    ("flute", 72, 79), ("synth", 80, 103),
)


def gm_tags(program, channel):
    """Instrument tags of a General MIDI program (0-127) on a channel (0-15; 9 is drums)."""
    if channel == 9:
        return {"drums"}
    return {tag for tag, lo, hi in GM_TAG_RANGES if lo <= program <= hi}


@dataclass(frozen=True)
class Note:
    """One sounding note: times in seconds."""

    start: float
    end: float
    channel: int
    program: int


def notes_from_messages(messages):
    """Notes and the tempo map from (delta_seconds, message) pairs of a merged MIDI stream.

    ``messages`` are mido messages with ``.time`` in seconds (iterating a ``mido.MidiFile``
    gives exactly this). Returns ``(notes, tempo_map)`` where ``tempo_map`` is a list of
    ``(time_s, bpm)`` starting at 0 (120 BPM unless a tempo is set at time 0). Notes with
    velocity 0 or on a channel whose volume (CC 7) is 0 are not sounding and are left out;
    notes still held at the end are closed there.
    """
    t = 0.0
    program = [0] * 16
    volume = [100] * 16
    held = {}
    notes = []
    tempo_map = [(0.0, 120.0)]
    for msg in messages:
        t += msg.time
        kind = msg.type
        if kind == "set_tempo":
            bpm = 60_000_000.0 / msg.tempo
            if tempo_map[-1][0] == t:
                tempo_map[-1] = (t, bpm)
            else:
                tempo_map.append((t, bpm))
        elif kind == "program_change":
            program[msg.channel] = msg.program
        elif kind == "control_change" and msg.control == 7:
            volume[msg.channel] = msg.value
        elif kind == "note_on" and msg.velocity > 0:
            key = (msg.channel, msg.note)
            if key in held:  # re-struck without a note-off: close the previous one
                start, prog, audible = held.pop(key)
                if audible:
                    notes.append(Note(start, t, msg.channel, prog))
            held[key] = (t, program[msg.channel], volume[msg.channel] > 0)
        elif kind in ("note_off", "note_on"):
            key = (msg.channel, msg.note)
            if key in held:
                start, prog, audible = held.pop(key)
                if audible:
                    notes.append(Note(start, t, msg.channel, prog))
    for (channel, _), (start, prog, audible) in sorted(held.items()):
        if audible:
            notes.append(Note(start, t, channel, prog))
    notes.sort(key=lambda n: (n.start, n.channel, n.program, n.end))
    return notes, tempo_map


def instrument_tags(notes, t0, t1, min_seconds=INSTRUMENT_MIN_SECONDS, min_onsets=INSTRUMENT_MIN_ONSETS):
    """Instrument tags that sound in [t0, t1): enough total sounding time or enough onsets."""
    seconds = {}
    onsets = {}
    for n in notes:
        overlap = min(n.end, t1) - max(n.start, t0)
        if overlap <= 0 and not (t0 <= n.start < t1):
            continue
        for tag in gm_tags(n.program, n.channel):
            seconds[tag] = seconds.get(tag, 0.0) + max(overlap, 0.0)
            if t0 <= n.start < t1:
                onsets[tag] = onsets.get(tag, 0) + 1
    return {tag for tag in seconds if seconds[tag] >= min_seconds or onsets.get(tag, 0) >= min_onsets}


def mean_bpm(tempo_map, t0, t1):
    """Time-weighted mean tempo (BPM) of a tempo map ``[(time_s, bpm), ...]`` over [t0, t1)."""
    total = 0.0
    for i, (start, bpm) in enumerate(tempo_map):
        end = tempo_map[i + 1][0] if i + 1 < len(tempo_map) else math.inf
        overlap = min(end, t1) - max(start, t0)
        if overlap > 0:
            total += overlap * bpm
    return total / (t1 - t0)


def tempo_tag(bpm):
    """'slow' below SLOW_BPM, 'fast' from FAST_BPM on, else 'medium'."""
    if bpm < SLOW_BPM:
        return "slow"
    if bpm >= FAST_BPM:
        return "fast"
    return "medium"


def rms_dbfs(y):
    """RMS level of a waveform in dB relative to full scale (-inf for silence)."""
    ms = float(np.mean(np.square(y, dtype=np.float64)))
    return 10.0 * math.log10(ms) if ms > 0 else -math.inf


def loudness_tag(dbfs):
    """'quiet' below QUIET_DBFS, 'loud' above LOUD_DBFS, else None."""
    if dbfs < QUIET_DBFS:
        return "quiet"
    if dbfs > LOUD_DBFS:
        return "loud"
    return None


def clip_tags(instruments, bpm, dbfs):
    """All tags of a clip: its instrument tags, one tempo tag and at most one loudness tag."""
    tags = set(instruments) | {tempo_tag(bpm)}
    loud = loudness_tag(dbfs)
    if loud:
        tags.add(loud)
    return tags


def slug(text):
    """MagnaTagATune-style file-name part: lower case, runs of other characters -> '_'."""
    s = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return s or "untitled"


def clip_file_name(artist, album, track_number, title, index):
    """MTAT-style name: artist-album-NN-title-START-END.mp3 (seconds, floor)."""
    start = int(index * CLIP_SECONDS)
    end = int((index + 1) * CLIP_SECONDS)
    return f"{slug(artist)}-{slug(album)}-{track_number:02d}-{slug(title)}-{start}-{end}.mp3"


def write_mtat_table(path, header, rows):
    """Write a table as MTAT does: tab-separated, every field in double quotes, LF endings."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    write_if_changed(path, buf.getvalue().encode("utf-8"))


def write_if_changed(path, data):
    """Atomically write bytes unless the file already holds exactly them."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return False
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return True


def mma_song(groove, progression, tempo, bars, changes=()):
    """The text of an MMA song playing ``groove`` over ``progression`` for ``bars`` bars.

    ``changes`` is a sequence of ``(bar, groove)``: the groove changes before bar ``bar + 1``.
    """
    at = dict(changes)
    lines = ["// generated by msk scripts/build_dev_corpus.py", "RndSeed 1", f"Tempo {tempo}", f"Groove {groove}"]
    for i in range(bars):
        if i in at:
            lines.append(f"Groove {at[i]}")
        lines.append(f"{i + 1} {progression[i % len(progression)]}")
    return "\n".join(lines) + "\n"


def truncate_midi(midi, seconds):
    """A copy of a mido.MidiFile that ends at ``seconds`` (tempo map applied), or ``midi`` itself
    when it is not longer.

    Events at or after the cut are dropped and every note still sounding there is ended there,
    so a render of the copy is the first ``seconds`` of the score. Type-2 files (independent
    sequences, no common time line) are returned unchanged.
    """
    import mido

    if midi.type == 2 or midi.length <= seconds:
        return midi
    tempo, t, tick, cutoff = 500_000, 0.0, 0, None
    for msg in mido.merge_tracks(midi.tracks):
        dt = mido.tick2second(msg.time, midi.ticks_per_beat, tempo)
        if t + dt >= seconds:
            cutoff = tick + int(math.ceil(mido.second2tick(seconds - t, midi.ticks_per_beat, tempo)))
            break
        t, tick = t + dt, tick + msg.time
        if msg.type == "set_tempo":
            tempo = msg.tempo
    out = mido.MidiFile(type=midi.type, ticks_per_beat=midi.ticks_per_beat)
    for track in midi.tracks:
        new, now, last, held = mido.MidiTrack(), 0, 0, set()
        for msg in track:
            now += msg.time
            if now >= cutoff:
                break
            if msg.type == "end_of_track":
                continue
            new.append(msg.copy(time=now - last))
            last = now
            if msg.type == "note_on" and msg.velocity > 0:
                held.add((msg.channel, msg.note))
            elif msg.type in ("note_on", "note_off"):
                held.discard((msg.channel, msg.note))
        for channel, note in sorted(held):
            new.append(mido.Message("note_off", channel=channel, note=note, velocity=0, time=cutoff - last))
            last = cutoff
        new.append(mido.MetaMessage("end_of_track", time=cutoff - last))
        out.tracks.append(new)
    return out


def mma_variants(main, grooves, choices=MMA_VARIANTS):
    """The groove each clip after the first plays: per clip, the first of its suffixes that
    ``grooves`` defines (case-insensitively) and no earlier clip played; None if there is none."""
    by_lower = {g.lower(): g for g in grooves}
    played = [main]
    out = []
    for suffixes in choices:
        pick = next((by_lower[(main + v).lower()] for v in suffixes
                     if (main + v).lower() in by_lower and by_lower[(main + v).lower()] not in played), None)
        out.append(pick)
        if pick is not None:
            played.append(pick)
    return out


# ----------------------------------------------------------------------------------------------
# Fetching and unpacking
# ----------------------------------------------------------------------------------------------

def log(*args):
    print(*args, file=sys.stderr, flush=True)


def installed(package):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return r.returncode == 0 and "ok installed" in r.stdout


def fetch(package, cache):
    """Download a package's .deb into cache/debs (once) and unpack it into cache/x/<package>."""
    debs = os.path.join(cache, "debs")
    os.makedirs(debs, exist_ok=True)
    found = sorted(glob.glob(os.path.join(debs, f"{package}_*.deb")))
    if not found:
        log(f"apt-get download {package}")
        r = subprocess.run(["apt-get", "download", package], cwd=debs, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(
                f"apt-get download {package} failed (run 'apt-get update' first?):\n{r.stderr.strip()}"
            )
        found = sorted(glob.glob(os.path.join(debs, f"{package}_*.deb")))
    deb = found[-1]
    version = os.path.basename(deb)[len(package) + 1 :].rsplit("_", 1)[0]
    root = os.path.join(cache, "x", package)
    stamp = os.path.join(root, ".unpacked")
    if not os.path.exists(stamp) or open(stamp).read() != os.path.basename(deb):
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        with open(stamp, "w") as f:
            f.write(os.path.basename(deb))
    return root, version.replace("%3a", ":")


def fluidsynth_command(cache):
    """Unpack fluidsynth with the libraries this machine lacks; return (argv0, environment)."""
    prefix = os.path.join(cache, "fluidsynth")
    for package in FLUIDSYNTH_PACKAGES:
        if package in ("fluidsynth", "libfluidsynth3") or not installed(package):
            root, _ = fetch(package, cache)
            stamp = os.path.join(prefix, f".{package}")
            if not os.path.exists(stamp):
                os.makedirs(prefix, exist_ok=True)
                subprocess.run(["cp", "-a", root + "/.", prefix], check=True)
                os.remove(os.path.join(prefix, ".unpacked"))
                open(stamp, "w").close()
    libdirs = [os.path.join(prefix, "usr/lib/x86_64-linux-gnu"), os.path.join(prefix, "lib/x86_64-linux-gnu"),
               os.path.join(prefix, "usr/lib/x86_64-linux-gnu/pulseaudio")]
    env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdirs + [os.environ.get("LD_LIBRARY_PATH", "")]).rstrip(":"))
    exe = os.path.join(prefix, "usr/bin/fluidsynth")
    ldd = subprocess.run(["ldd", exe], env=env, capture_output=True, text=True).stdout
    missing = sorted({line.split()[0] for line in ldd.splitlines() if "not found" in line})
    if missing:
        raise SystemExit(f"the unpacked fluidsynth lacks {', '.join(missing)}: add the Debian packages "
                         "that provide them to FLUIDSYNTH_PACKAGES in this script.")
    r = subprocess.run([exe, "--version"], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"the unpacked fluidsynth does not run:\n{r.stderr.strip()}")
    return exe, env


# ----------------------------------------------------------------------------------------------
# Track discovery (real metadata only)
# ----------------------------------------------------------------------------------------------

@dataclass
class Track:
    key: str
    package: str
    version: str
    member: str  # path inside the package, or the generated MIDI for MMA
    path: str  # absolute path of the audio or MIDI file
    title: str
    artist: str
    album: str
    licence: str
    kind: str  # 'audio' or 'midi'
    bpm: float = None
    max_clips: int = MAX_CLIPS_PER_TRACK
    track_number: int = 1
    extra: dict = field(default_factory=dict)
    render_seconds: float = None  # MIDI: render only this much of the score (None: all of it)


def wesnoth_tracks(cache):
    import soundfile as sf

    root, version = fetch("wesnoth-1.16-music", cache)
    out = []
    for path in sorted(glob.glob(os.path.join(root, WESNOTH_MUSIC, "*.ogg"))):
        with sf.SoundFile(path) as f:
            meta = f.copy_metadata()
        artist = re.sub(r"\s*\(.*\)\s*$", "", meta.get("artist", "")).strip()
        if not artist:
            continue  # no composer credit (silence.ogg)
        member = os.path.relpath(path, root)
        out.append(Track(f"wesnoth-1.16-music:{member}", "wesnoth-1.16-music", version, member, path,
                         meta.get("title", os.path.basename(path)), artist,
                         meta.get("album", "The Battle for Wesnoth OST"), PACKAGES["wesnoth-1.16-music"], "audio",
                         track_number=len(out) + 1))
    return out


def warzone_tracks(cache):
    root, version = fetch("warzone2100-music", cache)
    out = []
    for album_json in sorted(glob.glob(os.path.join(root, WZ_ALBUMS, "*", "album.json"))):
        with open(album_json, encoding="utf-8") as f:
            album = json.load(f)
        folder = os.path.dirname(album_json)
        lic_file = os.path.join(folder, "license.txt")
        for number, t in enumerate(album["tracks"], 1):
            path = os.path.join(folder, t["filename"])
            artist = t.get("author") or album.get("author")
            if artist == "LupusMechanicus" and os.path.exists(lic_file) and "enhanced" not in t["filename"]:
                licence = "CC-BY-SA-3.0+ or GPL-2+"
            else:
                licence = "GPL-2+"
            member = os.path.relpath(path, root)
            out.append(Track(f"warzone2100-music:{member}", "warzone2100-music", version, member, path,
                             t["title"], artist, "Warzone 2100 " + album["title"], licence, "audio",
                             bpm=float(t["bpm"]) if t.get("bpm") else None, track_number=number))
    return out


def etr_tracks(cache):
    root, version = fetch("extremetuxracer-data", cache)
    credits = {}
    composer = None
    with open(os.path.join(root, ETR_MUSIC, "readme"), encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^(\S.*?)\s*<[^>]*>\s*composed:", line)
            if m:
                composer = m.group(1).strip()
            elif composer and line.strip().endswith(".ogg"):
                credits[line.strip()] = composer
    out = []
    for path in sorted(glob.glob(os.path.join(root, ETR_MUSIC, "*.ogg"))):
        name = os.path.basename(path)
        if name not in credits:
            continue
        member = os.path.relpath(path, root)
        title = re.sub(r"-[a-z]{2}$", "", name[:-4])
        out.append(Track(f"extremetuxracer-data:{member}", "extremetuxracer-data", version, member, path,
                         title, credits[name], "Extreme Tux Racer", PACKAGES["extremetuxracer-data"], "audio",
                         track_number=len(out) + 1))
    return out


def freedink_tracks(cache):
    root, version = fetch("freedink-data", cache)
    out = []
    for name in sorted(FREEDINK):
        title, composer, licence = FREEDINK[name]
        path = os.path.join(root, FREEDINK_DIR, name)
        if not os.path.exists(path):
            raise SystemExit(f"freedink-data {version} has no {name}; update FREEDINK in this script.")
        member = os.path.relpath(path, root)
        out.append(Track(f"freedink-data:{member}", "freedink-data", version, member, path, title, composer,
                         "FreeDink", licence, "midi" if name.endswith(".mid") else "audio", track_number=len(out) + 1))
    return out


def mma_tracks(cache):
    root, version = fetch("mma", cache)
    home = os.path.join(root, "usr/share/mma")
    env = dict(os.environ, MMA_HOME=home, PYTHONDONTWRITEBYTECODE="1")
    mma = [sys.executable, os.path.join(root, "usr/bin/mma")]
    if not glob.glob(os.path.join(home, "lib", "stdlib", ".mmaDB")):
        log("mma -G (groove database)")
        subprocess.run(mma + ["-G"], env=env, capture_output=True, check=True)
    songs = os.path.join(cache, "mma-songs")
    os.makedirs(songs, exist_ok=True)
    out = []
    for style in sorted(glob.glob(os.path.join(root, MMA_STDLIB, "*.mma"))):
        name = os.path.basename(style)[:-4]
        if name.startswith(MMA_SKIP):
            continue
        with open(style, encoding="utf-8", errors="replace") as f:
            text = f.read()
        grooves = re.findall(r"^\s*DefGroove\s+(\S+)", text, re.M | re.I)
        author = re.search(r"^\s*Author\s+(.+?)\s*$", text, re.M | re.I)
        if not grooves or not author:
            continue
        artist = author.group(1).split("&&")[0].strip()
        beats = re.search(r"^\s*Time\s+(\d+)", text, re.M | re.I)
        beats = int(beats.group(1)) if beats else 4
        h = stable_hash(name)
        tempo = MMA_TEMPI[h % len(MMA_TEMPI)]
        progression = PROGRESSIONS[(h // len(MMA_TEMPI)) % len(PROGRESSIONS)]
        seconds = MMA_CLIPS * CLIP_SECONDS + 4.0
        bars = int(math.ceil(seconds * tempo / 60.0 / max(beats, 1)))
        bars = int(math.ceil(bars / len(progression)) * len(progression))
        # later clips play the style's richer variants (sustained strings/choir, solos) if any
        main = grooves[0]
        variants = mma_variants(main, grooves)
        changes = [(int(math.ceil((k + 1) * CLIP_SECONDS * tempo / 60.0 / max(beats, 1))), v)
                   for k, v in enumerate(variants) if v is not None]
        song = mma_song(main, progression, tempo, bars, changes)
        song_path = os.path.join(songs, f"{name}.mma")
        midi_path = os.path.join(songs, f"{name}.mid")
        changed = write_if_changed(song_path, song.encode())
        if changed or not os.path.exists(midi_path):
            r = subprocess.run(mma + [song_path, "-f", midi_path], env=env, capture_output=True, text=True)
            if r.returncode != 0 or not os.path.exists(midi_path):
                log(f"  mma failed on {name}: {(r.stdout + r.stderr).strip().splitlines()[-1:]}")
                continue
        member = os.path.relpath(style, root)
        out.append(Track(f"mma:{member}", "mma", version, member, midi_path,
                         f"{' / '.join([main] + [g for _, g in changes])} ({' '.join(progression)})", artist,
                         "MMA standard grooves",
                         PACKAGES["mma"], "midi", max_clips=MMA_CLIPS, track_number=len(out) + 1,
                         extra={"tempo": tempo, "progression": list(progression), "bars": bars,
                                "changes": [list(c) for c in changes]}))
    return out


# ----------------------------------------------------------------------------------------------
# Per-track work: decode or render, cut, tag, encode (cached)
# ----------------------------------------------------------------------------------------------

def to_16k_mono(y, sr):
    import soxr

    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=1, dtype=np.float32)
    if sr != SR:
        y = soxr.resample(y, sr, SR, quality="HQ").astype(np.float32, copy=False)
    return np.ascontiguousarray(y)


def render_midi(midi, fluidsynth, soundfont):
    """Render a mido.MidiFile to 16 kHz mono, peak-normalised, cut MIDI_TAIL_SECONDS after its end.

    The file is re-saved by mido first: fluidsynth stops early on some hand-made files
    (freedink's 104.mid renders 3 ms), and the notes tagged are then exactly the notes played.
    """
    exe, env = fluidsynth
    with tempfile.TemporaryDirectory() as tmp:
        clean = os.path.join(tmp, "in.mid")
        midi.save(clean)
        raw = os.path.join(tmp, "out.raw")
        cmd = [exe, "-q", "-n", "-i", "-a", "file", "-F", raw, "-T", "raw", "-O", "float", "-E", "little",
               "-r", str(RENDER_SR), "-g", str(FLUIDSYNTH_GAIN), "-o", "synth.cpu-cores=1", soundfont, clean]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0 or not os.path.exists(raw):
            raise RuntimeError(f"fluidsynth failed: {r.stderr.strip()}")
        y = np.fromfile(raw, dtype="<f4").reshape(-1, 2)
    y = to_16k_mono(y, RENDER_SR)[: int(math.ceil((midi.length + MIDI_TAIL_SECONDS) * SR))]
    peak = float(np.max(np.abs(y))) if len(y) else 0.0
    if peak > 0:
        y = y * np.float32(MIDI_PEAK / peak)
    return y


def estimate_bpm(y):
    import librosa

    return float(librosa.feature.tempo(y=y.astype(np.float32), sr=SR, aggregate=np.median)[0])


def process_track(track, cache, fluidsynth, soundfont, labels=True):
    """Cut, tag and encode one track into cache/clips/<hash>/; return (folder, sidecar dict).

    With ``labels=False`` (an unlabelled pool) the clips are cut and encoded the same way but no
    tempo or instrument is derived: each clip's record has only its file, index, start and level.
    """
    import soundfile as sf

    tid = hashlib.sha256(track.key.encode()).hexdigest()[:16]
    folder = os.path.join(cache, "clips", tid)
    sidecar_path = os.path.join(folder, "clips.json")
    params = dict(PARAMS, key=track.key, version_of_source=track.version, extra=track.extra,
                  max_clips_track=track.max_clips)
    if not labels:
        params["labels"] = False
    if track.render_seconds is not None:
        params["render_seconds"] = track.render_seconds
    if os.path.exists(sidecar_path):
        with open(sidecar_path) as f:
            side = json.load(f)
        if side["params"] == params and all(os.path.exists(os.path.join(folder, c["file"])) for c in side["clips"]):
            return folder, side
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    notes = tempo_map = None
    if track.kind == "midi":
        import mido

        midi = mido.MidiFile(track.path)
        if track.render_seconds is not None:
            midi = truncate_midi(midi, track.render_seconds)
        if labels:
            notes, tempo_map = notes_from_messages(iter(midi))
        y = render_midi(midi, fluidsynth, soundfont)
    else:
        data, sr = sf.read(track.path, dtype="float32", always_2d=True)
        y = to_16k_mono(data, sr)
    clips = []
    for start, stop in segment(len(y), CLIP_LEN):
        if len(clips) >= track.max_clips:
            break
        piece = y[start:stop]
        level = rms_dbfs(piece)
        if level < SILENT_DBFS:
            continue
        t0, t1 = start / SR, stop / SR
        index = start // CLIP_LEN
        name = f"{index:03d}.mp3"
        sf.write(os.path.join(folder, name), np.clip(piece, -1.0, 1.0), SR, **MP3_OPTIONS)
        clip = dict(file=name, index=index, start_s=round(t0, 3), rms_dbfs=round(level, 3))
        clips.append(clip)
        if not labels:
            continue
        instruments = set()
        if notes is not None:
            bpm, bpm_source = mean_bpm(tempo_map, t0, t1), "score"
            instruments = instrument_tags(notes, t0, t1)
        elif track.bpm is not None:
            bpm, bpm_source = track.bpm, "album.json"
        else:
            bpm, bpm_source = estimate_bpm(piece), "signal"
        clip.update(bpm=round(bpm, 3), bpm_source=bpm_source, instruments=sorted(instruments))
    side = dict(params=params, n_samples=len(y), clips=clips)
    with open(sidecar_path + ".tmp", "w") as f:
        json.dump(side, f, indent=1, sort_keys=True)
    os.replace(sidecar_path + ".tmp", sidecar_path)
    return folder, side


# ----------------------------------------------------------------------------------------------
# Assembly
# ----------------------------------------------------------------------------------------------

# How each source package's tracks are found (the corpus's source list).
DISCOVER = {
    "wesnoth-1.16-music": wesnoth_tracks,
    "warzone2100-music": warzone_tracks,
    "extremetuxracer-data": etr_tracks,
    "freedink-data": freedink_tracks,
    "mma": mma_tracks,
}


def corpus_tracks(cache, *, use_mma=True, packages=None):
    """Every candidate track of the corpus, sorted by key (``package:path inside the package``).

    ``packages`` limits the discovery to those source packages (others are not downloaded).
    A candidate whose audio yields no clip (too short or silent) is still listed: this is the
    list that other data sets built from the same packages must keep apart from.
    """
    tracks = []
    for package, discover in DISCOVER.items():
        if (package == "mma" and not use_mma) or (packages is not None and package not in packages):
            continue
        tracks += discover(cache)
    return sorted(tracks, key=lambda t: t.key)


def process_tracks(tracks, cache, fluidsynth, soundfonts, *, jobs=1, labels=True):
    """Yield ``(track, (folder, sidecar))`` for each track in order, ``jobs`` tracks at a time.

    ``soundfonts`` is one SoundFont path per track (ignored for recordings). Tracks are
    independent and each is rendered single-threaded, so the bytes written do not depend on
    ``jobs`` or on which process did the work.
    """
    with concurrent.futures.ProcessPoolExecutor(max_workers=max(1, min(jobs, len(tracks)))) as pool:
        work = pool.map(process_track, tracks, itertools.repeat(cache), itertools.repeat(fluidsynth),
                        soundfonts, itertools.repeat(labels))
        for i, (track, result) in enumerate(zip(tracks, work), 1):
            log(f"[{i}/{len(tracks)}] {track.key}")
            yield track, result


def assemble(out, cache, tracks, soundfont, *, jobs=1):
    """Process ``tracks`` and write them into ``out`` in MagnaTagATune's layout.

    ``soundfont`` is ``(package, path inside the package)``: every MIDI track is rendered with
    it. Writes the clips of every track that yields any into one folder ``0``-``f`` per track
    (``assign_folders``), ``annotations_final.csv``, ``clip_info_final.csv``, ``SOURCES.tsv`` and
    ``LICENSES/<package>.copyright`` for the tracks' packages and the SoundFont's; clips of an
    earlier build that are no longer part of the corpus are removed, unchanged files are not
    rewritten. Clip ids are 1, 2, ... in the order of ``tracks``, then clip index. The caller
    writes ``README.md``. Returns ``(tracks with clips, the SoundFont package's version)``.
    """
    os.makedirs(out, exist_ok=True)
    sf_root, sf_version = fetch(soundfont[0], cache)
    soundfont_path = os.path.join(sf_root, soundfont[1])
    fluidsynth = fluidsynth_command(cache) if any(t.kind == "midi" for t in tracks) else None

    done = {}
    for track, result in process_tracks(tracks, cache, fluidsynth, [soundfont_path] * len(tracks), jobs=jobs):
        done[track.key] = result
    tracks = [t for t in tracks if done[t.key][1]["clips"]]
    folder_of = assign_folders({t.key: len(done[t.key][1]["clips"]) for t in tracks})

    ann_rows, info_rows, source_rows, expected = [], [], [], set()
    clip_id = 0
    for t in tracks:
        src_folder, side = done[t.key]
        folder = folder_of[t.key]
        first = clip_id + 1
        for c in side["clips"]:
            clip_id += 1
            name = clip_file_name(t.artist, t.album, t.track_number, t.title, c["index"])
            mp3_path = f"{folder}/{name}"
            if mp3_path in expected:
                raise SystemExit(f"two clips would share {mp3_path!r}; make the track metadata unique.")
            expected.add(mp3_path)
            dest = os.path.join(out, folder, name)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(os.path.join(src_folder, c["file"]), "rb") as f:
                write_if_changed(dest, f.read())
            tags = clip_tags(c["instruments"], c["bpm"], c["rms_dbfs"])
            ann_rows.append([str(clip_id)] + ["1" if n in tags else "0" for n in TAG_NAMES] + [mp3_path])
            start = int(c["index"] * CLIP_SECONDS)
            info_rows.append([str(clip_id), str(t.track_number), t.title, t.artist, t.album,
                              f"debian:{t.package}={t.version}", str(start), str(int(start + CLIP_SECONDS)),
                              t.member, mp3_path])
        source_rows.append([t.package, t.version, t.member, t.title, t.artist, t.licence, t.kind,
                            f"{first}-{clip_id}", folder])
    # remove clips of an earlier build that are no longer part of the corpus
    for folder in FOLDERS:
        for path in sorted(glob.glob(os.path.join(out, folder, "*.mp3"))):
            if f"{folder}/{os.path.basename(path)}" not in expected:
                os.remove(path)

    write_mtat_table(os.path.join(out, "annotations_final.csv"), ["clip_id", *TAG_NAMES, "mp3_path"], ann_rows)
    write_mtat_table(os.path.join(out, "clip_info_final.csv"),
                     ["clip_id", "track_number", "title", "artist", "album", "url", "segmentStart",
                      "segmentEnd", "original_url", "mp3_path"], info_rows)
    write_mtat_table(os.path.join(out, "SOURCES.tsv"),
                     ["package", "version", "file", "title", "composer", "licence", "kind", "clip_ids", "folder"],
                     source_rows)
    lic = os.path.join(out, "LICENSES")
    os.makedirs(lic, exist_ok=True)
    for package in sorted({t.package for t in tracks} | {soundfont[0]}):
        root, _ = fetch(package, cache)
        src = os.path.join(root, "usr/share/doc", package, "copyright")
        with open(src, "rb") as f:
            write_if_changed(os.path.join(lic, f"{package}.copyright"), f.read())
    return tracks, sf_version


def build(out, cache, *, use_mma=True, jobs=1):
    t_start = time.monotonic()
    os.makedirs(out, exist_ok=True)
    os.makedirs(cache, exist_ok=True)
    tracks, sf_version = assemble(out, cache, corpus_tracks(cache, use_mma=use_mma), SOUNDFONT, jobs=jobs)
    if any(t.package == "warzone2100-music" for t in tracks):
        root, _ = fetch("warzone2100-music", cache)
        for p in sorted(glob.glob(os.path.join(root, WZ_ALBUMS, "*", "license.txt"))):
            with open(p, "rb") as f:
                write_if_changed(os.path.join(out, "LICENSES",
                                              f"warzone2100-music.{os.path.basename(os.path.dirname(p))}.license.txt"),
                                 f.read())
    readme = (
        "# msk development corpus\n\n"
        "Built by msk's scripts/build_dev_corpus.py from Debian packages; MagnaTagATune's layout.\n"
        "Each clip's source, composer and licence: SOURCES.tsv (by clip id range) and clip_info_final.csv;\n"
        "the packages' copyright files: LICENSES/. Rendered with the MuseScore General SoundFont "
        f"({SOUNDFONT[0]} {sf_version}, MIT).\n"
    )
    write_if_changed(os.path.join(out, "README.md"), readme.encode())
    summary(out, time.monotonic() - t_start)


def summary(out, seconds):
    from msk.datasets import load_magnatagatune

    ds = load_magnatagatune(out, n_tags=len(TAG_NAMES))
    artists, counts = np.unique(ds.artists, return_counts=True)
    size = sum(os.path.getsize(p) for p in ds.paths)
    print(f"corpus: {out}")
    print(f"clips: {len(ds)} ({size / 2**20:.1f} MiB of MP3), built in {seconds:.0f} s")
    print("splits: " + ", ".join(f"{s} {np.sum(ds.splits == s)}" for s in ds.split_names))
    print(f"artists: {len(artists)}, with >= 5 clips: {int(np.sum(counts >= 5))}")
    for a, c in sorted(zip(artists.tolist(), counts.tolist()), key=lambda x: (-x[1], x[0])):
        print(f"  {c:4d}  {a}")
    print("tag counts (all / train / valid / test):")
    for j, name in enumerate(ds.tag_names):
        per = [int(ds.tags[ds.splits == s, j].sum()) for s in ("train", "valid", "test")]
        print(f"  {name:12s} {int(ds.tags[:, j].sum()):4d} / {per[0]} / {per[1]} / {per[2]}")
    print(f"tags with >= 30 positives: {int(np.sum(ds.tags.sum(axis=0) >= 30))}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See scripts/README_corpus.md for sources, licences and derivations.")
    p.add_argument("--out", default=os.path.expanduser("~/.cache/msk/devcorpus"),
                   help="corpus folder (MagnaTagATune layout) [%(default)s]")
    p.add_argument("--cache", default=os.path.expanduser("~/.cache/msk/debcache"),
                   help="downloads, unpacked packages and per-track work [%(default)s]")
    p.add_argument("--no-mma", action="store_true", help="leave out the MMA groove renders")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="tracks processed at once (the result does not depend on it) [%(default)s]")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    build(os.path.abspath(args.out), os.path.abspath(args.cache), use_mma=not args.no_mma, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
