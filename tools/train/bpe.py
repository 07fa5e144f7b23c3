"""Builds a CLIP-format byte-level BPE vocabulary for the tiny model's captions.

Output is what transformers' CLIPTokenizer (and easel's C++ CLIP tokenizer) read unchanged:
  vocab.json   token -> id: the 256 byte-unicode symbols in CLIP's order, then the same 256 with
               "</w>", then one token per merge in merge order, then <|startoftext|>, <|endoftext|>.
  merges.txt   "#version: 0.2" then one "left right" pair per line, in rank order.
Because every byte has a token, any text still tokenizes (rare words just fall apart into pieces);
the merges are learnt (plain BPE on word frequencies) until every caption word is a single token.

    python3 tools/train/bpe.py --out /tmp/tok          # writes vocab.json, merges.txt
    from bpe import build_bpe, CLIPLikeTokenizer
    vocab, merges = build_bpe(["a red circle", ...])
    ids = CLIPLikeTokenizer(vocab, merges).encode("a red circle")   # [bos, ..., eos, pad...] (77)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

import regex

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77  # SD 1.x context length

# CLIP's pre-tokenizer (openai/CLIP simple_tokenizer.py, also transformers' CLIPTokenizer.pat).
_PAT = regex.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
                     regex.IGNORECASE)


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character map, in CLIP's (insertion) order:
    printable Latin-1 bytes keep their own code point, the rest map to 256, 257, ..."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _word_symbols(word: str, byte_map: dict[int, str]) -> tuple[str, ...]:
    chars = [byte_map[b] for b in word.encode("utf-8")]
    return tuple(chars[:-1]) + (chars[-1] + "</w>",)


def _normalise(text: str) -> str:
    # CLIP lower-cases and collapses whitespace (ftfy/html unescape do nothing to our ASCII captions).
    return regex.sub(r"\s+", " ", text).strip().lower()


def pre_tokenize(text: str) -> list[str]:
    return _PAT.findall(_normalise(text))


def build_bpe(texts: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Learns merges (most frequent adjacent pair first, ties broken by the pair's text so the result
    is deterministic) until every word of `texts` is one token; returns (vocab, merges)."""
    byte_map = bytes_to_unicode()
    counts = collections.Counter(w for t in texts for w in pre_tokenize(t) if w not in (BOS, EOS))
    words = {w: _word_symbols(w, byte_map) for w in counts}
    merges: list[tuple[str, str]] = []
    while True:
        pairs: collections.Counter = collections.Counter()
        for w, syms in words.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += counts[w]
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        for w, syms in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = tuple(out)
    base = list(byte_map.values())
    tokens = base + [s + "</w>" for s in base] + ["".join(m) for m in merges] + [BOS, EOS]
    if len(set(tokens)) != len(tokens):
        raise RuntimeError("duplicate token in the BPE vocabulary (a merge repeated a base symbol)")
    return {t: i for i, t in enumerate(tokens)}, merges


class CLIPLikeTokenizer:
    """Our own CLIP tokenizer (same rules as openai/CLIP's simple_tokenizer), used to check the files
    without transformers and by the trainer. encode() returns MAX_LENGTH ids padded with EOS, as
    SD 1.x's tokenizer config does (pad_token = <|endoftext|>)."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        self.vocab = vocab
        self.ranks = {m: i for i, m in enumerate(merges)}
        self.byte_map = bytes_to_unicode()
        self.bos, self.eos = vocab[BOS], vocab[EOS]
        self._cache: dict[str, list[str]] = {}

    @classmethod
    def from_files(cls, folder: str) -> "CLIPLikeTokenizer":
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(folder, "merges.txt"), encoding="utf-8") as f:
            lines = f.read().strip().split("\n")[1:]
        return cls(vocab, [tuple(line.split()) for line in lines])

    def bpe(self, word: str) -> list[str]:
        if word in self._cache:
            return self._cache[word]
        syms = list(_word_symbols(word, self.byte_map))
        while len(syms) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(syms, syms[1:]))]
            rank, _ = min(pairs)
            if rank == 1 << 30:
                break
            first, second = syms[min(pairs)[1]], syms[min(pairs)[1] + 1]
            out, i = [], 0
            while i < len(syms):  # merge every occurrence of the best pair, left to right
                if i + 1 < len(syms) and syms[i] == first and syms[i + 1] == second:
                    out.append(first + second)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            syms = out
        self._cache[word] = syms
        return syms

    def tokens(self, text: str) -> list[str]:
        return [t for w in pre_tokenize(text) for t in ([w] if w in (BOS, EOS) else self.bpe(w))]

    def encode(self, text: str, max_length: int = MAX_LENGTH) -> list[int]:
        ids = [self.bos] + [self.vocab[t] for t in self.tokens(text)][: max_length - 2] + [self.eos]
        return ids + [self.eos] * (max_length - len(ids))


def write_files(folder: str, vocab: dict[str, int], merges: list[tuple[str, str]]) -> None:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")


def tokenizer_config() -> dict:
    """tokenizer_config.json as SD 1.x ships it: pad with <|endoftext|>, 77 tokens, lower-case."""
    return {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": EOS,
        "pad_token": EOS,
        "do_lower_case": True,
        "errors": "replace",
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": True,
    }


def caption_corpus() -> list[str]:
    """Texts the merges are learnt from: a large seeded sample of training captions plus every
    held-out caption, so word frequencies follow what the model sees."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import data
    s = data.SceneSampler(seed=0)
    texts = [data.make_caption(s.random_scene(), s.rng) for _ in range(5000)]
    texts += [x["caption"] for x in data.heldout_scenes()]
    texts.append(" ".join(data.all_caption_words()))
    return texts


def build_default(folder: str) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab, merges = build_bpe(caption_corpus())
    write_files(folder, vocab, merges)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config(), f, indent=2)
        f.write("\n")
    return vocab, merges


def check_whole_words(folder: str, words: list[str]) -> list[str]:
    """Returns the words that do not come out as exactly one token with our tokenizer."""
    tok = CLIPLikeTokenizer.from_files(folder)
    return [w for w in words if tok.tokens(w) != [w + "</w>"]]


def _main() -> None:
    ap = argparse.ArgumentParser(description="Build the tiny model's CLIP BPE vocabulary.")
    ap.add_argument("--out", required=True, help="folder for vocab.json, merges.txt, tokenizer_config.json")
    ap.add_argument("--check-transformers", action="store_true",
                    help="also tokenize every caption word and the held-out captions with transformers' "
                         "CLIPTokenizer and require the same ids as ours")
    a = ap.parse_args()
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import data
    vocab, merges = build_default(a.out)
    words = data.all_caption_words()
    bad = check_whole_words(a.out, words)
    print(f"vocab {len(vocab)} tokens ({len(merges)} merges); {len(words)} caption words, "
          f"{len(words) - len(bad)} single tokens" + (f"; NOT single: {bad}" if bad else ""))
    if bad:
        sys.exit(1)
    if a.check_transformers:
        import refenv
        refenv.ensure()
        from transformers import CLIPTokenizer
        ref = CLIPTokenizer.from_pretrained(a.out)
        ours = CLIPLikeTokenizer.from_files(a.out)
        texts = [x["caption"] for x in data.heldout_scenes()] + words + ["Hello, World! 42 naïve café"]
        mismatches = 0
        for t in texts:
            got = ref(t, padding="max_length", max_length=MAX_LENGTH, truncation=True).input_ids
            if got != ours.encode(t):
                mismatches += 1
                print(f"mismatch on {t!r}:\n  transformers {got[:20]}\n  ours         {ours.encode(t)[:20]}")
        for w in words:
            if ref.tokenize(w) != [w + "</w>"]:
                mismatches += 1
                print(f"transformers splits {w!r} into {ref.tokenize(w)}")
        print(f"transformers CLIPTokenizer: {len(texts)} texts, {mismatches} mismatches")
        if mismatches:
            sys.exit(1)


if __name__ == "__main__":
    _main()
