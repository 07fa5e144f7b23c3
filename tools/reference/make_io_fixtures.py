"""Writes the small io test fixtures under tests/data/{safetensors,gguf,diffusers}/ and the fuzz seed corpora.

Run from anywhere:  /usr/bin/python3 tools/reference/make_io_fixtures.py
Deterministic: rerunning rewrites byte-identical files. Values follow simple formulas that the C++ tests
(tests/unit/{safetensors,gguf,diffusers_folder}_test.cpp) recompute, so no expected-value files are needed.
"""

import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_io import RawTensor, save_file, serialize  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DATA = os.path.join(ROOT, "tests", "data")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def ensure(path):
    os.makedirs(path, exist_ok=True)
    return path


def all_dtypes_tensors():
    # Formulas mirrored in tests/unit/safetensors_test.cpp (ReadsPythonFixture).
    return {
        "f64": np.arange(3, dtype=np.float64) * 0.25 - 0.5,
        "f32": ((np.arange(6, dtype=np.float32) - 2.5) * 0.5).reshape(2, 3),
        "f16": (torch.arange(4, dtype=torch.float32) * 1.5 - 1.0).half(),
        "bf16": torch.tensor([1.0, -2.5, 3.140625, 65280.0]).bfloat16(),
        "i64": np.array([-(2**40), 7], dtype=np.int64),
        "i32": np.array([[1, -2], [3, -4]], dtype=np.int32),
        "i16": np.array([-300, 300], dtype=np.int16),
        "i8": np.array([-128, 127, 0], dtype=np.int8),
        "u8": np.array([0, 1, 255], dtype=np.uint8),
        "u16": np.array([65535, 2], dtype=np.uint16),
        "u32": np.array([4000000000], dtype=np.uint32),
        "u64": np.array([2**63 + 5], dtype=np.uint64),
        "bool": np.array([True, False, True, True]),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 5), dtype=np.float32),
    }


def write_safetensors_fixtures():
    d = ensure(os.path.join(DATA, "safetensors"))
    meta = {"format": "pt", "origin": "tools/reference/make_io_fixtures.py"}
    save_file(all_dtypes_tensors(), os.path.join(d, "all_dtypes.safetensors"), metadata=meta)

    c = ensure(os.path.join(CORPUS, "safetensors"))
    save_file(all_dtypes_tensors(), os.path.join(c, "all_dtypes.safetensors"), metadata=meta)
    save_file({"w": np.ones((2, 2), np.float32)}, os.path.join(c, "one_f32.safetensors"))
    save_file({}, os.path.join(c, "no_tensors.safetensors"), metadata={"k": "v"})
    save_file({"a": RawTensor("F8_E4M3", [2], b"\x01\x02")}, os.path.join(c, "f8.safetensors"))
    good = serialize({"x": np.arange(4, dtype=np.float32), "y": np.arange(3, dtype=np.int8)})
    with open(os.path.join(c, "truncated.safetensors"), "wb") as f:
        f.write(good[:-5])
    with open(os.path.join(c, "overlap.safetensors"), "wb") as f:
        f.write(make_raw_safetensors(b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                                     b'"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', bytes(12)))
    with open(os.path.join(c, "misaligned.safetensors"), "wb") as f:
        f.write(make_raw_safetensors(b'{"b":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
                                     b'"a":{"dtype":"F32","shape":[2],"data_offsets":[2,10]}}', bytes(10)))
    with open(os.path.join(c, "deep_entry.safetensors"), "wb") as f:
        f.write(make_raw_safetensors(b'{"w":' + b"[" * 3000 + b"]" * 3000 + b"}", b""))
    with open(os.path.join(c, "header_too_long.safetensors"), "wb") as f:
        f.write((10**9).to_bytes(8, "little") + b"{}")


def make_raw_safetensors(header_json, data):
    """A file with exactly this header text (space-padded to 8) and data, for malformed-file seeds."""
    header_json += b" " * ((8 - len(header_json) % 8) % 8)
    return len(header_json).to_bytes(8, "little") + header_json + data


# --- GGUF ------------------------------------------------------------------------------------------------
# Written from the GGUF layout described in src/io/gguf.h; the quantized blocks are packed from chosen
# integer codes and scales following the block layouts documented in src/io/gguf_dequant.cpp, and each
# quantized tensor X is accompanied by "X.expected" (f32): the values those codes stand for.

GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, \
    GGUF_U64, GGUF_I64, GGUF_F64 = range(13)
_SCALAR_FMT = {GGUF_U8: "<B", GGUF_I8: "<b", GGUF_U16: "<H", GGUF_I16: "<h", GGUF_U32: "<I", GGUF_I32: "<i",
               GGUF_F32: "<f", GGUF_BOOL: "<?", GGUF_U64: "<Q", GGUF_I64: "<q", GGUF_F64: "<d"}
GGML = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q2_K": 10, "q3_K": 11,
        "q4_K": 12, "q5_K": 13, "q6_K": 14, "q8_K": 15, "i8": 24, "i16": 25, "i32": 26, "i64": 27, "f64": 28,
        "bf16": 30, "bogus99": 99}  # 99: no such type, for a malformed seed


def _gstr(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def _gvalue(vtype, value):
    if vtype == GGUF_STRING:
        return _gstr(value)
    if vtype == GGUF_ARRAY:
        etype, items = value
        return struct.pack("<IQ", etype, len(items)) + b"".join(_gvalue(etype, v) for v in items)
    return struct.pack(_SCALAR_FMT[vtype], value)


def gguf_bytes(kvs, tensors, version=3):
    """kvs: [(key, value_type, value)]; tensors: [(name, ggml type name, ne (innermost first), raw bytes)]."""
    alignment = 32
    for k, t, v in kvs:
        if k == "general.alignment":
            alignment = v
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += _gstr(k) + struct.pack("<I", t) + _gvalue(t, v)
    offset, data = 0, b""
    for name, gtype, ne, raw in tensors:
        pad = (-offset) % alignment
        data += b"\0" * pad
        offset += pad
        out += _gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne)
        out += struct.pack("<IQ", GGML[gtype], offset)
        data += raw
        offset += len(raw)
    out += b"\0" * ((-len(out)) % alignment)
    return out + data


def _f16(x):
    return np.float16(x).tobytes()


def pack_q4_0(d, q):  # q: 32 codes in 0..15 -> value (q - 8) * d
    qs = bytes(int(q[i]) | int(q[i + 16]) << 4 for i in range(16))
    return _f16(d) + qs, (q.astype(np.float64) - 8) * float(np.float16(d))


def pack_q4_1(d, m, q):  # value q * d + m
    qs = bytes(int(q[i]) | int(q[i + 16]) << 4 for i in range(16))
    return _f16(d) + _f16(m) + qs, q * float(np.float16(d)) + float(np.float16(m))


def _q5_bits(q):
    qs = bytes((int(q[i]) & 15) | (int(q[i + 16]) & 15) << 4 for i in range(16))
    qh = sum(((int(q[i]) >> 4) & 1) << i for i in range(32))
    return struct.pack("<I", qh), qs


def pack_q5_0(d, q):  # q in 0..31 -> (q - 16) * d
    qh, qs = _q5_bits(q)
    return _f16(d) + qh + qs, (q.astype(np.float64) - 16) * float(np.float16(d))


def pack_q5_1(d, m, q):
    qh, qs = _q5_bits(q)
    return _f16(d) + _f16(m) + qh + qs, q * float(np.float16(d)) + float(np.float16(m))


def pack_q8_0(d, q):  # q int8
    return _f16(d) + q.astype(np.int8).tobytes(), q * float(np.float16(d))


def pack_q2_K(d, dmin, sc, mn, q):  # sc, mn: 16 x 0..15; q: 256 x 0..3; value d*sc*q - dmin*mn (by e // 16)
    scales = bytes(int(sc[s]) | int(mn[s]) << 4 for s in range(16))
    qs = bytearray(64)
    for e in range(256):
        h, j, l = e // 128, (e % 128) // 32, e % 32
        qs[32 * h + l] |= int(q[e]) << (2 * j)
    s = np.arange(256) // 16
    expect = float(np.float16(d)) * sc[s] * q - float(np.float16(dmin)) * mn[s]
    return scales + bytes(qs) + _f16(d) + _f16(dmin), expect


def pack_q3_K(d, sc, q):  # sc: 16 x -32..31; q: 256 x -4..3; value d*sc*q
    u = [int(v) + 32 for v in sc]
    packed = bytearray(12)
    for s in range(16):
        if s < 8:
            packed[s] |= u[s] & 15
        else:
            packed[s - 8] |= (u[s] & 15) << 4
        packed[8 + s % 4] |= (u[s] >> 4) << (2 * (s // 4))
    hmask, qs = bytearray(32), bytearray(64)
    for e in range(256):
        L = int(q[e]) + 4
        h, j, l = e // 128, (e % 128) // 32, e % 32
        qs[32 * h + l] |= (L & 3) << (2 * j)
        hmask[l] |= (L >> 2) << (e // 32)
    expect = float(np.float16(d)) * np.asarray(sc)[np.arange(256) // 16] * q
    return bytes(hmask) + bytes(qs) + bytes(packed) + _f16(d), expect


def _pack_k4_scales(sc, mn):  # 8 six-bit scales and mins into 12 bytes
    b = bytearray(12)
    for j in range(8):
        if j < 4:
            b[j] |= sc[j] & 63
            b[j + 4] |= mn[j] & 63
        else:
            b[j + 4] |= (sc[j] & 15) | (mn[j] & 15) << 4
            b[j - 4] |= (sc[j] >> 4) << 6
            b[j] |= (mn[j] >> 4) << 6
    return bytes(b)


def pack_q4_K(d, dmin, sc, mn, q):  # sc, mn: 8 x 0..63; q: 256 x 0..15
    qs = bytearray(128)
    for e in range(256):
        p, k, l = e // 64, (e % 64) // 32, e % 32
        qs[32 * p + l] |= int(q[e]) << (4 * k)
    s = np.arange(256) // 32
    expect = float(np.float16(d)) * np.asarray(sc)[s] * q - float(np.float16(dmin)) * np.asarray(mn)[s]
    return _f16(d) + _f16(dmin) + _pack_k4_scales(sc, mn) + bytes(qs), expect


def pack_q5_K(d, dmin, sc, mn, q):  # q: 256 x 0..31
    qs, qh = bytearray(128), bytearray(32)
    for e in range(256):
        p, k, l = e // 64, (e % 64) // 32, e % 32
        qs[32 * p + l] |= (int(q[e]) & 15) << (4 * k)
        qh[l] |= (int(q[e]) >> 4) << (e // 32)
    s = np.arange(256) // 32
    expect = float(np.float16(d)) * np.asarray(sc)[s] * q - float(np.float16(dmin)) * np.asarray(mn)[s]
    return _f16(d) + _f16(dmin) + _pack_k4_scales(sc, mn) + bytes(qh) + bytes(qs), expect


def pack_q6_K(d, sc, q):  # sc: 16 x int8; q: 256 x -32..31
    ql, qh = bytearray(128), bytearray(64)
    for e in range(256):
        L = int(q[e]) + 32
        h, r, l = e // 128, (e % 128) // 32, e % 32
        ql[64 * h + 32 * (r % 2) + l] |= (L & 15) << (0 if r < 2 else 4)
        qh[32 * h + l] |= (L >> 4) << (2 * r)
    expect = float(np.float16(d)) * np.asarray(sc)[np.arange(256) // 16] * q
    return bytes(ql) + bytes(qh) + np.asarray(sc, np.int8).tobytes() + _f16(d), expect


def pack_q8_K(d, q):  # d: f32; q: 256 x int8
    bsums = q.reshape(16, 16).sum(axis=1).astype("<i2")
    return np.float32(d).tobytes() + q.astype(np.int8).tobytes() + bsums.tobytes(), q * float(np.float32(d))


def quant_tensors(rng):
    """[(name, type, ne, raw)] for 2 rows of every quantized type, each followed by its f32 expectation."""
    out = []

    def add(name, n_per_row, make):
        raws, expects = [], []
        for _ in range(2 * n_per_row // (256 if name.endswith("_K") else 32)):
            raw, exp = make()
            raws.append(raw)
            expects.append(exp)
        out.append((name, name, [n_per_row, 2], b"".join(raws)))
        exp = np.concatenate(expects).astype(np.float32)
        out.append((name + ".expected", "f32", [n_per_row, 2], exp.tobytes()))

    f16 = lambda lo, hi: float(np.float16(rng.uniform(lo, hi)))  # noqa: E731
    ints = lambda lo, hi, n: rng.integers(lo, hi + 1, n).astype(np.float64)  # noqa: E731
    add("q4_0", 64, lambda: pack_q4_0(f16(-2, 2), ints(0, 15, 32)))
    add("q4_1", 64, lambda: pack_q4_1(f16(0, 2), f16(-1, 1), ints(0, 15, 32)))
    add("q5_0", 64, lambda: pack_q5_0(f16(-2, 2), ints(0, 31, 32)))
    add("q5_1", 64, lambda: pack_q5_1(f16(0, 2), f16(-1, 1), ints(0, 31, 32)))
    add("q8_0", 64, lambda: pack_q8_0(f16(-0.1, 0.1), ints(-128, 127, 32)))
    add("q2_K", 256, lambda: pack_q2_K(f16(0, 0.1), f16(0, 0.1), ints(0, 15, 16), ints(0, 15, 16), ints(0, 3, 256)))
    add("q3_K", 256, lambda: pack_q3_K(f16(-0.1, 0.1), ints(-32, 31, 16), ints(-4, 3, 256)))
    add("q4_K", 256, lambda: pack_q4_K(f16(0, 0.1), f16(0, 0.1), [int(v) for v in ints(0, 63, 8)],
                                       [int(v) for v in ints(0, 63, 8)], ints(0, 15, 256)))
    add("q5_K", 256, lambda: pack_q5_K(f16(0, 0.1), f16(0, 0.1), [int(v) for v in ints(0, 63, 8)],
                                       [int(v) for v in ints(0, 63, 8)], ints(0, 31, 256)))
    add("q6_K", 256, lambda: pack_q6_K(f16(-0.1, 0.1), ints(-128, 127, 16), ints(-32, 31, 256)))
    add("q8_K", 256, lambda: pack_q8_K(float(np.float32(rng.uniform(-0.1, 0.1))), ints(-128, 127, 256)))
    return out


def plain_gguf_parts():
    kvs = [
        ("general.architecture", GGUF_STRING, "easel-test"),
        ("test.u8", GGUF_U8, 200), ("test.i8", GGUF_I8, -100), ("test.u16", GGUF_U16, 60000),
        ("test.i16", GGUF_I16, -30000), ("test.u32", GGUF_U32, 4000000000), ("test.i32", GGUF_I32, -2000000000),
        ("test.f32", GGUF_F32, 0.5), ("test.bool", GGUF_BOOL, True), ("test.u64", GGUF_U64, 2**64 - 1),
        ("test.i64", GGUF_I64, -(2**63)), ("test.f64", GGUF_F64, -1.25),
        ("test.array_i32", GGUF_ARRAY, (GGUF_I32, [1, -2, 3])),
        ("test.array_str", GGUF_ARRAY, (GGUF_STRING, ["a", 'q"uote', "back\\slash"])),
        ("test.empty_array", GGUF_ARRAY, (GGUF_F32, [])),
    ]
    # Values mirrored in tests/unit/gguf_test.cpp (ReadsPlainFixture).
    tensors = [
        ("f32", "f32", [3, 2], ((np.arange(6, dtype=np.float32) - 2.5) * 0.5).tobytes()),
        ("f16", "f16", [4], (np.arange(4, dtype=np.float32) * 1.5 - 1.0).astype(np.float16).tobytes()),
        ("bf16", "bf16", [2, 1, 1], torch.tensor([1.0, -2.5]).bfloat16().view(torch.int16).numpy().tobytes()),
        ("i32", "i32", [3], np.array([7, -8, 9], np.int32).tobytes()),
        ("f64", "f64", [2], np.array([0.1, -0.2], np.float64).tobytes()),
        ("i8", "i8", [5], np.array([-5, -1, 0, 1, 5], np.int8).tobytes()),
    ]
    return kvs, tensors


def write_gguf_fixtures():
    d = ensure(os.path.join(DATA, "gguf"))
    c = ensure(os.path.join(CORPUS, "gguf"))
    kvs, tensors = plain_gguf_parts()
    plain = gguf_bytes(kvs, tensors)
    quant = gguf_bytes([("general.architecture", GGUF_STRING, "easel-test")], quant_tensors(np.random.default_rng(1)))
    v2 = gguf_bytes([("general.alignment", GGUF_U32, 64)], tensors[:1], version=2)
    for folder in (d, c):
        for name, data in (("plain.gguf", plain), ("quant.gguf", quant), ("v2_align64.gguf", v2)):
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
    with open(os.path.join(c, "truncated.gguf"), "wb") as f:
        f.write(plain[: len(plain) - 7])
    with open(os.path.join(c, "huge_counts.gguf"), "wb") as f:
        f.write(b"GGUF" + struct.pack("<IQQ", 3, 2**62, 2**62))
    with open(os.path.join(c, "unknown_type.gguf"), "wb") as f:
        f.write(gguf_bytes([], [("x", "bogus99", [4], bytes(16))]))


# --- diffusers folder -------------------------------------------------------------------------------------
# tests/data/diffusers/tiny: the layout of a save_pretrained pipeline, with one-tensor weights:
#   unet: default (f32 [1, 2]) and fp16 variant; vae: fp16 variant only; text_encoder: two shards + index.


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")


def write_diffusers_fixtures():
    root = ensure(os.path.join(DATA, "diffusers", "tiny"))
    write_json(os.path.join(root, "model_index.json"), {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": "0.30.3",
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
    unet = ensure(os.path.join(root, "unet"))
    write_json(os.path.join(unet, "config.json"), {"_class_name": "UNet2DConditionModel", "in_channels": 4,
                                                   "sample_size": 8})
    w = np.array([[1.0, 2.0]], np.float32)
    save_file({"conv_in.weight": w}, os.path.join(unet, "diffusion_pytorch_model.safetensors"))
    save_file({"conv_in.weight": w.astype(np.float16)}, os.path.join(unet, "diffusion_pytorch_model.fp16.safetensors"))
    vae = ensure(os.path.join(root, "vae"))
    write_json(os.path.join(vae, "config.json"), {"_class_name": "AutoencoderKL", "latent_channels": 4})
    save_file({"decoder.conv_in.weight": np.array([0.5], np.float16)},
              os.path.join(vae, "diffusion_pytorch_model.fp16.safetensors"))
    te = ensure(os.path.join(root, "text_encoder"))
    write_json(os.path.join(te, "config.json"), {"architectures": ["CLIPTextModel"], "hidden_size": 8})
    shards = {
        "model-00001-of-00002.safetensors": {"a.weight": np.array([1.0, 2.0], np.float32)},
        "model-00002-of-00002.safetensors": {"b.weight": np.array([3.0], np.float32),
                                             "c.bias": np.array([4.0, 5.0], np.float32)},
    }
    weight_map = {}
    for shard, tensors in shards.items():
        save_file(tensors, os.path.join(te, shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in tensors})
    write_json(os.path.join(te, "model.safetensors.index.json"), {"metadata": {"total_size": 20},
                                                                  "weight_map": weight_map})
    tok = ensure(os.path.join(root, "tokenizer"))
    write_json(os.path.join(tok, "vocab.json"), {"a</w>": 0, "<|startoftext|>": 1, "<|endoftext|>": 2})
    with open(os.path.join(tok, "merges.txt"), "w") as f:
        f.write("#version: 0.2\n")
    sch = ensure(os.path.join(root, "scheduler"))
    write_json(os.path.join(sch, "scheduler_config.json"), {"_class_name": "EulerDiscreteScheduler",
                                                            "num_train_timesteps": 1000})

    c = ensure(os.path.join(CORPUS, "diffusers_json"))
    for src in ("model_index.json", "text_encoder/model.safetensors.index.json", "unet/config.json"):
        with open(os.path.join(root, src), "rb") as fin, open(os.path.join(c, src.replace("/", "_")), "wb") as fout:
            fout.write(fin.read())
    seeds = {
        "index_traversal.json": b'{"weight_map": {"w": "../../etc/passwd"}}',
        "index_not_string.json": b'{"weight_map": {"w": 3}}',
        "model_index_bad_component.json": b'{"_class_name": "X", "unet": ["diffusers"]}',
        "model_index_no_class.json": b'{"unet": ["diffusers", "UNet2DConditionModel"]}',
        "deep.json": b"[" * 500 + b"]" * 500,
        "deep_option.json": b'{"_class_name": "X", "_deep": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        "not_json.json": b'{"a": tru',
    }
    for name, data in seeds.items():
        with open(os.path.join(c, name), "wb") as f:
            f.write(data)


def main():
    write_safetensors_fixtures()
    write_gguf_fixtures()
    write_diffusers_fixtures()
    print("fixtures written under", DATA, "and", CORPUS)


if __name__ == "__main__":
    main()
