#!/work/refvenv/bin/python
"""FLOPs of one UNet call and one VAE decode, for the fraction-of-peak figures in docs/performance.md.

The published configs (make_key_lists.py, make_sdxl_key_lists.py) are built on torch's meta device (no weights, no
arithmetic) and run once under torch.utils.flop_counter.FlopCounterMode, which counts every matmul, convolution
and attention product as 2 FLOP per multiply-add; elementwise ops, norms and softmax are not counted (they are
memory-bound and a few percent of the time). The attention runs as diffusers' AttnProcessor (explicit
baddbmm + softmax + bmm), so its two products are counted like any matmul.

    HF_HUB_OFFLINE=1 /work/refvenv/bin/python tools/reference/count_flops.py

Versions: torch 2.4.1, diffusers 0.30.3 (tools/reference/requirements-pip.txt). Prints one line per model.
"""
import os
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_key_lists as mk  # noqa: E402
import make_sdxl_key_lists as mx  # noqa: E402
from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: E402
from diffusers.models.attention_processor import AttnProcessor  # noqa: E402


def config(cfg):
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def count(fn):
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def unet_flops(cfg, latent_side, batch, context_width, added=None):
    with torch.device("meta"):
        unet = UNet2DConditionModel(**config(cfg)).eval()
        unet.set_attn_processor(AttnProcessor())
        x = torch.empty(batch, cfg.get("in_channels", 4), latent_side, latent_side)
        ctx = torch.empty(batch, 77, context_width)
        t = torch.full((batch,), 500.0)
        kw = {}
        if added:
            kw["added_cond_kwargs"] = {"text_embeds": torch.empty(batch, added[0]), "time_ids": torch.empty(batch, added[1])}
        with torch.no_grad():
            return count(lambda: unet(x, t, encoder_hidden_states=ctx, **kw))


def vae_decode_flops(cfg, image_side):
    with torch.device("meta"):
        vae = AutoencoderKL(**config(cfg)).eval()
        vae.set_attn_processor(AttnProcessor())
        z = torch.empty(1, 4, image_side // 8, image_side // 8)
        with torch.no_grad():
            return count(lambda: vae.decode(z))


def main():
    rows = [
        ("SD 1.5 UNet, 512x512, CFG (batch 2)", unet_flops(mk.SD15_UNET, 64, 2, 768)),
        ("SDXL base UNet, 1024x1024, CFG (batch 2)", unet_flops(mx.SDXL_BASE_UNET, 128, 2, 2048, (1280, 6))),
        ("SDXL refiner UNet, 1024x1024, CFG (batch 2)", unet_flops(mx.SDXL_REFINER_UNET, 128, 2, 1280, (1280, 5))),
        ("SD 1.5 VAE decode, 512x512", vae_decode_flops(mk.SD_VAE, 512)),
        ("SDXL VAE decode, 1024x1024", vae_decode_flops(mx.SDXL_VAE, 1024)),
    ]
    for name, flops in rows:
        print(f"{name:46s} {flops / 1e12:8.3f} TFLOP")


if __name__ == "__main__":
    main()
