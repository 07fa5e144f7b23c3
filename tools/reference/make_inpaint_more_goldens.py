"""More inpainting goldens in AUTOMATIC1111's semantics, beside make_inpaint_goldens.py (whose models, mask and
steps this reuses): the other "Masked content" choices and "Inpaint area: Only masked".

  - fill (inpainting_fill 0): before it is encoded, the picture's masked part is filled with colours blurred in
    from the rest (A1111's masking.fill): the unmasked pixels, premultiplied (an RGBa paste through the inverted
    mask), blurred with Pillow's GaussianBlur at radius 256, 64, 16, 4, 2, 0 and alpha-composited 1, 1, 2, 4, 2, 1
    times over a transparent picture; its RGB.
  - latent noise (2): the init latent's masked part replaced by the seed's noise (A1111 draws it with
    create_random_tensors from the same seeds, so it is the sampling noise): init = init * keep + noise * repaint.
  - latent nothing (3): init = init * keep.
  - only masked (inpaint_full_res): the box around the blurred mask's non-zero pixels, grown by the padding
    (get_crop_region), then grown to the processing size's aspect ratio and moved back inside the picture
    (expand_crop_region); the picture and the blurred mask are cut to it and resized with A1111's resize mode 2
    ("resize and fill": LANCZOS to fit, centred, the bands filled by resizing a zero-size box at the edge with
    Pillow's default filter, BICUBIC); the
    result is resized back with mode 1 ("crop and resize") and pasted into the box; the original goes back on top
    weighted by the blurred mask (not doubled, unlike the whole picture).
The sampling, the 9-channel model's extra input and the paste-back rounding are make_inpaint_goldens.py's.

Run with the pip venv (tools/reference/README.md), after make_inpaint_goldens.py:
    /work/refvenv/bin/python tools/reference/make_inpaint_more_goldens.py
Writes tests/golden/data/inpaint_more_cases.safetensors: the inputs ("square", "wide", "disc": init_image
[1, 3, H, W] and mask [H, W], u8), square.fill (the fill of the square input under its blurred mask), and per case
its latent and image.
"""
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The pip venv has no clip-anytorch, which k_diffusion imports for its evaluation module only: that script puts a
# stand-in in its place (its docstring explains) when imported, before k_diffusion is.
import make_sdxl_kdiffusion_goldens  # noqa: E402,F401
import make_inpaint_goldens as ig  # noqa: E402
from make_inpaint_goldens import mg, export, safetensors_io, UNet2DConditionModel, CLIPTokenizer  # noqa: E402

OUT, BASE, INPAINT, SIZE, MASK_BLUR = ig.OUT, ig.BASE, ig.INPAINT, ig.SIZE, ig.MASK_BLUR
FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = 0, 1, 2, 3

CASES = [
    # name, model, sampler, steps, cfg, seed, prompt, strength, masked content, only masked (padding or None), input
    ("fill_euler_a", "base", "euler_a", 12, 7.0, 31, "a red circle", 0.75, FILL, None, "square"),
    ("latent_noise_euler", "base", "euler", 10, 6.0, 32, "a blue square", 0.9, LATENT_NOISE, None, "square"),
    ("latent_nothing_dpmpp2m", "base", "dpm++2m", 10, 5.0, 33, "a green field", 1.0, LATENT_NOTHING, None, "square"),
    ("only_masked_euler_a", "base", "euler_a", 12, 7.0, 34, "a yellow star", 0.75, ORIGINAL, 4, "wide"),
    ("only_masked_fill_inpaint9", "inpaint", "euler", 10, 6.0, 35, "a small square", 0.8, FILL, 2, "disc"),
]


def a1111_fill(image, mask):
    """masking.fill: image RGB, mask L (white = masked)."""
    out = Image.new("RGBA", image.size)
    masked = Image.new("RGBa", image.size)
    masked.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(mask.convert("L")))
    for radius, repeats in [(256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)]:
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    return out.convert("RGB")


def crop_region(mask, pad):
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return (max(int(xs.min()) - pad, 0), max(int(ys.min()) - pad, 0), min(int(xs.max()) + 1 + pad, w),
            min(int(ys.max()) + 1 + pad, h))


def grow_span(lo, hi, diff, size):
    """One axis of expand_crop_region: half the growth before, the rest after, then back inside [0, size)."""
    lo, hi = lo - diff // 2, hi + diff - diff // 2
    if hi >= size:
        lo, hi = lo - (hi - size), size
    if lo < 0:
        lo, hi = 0, hi - lo
    return lo, min(hi, size)


def expand_crop_region(region, pw, ph, iw, ih):
    x1, y1, x2, y2 = region
    if (x2 - x1) / (y2 - y1) > pw / ph:
        y1, y2 = grow_span(y1, y2, int((x2 - x1) / (pw / ph) - (y2 - y1)), ih)
    else:
        x1, x2 = grow_span(x1, x2, int((y2 - y1) * (pw / ph) - (x2 - x1)), iw)
    return x1, y1, x2, y2


def resize_crop(im, width, height):
    """images.resize_image mode 1 with LANCZOS."""
    ratio, src_ratio = width / height, im.width / im.height
    src_w = width if ratio > src_ratio else im.width * height // im.height
    src_h = height if ratio <= src_ratio else im.height * width // im.width
    resized = im.resize((src_w, src_h), resample=Image.LANCZOS)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    return res


def resize_fill(im, width, height):
    """images.resize_image mode 2 with LANCZOS."""
    ratio, src_ratio = width / height, im.width / im.height
    src_w = width if ratio < src_ratio else im.width * height // im.height
    src_h = height if ratio >= src_ratio else im.height * width // im.width
    resized = im.resize((src_w, src_h), resample=Image.LANCZOS)
    res = Image.new("RGB", (width, height))
    res.paste(resized, box=(width // 2 - src_w // 2, height // 2 - src_h // 2))
    if ratio < src_ratio:
        fill = height // 2 - src_h // 2
        if fill > 0:
            res.paste(resized.resize((width, fill), box=(0, 0, width, 0)), box=(0, 0))
            res.paste(resized.resize((width, fill), box=(0, resized.height, width, resized.height)), box=(0, fill + src_h))
    elif ratio > src_ratio:
        fill = width // 2 - src_w // 2
        if fill > 0:
            res.paste(resized.resize((fill, height), box=(0, 0, 0, height)), box=(0, 0))
            res.paste(resized.resize((fill, height), box=(resized.width, 0, resized.width, height)), box=(fill + src_w, 0))
    return res


def inputs(kind, gen):
    """(init u8 [H, W, 3], mask u8 [H, W]) for a case's input kind."""
    if kind == "square":
        init = (torch.rand((SIZE, SIZE, 3), generator=gen) * 255).round().to(torch.uint8).numpy()
        return init, ig.make_mask()
    h, w = 40, 48
    init = (torch.rand((h, w, 3), generator=gen) * 255).round().to(torch.uint8).numpy()
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), np.uint8)
    if kind == "wide":   # a wide bar: the box outgrows the picture's height, so resize mode 2 fills bands
        m[14:22, 4:44] = 255
    else:                # a disc off-centre
        m[(xx - 34) ** 2 + (yy - 12) ** 2 <= 36] = 255
    return init, m


def main():
    vae, unet4, te = export.load_diffusers(BASE)
    unet9 = UNet2DConditionModel.from_pretrained(os.path.join(INPAINT, "unet")).float().eval()
    for m in (unet4, unet9, vae):
        m.set_attn_processor(mg.ZeroedAttnProcessor())
    tok = CLIPTokenizer.from_pretrained(os.path.join(BASE, "tokenizer"))
    sf = vae.config.scaling_factor
    gen = torch.Generator().manual_seed(71)
    tensors, meta = {}, {"script": "tools/reference/make_inpaint_more_goldens.py", "git": mg.git_hash(),
                         "torch": torch.__version__, "pillow": Image.__version__, "width": str(SIZE),
                         "height": str(SIZE), "mask_blur": str(MASK_BLUR)}
    made = {}
    for kind in ("square", "wide", "disc"):
        made[kind] = inputs(kind, gen)
        tensors[f"{kind}.init_image"] = torch.from_numpy(made[kind][0].copy()).permute(2, 0, 1)[None].contiguous()
        tensors[f"{kind}.mask"] = torch.from_numpy(made[kind][1].copy())
    # The fill alone, on the square input with its blurred mask.
    sq_init, sq_mask = made["square"]
    filled = a1111_fill(Image.fromarray(sq_init), Image.fromarray(ig.gaussian_blur_u8(sq_mask, MASK_BLUR)))
    tensors["square.fill"] = torch.from_numpy(np.array(filled)).permute(2, 0, 1)[None].contiguous()
    with torch.no_grad():
        for name, which, sampler, steps, cfg, seed, prompt, strength, content, pad, kind in CASES:
            init_u8, mask_u8 = made[kind]
            full = ig.gaussian_blur_u8(mask_u8, MASK_BLUR)
            image = Image.fromarray(init_u8)
            region = None
            if pad is not None:
                region = expand_crop_region(crop_region(full, pad), SIZE, SIZE, full.shape[1], full.shape[0])
                image = resize_fill(image.crop(region), SIZE, SIZE)
                pmask = np.array(resize_fill(Image.fromarray(full).crop(region), SIZE, SIZE))[..., 0]
                overlay = full
            else:
                pmask = full
                overlay = np.clip(full.astype(np.int64) * 2, 0, 255)
            if content == FILL:
                image = a1111_fill(image, Image.fromarray(pmask))
            src = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1.0
            lh = lw = SIZE // 2  # the tiny model's latent is half the picture's side
            lat_u8 = np.array(Image.fromarray(pmask).convert("RGB").resize((lw, lh)), dtype=np.float32)[..., 0]
            latmask = torch.from_numpy(np.around(lat_u8 / 255.0).astype(np.float32))[None, None]
            keep, repaint = 1.0 - latmask, latmask
            concat, unet = None, unet4
            if which == "inpaint":
                unet = unet9
                concat = ig.inpaint_concat(vae, sf, src, pmask)

            def edit_init(init, noise, content=content, keep=keep, repaint=repaint):
                if content == LATENT_NOISE:  # the seed's noise, which is the sampling noise
                    return init * keep + noise * repaint
                if content == LATENT_NOTHING:
                    return init * keep
                return init

            x0, _ = ig.a1111_inpaint(vae, unet, concat, tok, te, src, keep, repaint, sampler, steps, cfg, seed, prompt,
                                     strength, edit_init)
            img = vae.decode(x0 / sf).sample
            gen8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)[0].permute(1, 2, 0).numpy()
            if region is not None:
                x1, y1, x2, y2 = region
                pasted = init_u8.copy()
                pasted[y1:y2, x1:x2] = np.array(resize_crop(Image.fromarray(gen8), x2 - x1, y2 - y1))
                gen8 = pasted
            ov = overlay.astype(np.int64)[..., None]
            out = (gen8.astype(np.int64) * ov + init_u8.astype(np.int64) * (255 - ov) + 127) // 255
            tensors[f"{name}.latent"] = x0.contiguous()
            tensors[f"{name}.image"] = torch.from_numpy(out.astype(np.uint8)).permute(2, 0, 1)[None].contiguous()
            meta[f"{name}.params"] = json.dumps(dict(model=which, sampler=sampler, steps=steps, cfg=cfg, seed=seed,
                                                     prompt=prompt, strength=strength, inpainting_fill=content,
                                                     padding=pad, input=kind, crop=region))
            print(f"{name}: input {kind} {init_u8.shape[1]}x{init_u8.shape[0]}, crop {region}, latent mask repaints "
                  f"{int(latmask.sum())} of {lh * lw} cells; changed pixels {int((out != init_u8).sum())}")
    safetensors_io.save_file(tensors, os.path.join(OUT, "inpaint_more_cases.safetensors"), meta)


if __name__ == "__main__":
    main()
