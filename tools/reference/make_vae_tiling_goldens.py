"""Tiled VAE decoding golden: diffusers' AutoencoderKL.enable_tiling() (v0.30 tiled_decode: tiles of
sample_size pixels, 1/4 overlap, linear blends across the overlap, blending each tile with its already blended
upper and left neighbours) on the embedded model's VAE (models/tiny/vae, sample_size 32 -> 8-latent tiles), for a
latent of 14x20 that leaves partial tiles at the bottom and right; and tiled encoding (v0.30 tiled_encode: image
tiles of sample_size pixels stepping by 3/4 of a tile, moments blended over a quarter of a latent tile) of a
56x80 image.

Run with the reference environment (tools/reference/README.md):
    source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_vae_tiling_goldens.py
Writes tests/golden/data/vae_tiled.safetensors: z (already divided by the scaling factor), tiled (the tiled
decode) and full (the ordinary decode of the same z, for the size of the seams); x (the image), enc_mean and
enc_logvar (the tiled encoder's posterior, logvar clamped to [-30, 20] as DiagonalGaussianDistribution does),
enc_full_mean (the ordinary encoder's mean).
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
from safetensors_io import save_file  # noqa: E402


def main():
    from diffusers import AutoencoderKL
    vae = AutoencoderKL.from_pretrained(os.path.join(ROOT, "models", "tiny", "vae"), torch_dtype=torch.float32).eval()
    assert vae.tile_sample_min_size == 32 and vae.tile_latent_min_size == 8, (vae.tile_sample_min_size, vae.tile_latent_min_size)
    g = torch.Generator().manual_seed(2026)
    z = torch.randn([1, vae.config.latent_channels, 14, 20], generator=g)
    x = torch.rand([1, 3, 56, 80], generator=g) * 2 - 1
    with torch.no_grad():
        full = vae.decode(z).sample
        enc_full = vae.encode(x).latent_dist
        vae.enable_tiling()
        tiled = vae.decode(z).sample
        enc = vae.encode(x).latent_dist
    print(f"tiled vs full: max |diff| {float((tiled - full).abs().max()):.4f}, shape {tuple(tiled.shape)}")
    print(f"tiled vs full encode mean: max |diff| {float((enc.mean - enc_full.mean).abs().max()):.4f}, "
          f"shape {tuple(enc.mean.shape)}")
    out = os.path.join(ROOT, "tests", "golden", "data", "vae_tiled.safetensors")
    save_file({"z": z.contiguous(), "tiled": tiled.contiguous(), "full": full.contiguous(), "x": x.contiguous(),
               "enc_mean": enc.mean.contiguous(), "enc_logvar": enc.logvar.contiguous(),
               "enc_full_mean": enc_full.mean.contiguous()}, out,
              metadata={"tile_latent": "8", "tile_sample": "32", "overlap": "0.25",
                        "source": "diffusers 0.30.3 AutoencoderKL.tiled_decode and tiled_encode"})
    print("wrote", out)


if __name__ == "__main__":
    main()
