#!/usr/bin/env python3
"""Build msk's held-out corpus: independent, labelled, openly licensed music in MagnaTagATune's layout.

One command builds it from nothing on a Debian machine (root, network to Debian's archive)::

    python scripts/build_heldout_corpus.py --out ~/.cache/msk/heldout --cache ~/.cache/msk/debcache

and ``msk.datasets.load_magnatagatune(out)`` reads it. It is built from the three Debian packages
that msk's other data sets keep reserved for this purpose (``build_pool.RESERVED``; the
development corpus does not read them either): no composition, no source package and no
SoundFont here is in the development corpus or in the unsupervised training pool. The held-out
corpus is never used to choose anything (features, models, parameters, thresholds); it is only
evaluated on, to report.

Everything else is the development corpus's own derivation, by its own code
(``scripts/build_dev_corpus.py``, imported): download and unpack with ``apt-get download`` and
``dpkg-deb -x`` into the shared ``--cache``, fluidsynth unpacked from Debian, rendering (44.1 kHz,
gain 0.5, cut 1 s after the score's end, peak-normalised to -1 dBFS), 16 kHz mono, consecutive
29.1 s clips (at most 6 per track, silent ones dropped), 32 kbit/s MP3, tags (instrument tags
from the notes that sound in each clip, tempo tag from the score's tempo map, loudness tag from
the clip's RMS level), folders (all clips of a track in one folder ``0``-``f``), the tables
``annotations_final.csv``, ``clip_info_final.csv`` and ``SOURCES.tsv``, and ``LICENSES/``
(``build_dev_corpus.assemble``). A re-run skips finished tracks and rewrites nothing.

Sources (MIDI only, every track with a credited composer = artist)
------------------------------------------------------------------
* ``openttd-openmsx`` - OpenMSX, the base music set of OpenTTD (GPL-2). Titles from the
  ``[names]`` section of ``openmsx.obm``; composers from the "Musicians" list in section
  "Credits" of ``readme.txt.gz`` (``openmsx_credits``, ``openmsx_composers``).
* ``freedoom`` - the music lumps (``D_*``, standard MIDI files) of ``freedoom1.wad`` and
  ``freedoom2.wad`` (BSD-3-Clause). The Debian package has no per-track credits; FREEDOOM below
  holds upstream's, for the lumps whose bytes upstream's credited files match exactly.

Rendered with the Fluid R3 General MIDI SoundFont (``fluid-soundfont-gm``, MIT), a SoundFont
that neither the development corpus (MuseScore General) nor the pool renders with.

Credits (real metadata only; a track whose composer is not established is left out, with a
message naming it and the reason)
-------------------------------------------------------------------------------------------------
* OpenMSX: the readme lists musicians, each under the titles they wrote; a title is matched to
  the file whose ``[names]`` title is the same up to case and punctuation, else to the one file
  whose title is at least 90 % similar (difflib: the readme's "Unidentified Flying Scotsman" is
  the obm's "Unidentifed Flying Scotsman"). "All 'X' tracks" credits every file in the slots of
  the OpenTTD music style X (OPENMSX_STYLES: 'Modern' is OpenTTD's "New Style", the obm's
  ``new_*`` slots; 'Ezy Street' the ``ezy_*`` slots). A credit whose titles name no file but whose
  musician line names one has its two lines swapped in the readme (0.4.2 lists "Trolley Trev"
  over "Keep on Rolling"); it is read the other way round. A URL in angle brackets and a
  nickname in parentheses after a musician's name are dropped. A file credited to two
  musicians, or to none, is left out.
* Freedoom: lumps are read from the WAD directory (``read_wad_directory``, every claim checked
  against the file's size). Byte-identical lumps are one track (freedoom1's D_E1M5 and D_E2M6).
  A lump is used only if its name is in FREEDOOM with the SHA-256 of its bytes; FREEDOOM was
  made, once, from upstream's git history, not at build time: a lump's credit is the line of
  upstream's ``CREDITS-MUSIC`` (added in 2023, after 0.12.1) for the slot that a byte-identical
  ``musics/d_*.mid`` (same git blob id as ``git hash-object`` of the lump) occupies, in the
  newest commit that has both (later commits corrected earlier credit lines). Composer = the
  first-named person of the credit ("X & Y", "X and Y", "X, remix of T by Z" and "X, originally
  by Z" give X), without the nickname in double quotes (as the development corpus drops
  nicknames). Title = the quoted title, else the file name the credit gives, else "untitled".
  Lumps of 0.12.1 that upstream replaced before ``CREDITS-MUSIC`` existed have no verifiable
  credit and are left out.
"""

import argparse
import difflib
import gzip
import hashlib
import os
import re
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import build_dev_corpus as corpus  # noqa: E402  (the corpus builder owns the shared machinery)
import build_pool as pool  # noqa: E402  (the pool builder owns the list of reserved packages)

# The packages read, with the licence of the material used from each (from its copyright file).
PACKAGES = {
    "openttd-openmsx": "GPL-2",
    "freedoom": "BSD-3-Clause (Freedoom's licence)",
    "fluid-soundfont-gm": "MIT (SoundFont used for rendering)",
}
SOUNDFONT = ("fluid-soundfont-gm", "usr/share/sounds/sf2/FluidR3_GM.sf2")

OPENMSX_DIR = "usr/share/games/openttd/baseset/openmsx"
OPENMSX_OBM = OPENMSX_DIR + "/openmsx.obm"
OPENMSX_README = "usr/share/doc/openttd-openmsx/readme.txt.gz"
OPENMSX_ALBUM = "OpenMSX"
# OpenTTD's music slots: theme, old_0-9 ("Old Style"), new_0-9 ("New Style", which OpenMSX's readme
# calls 'Modern') and ezy_0-9 ("Ezy Street"); the obm's [files] section fills them.
OPENMSX_STYLES = {"Modern": "new_", "Ezy Street": "ezy_"}
TITLE_MIN_SIMILARITY = 0.9

FREEDOOM_WADS = {
    "usr/share/games/doom/freedoom1.wad": "Freedoom: Phase 1",
    "usr/share/games/doom/freedoom2.wad": "Freedoom: Phase 2",
}
WAD_HEADER = struct.Struct("<4sii")  # magic, lump count, directory offset
WAD_ENTRY = struct.Struct("<ii8s")  # offset, size, name (NUL-padded)
WAD_MAGICS = (b"IWAD", b"PWAD")
# Upstream's per-track music credits for the music lumps of Debian's freedoom 0.12.1-2:
# {lump name: (SHA-256 of the lump's bytes, title, composer)}. From upstream's git repository
# (https://github.com/freedoom/freedoom): CREDITS-MUSIC, added in commit 63f08a62e2ca; each lump's
# bytes are identical to the file named in its comment (git hash-object of the lump = the blob id
# at that commit), whose slot's line in that commit's CREDITS-MUSIC is quoted. The commit is the
# newest that has both. Lumps not listed matched no upstream file at any commit with
# CREDITS-MUSIC: D_E1M3, D_E1M5 (= D_E2M6), D_E1M6, D_VICTOR, D_E2M1, D_E2M2, D_E2M4, D_E2M5,
# D_E2M7, D_E2M9, D_BUNNY (freedoom1.wad); D_THE_DA, D_SHAWN, D_DEAD, D_STLKS2, D_SHAWN2,
# D_COUNT2, D_THEDA3, D_OPENIN (freedoom2.wad).
FREEDOOM = {
    # d14dbbee3b6f musics/d_e1m5.mid: E1M5: e1m1.mid by Ralph "Ralphis" Vickers
    "D_E1M1": ("7c3f0d5036b848e7c99149fe1f56c2034e61f4a383a411d5279b2d55e10cd5be", "e1m1.mid", "Ralph Vickers"),
    # d14dbbee3b6f musics/d_e1m2.mid: E1M2: "Look At Me I'm Underhalls Too" by Mark "TheMisterCat" McGill-Smith
    "D_E1M2": ("0a4513acddd7850453f2ad3ecfe09c2058f9e09fcad059a08cd6762d12e11a66",
               "Look At Me I'm Underhalls Too", "Mark McGill-Smith"),
    # d14dbbee3b6f musics/d_e1m4.mid: E1M4: "Flood the City" by Kevin "Velvetic" Martins & Jonathan "julnen" Martins
    "D_E1M4": ("f3ae96be205d8cd3a73370df40ed4632eb25ee8c8f4793af73c0af19401a09b3", "Flood the City", "Kevin Martins"),
    # d14dbbee3b6f musics/d_map12.mid: MAP12: "Sewers" by Discoholic, remix of "Wasteland Scavengers" by Samuel
    #   "Blastfrog" Oliver
    "D_E1M7": ("0c9383938ce15507886b3c5982dbc883cc5021ac9ea6f913d6120e9a716c1ac0", "Sewers", "Discoholic"),
    # d14dbbee3b6f musics/d_e1m8.mid: E1M8: "On the Next Day" by Kevin "Velvetic" Martins
    "D_E1M8": ("b9081b5a0062d528bfca15043f7ff74e17f3d521c18b964aaea666b71c408ff6",
               "On the Next Day", "Kevin Martins"),
    # d64505ea657b musics/d_e1m5.mid: E1M5: "The Raging Sun" by Kevin "Velvetic" Martins & Jonathan "julnen" Martins
    "D_E1M9": ("9c04300d4c7ab4d4d1e26bf427c254dcf02166398e5425c62753e8ea54356354", "The Raging Sun", "Kevin Martins"),
    # e5614b4e6bc1 musics/d_inter.mid: Intermission: "Music for Freedoom 10" by Jeremy "Vandalorian" Emerson
    "D_INTER": ("221cea3b6785992b085dd8271c37ca5b1c75170a13b68cd46e184880aaaad24a",
               "Music for Freedoom 10", "Jeremy Emerson"),
    # 952c0e1a5672 musics/d_intro.mid: Title: untitled by Tyler "Picklehammer" Pantella
    "D_INTRO": ("d52b8e77d97acf7cbaeaba9fb09dadb52985b63f441061aadae98c9d82fd6d58", "untitled", "Tyler Pantella"),
    # 952c0e1a5672 musics/d_introa.mid: Title (OPL): "I Hate Fredrik Johansson" by Toby "Tobester" Collins Jr.
    "D_INTROA": ("6aa168efcdc775067fc942dc2ccf08a9c0ad6c5dfe725d77b250a344eadb1aa2",
               "I Hate Fredrik Johansson", "Toby Collins Jr."),
    # d14dbbee3b6f musics/d_e1m3.mid: E1M3: "Alone with Colors" by Kevin "Velvetic" Martins & Jonathan "julnen"
    #   Martins
    "D_E2M3": ("5b431b1046603e81816cd9d5d07e4af62263c6745870766f194cefa802c3d747",
               "Alone with Colors", "Kevin Martins"),
    # e00c9f8010a5 musics/d_dm04.mid: DM04: "Pit" by Anthony "Ajanddino" Pierce
    "D_E2M8": ("7c2ee67ec35b53fb91ae4ab42eff7b0830b6872e1418dc88098f833ebd788aa7", "Pit", "Anthony Pierce"),
    # d14dbbee3b6f musics/d_e3m1.mid: E3M1: "Intrare In Infernum" by Lola "BlueWorrior" Harvey
    "D_E3M1": ("57c6771cae752377e051f13f3ffb21a8f4302787837462db4cad0230745ffad2",
               "Intrare In Infernum", "Lola Harvey"),
    # d14dbbee3b6f musics/d_e3m2.mid: E3M2: "The Long Road" by Lola "BlueWorrior" Harvey
    "D_E3M2": ("a0c96fb09a4a074c5079d0e54fefc028d621df35238b6c01e7b4b949f1321070", "The Long Road", "Lola Harvey"),
    # d14dbbee3b6f musics/d_e3m3.mid: E3M3: "Wrought Havoc" by Lola "BlueWorrior" Harvey
    "D_E3M3": ("1f6abf92a223fb153147a4bb345b2b94c2a6e7f2e98217fa22ea59ac603453bf", "Wrought Havoc", "Lola Harvey"),
    # d14dbbee3b6f musics/d_e3m4.mid: E3M4: "Cautious Progress" by Lola "BlueWorrior" Harvey
    "D_E3M4": ("b1121cbf627fa7f229916513c69bc63a67fdb43a7282153ecb1bc2ef086226ed",
               "Cautious Progress", "Lola Harvey"),
    # d14dbbee3b6f musics/d_e3m5.mid: E3M5: "Scorned by Flesh" by Lola "BlueWorrior" Harvey
    "D_E3M5": ("01fee021e308eda248fe235923dffd891674a57e147b2c1d20632cfe61a5de98", "Scorned by Flesh", "Lola Harvey"),
    # d14dbbee3b6f musics/d_e3m6.mid: E3M6: "Soul Banisher" by Lola "BlueWorrior" Harvey
    "D_E3M6": ("b4de245e54f065755dbe899b4d16afd5ba5dd99f8786c75705073da70d1fc7e1", "Soul Banisher", "Lola Harvey"),
    # d14dbbee3b6f musics/d_e3m7.mid: E3M7: "Ultamatum Infurnus" by Lola "BlueWorrior" Harvey
    "D_E3M7": ("a2a916d65badfb30b72061199fbccf0b7d3ed9ea56703e18132f48b096c989b6",
               "Ultamatum Infurnus", "Lola Harvey"),
    # d14dbbee3b6f musics/d_e3m8.mid: E3M8: "The Zenith" by Lola "BlueWorrior" Harvey
    "D_E3M8": ("a0acf8021f0387bab3e385d74cdb93fe9aa5a833b33c9cd55053369f853a3c8b", "The Zenith", "Lola Harvey"),
    # 8d8dffda7435 musics/d_e3m9.mid: E3M9: "Lipstick" by Jeremy "Vandalorian" Emerson
    "D_E3M9": ("e880c82d6a2dbf7eeced81d38357fe79355bca084486befc0adab4d126983a8c", "Lipstick", "Jeremy Emerson"),
    # d14dbbee3b6f musics/d_read_m.mid: Story: dave3d07.mid by jute
    "D_READ_M": ("8945356a00fdbfb8cad017260ffa521445a4eb1a85c8265249a5a24ee41f5a0b", "dave3d07.mid", "jute"),
    # 952c0e1a5672 musics/d_dm2ttl.mid: Title: untitled by Tyler "Picklehammer" Pantella
    "D_DM2TTL": ("1e9eafe84dfc78e750561978dbe60c466ce4c05c88f31ed31d10c2ac92fb6090", "untitled", "Tyler Pantella"),
    # 4487eb0dee47 musics/d_dm2int.mid: Intermission: "Burn The Bodies" by Tyler "Picklehammer" Pantella
    "D_DM2INT": ("c025087e859d9f390c4dbb175c04e458fc3e00e731bcb761086ac9c996668910",
               "Burn The Bodies", "Tyler Pantella"),
    # d14dbbee3b6f musics/d_map01.mid: MAP01: "Not My First Rodeo..." by Lola "BlueWorrior" Harvey
    "D_RUNNIN": ("d63d4caec74dafe0604d6b024789cf826cea5aaff43a15e0cb5c01172b9daf83",
               "Not My First Rodeo...", "Lola Harvey"),
    # d14dbbee3b6f musics/d_map02.mid: MAP02: "Dark Underworld" by Lola "BlueWorrior" Harvey
    "D_STALKS": ("5ddc052d57820399fbfb838a3dba40d50a7488c07c9db75519239203f9b80e10",
               "Dark Underworld", "Lola Harvey"),
    # d14dbbee3b6f musics/d_map03.mid: MAP03: "Demon Dance" by Discoholic
    "D_COUNTD": ("372f725d6fd89f94499a0f598558b9437d62c966d5b9d841aece5e9aae9fba63", "Demon Dance", "Discoholic"),
    # d14dbbee3b6f musics/d_map10.mid: MAP10: "Soviet Porno" by Jeremy "Vandalorian" Emerson
    "D_BETWEE": ("33369fd083d3ac1413c96f8e7b6cd9ffabeb5f997277479e57f08d5ac2719a87",
               "Soviet Porno", "Jeremy Emerson"),
    # d14dbbee3b6f musics/d_map05.mid: MAP05: "Under Maintenance" by Lola "BlueWorrior" Harvey
    "D_DOOM": ("92fd8b1b34f33540372a7c3ac9176e909a79b2877805b11307ce9fdb3903adfe",
               "Under Maintenance", "Lola Harvey"),
    # d14dbbee3b6f musics/d_map08.mid: MAP08: "Syntax Error" by Lola "BlueWorrior" Harvey
    "D_DDTBLU": ("d89650d034a21e1db42cdf8aa50cda5e8691146b73df640e0c7ecd533c5e56d5", "Syntax Error", "Lola Harvey"),
    # d14dbbee3b6f musics/d_map09.mid: MAP09: "Terrible Secrets" by Lola "BlueWorrior" Harvey
    "D_IN_CIT": ("18738ce63c1872796d09c38dd89306fa38f984463153f3d439a4d2a4facca879",
               "Terrible Secrets", "Lola Harvey"),
    # 35c88143bdd2 musics/d_map12.mid: MAP12: ? by Bradley "BobFromReboot" Lavigne
    "D_THEDA2": ("e8a114266d05ae2c8e800b03c50661a35f3380e932d99169b27cee2445f30947", "untitled", "Bradley Lavigne"),
    # d14dbbee3b6f musics/d_map13.mid: MAP13: "Fear" by Discoholic
    "D_DOOM2": ("4e75600beacb5d86bdcdd06054bfb8b8d1c49a458d26f94f4281b00b9802cb8d", "Fear", "Discoholic"),
    # d14dbbee3b6f musics/d_map14.mid: MAP14: "About the Summer" by Kevin "Velvetic" Martins & Jonathan "julnen"
    #   Martins
    "D_DDTBL2": ("0403bcab693d50d58e8826f4042c3acd8b43081c3dff224ad597344a5aad20f4",
               "About the Summer", "Kevin Martins"),
    # d14dbbee3b6f musics/d_map15.mid: MAP15: "Backpack of Shells" by Lola "BlueWorrior" Harvey
    "D_RUNNI2": ("695e5838f0662329f9deec30ce38f40acce8f92593975d81134dec4fd4b34000",
               "Backpack of Shells", "Lola Harvey"),
    # d14dbbee3b6f musics/d_map16.mid: MAP16: "Reflection" by Scragadelic
    "D_DEAD2": ("3189e7d30e99281bb0139fbe4b1055c76784be17c934e3b533940432a6658f8d", "Reflection", "Scragadelic"),
    # d14dbbee3b6f musics/d_map17.mid: MAP17: "Mow Them Down!" by Lola "BlueWorrior" Harvey
    "D_STLKS3": ("d559f0ae68df98dcfee18409aab524cbdd144c21cb1d83aa5f905a65bcc05427", "Mow Them Down!", "Lola Harvey"),
    # d14dbbee3b6f musics/d_map18.mid: MAP18: "Realistic Approach" by Kevin "Velvetic" Martins
    "D_ROMERO": ("b89beb0935a63b51d3904b8ba75b820c458581e3129f93e20754204eae35d698",
               "Realistic Approach", "Kevin Martins"),
    # a66619a60f79 musics/d_map20.mid: MAP20: dave3d05.mid by jute
    "D_MESSAG": ("a2f150b3ed44d06238a8b4d27eda6414a87d6f9bf90b35c1ad4a270c7b5d1389", "dave3d05.mid", "jute"),
    # 68626d8340bd musics/d_map29.mid: MAP29: "Mists Over the Mire" by Tyler "Picklehammer" Pantella
    "D_DDTBL3": ("a02df2fb74d21cdb99d53ccf4192a677ee853edd8f6fd9b2f9d97b6d4041c1fc",
               "Mists Over the Mire", "Tyler Pantella"),
    # e85e5931d13f musics/d_dm26.mid: DM26: dave3d09.mid by jute
    "D_AMPIE": ("a9a2ce6e7da0c82780052c7f6b0117ae66ab74a8bf30e4ba2eda1750c0ae52ab", "dave3d09.mid", "jute"),
    # d14dbbee3b6f musics/d_map25.mid: MAP25: "I Sought Wisdom in the Chalice But There Was None" by Jeremy
    #   "Vandalorian" Emerson
    "D_ADRIAN": ("96b12c2c5e5a0c7547b2c38c19cf3b136f23be87ba2d09d2b9d1b72db4e24364",
               "I Sought Wisdom in the Chalice But There Was None", "Jeremy Emerson"),
    # 0e2722ffb405 musics/d_e1m1.mid: E1M1: "Crawl" by Jeremy "Vandalorian" Emerson
    "D_MESSG2": ("d39e02dfd85ab886a75699b8bc41a5951e1f195b11892e22a3da8277d95e5737", "Crawl", "Jeremy Emerson"),
    # d14dbbee3b6f musics/d_map27.mid: MAP27: "Dreamcatcher (Black and Blue)" by Kevin "Velvetic" Martins & Jonathan
    #   "julnen" Martins
    "D_ROMER2": ("602b9b65093ddf44ae49cd42e6e4bc06293be9d52d3ceff90ff803ed5416046d",
               "Dreamcatcher (Black and Blue)", "Kevin Martins"),
    # d14dbbee3b6f musics/d_map28.mid: MAP28: "Skull Underfoot" by Lola "BlueWorrior" Harvey
    "D_TENSE": ("757b058bcffff577b3efe05b13fbf0951d96e426741c633f31fbdae3e7d96de4", "Skull Underfoot", "Lola Harvey"),
    # 69166c6728d4 musics/d_map29.mid: MAP29: freedoom.mid by Varis Alpha
    "D_SHAWN3": ("9d68bc50f4f6d1e295f70e869f6112e8259383f8ce78af793cd757a0cecd7e1e", "freedoom.mid", "Varis Alpha"),
    # d14dbbee3b6f musics/d_map31.mid: MAP31: "The Machine" by Lola "BlueWorrior" Harvey
    "D_EVIL": ("b6713685e5ca1455b8dd4673b401142a1ea9f0d9f950c43188b1249194b3c547", "The Machine", "Lola Harvey"),
    # d14dbbee3b6f musics/d_map32.mid: MAP32: "Black Mountain" by Kevin "Velvetic" Martins & Jonathan "julnen" Martins
    "D_ULTIMA": ("da0e1db300f8bdc797f7824312bb0f986e90a2aad27dafdb862a14478d76c84c",
               "Black Mountain", "Kevin Martins"),
}


# ----------------------------------------------------------------------------------------------
# Pure parts (tested in tests/test_heldout.py)
# ----------------------------------------------------------------------------------------------

def check_independent():
    """Raise ValueError unless the held-out packages are reserved and used by no other data set.

    Every package read here must be in the pool's RESERVED list (which the pool refuses), and
    none may be a source or SoundFont of the development corpus or of the pool.
    """
    used = set(corpus.PACKAGES) | {corpus.SOUNDFONT[0]} | set(corpus.DISCOVER)
    used |= {s.package for s in pool.SOURCES} | {sf.package for sf in pool.SOUNDFONTS}
    for package in sorted(PACKAGES):
        if package not in pool.RESERVED:
            raise ValueError(f"package {package!r} is not reserved for independent evaluation "
                             "(build_pool.RESERVED); the held-out corpus must not read it")
        if package in used:
            raise ValueError(f"package {package!r} is used by the development corpus or the pool; "
                             "the held-out corpus must not read it")
    if SOUNDFONT[0] not in PACKAGES:
        raise ValueError(f"the SoundFont's package {SOUNDFONT[0]!r} is not one of PACKAGES")


def read_wad_directory(path):
    """The directory of a WAD file: ``[(name, offset, size), ...]`` in the file's order.

    The 12-byte header (magic ``IWAD`` or ``PWAD``, lump count, directory offset) and every
    16-byte directory entry (offset, size, name) are checked against the file's real size before
    anything is read or allocated from them. Raises ValueError naming the file when a claim does
    not fit.
    """
    with open(path, "rb") as f:
        real = os.fstat(f.fileno()).st_size
        if real < WAD_HEADER.size:
            raise ValueError(f"{path}: not a WAD file: {real} bytes, shorter than the {WAD_HEADER.size}-byte header")
        magic, count, offset = WAD_HEADER.unpack(f.read(WAD_HEADER.size))
        if magic not in WAD_MAGICS:
            raise ValueError(f"{path}: not a WAD file: magic {magic!r}, expected b'IWAD' or b'PWAD'")
        if count < 0 or offset < 0:
            raise ValueError(f"{path}: the header claims {count} lumps listed at byte {offset}; "
                             "both must be non-negative")
        if offset > real or count > (real - offset) // WAD_ENTRY.size:
            raise ValueError(f"{path}: the header claims {count} lumps listed at byte {offset} "
                             f"({count} x {WAD_ENTRY.size} bytes), beyond the end of the {real}-byte file")
        f.seek(offset)
        table = f.read(count * WAD_ENTRY.size)
    if len(table) != count * WAD_ENTRY.size:
        raise ValueError(f"{path}: the file changed while it was read")
    entries = []
    for i, (start, size, raw) in enumerate(WAD_ENTRY.iter_unpack(table)):
        name = raw.split(b"\0", 1)[0].decode("latin-1")
        if start < 0 or size < 0 or start > real or size > real - start:
            raise ValueError(f"{path}: lump {i} ({name!r}) claims {size} bytes at byte {start}, "
                             f"outside the {real}-byte file")
        entries.append((name, start, size))
    return entries


def read_wad_music(path):
    """The music lumps of a WAD file: ``([(name, bytes), ...], [(name, reason), ...])``.

    A music lump is one whose name starts with ``D_``; it is kept when it is a standard MIDI file
    (starts with ``MThd``) with a name that is safe as a file name, else listed with the reason.
    """
    music, skipped = [], []
    entries = [e for e in read_wad_directory(path) if e[0].startswith("D_")]
    with open(path, "rb") as f:
        for name, start, size in entries:
            f.seek(start)
            data = f.read(size)
            if len(data) != size:
                raise ValueError(f"{path}: the file changed while it was read")
            if not data.startswith(b"MThd"):
                skipped.append((name, f"not a standard MIDI file (starts with {data[:4]!r})"))
            elif not re.fullmatch(r"[A-Za-z0-9_]{1,8}", name):
                skipped.append((name, "lump name is not usable as a file name"))
            else:
                music.append((name, data))
    return music, skipped


def freedoom_selection(lumps, table=None):
    """Which music lumps become tracks, and with which credit.

    ``lumps`` is ``[(wad, name, bytes), ...]`` in WAD order. Byte-identical lumps are one
    track, named by the first; its credit is the ``table`` entry (default FREEDOOM) of one of
    its names whose SHA-256 is that of the bytes. Returns ``(kept, left_out)``: ``kept`` is
    ``[(wad, name, bytes, title, composer, duplicate names), ...]`` in order, ``left_out`` is
    ``[(wad, name, reason), ...]``.
    """
    table = FREEDOOM if table is None else table
    groups = {}
    for wad, name, data in lumps:
        groups.setdefault(hashlib.sha256(data).hexdigest(), []).append((wad, name, data))
    kept, left_out = [], []
    for sha, members in groups.items():
        wad, name, data = members[0]
        names = [m[1] for m in members]
        credit = next((table[n] for n in names if n in table and table[n][0] == sha), None)
        if credit is None:
            listed = [n for n in names if n in table]
            reason = (f"its bytes differ from the credited upstream file (sha256 {sha})" if listed
                      else "no upstream credit for these bytes (not in FREEDOOM)")
            left_out.append((wad, name, reason))
        else:
            kept.append((wad, name, data, credit[1], credit[2], names[1:]))
        for other_wad, other, _ in members[1:]:
            left_out.append((other_wad, other, f"the same bytes as {name} (one track)"))
    return kept, left_out


def parse_obm(text):
    """The sections of an OpenTTD base set file: ``{section: [(key, value), ...]}`` in order."""
    sections, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(.+)\]", line)
        if m:
            current = sections.setdefault(m.group(1).strip(), [])
        elif "=" in line and current is not None:
            key, value = line.split("=", 1)
            current.append((key.strip(), value.strip()))
    return sections


def musician_name(text):
    """A credited name without a trailing ``<URL>`` or ``(nickname)``."""
    text = re.sub(r"\s*<[^>]*>\s*$", "", text.strip())
    return re.sub(r"\s*\([^)]*\)\s*$", "", text).strip()


def openmsx_credits(readme):
    """``[(musician, [title line, ...]), ...]`` from the Musicians list of a readme's Credits.

    The list follows a ``Musicians:`` line in the section whose heading is ``<n> Credits``
    (underlined with ``=``) and ends at a blank line: lines at the list's first indentation are
    titles, more deeply indented lines the musician who wrote the titles above them (a second
    musician line adds to the same credit; the first named is used).
    """
    m = re.search(r"^\d+\s+Credits\s*\n=+\s*$", readme, re.M)
    if m is None:
        raise ValueError("the readme has no 'Credits' section")
    section = readme[m.end():]
    nxt = re.search(r"^\d+\s+\S.*\n=+\s*$", section, re.M)
    section = section[: nxt.start()] if nxt else section
    lines = section.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Musicians:")
    except StopIteration:
        raise ValueError("the readme's Credits section has no 'Musicians:' list") from None
    credits, titles, title_indent, last_was_musician = [], [], None, False
    for line in lines[start + 1:]:
        if not line.strip():
            break
        indent = len(line) - len(line.lstrip())
        if title_indent is None:
            title_indent = indent
        if indent <= title_indent:
            if last_was_musician:
                titles = []
            titles.append(line.strip())
            last_was_musician = False
        elif last_was_musician:
            continue  # a second musician for the same titles: the first named is used
        else:
            credits.append((musician_name(line), titles))
            last_was_musician = True
    return credits


def _norm(text):
    return re.sub(r"[^a-z0-9]+", "", text.lower())


def match_title(title, names):
    """The file whose title in ``names`` ({file: title}) is ``title``, or None.

    Equal up to case and punctuation, else the only title at least TITLE_MIN_SIMILARITY
    similar (difflib's ratio of the normalised texts).
    """
    target = _norm(title)
    exact = [f for f, t in names.items() if _norm(t) == target]
    if exact:
        return exact[0] if len(exact) == 1 else None
    close = [f for f, t in names.items()
             if difflib.SequenceMatcher(None, target, _norm(t)).ratio() >= TITLE_MIN_SIMILARITY]
    return close[0] if len(close) == 1 else None


def openmsx_composers(credits, slots, names, styles=OPENMSX_STYLES):
    """Each file's composer: ``({file: composer}, [message, ...])``.

    ``credits`` as ``openmsx_credits`` returns them; ``slots`` is the obm's ``[files]`` section
    (``{slot: file}``), ``names`` its ``[names]`` section (``{file: title}``). Files credited to
    two different musicians are not in the result (a message says so).
    """
    messages = []
    credited = {}

    def files_of(line):
        m = re.fullmatch(r"All '(.+)' tracks", line)
        if m:
            if m.group(1) not in styles:
                raise ValueError(f"the readme credits all {m.group(1)!r} tracks, a style not in OPENMSX_STYLES")
            prefix = styles[m.group(1)]
            return sorted(f for s, f in slots.items() if s.startswith(prefix))
        f = match_title(line, names)
        return [f] if f else []

    for musician, titles in credits:
        found = {line: files_of(line) for line in titles}
        if not any(found.values()) and len(titles) == 1 and files_of(musician):
            messages.append(f"openttd-openmsx: the readme lists {titles[0]!r} over {musician!r}; read as "
                            f"{musician!r} by {titles[0]} (the only reading that names a track)")
            musician, found = titles[0], {musician: files_of(musician)}
        for line, files in found.items():
            if not files:
                messages.append(f"openttd-openmsx: the credit {line!r} ({musician}) names no file")
            for f in files:
                credited.setdefault(f, []).append(musician)
    composers = {}
    for f, who in sorted(credited.items()):
        if len(set(who)) > 1:
            messages.append(f"openttd-openmsx: left out {f}: credited to {', '.join(sorted(set(who)))}")
        else:
            composers[f] = who[0]
    return composers, messages


# ----------------------------------------------------------------------------------------------
# Track discovery
# ----------------------------------------------------------------------------------------------

def fetch_heldout(package, cache):
    """``build_dev_corpus.fetch`` for one of the held-out packages (and no other)."""
    if package not in PACKAGES:
        raise ValueError(f"package {package!r} is not a held-out corpus package ({', '.join(PACKAGES)})")
    return corpus.fetch(package, cache)


def openmsx_tracks(cache, extra):
    root, version = fetch_heldout("openttd-openmsx", cache)
    with open(os.path.join(root, OPENMSX_OBM), encoding="utf-8") as f:
        obm = parse_obm(f.read())
    with gzip.open(os.path.join(root, OPENMSX_README), "rt", encoding="utf-8", errors="replace") as f:
        credits = openmsx_credits(f.read())
    slots = dict(obm.get("files", []))
    names = dict(obm.get("names", []))
    composers, messages = openmsx_composers(credits, slots, names)
    for message in messages:
        corpus.log(message)
    out = []
    for number, (slot, name) in enumerate(slots.items(), 1):
        path = os.path.join(root, OPENMSX_DIR, name)
        if not os.path.exists(path):
            raise SystemExit(f"openttd-openmsx {version}: {OPENMSX_OBM} lists {name}, which the package lacks")
        if name not in composers:
            corpus.log(f"openttd-openmsx: left out {name}: no composer credited in {OPENMSX_README}")
            continue
        member = os.path.relpath(path, root)
        out.append(corpus.Track(f"openttd-openmsx:{member}", "openttd-openmsx", version, member, path,
                                names.get(name, name), composers[name], OPENMSX_ALBUM,
                                PACKAGES["openttd-openmsx"], "midi", track_number=number, extra=dict(extra)))
    return out


def freedoom_tracks(cache, extra):
    root, version = fetch_heldout("freedoom", cache)
    lumps, numbers = [], {}
    for wad in FREEDOOM_WADS:
        music, skipped = read_wad_music(os.path.join(root, wad))
        for name, reason in skipped:
            corpus.log(f"freedoom: left out {wad}/{name}: {reason}")
        for number, (name, data) in enumerate(music, 1):
            lumps.append((wad, name, data))
            numbers[(wad, name)] = number
    kept, left_out = freedoom_selection(lumps)
    for wad, name, reason in left_out:
        corpus.log(f"freedoom: left out {wad}/{name}: {reason}")
    out = []
    for wad, name, data, title, composer, _ in kept:
        stem = os.path.splitext(os.path.basename(wad))[0]
        path = os.path.join(cache, "heldout-lumps", stem, f"{name}.mid")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        corpus.write_if_changed(path, data)
        member = f"{wad}/{name}"
        out.append(corpus.Track(f"freedoom:{member}", "freedoom", version, member, path, title, composer,
                                FREEDOOM_WADS[wad], PACKAGES["freedoom"], "midi",
                                track_number=numbers[(wad, name)], extra=dict(extra)))
    return out


def heldout_tracks(cache, soundfont_version):
    """Every candidate track, sorted by key (``package:path inside the package``)."""
    extra = {"soundfont": f"{SOUNDFONT[0]}={soundfont_version}"}
    return sorted(openmsx_tracks(cache, extra) + freedoom_tracks(cache, extra), key=lambda t: t.key)


# ----------------------------------------------------------------------------------------------
# Assembly
# ----------------------------------------------------------------------------------------------

def readme_text(soundfont_version):
    return (
        "# msk held-out corpus\n\n"
        "Built by msk's scripts/build_heldout_corpus.py from Debian packages; MagnaTagATune's layout.\n"
        "An independent evaluation set: its packages and SoundFont are in no other msk data set, and it\n"
        "is never used to choose anything, only to report.\n"
        "Each clip's source, composer and licence: SOURCES.tsv (by clip id range) and clip_info_final.csv;\n"
        "the packages' copyright files: LICENSES/. Rendered with the Fluid R3 General MIDI SoundFont "
        f"({SOUNDFONT[0]} {soundfont_version}, MIT).\n"
        "Freedoom's per-track credits come from upstream's CREDITS-MUSIC (see scripts/README_heldout.md).\n"
    )


def build(out, cache, *, jobs=1):
    t_start = time.monotonic()
    check_independent()
    os.makedirs(out, exist_ok=True)
    os.makedirs(cache, exist_ok=True)
    _, sf_version = fetch_heldout(SOUNDFONT[0], cache)
    tracks, sf_version = corpus.assemble(out, cache, heldout_tracks(cache, sf_version), SOUNDFONT, jobs=jobs)
    corpus.write_if_changed(os.path.join(out, "README.md"), readme_text(sf_version).encode())
    per_package = {p: sum(t.package == p for t in tracks) for p in PACKAGES if p != SOUNDFONT[0]}
    print(f"tracks: {len(tracks)} (" + ", ".join(f"{p} {n}" for p, n in per_package.items()) + ")")
    corpus.summary(out, time.monotonic() - t_start)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="See scripts/README_heldout.md for sources, credits and licences.")
    p.add_argument("--out", default=os.path.expanduser("~/.cache/msk/heldout"),
                   help="corpus folder (MagnaTagATune layout) [%(default)s]")
    p.add_argument("--cache", default=os.path.expanduser("~/.cache/msk/debcache"),
                   help="downloads, unpacked packages and per-track work, shared with "
                        "build_dev_corpus.py [%(default)s]")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="tracks processed at once (the result does not depend on it) [%(default)s]")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    build(os.path.abspath(args.out), os.path.abspath(args.cache), jobs=args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
