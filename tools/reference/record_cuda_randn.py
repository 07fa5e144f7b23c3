#!/usr/bin/env python3
"""Records torch's CUDA randn (AUTOMATIC1111's default "GPU" RNG) as test vectors for easel's `--rng cuda`.

Needs a machine with an NVIDIA GPU and a CUDA build of torch (any recent version; the values depend on
torch's Philox kernel, not on the card, as long as every draw fits in one pass of the kernel's grid, which
holds for every shape below on any GPU with 8 or more multiprocessors). Writes one safetensors file:

    python3 tools/reference/record_cuda_randn.py tests/golden/data/rng_cuda.safetensors

Tensor names:
    s<seed as uint64>/<shape joined by x>      torch.randn(shape, generator=g, device="cuda"), g freshly seeded
    seq<k>/s<seed>/<i>                          the i-th draw of sequence k from one generator (what a sampler
                                                does: initial noise, then a draw per ancestral/SDE step)
    global/s<seed>/<i>                          torch.manual_seed(seed), then torch.randn(shape, device="cuda")
                                                twice: AUTOMATIC1111's own way of drawing "GPU" noise
Each draw is made in full, in order, but only some are stored whole (float32), to keep the file small: every
draw of <= 256 values; larger fresh draws for seed 42 (and 2^64-1 up to 4x64x64); draws 0 and 3 of seq1; draw 1
of seq3; global s42. The test replays each sequence in full and compares the draws kept. The metadata names
torch, CUDA, the GPU and each sequence's shapes.

Recorded 2026-11-26 on an NVIDIA H200 (132 SMs), torch 2.11.0+cu130, CUDA 13.0.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from safetensors_io import save_file  # noqa: E402

SEEDS = [0, 1, 42, 2**32 - 1, 2**32 + 5, 1234567890123, 2**64 - 1]
SHAPES = [[1], [3], [16], [17], [100], [4, 8, 8], [1, 4, 64, 64], [2, 4, 96, 64]]
SEQUENCES = [
    (0, [[1, 4, 8, 8]] * 6),
    (1234, [[1, 4, 64, 64]] * 4),
    (7, [[3], [3], [1], [20], [5], [1], [16], [2]]),
    (99, [[1, 4, 128, 128], [1, 4, 128, 128]]),
]


def name_shape(shape):
    return "x".join(str(d) for d in shape)


def kept(name):
    """Which draws of more than 256 values the file keeps."""
    if name.startswith("s42/") or name in ("seq1/s1234/0", "seq1/s1234/3", "seq3/s99/1") or name.startswith("global/s42/"):
        return True
    return name.startswith(f"s{2**64 - 1}/") and not name.endswith("/2x4x96x64")


def main():
    import torch

    if not torch.cuda.is_available():
        sys.exit("error: no CUDA device; these vectors must come from torch's CUDA generator")
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "tests", "golden", "data",
                                                             "rng_cuda.safetensors")
    tensors, meta = {}, {}

    def keep(name, t):
        if t.numel() > 256 and not kept(name):
            return
        tensors[name] = t.float().cpu().numpy().astype("<f4")

    for seed in SEEDS:
        for shape in SHAPES:
            g = torch.Generator(device="cuda").manual_seed(seed)
            keep(f"s{seed % 2**64}/{name_shape(shape)}", torch.randn(shape, generator=g, device="cuda"))
    for k, (seed, shapes) in enumerate(SEQUENCES):
        g = torch.Generator(device="cuda").manual_seed(seed)
        meta[f"seq{k}/shapes"] = json.dumps(shapes)
        for i, shape in enumerate(shapes):
            keep(f"seq{k}/s{seed}/{i}", torch.randn(shape, generator=g, device="cuda"))
    for seed in (42, 3000000000):
        torch.manual_seed(seed)
        for i in range(2):
            keep(f"global/s{seed}/{i}", torch.randn([1, 4, 64, 64], device="cuda"))
    props = torch.cuda.get_device_properties(0)
    meta.update(script="tools/reference/record_cuda_randn.py", torch=torch.__version__, cuda=str(torch.version.cuda),
                gpu=props.name, multiprocessors=str(props.multi_processor_count),
                note="recorded on a GPU: torch.randn(..., device='cuda') with torch.Generator('cuda').manual_seed",
                trimmed="kept: every draw of <= 256 values; larger fresh draws for seed 42 (and 2^64-1 up to 4x64x64) "
                        "only; seq1 draws 0 and 3; seq3 draw 1; global s42. The test replays each sequence in full and "
                        "compares the draws kept.")
    save_file(tensors, out, meta)
    print(f"wrote {out}: {len(tensors)} tensors on {props.name} ({props.multi_processor_count} SMs), "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
