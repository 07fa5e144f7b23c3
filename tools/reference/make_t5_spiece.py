#!/usr/bin/python3
"""T5's SentencePiece model for easel to build in, and golden ids to test it against.

    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python /work/refvenv/bin/python tools/reference/make_t5_spiece.py \\
        --tokenizer-json PATH/tokenizer.json

PATH/tokenizer.json is T5 v1.1's tokenizers file (google/t5-v1_1-xxl, the tokenizer_2 / tokenizer_3 folder of a
Flux or SD3 diffusers model; Apache-2.0): 32000 unigram pieces with their scores, then the 100 <extra_id_N> tokens,
and the Precompiled normalizer's character map. It writes:

  data/t5/spiece.model          the same vocabulary as a SentencePiece ModelProto (what libsentencepiece and
                                transformers' slow T5Tokenizer read): the 32000 pieces and scores in order, <pad> 0
                                and </s> 1 as control pieces, <unk> 2, and the normalizer as T5's spiece.model has
                                it (nmt_nfkc's precompiled map, a dummy prefix, extra whitespace removed, spaces
                                escaped as U+2581). The <extra_id_N> tokens are not pieces of spiece.model; SD3
                                and Flux prompts never produce them.
  tests/golden/data/tokenizer_t5.json
                                for every prompt of make_tokenizer_goldens.PROMPTS, the ids that transformers'
                                T5TokenizerFast gives from tokenizer.json (what diffusers' SD3 and Flux pipelines
                                run): tok(prompt)["input_ids"], untruncated, ending in </s>.

It checks, before writing, that the written model read by sentencepiece equals the slow T5Tokenizer on every
prompt, and that with easel's rule for a trailing space (T5_SPACES) it equals the fast tokenizer on all but the
known case of stacked combining marks, where tokenizers' Precompiled normalizer and sentencepiece's differ;
that case is recorded with easel's ids. --measure-spaces also derives T5_SPACES again from every code point.

The protobuf module needs PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python with the venv's protobuf 4.x.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

from make_tokenizer_goldens import PROMPTS  # noqa: E402

N_PIECES = 32000


def build_model(tok_json):
    from sentencepiece import sentencepiece_model_pb2 as pb

    model = tok_json["model"]
    if model.get("type") != "Unigram" or len(model["vocab"]) < N_PIECES:
        sys.exit("not T5's tokenizer.json: expected a Unigram model with at least 32000 pieces")
    norms = tok_json["normalizer"]["normalizers"] if tok_json["normalizer"]["type"] == "Sequence" \
        else [tok_json["normalizer"]]
    charsmap = next(n["precompiled_charsmap"] for n in norms if n["type"] == "Precompiled")

    m = pb.ModelProto()
    for i, (piece, score) in enumerate(model["vocab"][:N_PIECES]):
        p = m.pieces.add()
        p.piece = piece
        p.score = score
        if i in (0, 1):
            p.type = pb.ModelProto.SentencePiece.CONTROL
        elif i == model["unk_id"]:
            p.type = pb.ModelProto.SentencePiece.UNKNOWN
        else:
            p.type = pb.ModelProto.SentencePiece.NORMAL
    t = m.trainer_spec
    t.model_type = pb.TrainerSpec.UNIGRAM
    t.vocab_size = N_PIECES
    t.pad_id, t.eos_id, t.unk_id, t.bos_id = 0, 1, model["unk_id"], -1
    t.pad_piece, t.eos_piece, t.unk_piece = "<pad>", "</s>", "<unk>"
    n = m.normalizer_spec
    n.name = "nmt_nfkc"
    n.precompiled_charsmap = base64.b64decode(charsmap)
    n.add_dummy_prefix = True
    n.remove_extra_whitespaces = True
    n.escape_whitespaces = True
    return m.SerializeToString()


# The characters T5's normalizer makes a space: a prompt ending in one gets a lone "▁" (id 3) from T5TokenizerFast
# before </s>, where sentencepiece strips it. easel's T5Tokenizer (models/t5/tokenizer.cpp) appends it; this list is
# what --measure-spaces finds.
T5_SPACES = set([0x09, 0x0A, 0x0C, 0x0D, 0x20, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x2581, 0x3000, 0xFEFF]
                + list(range(0x2000, 0x2010)))


def easel_ids(sp, p):
    ids = sp.encode(p)
    if p and ord(p[-1]) in T5_SPACES:
        ids.append(3)
    return ids + [1]


def measure_spaces(fast, sp):
    """Every code point appended to "a cat": which ones make T5TokenizerFast differ from sentencepiece by one "▁"."""
    found, other = [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        t = "a cat" + chr(cp)
        f, s = fast(t)["input_ids"], sp.encode(t) + [1]
        if f == s:
            continue
        (found if f == s[:-1] + [3, 1] else other).append(cp)
    print("a lone ▁ after:", " ".join(f"U+{c:04X}" for c in found))
    print("other differences:", " ".join(f"U+{c:04X}" for c in other[:50]), f"({len(other)})")
    if set(found) != T5_SPACES:
        sys.exit("T5_SPACES is not what T5TokenizerFast does")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer-json", required=True)
    ap.add_argument("--out-model", default=os.path.join(ROOT, "data", "t5", "spiece.model"))
    ap.add_argument("--measure-spaces", action="store_true", help="check T5_SPACES over every code point (minutes)")
    ap.add_argument("--out-golden", default=os.path.join(ROOT, "tests", "golden", "data", "tokenizer_t5.json"))
    args = ap.parse_args()

    import sentencepiece
    import tokenizers
    import transformers
    from transformers import T5Tokenizer, T5TokenizerFast

    raw = open(args.tokenizer_json, "rb").read()
    tok_json = json.loads(raw)
    blob = build_model(tok_json)

    fast = T5TokenizerFast(tokenizer_file=args.tokenizer_json)
    sp = sentencepiece.SentencePieceProcessor(model_proto=blob)
    if args.measure_spaces:
        measure_spaces(fast, sp)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "spiece.model")
        open(path, "wb").write(blob)
        slow = T5Tokenizer(path, legacy=True)

        cases, same, differ = [], 0, []
        for p in PROMPTS:
            want = fast(p)["input_ids"]
            got_sp = sp.encode(p) + [1]
            if got_sp != slow(p)["input_ids"]:
                sys.exit(f"sentencepiece and T5Tokenizer differ on {p!r}")
            got = easel_ids(sp, p)
            case = {"prompt": p, "ids": want}
            if got == want:
                same += 1
            else:
                # Where sentencepiece's normalization itself differs from tokenizers' (combining marks), easel
                # gives sentencepiece's ids: recorded, and the test expects them.
                differ.append(p)
                case["easel_ids"] = got
                print(f"differs on {p!r}:\n  fast  {want}\n  easel {got}")
            cases.append(case)
    print(f"{same}/{len(PROMPTS)} prompts: easel's rule on data/t5/spiece.model gives T5TokenizerFast's ids; "
          f"{len(differ)} differ (listed above)")
    if len(differ) > 2:
        sys.exit("more differences than the known combining-mark case")

    os.makedirs(os.path.dirname(args.out_model), exist_ok=True)
    open(args.out_model, "wb").write(blob)
    golden = {
        "made_by": "tools/reference/make_t5_spiece.py",
        "reference": "transformers T5TokenizerFast(tokenizer_file=T5 v1.1's tokenizer.json); tok(prompt)['input_ids'] "
                     "(untruncated, ending in </s> = 1). easel_ids, where present: what data/t5/spiece.model gives "
                     "through sentencepiece with easel's trailing-space rule, where tokenizers' normalization "
                     "differs from sentencepiece's",
        "tokenizer_json_sha256": hashlib.sha256(raw).hexdigest(),
        "spiece_model_sha256": hashlib.sha256(blob).hexdigest(),
        "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                     "sentencepiece": sentencepiece.__version__, "python": sys.version.split()[0]},
        "cases": cases,
    }
    with open(args.out_golden, "w", encoding="utf-8") as f:
        json.dump(golden, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {args.out_model} ({len(blob)} bytes) and {args.out_golden}")


if __name__ == "__main__":
    main()
