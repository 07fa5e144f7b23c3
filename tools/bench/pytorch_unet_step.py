#!/work/refvenv/bin/python
"""PyTorch's time for one UNet call with CFG (batch 2) and, with --decode, one VAE decode: the comparison
docs/performance.md and issues 19/20 ask for (`make bench-e2e TORCH=/work/refvenv/bin/python` runs it beside easel).

The UNet is diffusers' UNet2DConditionModel built from the published config (make_key_lists.py's SD15_UNET or
make_sdxl_key_lists.py's SDXL_BASE_UNET) with its default random initialisation, cast to --dtype, in eval mode
under torch.inference_mode, with PyTorch's own scaled_dot_product_attention (diffusers' default AttnProcessor2_0)
and oneDNN where PyTorch uses it. Weights' values do not change the time. Runs --warmup calls, then --runs timed
calls; prints each, the median, and the process's peak RSS (VmHWM).

--decode then times AutoencoderKL.decode of one latent (batch 1, as a pipeline decodes one image) from the model's
published VAE config (make_key_lists.py's SD_VAE, make_sdxl_key_lists.py's SDXL_VAE), once warm-up and once timed,
in --dtype, except where the config sets force_upcast (SDXL's VAE), which diffusers' pipelines run in fp32. --json
ends the output with one JSON line (what scripts/bench-e2e reads).

    /work/refvenv/bin/python tools/bench/pytorch_unet_step.py --model sdxl_base --size 1024 --dtype bf16 --threads 2
    /work/refvenv/bin/python tools/bench/pytorch_unet_step.py --model sd15 --size 512 --decode --json

Versions: the pip venv of tools/reference/README.md (torch 2.4.1 CPU wheel, diffusers 0.30.3).
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reference"))
import make_key_lists as mk  # noqa: E402
import make_sdxl_key_lists as mx  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402

MODELS = {  # config, context width, added conditioning (pooled width, ids), VAE config
    "sd15": (mk.SD15_UNET, 768, None, mk.SD_VAE),
    "sdxl_base": (mx.SDXL_BASE_UNET, 2048, (1280, 6), mx.SDXL_VAE),
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
    ap.add_argument("--decode", action="store_true", help="also time one VAE decode")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the timings")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg, width, added, vae_cfg = MODELS[a.model]
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
    decode_s, vae_dtype = None, None
    if a.decode:
        del unet
        upcast = vae_cfg.get("force_upcast", False)
        vae_dtype = "fp32" if upcast else a.dtype
        vae = AutoencoderKL(**{k: v for k, v in vae_cfg.items() if not k.startswith("_")}).eval()
        vae = vae.to(torch.float32 if upcast else dtype)
        z = torch.randn(1, vae_cfg.get("latent_channels", 4), side, side, dtype=next(vae.parameters()).dtype)
        with torch.inference_mode():
            for i in range(2):
                t0 = time.perf_counter()
                vae.decode(z)
                dt = time.perf_counter() - t0
                print(f"{'warm-up' if i == 0 else 'timed'} VAE decode ({vae_dtype}): {dt:.2f} s", flush=True)
        decode_s = dt
    if a.json:
        print(json.dumps({"engine": "pytorch", "torch": torch.__version__, "model": a.model, "dtype": a.dtype,
                          "vae_dtype": vae_dtype, "threads": a.threads, "size": a.size, "steps_s": times,
                          "decode_s": decode_s, "peak_rss_mb": vm_hwm_mib()}))


if __name__ == "__main__":
    main()
