"""Inpainting goldens in AUTOMATIC1111's semantics (img2img "Inpaint upload", whole picture, masked content
"original", mask blur 4), run through k-diffusion, on tiny random-weight SD 1.x-shaped models:

  - an ordinary 4-channel model (tests/golden/data/pipeline_sd1/, from make_pipeline_goldens.py): latent
    blending only;
  - a 9-channel inpainting model written here as tests/golden/data/pipeline_sd1_inpaint/ (its own random UNet;
    VAE, text encoder, tokenizer and scheduler copied from pipeline_sd1): the UNet also takes the mask and the
    masked picture's latent.

Run with the reference environment (tools/reference/README.md), after make_pipeline_goldens.py:
    source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_inpaint_goldens.py

What A1111's processing.py and CFGDenoiser do, step by step (as this script does it):
  1. mask -> "L" (PIL convert); blur: horizontal then vertical Gaussian, kernel 2*int(2.5*b+0.5)+1, sigma b,
     borders reflect-101, 8-bit after each pass (A1111 calls cv2.GaussianBlur; OpenCV is not installed here, so
     this is the same kernel in float64, rounded: OpenCV's fixed point may differ by one level).
  2. latent mask: the blurred mask as RGB, PIL resize to the latent size (default filter: BICUBIC), channel 0
     / 255, np.around. mask = 1 - latmask (keep), nmask = latmask (repaint).
  3. init latent: encoder moments -> (mean + std * randn(generator)) * scaling_factor (A1111 samples with the
     global RNG; here the image's generator draws it before the noise, as easel's img2img does);
     x = init + randn(generator) * sigmas[0], sigmas cut by strength as img2img.
  4. each denoiser call: denoised = init * mask + nmask * denoised; at the end x = x * nmask + init * mask.
  5. 9-channel models: c_concat = [round(blurred / 255) resized (nearest) to the latent; latent mean of
     image * (1 - round(blurred / 255)) * scaling_factor], appended to the UNet input for cond and uncond
     (A1111 samples this latent with the global RNG too; the mean is used here and in easel).
  6. decode, then paste the original back: overlay = clip(2 * blurred, 0, 255);
     out = (generated * overlay + original * (255 - overlay) + 127) // 255 (A1111 alpha-composites RGBA images;
     its premultiplied rounding may differ by one level).
Writes tests/golden/data/inpaint_cases.safetensors (init image, mask, per case latent and image).
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import safetensors_io  # noqa: E402
import make_model_goldens as mg  # noqa: E402
import make_pipeline_goldens as pg  # noqa: E402
import export  # noqa: E402

import k_diffusion as K  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402
from transformers import CLIPTokenizer  # noqa: E402

OUT = os.path.join(ROOT, "tests", "golden", "data")
BASE = os.path.join(OUT, "pipeline_sd1")
INPAINT = os.path.join(OUT, "pipeline_sd1_inpaint")
SIZE = 32
MASK_BLUR = 4

CASES = [
    # name, model, sampler, steps, cfg, seed, prompt, strength
    ("blend_euler_a", "base", "euler_a", 12, 7.0, 21, "a red circle", 0.75),
    ("blend_dpmpp2m", "base", "dpm++2m", 10, 5.0, 22, "a blue square on the left", 1.0),
    ("inpaint9_euler_a", "inpaint", "euler_a", 12, 7.0, 23, "a green triangle", 0.75),
    ("inpaint9_euler", "inpaint", "euler", 10, 6.0, 24, "a small square", 1.0),
]


def gaussian_blur_u8(a, blur):
    k = 2 * int(2.5 * blur + 0.5) + 1
    x = np.arange(k) - (k - 1) / 2.0
    w = np.exp(-x * x / (2.0 * blur * blur))
    w /= w.sum()
    r = k // 2

    def reflect101(i, n):
        while i < 0 or i >= n:
            i = -i if i < 0 else 2 * n - 2 - i
        return i

    def one_pass(img, axis):
        out = np.zeros(img.shape, np.float64)
        n = img.shape[axis]
        for off in range(-r, r + 1):
            idx = [reflect101(i + off, n) for i in range(n)]
            out += w[off + r] * np.take(img.astype(np.float64), idx, axis=axis)
        return np.clip(np.floor(out + 0.5), 0, 255).astype(np.uint8)  # round half up, like std::lround for >= 0

    return one_pass(one_pass(a, 1), 0)


def make_mask(size=SIZE):
    """A disc and a rectangle; `size` a multiple of 32 scales the 32x32 layout exactly."""
    k = size // 32
    yy, xx = np.mgrid[0:size, 0:size]
    m = np.zeros((size, size), np.uint8)
    m[(xx - 20 * k) ** 2 + (yy - 12 * k) ** 2 <= (8 * k) ** 2] = 255   # a disc
    m[20 * k:29 * k, 4 * k:15 * k] = 255                              # and a rectangle
    return m


class ConcatWrapper(pg.LdmWrapper):
    def __init__(self, unet, concat):
        super().__init__(unet)
        self.concat = concat

    def apply_model(self, x, t, cond):
        if self.concat is not None:
            x = torch.cat([x, self.concat.expand(x.shape[0], -1, -1, -1)], dim=1)
        return self.unet(x, t, encoder_hidden_states=cond).sample


def inpaint_concat(vae, sf, src, mask_u8):
    """Step 5: a 9-channel model's extra input, the rounded mask (nearest to the latent) and the latent mean of the
    picture with the masked part zeroed."""
    cmask = torch.round(torch.from_numpy(mask_u8.astype(np.float32) / 255.0))[None, None]
    mean, _ = torch.chunk(vae.quant_conv(vae.encoder(src * (1.0 - cmask))), 2, dim=1)
    cm = torch.nn.functional.interpolate(cmask, size=mean.shape[-2:])
    return torch.cat([cm, mean * sf], dim=1)


def a1111_inpaint(vae, unet, concat, tok, te, src, keep, repaint, sampler, steps, cfg, seed, prompt, strength,
                  edit_init=None):
    """Steps 3 and 4: the init latent (drawn before the noise), the blend in every denoiser call and after sampling.
    edit_init(init, noise) may change the init latent first (make_inpaint_more_goldens.py's masked content).
    Returns (x0, init)."""
    sf = vae.config.scaling_factor
    model = K.external.CompVisDenoiser(ConcatWrapper(unet, concat), quantize=False)
    cond, uncond = pg.encode(tok, te, prompt), pg.encode(tok, te, "")
    sigmas = model.get_sigmas(steps)
    t_enc = int(min(strength, 0.999) * steps)
    sigmas = sigmas[steps - t_enc - 1:]
    g = torch.Generator().manual_seed(seed)
    mean, logvar = torch.chunk(vae.quant_conv(vae.encoder(src)), 2, dim=1)
    std = torch.exp(0.5 * torch.clamp(logvar, -30.0, 20.0))
    init = (mean + std * torch.randn(mean.shape, generator=g)) * sf
    noise = torch.randn(init.shape, generator=g)
    if edit_init is not None:
        init = edit_init(init, noise)
    x = init + noise * sigmas[0]
    base = pg.cfg_denoiser(model, cond, uncond, cfg)

    def den(xx, sigma):
        return init * keep + repaint * base(xx, sigma)

    x0 = pg.run_sampler(sampler, den, x, sigmas, g)
    return x0 * repaint + init * keep, init


def write_inpaint_model(gen):
    for comp in ("vae", "text_encoder", "tokenizer", "scheduler"):
        shutil.copytree(os.path.join(BASE, comp), os.path.join(INPAINT, comp), dirs_exist_ok=True)
    spec = dict(mg.VARIANTS["sd1_tiny"]["unet"])
    spec.update(in_channels=9, layers_per_block=1)
    unet = UNet2DConditionModel(**spec).eval()
    mg.randomize(unet, gen)
    with torch.no_grad():
        for p in unet.parameters():
            p.copy_(p.half().float())
    d = os.path.join(INPAINT, "unet")
    os.makedirs(d, exist_ok=True)
    safetensors_io.save_file({k: v.half().contiguous() for k, v in unet.state_dict().items()},
                             os.path.join(d, "diffusion_pytorch_model.safetensors"), {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(dict(unet.config), f, indent=1, default=str)
    with open(os.path.join(BASE, "model_index.json")) as f:
        mi = json.load(f)
    with open(os.path.join(INPAINT, "model_index.json"), "w") as f:
        json.dump(dict(mi, _class_name="StableDiffusionInpaintPipeline"), f, indent=1)
    return unet


def main():
    gen = torch.Generator().manual_seed(8765)
    unet9 = write_inpaint_model(gen)
    vae, unet4, te = export.load_diffusers(BASE)
    for m in (unet4, unet9, vae):
        m.set_attn_processor(mg.ZeroedAttnProcessor())
    tok = CLIPTokenizer.from_pretrained(os.path.join(BASE, "tokenizer"))
    sf = vae.config.scaling_factor

    init_u8 = (torch.rand((1, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(6)) * 255).round().to(torch.uint8)
    mask_u8 = make_mask()
    blurred = gaussian_blur_u8(mask_u8, MASK_BLUR)
    src = init_u8.float() / 127.5 - 1.0
    tensors = {"init_image": init_u8, "mask": torch.from_numpy(mask_u8.copy())}
    meta = {"script": "tools/reference/make_inpaint_goldens.py", "git": mg.git_hash(), "torch": torch.__version__,
            "width": str(SIZE), "height": str(SIZE), "mask_blur": str(MASK_BLUR)}
    with torch.no_grad():
        for name, which, sampler, steps, cfg, seed, prompt, strength in CASES:
            lh = lw = SIZE // 2
            lat_u8 = np.array(Image.fromarray(blurred).convert("RGB").resize((lw, lh)), dtype=np.float32)[..., 0]
            near = int(((lat_u8 == 127) | (lat_u8 == 128)).sum())
            latmask = torch.from_numpy(np.around(lat_u8 / 255.0).astype(np.float32))[None, None]
            keep, repaint = 1.0 - latmask, latmask
            concat = None
            unet = unet4
            if which == "inpaint":
                unet = unet9
                concat = inpaint_concat(vae, sf, src, blurred)
            x0, init = a1111_inpaint(vae, unet, concat, tok, te, src, keep, repaint, sampler, steps, cfg, seed, prompt,
                                     strength)
            img = vae.decode(x0 / sf).sample
            gen8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.int64)
            overlay = torch.from_numpy(np.clip(blurred.astype(np.int64) * 2, 0, 255))[None, None]
            out = (gen8 * overlay + init_u8.to(torch.int64) * (255 - overlay) + 127) // 255
            tensors[f"{name}.latent"] = x0.contiguous()
            tensors[f"{name}.image"] = out.to(torch.uint8).contiguous()
            meta[f"{name}.params"] = json.dumps(dict(model=which, sampler=sampler, steps=steps, cfg=cfg, seed=seed,
                                                     prompt=prompt, strength=strength))
            print(f"{name}: latent mask repaints {int(latmask.sum())} of {lh * lw} cells ({near} at the 127/128 "
                  f"threshold); changed pixels {int((out != init_u8.to(torch.int64)).sum())}")
    safetensors_io.save_file(tensors, os.path.join(OUT, "inpaint_cases.safetensors"), meta)


if __name__ == "__main__":
    main()
