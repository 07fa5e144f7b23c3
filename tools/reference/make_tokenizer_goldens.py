#!/usr/bin/python3
"""Golden data for easel's CLIP tokenizer, text cleanup and AUTOMATIC1111 prompt parsing.

    source /work/refenv/env.sh
    /usr/bin/python3 tools/reference/make_tokenizer_goldens.py            # tests/golden/data/tokenizer_*.json
    /usr/bin/python3 tools/reference/make_tokenizer_goldens.py --tables   # src/models/clip/text_clean_tables.cpp
    options: --vocab-gz PATH (default data/clip/bpe_simple_vocab_16e6.txt.gz, the vocabulary easel builds in)
             --a1111 DIR     a checkout of AUTOMATIC1111/stable-diffusion-webui (only modules/prompt_parser.py and
                             modules/sd_hijack_clip.py are read); without it the A1111 goldens are not rewritten

tokenizer_clip.json: for every prompt in PROMPTS, the ids that transformers' slow CLIPTokenizer gives (with ftfy
installed, so ftfy.fix_text runs first) as tok(prompt)["input_ids"]: BOS + ids + EOS, untruncated, unpadded. Also
the code-point classes the pre-tokenizer regex relies on (`regex` module: \\p{L}, \\p{N}, \\s) and ftfy.fix_text
outputs, so that a failure can be pinned on the cleanup or on the BPE. The vocab.json/merges.txt that
CLIPTokenizer reads are derived here from CLIP's bpe_simple_vocab_16e6.txt.gz, the way CLIP builds its vocabulary,
into a temporary folder; they are never written into the repository.

tokenizer_a1111.json: parse_prompt_attention results and 75-token chunking (ids and multipliers per 77-token chunk,
comma_padding_backtrack 20) from AUTOMATIC1111's own functions, loaded from their source files with stand-ins for
the webui modules they import (they are pure Python).

--tables writes the data tables easel's ftfy port needs (HTML5 entities, single-byte charmaps, the width map and
ftfy's character categories) from Python's own tables and from ftfy 6.1.1, so that they are facts taken from
the reference, not retyped.
"""

import argparse
import gzip
import html.entities
import json
import os
import sys
import tempfile
import types
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
GOLDEN_DIR = os.path.join(ROOT, "tests", "golden", "data")
DEFAULT_GZ = os.path.join(ROOT, "data", "clip", "bpe_simple_vocab_16e6.txt.gz")

# ---------------------------------------------------------------------------------------------------------------
# Prompts. Each one exercises something that has gone wrong in some tokenizer port.

LONG_1 = ", ".join(
    ["masterpiece", "best quality", "ultra-detailed", "illustration", "1girl", "solo", "long hair", "blue eyes",
     "looking at viewer", "smile", "outdoors", "sky", "cloud", "tree", "day", "blush", "open mouth", "dress",
     "flower", "hair ornament"] * 4)
LONG_2 = " ".join(["the quick brown fox jumps over the lazy dog"] * 40)
LONG_3 = "".join(chr(0x4E00 + (i * 37) % 2000) for i in range(200)) + " 東京タワー " * 10

PROMPTS = [
    "",
    " ",
    "     ",
    "\t\n  \r\n",
    "a photo of a cat",
    "A Photo Of A CAT",
    "ALL CAPS PROMPT WITH NUMBERS 123",
    "a photograph of an astronaut riding a horse",
    "masterpiece, best quality, 1girl, solo",
    "portrait of a woman, highly detailed, 8k, trending on artstation",
    "1,024.5 3d 4k 1080p 16:9 2.5D 3.14159 -42 +7 1e10 0x1F",
    "don't it's we're they've I'm you'll he'd DON'T IT'S",
    "rock'n'roll o'clock 'quoted' ''double'' 's 't",
    "cafÃ©",
    "CafÃ© crÃ¨me brÃ»lÃ©e",
    "naÃ¯ve faÃ§ade",
    "Ã la carte",
    "voilÃ le travail",
    "â€œquotedâ€\x9d text",
    "â€œquotedâ€ text",
    "donâ€™t stop",
    "cafÃ© and naïve together",
    "ÐŸÑ€Ð¸Ð²ÐµÑ‚ Ð¼Ð¸Ñ€",
    "Ã©Ã¨Ã Ã¹",
    "cafe\u0301 combining acute",
    "café precomposed",
    "e\u0301\u0302\u0323 stacked marks",
    "Åland Ærø Øresund ß straße",
    "İstanbul ıi ǅ ǈ ǋ",
    "ΣΊΣΥΦΟΣ ΌΣΟΣ final sigma",
    "Ελληνικά γράμματα",
    "Русский текст с буквой Ёё",
    "日本語のテキスト、東京タワー。",
    "中文提示词：一只可爱的猫",
    "한국어 프롬프트 고양이",
    "ﾊﾝｶｸｶﾀｶﾅ half-width katakana",
    "ＦＵＬＬＷＩＤＴＨ　ｌｅｔｔｅｒｓ　１２３",
    "العربية نص عربي",
    "עברית טקסט",
    "हिन्दी पाठ देवनागरी",
    "ภาษาไทย",
    "emoji 😀😃😄 🐱 cat",
    "👩‍👩‍👧‍👦 family zwj",
    "👍🏽 👋🏿 thumbs with skin tones",
    "🏳️‍🌈 rainbow flag 🏴‍☠️",
    "🏴󠁧󠁢󠁷󠁬󠁳󠁿 wales flag tag sequence",
    "❤️ ❤ ♥ heart variants",
    "1️⃣ 2️⃣ keycaps #️⃣",
    "&amp; &lt; &gt; &quot; &#39; &#x27; &nbsp;",
    "Tom &amp; Jerry",
    "AT&amp;T &AMP; &eacute; &EACUTE; &Eacute;",
    "&checkmark; &hearts; &rarr; &copy; &reg; &trade;",
    "&amp &lt no semicolons &notanentity;",
    "&#128512; &#x1F600; &#0; &#x110000; &#65533;",
    "<lora:detail:0.5> &amp; stays escaped",
    "a < b &amp; c",
    "“curly double” ‘curly single’ „low“ ‚low‘",
    "«guillemets» ‹single›",
    "em—dash en–dash minus−sign",
    "ellipsis… and … more",
    "ﬁne ﬂower ﬃ ligatures Ĳ",
    "!!!??? ... --- *** ### $$$ %%% ^^^",
    "(((masterpiece))), [[[bad]]], {curly}, <angle>",
    "a,b,c;d:e/f\\g|h",
    "hyphen-ated under_score dot.ted",
    "email@example.com https://example.com/path?q=1&r=2",
    "C++ C# F# .NET node.js",
    "tabs\tbetween\twords",
    "new\nlines\n\nand\r\ncarriage\rreturns",
    "multiple     spaces    between",
    "  leading and trailing  ",
    "\u00a0no-break\u00a0space\u2009thin\u3000ideographic",
    "zero\u200bwidth\u200cjoiner\u200dchars",
    "soft\u00adhyphen",
    "\ufeffbyte order mark",
    "control\x01chars\x07here\x7f",
    "\x1b[31mred terminal text\x1b[0m",
    "c1 \x80 \x93quoted\x94 \x85",
    "<|endoftext|>",
    "<|startoftext|>",
    "a <|endoftext|> b",
    "before<|endoftext|>after",
    "<|ENDOFTEXT|> upper",
    "<|startoftext|><|endoftext|>",
    "<|endoftext",
    "</w> literal end-of-word marker",
    "ǅ Ǆǆ digraphs",
    "mixed 日本 english 中文 العربية",
    "numbers 1234567890 ١٢٣ ４５６ ½ ² Ⅻ",
    "math ∑ ∫ √ ≠ ≤ ≥ π ∞",
    "currency $5 €10 £20 ¥30 ₹40 ₿",
    "symbols © ® ™ ° ± × ÷ § ¶",
    "arrows → ← ↑ ↓ ⇒",
    "box ┌─┐ │ └─┘ ░▒▓█",
    "kaomoji (╯°□°)╯︵ ┻━┻",
    "¯\\_(ツ)_/¯",
    "a" * 100,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "pneumonoultramicroscopicsilicovolcanoconiosis",
    "BREAK in the middle BREAK of a prompt",
    "(word:1.3) [word] (nested (parens)) \\(escaped\\)",
    "x" + "y" * 30 + " " + "ab" * 40,
    "a" + " b" * 120,
    LONG_1,
    LONG_2,
    LONG_3,
    "the " * 300,
    "trailing space ",
    "'",
    "''",
    "'s",
    "a's b't c're d've e'm f'll g'd",
    "ǈ'S IT'LL",
    "\u017f long s 'ſ",
    "K\u212a kelvin sign",
    "\U0001d400\U0001d401 math bold",
    "\U00020000 cjk ext b",
    "\ue000 private use",
    "\ufffd replacement",
    "a\u0345b \u0345 \u1fb3 ypogegrammeni (case-folds to iota)",
    "iota \u0399\u0345\u03b9",
]

A1111_PROMPTS = [
    "normal text",
    "an (important) word",
    "(unbalanced",
    "\\(literal\\]",
    "(unnecessary)(parens)",
    "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
    "",
    "(word:1.3)",
    "(word: 1.3 )",
    "(word:+1.5)",
    "(word:.5)",
    "(word:2.)",
    "[word]",
    "[[word]]",
    "((word))",
    "(a [b] c)",
    "(a:1.5) (b:0.5) [c] ((d))",
    "[unbalanced",
    "unbalanced)",
    "unbalanced]",
    "a:b:c",
    "(a:b)",
    "(a:b:1.2)",
    "\\\\ backslash",
    "lone \\ backslash \\n",
    "\\(\\)\\[\\]",
    "a BREAK b",
    "aBREAK b BREAKc",
    "BREAK",
    "a BREAK BREAK b",
    "(a BREAK b)",
    "(x:1.2) ,BREAK, (y:0.8)",
    "masterpiece, (best quality:1.2), [[lowres]], (((detailed eyes)))",
    "1girl, (blue hair:1.1), (red eyes:0.9)",
    LONG_1,
    "(" + LONG_1 + ":1.1)",
    "a, " * 50,
    "word " * 74 + ", tail words here",
    "word " * 60 + ", " + "more " * 30,
    "word " * 70 + "," + "x " * 10,
    "a " * 150,
    "a " * 75,
    "a " * 76,
    "<|endoftext|> literal inside",
    ", , , , , leading commas",
]


# ---------------------------------------------------------------------------------------------------------------
def bytes_to_unicode():
    # CLIP's byte <-> printable-character table (a fact of the format, restated here).
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def vocab_from_gz(gz_path, out_dir):
    """CLIP's vocabulary: 256 byte symbols, their </w> forms, one token per merge, then the two specials."""
    lines = gzip.open(gz_path).read().decode("utf-8").split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({t: i for i, t in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")
    return os.path.join(out_dir, "vocab.json"), os.path.join(out_dir, "merges.txt")


WORDS = ["café", "naïve", "façade", "crème brûlée", "São Paulo", "Ærø", "smörgåsbord", "Zürich", "déjà vu",
         "Привет мир", "Ёлка", "Ελληνικά", "γράμματα", "Łódź", "Żubrówka", "Čeština", "İstanbul", "ğüşöç",
         "日本語", "東京タワー", "中文", "한국어", "العربية", "עברית", "हिन्दी", "ภาษาไทย", "😀", "👍🏽", "🏳️‍🌈",
         "“quoted”", "‘single’", "don’t", "en–dash", "em—dash", "…", "€100", "£5", "©2024", "™", "°C", "±1",
         "½", "×", "→", "•", "plain", "ascii text", "a b", "x", "1.5"]
CODECS = ["latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250", "sloppy-windows-1253",
          "sloppy-windows-1254", "iso-8859-2", "macroman", "cp437", "windows-1252"]


def ftfy_cases(n=600, seed=1234):
    """Mojibake made the way it happens (UTF-8 bytes decoded with a single-byte codec, maybe twice, maybe mixed
    with clean text or with 0xA0 turned into a space), plus random runs of ftfy's mojibake characters."""
    import random
    import ftfy
    import ftfy.bad_codecs  # noqa: F401
    from ftfy import badness, chardata
    rng = random.Random(seed)
    pool = "".join(sorted(set(chardata.UTF8_CLUES["utf8_first_of_2"] + chardata.UTF8_CLUES["utf8_first_of_3"] +
                              "".join(badness.MOJIBAKE_CATEGORIES[k] for k in ("bad", "currency", "numeric",
                                                                               "start_punctuation",
                                                                               "end_punctuation", "common")) +
                              "abcxyz .,!?'\"-ÂÃ€™")))
    pool = "".join(c for c in pool if c != "-")
    out = []
    while len(out) < n:
        kind = rng.random()
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
        if kind < 0.6:
            codec = rng.choice(CODECS)
            try:
                text = words.encode("utf-8").decode(codec)
            except UnicodeDecodeError:
                continue
            if rng.random() < 0.15:
                try:
                    text = text.encode("utf-8").decode(rng.choice(CODECS))
                except UnicodeDecodeError:
                    pass
            if rng.random() < 0.2:
                text = text.replace("\xa0", " ")
            if rng.random() < 0.3:
                text = rng.choice(WORDS) + " " + text + " " + rng.choice(WORDS)
        elif kind < 0.8:
            text = "".join(rng.choice(pool) for _ in range(rng.randint(1, 8)))
        else:
            text = words
        out.append({"text": text, "fixed": ftfy.fix_text(text), "is_bad": bool(badness.is_bad(text))})
    return out


def ranges_of(pred, limit=0x110000):
    out, start = [], None
    for cp in range(limit):
        if pred(cp):
            if start is None:
                start = cp
        elif start is not None:
            out.append([start, cp - 1])
            start = None
    if start is not None:
        out.append([start, limit - 1])
    return out


def versions():
    import ftfy
    import regex
    import transformers
    return {"transformers": transformers.__version__, "ftfy": ftfy.__version__, "regex": regex.__version__,
            "python_unicodedata": unicodedata.unidata_version, "python": sys.version.split()[0]}


def write_clip_golden(gz_path):
    import regex
    from transformers import CLIPTokenizer
    import ftfy

    tmp = tempfile.mkdtemp(prefix="easel_clip_vocab_")
    vocab_json, merges_txt = vocab_from_gz(gz_path, tmp)
    tok = CLIPTokenizer(vocab_json, merges_txt)
    assert tok.fix_text is not None, "ftfy must be importable (source /work/refenv/env.sh)"
    cases = []
    for p in PROMPTS:
        ids = tok(p, truncation=False)["input_ids"]
        cases.append({"prompt": p, "fixed": ftfy.fix_text(p), "ids": ids})
    letter = regex.compile(r"[\p{L}]", regex.IGNORECASE)
    number = regex.compile(r"[\p{N}]", regex.IGNORECASE)
    space = regex.compile(r"\s")
    other = regex.compile(r"[^\s\p{L}\p{N}]", regex.IGNORECASE)
    classes = {
        # in no class of the pattern at all (dropped like white space): [^\s\p{L}\p{N}] under IGNORECASE
        # rejects characters with a letter as case variant
        "dropped": ranges_of(lambda c: not (letter.match(chr(c)) or number.match(chr(c)) or space.match(chr(c))
                                            or other.match(chr(c)))),
        "letter": ranges_of(lambda c: letter.match(chr(c)) is not None),
        "number": ranges_of(lambda c: number.match(chr(c)) is not None),
        "space": ranges_of(lambda c: space.match(chr(c)) is not None),
    }
    doc = {
        "made_by": "tools/reference/make_tokenizer_goldens.py",
        "reference": "transformers CLIPTokenizer (slow) with ftfy; tok(prompt, truncation=False)['input_ids']",
        "vocab": os.path.basename(gz_path),
        "versions": versions(),
        "char_classes": classes,
        "cases": cases,
        "ftfy_cases": ftfy_cases(),
    }
    path = os.path.join(GOLDEN_DIR, "tokenizer_clip.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=True, indent=1)
    print(f"wrote {path}: {len(cases)} prompts")
    return tok


def load_a1111(a1111_dir):
    """parse_prompt_attention and tokenize_line from AUTOMATIC1111's files, with stand-ins for its imports."""
    src = open(os.path.join(a1111_dir, "modules", "prompt_parser.py"), encoding="utf-8").read()
    start = src.index("re_attention = ")
    end = src.index('if __name__ == "__main__":')
    ns = {"re": __import__("re")}
    exec(compile(src[start:end], "prompt_parser.py(parse_prompt_attention)", "exec"), ns)
    parser = types.SimpleNamespace(parse_prompt_attention=ns["parse_prompt_attention"])

    src = open(os.path.join(a1111_dir, "modules", "sd_hijack_clip.py"), encoding="utf-8").read()
    start = src.index("class PromptChunk:")
    end = src.index("class FrozenCLIPEmbedderWithCustomWords(")
    opts = types.SimpleNamespace(emphasis="Original", comma_padding_backtrack=20)
    import torch
    ns = {"math": __import__("math"), "namedtuple": __import__("collections").namedtuple, "torch": torch,
          "prompt_parser": parser, "opts": opts, "sd_hijack": types.SimpleNamespace(StableDiffusionModelHijack=object),
          "devices": None, "sd_emphasis": None}
    exec(compile(src[start:end], "sd_hijack_clip.py(tokenize_line)", "exec"), ns)
    return parser.parse_prompt_attention, ns["FrozenCLIPEmbedderWithCustomWordsBase"]


def write_a1111_golden(tok, a1111_dir):
    parse, Base = load_a1111(a1111_dir)

    class NoEmbeddings:
        def find_embedding_at_position(self, tokens, offset):
            return None, None

    class Embedder(Base):
        def __init__(self):
            import torch
            torch.nn.Module.__init__(self)
            self.hijack = types.SimpleNamespace(embedding_db=NoEmbeddings())
            self.chunk_length = 75
            self.id_start = tok.bos_token_id
            self.id_end = tok.eos_token_id
            self.comma_token = tok.get_vocab().get(",</w>")

        def tokenize(self, texts):
            return tok(texts, truncation=False, add_special_tokens=False)["input_ids"]

    emb = Embedder()
    cases = []
    for p in A1111_PROMPTS:
        parsed = parse(p)
        chunks, token_count = emb.tokenize_line(p)
        cases.append({
            "prompt": p,
            "parsed": [[t, w] for t, w in parsed],
            "token_count": token_count,
            "chunks": [{"ids": c.tokens, "weights": c.multipliers} for c in chunks],
        })
    doc = {
        "made_by": "tools/reference/make_tokenizer_goldens.py --a1111",
        "reference": "AUTOMATIC1111 modules/prompt_parser.py parse_prompt_attention and "
                     "modules/sd_hijack_clip.py tokenize_line (emphasis Original, comma_padding_backtrack 20, "
                     "no textual-inversion embeddings)",
        "a1111_dir": os.path.abspath(a1111_dir),
        "versions": versions(),
        "cases": cases,
    }
    path = os.path.join(GOLDEN_DIR, "tokenizer_a1111.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=True, indent=1)
    print(f"wrote {path}: {len(cases)} prompts")


# ---------------------------------------------------------------------------------------------------------------
def c_str(s):
    """A C++ string literal holding the UTF-8 bytes of s."""
    out = []
    for b in s.encode("utf-8"):
        if 0x20 <= b < 0x7F and chr(b) not in '"\\?':
            out.append(chr(b))
        else:
            out.append("\\%03o" % b)
    return '"' + "".join(out) + '"'


def write_tables():
    import regex
    import ftfy
    from ftfy import chardata, badness
    import ftfy.bad_codecs  # noqa: F401  (registers the sloppy-* codecs)

    lines = []
    w = lines.append
    w("// GENERATED by tools/reference/make_tokenizer_goldens.py --tables; do not edit.")
    w(f"// Source: Python {sys.version.split()[0]} html.entities.html5 and codecs, ftfy {ftfy.__version__} "
      "(chardata.py, badness.py).")
    w("// Facts (character tables) taken from the reference so that easel's ftfy port matches it exactly.")
    w('#include "models/clip/text_clean_tables.h"')
    w("")
    w("namespace easel::clip::ftfy_data {")
    w("")
    # HTML entities as ftfy 6.1.1 builds them (chardata._build_html_entities).
    ents = sorted(chardata.HTML_ENTITIES.items(), key=lambda kv: kv[0].encode("utf-8"))
    w("const HtmlEntity kHtmlEntities[] = {")
    row = []
    for name, val in ents:
        row.append(f"{{{c_str(name)}, {c_str(val)}}}")
        if len(row) == 4:
            w("    " + ", ".join(row) + ",")
            row = []
    if row:
        w("    " + ", ".join(row) + ",")
    w("};")
    w(f"const size_t kNumHtmlEntities = {len(ents)};")
    w("")
    # Charmaps: what bytes 0x80..0xFF and 0x1A decode to in each encoding ftfy tries.
    w("const Charmap kCharmaps[] = {")
    for enc in chardata.CHARMAP_ENCODINGS:
        high = bytes(range(0x80, 0x100)).decode(enc)
        sub = b"\x1a".decode(enc)
        assert len(high) == 128
        w(f'    {{"{enc}", {str(enc.startswith("sloppy")).lower()}, 0x{ord(sub):04X}, {{')
        for i in range(0, 128, 8):
            w("        " + ", ".join(f"0x{ord(c):04X}" for c in high[i:i + 8]) + ",")
        w("    }},")
    w("};")
    w(f"const size_t kNumCharmaps = {len(chardata.CHARMAP_ENCODINGS)};")
    w("")
    wm = sorted(chardata.WIDTH_MAP.items())
    w("const WidthEntry kWidthMap[] = {")
    for i in range(0, len(wm), 6):
        w("    " + ", ".join(f"{{0x{k:04X}, {c_str(v)}}}" for k, v in wm[i:i + 6]) + ",")
    w("};")
    w(f"const size_t kNumWidthMap = {len(wm)};")
    w("")
    # Character categories (expanded from their regex-class spelling).
    cats = dict(badness.MOJIBAKE_CATEGORIES)
    cats.update(chardata.UTF8_CLUES)
    names = ["common", "c1", "bad", "currency", "start_punctuation", "end_punctuation", "numeric", "kaomoji",
             "upper_accented", "lower_accented", "upper_common", "lower_common", "box",
             "utf8_first_of_2", "utf8_first_of_3", "utf8_first_of_4", "utf8_continuation",
             "utf8_continuation_strict"]
    w("// One entry per code point: the categories it belongs to, as bits of CharCat.")
    members = {}
    for bit, name in enumerate(names):
        rx = regex.compile("[" + cats[name] + "]")
        for cp in range(0x10000):
            if rx.match(chr(cp)):
                members[cp] = members.get(cp, 0) | (1 << bit)
    w("const CatEntry kCategories[] = {")
    items = sorted(members.items())
    for i in range(0, len(items), 6):
        w("    " + ", ".join(f"{{0x{k:04X}, 0x{v:05X}}}" for k, v in items[i:i + 6]) + ",")
    w("};")
    w(f"const size_t kNumCategories = {len(items)};")
    w("")
    w("}  // namespace easel::clip::ftfy_data")
    path = os.path.join(ROOT, "src", "models", "clip", "text_clean_tables.cpp")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {path}: {len(ents)} entities, {len(wm)} width entries, {len(items)} categorised code points")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab-gz", default=DEFAULT_GZ)
    ap.add_argument("--a1111", default=None)
    ap.add_argument("--tables", action="store_true")
    args = ap.parse_args()
    if args.tables:
        write_tables()
        return
    tok = write_clip_golden(args.vocab_gz)
    if args.a1111:
        write_a1111_golden(tok, args.a1111)


if __name__ == "__main__":
    main()
