#!/usr/bin/python3
"""Writes tests/golden/data/rng_torch_cpu.safetensors and rng_philox.safetensors.

Run with Debian's torch:  /usr/bin/python3 tools/reference/make_rng_goldens.py
(it re-runs itself once with ATEN_CPU_CAPABILITY=default to record torch's portable normal kernel too).

rng_torch_cpu.safetensors: torch.randn(shape, generator=torch.Generator().manual_seed(seed)) for many seeds and
shapes, and sequences of draws from one generator. Tensor names:
    <kernel>/s<seed as uint64>/<shape joined by x>          one draw from a freshly seeded generator
    <kernel>/seq<k>/s<seed>/<i>                              the i-th draw of sequence k from one generator
where <kernel> is avx2 (torch's AVX2 kernel, the one any x86 CPU with AVX2 runs) or scalar (its portable
kernel). Draws too big to keep in git (more than 4096 values) are recorded as a CRC-32 of their float32
little-endian bytes in the metadata under the same name (a whole-tensor, bitwise check) plus their first 64
values as "<name>@head", which locates a mismatch.

rng_philox.safetensors: AUTOMATIC1111's "GPU" (CUDA Philox 4x32-10) randn, from our own numpy restatement of
the algorithm documented in its modules/rng_philox.py. No CUDA device was available here, so these values
check our C++ against that documented algorithm, not against a GPU.
"""

import json
import os
import subprocess
import sys
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_io import load_file, save_file  # noqa: E402

OUT_DIR = os.path.join(HERE, "..", "..", "tests", "golden", "data")
MAX_STORED = 4096

SEEDS = [0, 1, 42, 2**32 - 1, 2**32, 2**32 + 7, 1234567890123, 2**63 - 1, 2**64 - 1, -1, -42, -(2**63)]
SHAPES = [[1], [2], [3], [15], [16], [17], [31], [32], [33], [47], [100], [4, 8, 8], [1, 4, 64, 64], [2, 4, 96, 64]]
# A generator that gives the initial noise and then ancestral-step noise, like a sampler; and one that
# mixes the < 16 (cached double normal) and >= 16 paths.
SEQUENCES = [
    (0, [[1, 4, 8, 8]] * 6),
    (1234, [[1, 4, 64, 64]] + [[1, 4, 64, 64]] * 3),
    (7, [[3], [3], [1], [20], [5], [1], [16], [2]]),
]


def name_seed(seed):
    return str(seed % 2**64)


def name_shape(shape):
    return "x".join(str(d) for d in shape)


def record(tensors, meta, name, t):
    a = t.numpy().astype("<f4")
    if a.size <= MAX_STORED:
        tensors[name] = a
    else:
        meta[name] = "crc32:%08x" % (zlib.crc32(a.tobytes()) & 0xFFFFFFFF)
        tensors[name + "@head"] = a.reshape(-1)[:64].copy()


def torch_draws(kernel):
    import torch

    tensors, meta = {}, {}
    for seed in SEEDS:
        for shape in SHAPES:
            g = torch.Generator().manual_seed(seed)
            record(tensors, meta, f"{kernel}/s{name_seed(seed)}/{name_shape(shape)}", torch.randn(shape, generator=g))
    for k, (seed, shapes) in enumerate(SEQUENCES):
        g = torch.Generator().manual_seed(seed)
        for i, shape in enumerate(shapes):
            t = torch.randn(shape, generator=g)
            record(tensors, meta, f"{kernel}/seq{k}/s{name_seed(seed)}/{i}", t)
            meta[f"{kernel}/seq{k}/s{name_seed(seed)}/{i}#shape"] = name_shape(shape)
    return tensors, meta


# ---- Philox 4x32-10 as AUTOMATIC1111's rng_philox.py documents it (our own numpy statement of it) ----
PHILOX_M = (0xD2511F53, 0xCD9E8D57)
PHILOX_W = (0x9E3779B9, 0xBB67AE85)


def philox_randn(seed, offset, n):
    """One randn draw of n values: counter = (offset, 0, index, 0), key = (seed lo, seed hi)."""
    seed %= 2**64
    c0 = np.full(n, offset % 2**32, dtype=np.uint64)
    c1 = np.zeros(n, dtype=np.uint64)
    c2 = np.arange(n, dtype=np.uint64)
    c3 = np.zeros(n, dtype=np.uint64)
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    mask = np.uint64(0xFFFFFFFF)
    for rnd in range(10):
        p0 = c0 * np.uint64(PHILOX_M[0])  # < 2^64: exact in uint64
        p1 = c2 * np.uint64(PHILOX_M[1])
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ np.uint64(k0), p1 & mask,
                          (p0 >> np.uint64(32)) ^ c3 ^ np.uint64(k1), p0 & mask)
        if rnd < 9:
            k0 = (k0 + PHILOX_W[0]) & 0xFFFFFFFF
            k1 = (k1 + PHILOX_W[1]) & 0xFFFFFFFF
    # Box-Muller in float64 with float32 constants, as rng_philox.py's numpy promotion does; sine branch only.
    inv32 = float(np.float32(2.3283064e-10))
    inv32_2pi = float(np.float32(2.3283064e-10 * 6.2831855))
    u = c0.astype(np.float64) * inv32 + inv32 / 2
    v = c1.astype(np.float64) * inv32_2pi + inv32_2pi / 2
    return (np.sqrt(-2.0 * np.log(u)) * np.sin(v)).astype(np.float32)


def philox_file():
    tensors, meta = {}, {}
    for seed in [0, 1, 42, 2**32 - 1, 2**32 + 5, 1234567890123, 2**64 - 1]:
        for n in [1, 3, 16, 17, 100, 4 * 8 * 8]:
            tensors[f"s{seed}/o0/{n}"] = philox_randn(seed, 0, n)
        for offset in [1, 2, 5]:
            tensors[f"s{seed}/o{offset}/256"] = philox_randn(seed, offset, 256)
    big = philox_randn(42, 0, 4 * 64 * 64)
    meta["s42/o0/16384"] = "crc32:%08x" % (zlib.crc32(big.astype("<f4").tobytes()) & 0xFFFFFFFF)
    tensors["s42/o0/16384@head"] = big[:64].copy()
    meta.update(script="tools/reference/make_rng_goldens.py", numpy=np.__version__,
                note="numpy restatement of AUTOMATIC1111 modules/rng_philox.py; not recorded on a GPU")
    save_file(tensors, os.path.join(OUT_DIR, "rng_philox.safetensors"), meta)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        tensors, meta = torch_draws(sys.argv[2])
        save_file(tensors, sys.argv[3], {"meta": json.dumps(meta)})
        return
    import torch

    tensors, meta = {}, {}
    for kernel, cap in [("avx2", "avx2"), ("scalar", "default")]:
        tmp = os.path.join(OUT_DIR, f".rng_{kernel}.tmp.safetensors")
        env = dict(os.environ, ATEN_CPU_CAPABILITY=cap)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kernel, tmp], env=env, check=True)
        tensors.update(load_file(tmp))
        from safetensors_io import load_metadata

        meta.update(json.loads(load_metadata(tmp)["meta"]))
        os.remove(tmp)
    meta.update(script="tools/reference/make_rng_goldens.py", torch=torch.__version__, numpy=np.__version__)
    save_file(tensors, os.path.join(OUT_DIR, "rng_torch_cpu.safetensors"), meta)
    philox_file()


if __name__ == "__main__":
    main()
