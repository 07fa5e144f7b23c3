"""Goldens for the tiny autoencoders used for previews (TAESD and kin): diffusers 0.30.3's AutoencoderTiny with random
weights, 16 channels instead of 64 (the layer list and the names are the real ones; the width is read from the
weights), 4 latent channels (TAESD, TAESDXL) and 16 (TAESD3, TAEF1).

Writes tests/golden/data/taesd/:
  - tiny4/ and tiny16/: diffusers folders (config.json, diffusion_pytorch_model.safetensors: encoder and decoder,
    fp16 weights; the reference ran with those fp16 values in fp32);
  - tiny4_decoder.safetensors: the same decoder as madebyollin's taesd_decoder files name it (a bare
    nn.Sequential whose index 0 is its Clamp module: diffusers' decoder.layers.K is K + 1 there);
  - cases.safetensors: per model a latent [1, C, 8, 12] and AutoencoderTiny.decode's image [1, 3, 64, 96], and an
    image [1, 3, 64, 96] in [-1, 1] with AutoencoderTiny.encode's latents.

Run with the pip venv: /work/refvenv/bin/python tools/reference/make_taesd_goldens.py
"""
import json
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import diffusers  # noqa: E402
from diffusers import AutoencoderTiny  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "golden", "data", "taesd")


def main():
    assert diffusers.__version__ == "0.30.3", diffusers.__version__
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(2024)
    tensors = {}
    meta = {"script": "tools/reference/make_taesd_goldens.py", "torch": torch.__version__, "diffusers": diffusers.__version__}
    for lat in (4, 16):
        torch.manual_seed(lat)
        m = AutoencoderTiny(encoder_block_out_channels=(16,) * 4, decoder_block_out_channels=(16,) * 4,
                            latent_channels=lat).eval()
        with torch.no_grad():
            for p in m.parameters():  # kaiming-like scale, rounded to fp16 (what the file stores)
                fan_in = p[0].numel() if p.dim() > 1 else 16
                p.copy_((torch.randn(p.shape, generator=gen) * (1.6 / fan_in) ** 0.5).half().float())
        d = os.path.join(OUT, f"tiny{lat}")
        os.makedirs(d, exist_ok=True)
        sd = {k: v.half().contiguous() for k, v in m.state_dict().items()}
        safetensors_io.save_file(sd, os.path.join(d, "diffusion_pytorch_model.safetensors"), {"format": "pt"})
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(dict(m.config), f, indent=1, default=str)
        if lat == 4:
            bare = {}
            for k, v in sd.items():
                if k.startswith("decoder.layers."):
                    idx, rest = k[len("decoder.layers."):].split(".", 1)
                    bare[f"{int(idx) + 1}.{rest}"] = v
            safetensors_io.save_file(bare, os.path.join(OUT, "tiny4_decoder.safetensors"), {"format": "pt"})
        with torch.no_grad():
            z = torch.randn((1, lat, 8, 12), generator=gen) * 1.5
            x = torch.rand((1, 3, 64, 96), generator=gen) * 2 - 1
            tensors[f"tiny{lat}.latent"] = z
            tensors[f"tiny{lat}.decoded"] = m.decode(z).sample.contiguous()
            tensors[f"tiny{lat}.image"] = x
            tensors[f"tiny{lat}.encoded"] = m.encode(x).latents.contiguous()
        print(f"tiny{lat}: decoded std {tensors[f'tiny{lat}.decoded'].std():.3f}, "
              f"encoded std {tensors[f'tiny{lat}.encoded'].std():.3f}")
    safetensors_io.save_file(tensors, os.path.join(OUT, "cases.safetensors"), meta)


if __name__ == "__main__":
    main()
