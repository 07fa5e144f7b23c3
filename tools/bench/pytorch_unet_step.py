#!/work/refvenv/bin/python
"""PyTorch's time for one UNet call with CFG (batch 2), the comparison docs/performance.md and issues 19/20 ask for.

The UNet is diffusers' UNet2DConditionModel built from the published config (make_key_lists.py's SD15_UNET or
make_sdxl_key_lists.py's SDXL_BASE_UNET) with its default random initialisation, cast to --dtype, in eval mode
under torch.inference_mode, with PyTorch's own scaled_dot_product_attention (diffusers' default AttnProcessor2_0)
and oneDNN where PyTorch uses it. Weights' values do not change the time. Runs --warmup calls, then --runs timed
calls; prints each, the median, and the process's peak RSS (VmHWM).

    /work/refvenv/bin/python tools/bench/pytorch_unet_step.py --model sdxl_base --size 1024 --dtype bf16 --threads 2

Versions: the pip venv of tools/reference/README.md (torch 2.4.1 CPU wheel, diffusers 0.30.3).
"""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import make_key_lists as mk  # noqa: E402
import make_sdxl_key_lists as mx  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

MODELS = {  # config, context width, added conditioning (pooled width, ids)
    "sd15": (mk.SD15_UNET, 768, None),
    "sdxl_base": (mx.SDXL_BASE_UNET, 2048, (1280, 6)),
}


def vm_hwm_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=sorted(MODELS), default="sdxl_base")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, width, added = MODELS[a.model]
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    t0 = time.perf_counter()
    unet = UNet2DConditionModel(**{k: v for k, v in cfg.items() if not k.startswith("_")}).eval().to(dtype)
    print(f"built {a.model} UNet ({sum(p.numel() for p in unet.parameters()) / 1e9:.2f} B parameters, {a.dtype}) "
          f"in {time.perf_counter() - t0:.1f} s")
    side = a.size // 8
    x = torch.randn(2, 4, side, side, dtype=dtype)
    ctx = torch.randn(2, 77, width, dtype=dtype)
    t = torch.full((2,), 500.0)
    kw = {}
    if added:
        kw["added_cond_kwargs"] = {"text_embeds": torch.randn(2, added[0], dtype=dtype),
                                   "time_ids": torch.tensor([[a.size, a.size, 0, 0, a.size, a.size]] * 2, dtype=dtype)}
    times = []
    with torch.inference_mode():
        for i in range(a.warmup + a.runs):
            t0 = time.perf_counter()
            unet(x, t, encoder_hidden_states=ctx, **kw)
            dt = time.perf_counter() - t0
            print(f"{'warm-up' if i < a.warmup else 'timed'} call {i}: {dt:.2f} s", flush=True)
            if i >= a.warmup:
                times.append(dt)
    print(f"torch {torch.__version__}, {a.model} {a.size}x{a.size} CFG (batch 2), {a.dtype}, {a.threads} threads: "
          f"median {statistics.median(times):.2f} s over {len(times)}; peak RSS {vm_hwm_mib():.0f} MiB")


if __name__ == "__main__":
    main()
