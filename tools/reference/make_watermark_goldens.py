#!/usr/bin/env python3
"""Reference goldens for the invisible watermark that Stable Diffusion puts in images.

Writes tests/golden/data/watermark_cases.safetensors with inputs, outputs and decoded
bits produced by the `invisible-watermark` library (import name `imwatermark`),
method 'dwtDct', driven exactly the way

  a. the Stable Diffusion v1 scripts do (CompVis scripts/txt2img.py, put_watermark):
     bytes message b"StableDiffusionV1", uint8 image, RGB -> BGR, encode, BGR -> RGB;
  b. diffusers' StableDiffusionXLWatermarker.apply_watermark does (diffusers 0.30.3,
     diffusers/pipelines/stable_diffusion_xl/watermark.py): 48-bit 'bits' message,
     float32 NCHW tensor in [-1, 1] scaled to float 0..255, RGB -> BGR, encode,
     BGR -> RGB, back to [-1, 1] and clamped. diffusers and torch are NOT imported:
     the handful of torch element-wise float32 ops are done with numpy float32 ops
     (each one a single IEEE-rounded operation in both libraries).

The algorithm itself is described in tools/reference/WATERMARK_NOTES.md.

Run it with the pinned environment (see the notes):
    OMP_NUM_THREADS=1 /work/wmvenv/bin/python tools/reference/make_watermark_goldens.py

Tensor names (H x W in the names is height x width):
    sd1.message_bits                      uint8 [136]  expected bits (MSB-first bytes)
    sdxl.message_bits                     uint8 [48]
    sd2.message_bits                      uint8 [32]   b"SDV2" (Stability SD 2.x scripts), reference only
    sd1_HxW.input / .output               uint8 [H, W, 3] RGB
    sd1_HxW.decoded_bits                  uint8 [136]  WatermarkDecoder('bytes', 136) on the output
    sd1_HxW.decoded_bits_jpeg90 / _jpeg75 after a Pillow JPEG round trip of the output
    sd1_HxW.decoded_bits_resize05         after cv2.resize(0.5x, INTER_AREA), only when the
                                          library accepts the smaller image (>= 256*256 px)
    sdxl_HxW.input / .output              float32 [1, 3, H, W], RGB, [-1, 1]
    sdxl_HxW.decoded_bits_float           uint8 [48] WatermarkDecoder('bits', 48) on the float
                                          image exactly as the encoder saw it (BGR, 255*(x/2+0.5))
    sdxl_HxW.decoded_bits                 same decoder on the uint8 RGB image that diffusers'
                                          image processor would save (round(clamp(x/2+0.5,0,1)*255))
    sdxl_HxW.decoded_bits_jpeg90 / _jpeg75 / _resize05   on that uint8 image
Cases whose name ends in "_bitsonly" store no images (size budget), only decoded bits;
their inputs are regenerated from the seed recorded in the metadata.
"""

import importlib.metadata
import io
import json
import os
import platform
import sys
import types

# imwatermark/__init__ imports its rivaGan module, which imports torch at module level.
# The dwtDct method never touches torch, so a stub module is enough when torch is absent.
try:
    import torch  # noqa: F401
    TORCH_STUBBED = False
except ImportError:
    sys.modules["torch"] = types.ModuleType("torch")
    TORCH_STUBBED = True

import cv2
import numpy as np
import pywt  # noqa: F401  (version recorded; used by the library)
from PIL import Image, features
from imwatermark import WatermarkDecoder, WatermarkEncoder
from safetensors.numpy import load_file, save_file

cv2.setNumThreads(1)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(REPO, "tests", "golden", "data", "watermark_cases.safetensors")
MAX_BYTES = 3_000_000

# Messages (facts, see WATERMARK_NOTES.md).
SD1_MESSAGE = "StableDiffusionV1".encode("utf-8")   # CompVis scripts/txt2img.py
SD2_MESSAGE = "SDV2".encode("utf-8")                # Stability-AI/stablediffusion scripts/txt2img.py
SDXL_MESSAGE_INT = 0b101100111110110010010000011110111011000110011110  # diffusers WATERMARK_MESSAGE
SDXL_BITS = [int(b) for b in bin(SDXL_MESSAGE_INT)[2:]]              # 48 bits, MSB first

F32 = np.float32


# ----------------------------------------------------------------------------- inputs

def photo_like_field(seed, h, w):
    """Float HxWx3 field roughly in [0, 255]: gradients, soft blobs, texture and fine noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    yy /= h
    xx /= w
    field = np.zeros((h, w, 3))
    for c in range(3):
        a, b = rng.uniform(-1, 1, 2)
        field[..., c] = 128 + 70 * (a * xx + b * yy)                   # smooth gradient
    coarse = rng.uniform(-60, 60, (6, 6, 3)).astype(np.float32)        # low-frequency "scene"
    field += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float64)
    for _ in range(5):                                                  # soft-edged objects
        cy, cx = rng.uniform(0, 1, 2)
        r = rng.uniform(0.08, 0.3)
        col = rng.uniform(-90, 90, 3)
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        field += col * np.clip((r - d) / 0.01, 0, 1)[..., None]
    fine = rng.normal(0, 1, (h // 4 + 1, w // 4 + 1, 3)).astype(np.float32)   # texture
    field += 10 * cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float64)
    field += rng.normal(0, 3, (h, w, 3))                               # sensor-like noise
    return field


def photo_like_u8(seed, h, w):
    return np.clip(np.rint(photo_like_field(seed, h, w)), 0, 255).astype(np.uint8)


def vae_like_f32(seed, h, w):
    """float32 [1, 3, H, W] in [-1, 1], continuous values like a VAE decode (NCHW, RGB)."""
    x = np.clip(photo_like_field(seed, h, w) / 127.5 - 1.0, -1.0, 1.0).astype(F32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


# ----------------------------------------------------------------------------- pipelines

def sd1_put_watermark(rgb_u8):
    """CompVis scripts/txt2img.py put_watermark(), minus PIL: uint8 RGB in, uint8 RGB out."""
    enc = WatermarkEncoder()
    enc.set_watermark("bytes", SD1_MESSAGE)
    bgr = cv2.cvtColor(np.array(rgb_u8), cv2.COLOR_RGB2BGR)
    out = enc.encode(bgr, "dwtDct")
    return np.ascontiguousarray(out[:, :, ::-1])  # the script flips BGR -> RGB with [:, :, ::-1]


def sdxl_apply_watermark(images):
    """diffusers 0.30.3 StableDiffusionXLWatermarker.apply_watermark with torch ops as numpy float32."""
    enc = WatermarkEncoder()
    enc.set_watermark("bits", SDXL_BITS)
    if images.shape[-1] < 256:          # diffusers skips images narrower than 256 px
        return images
    x = F32(255) * (images / F32(2) + F32(0.5))                 # float32, same op order
    x = x.transpose(0, 2, 3, 1).astype(F32)                     # NHWC
    x = x[:, :, :, ::-1]                                        # RGB -> BGR (a view)
    out = [enc.encode(im, "dwtDct")[:, :, ::-1] for im in x]    # encode, BGR -> RGB
    out = np.array(out).transpose(0, 3, 1, 2)
    out = np.clip(F32(2) * (out / F32(255) - F32(0.5)), F32(-1.0), F32(1.0))
    return np.ascontiguousarray(out.astype(F32))


def sdxl_to_u8_rgb(images):
    """diffusers VaeImageProcessor.postprocess(output_type='pil'): what ends up in the PNG."""
    x = np.clip(images / F32(2) + F32(0.5), F32(0), F32(1))
    x = x.transpose(0, 2, 3, 1).astype(F32)
    return (x * F32(255)).round().astype(np.uint8)


# ----------------------------------------------------------------------------- decoding

def decode_sd1(bgr):
    msg = WatermarkDecoder("bytes", len(SD1_MESSAGE) * 8).decode(bgr, "dwtDct")
    return np.unpackbits(np.frombuffer(msg, dtype=np.uint8)), msg


def decode_sdxl(bgr):
    bits = WatermarkDecoder("bits", len(SDXL_BITS)).decode(bgr, "dwtDct")
    return np.asarray(bits).astype(np.uint8), None


def jpeg_roundtrip(rgb_u8, quality):
    buf = io.BytesIO()
    Image.fromarray(rgb_u8).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.array(Image.open(buf).convert("RGB"))


def robustness(prefix, rgb_u8, decode, tensors, notes):
    """Decoded bits after JPEG 90 / 75 and a 0.5x INTER_AREA resize of an RGB uint8 image."""
    for q in (90, 75):
        bits, _ = decode(cv2.cvtColor(jpeg_roundtrip(rgb_u8, q), cv2.COLOR_RGB2BGR))
        tensors[f"{prefix}.decoded_bits_jpeg{q}"] = bits
    h, w = rgb_u8.shape[:2]
    small = cv2.resize(rgb_u8, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    try:
        bits, _ = decode(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        tensors[f"{prefix}.decoded_bits_resize05"] = bits
    except RuntimeError as e:
        notes[f"{prefix}.decoded_bits_resize05"] = (
            f"not stored: decoding the {h // 2}x{w // 2} image raised RuntimeError({str(e)!r})")


# ----------------------------------------------------------------------------- cases

SD1_CASES = [  # (name, seed, H, W, store images)
    ("sd1_256x256", 1001, 256, 256, True),
    ("sd1_512x320", 1002, 512, 320, True),
    ("sd1_320x512_bitsonly", 1003, 320, 512, False),
    ("sd1_262x254_bitsonly", 1004, 262, 254, False),
    ("sd1_512x512_bitsonly", 1005, 512, 512, False),
]
SDXL_CASES = [
    ("sdxl_256x256", 2001, 256, 256, True),
    ("sdxl_512x320_bitsonly", 2002, 512, 320, False),
    ("sdxl_512x512_bitsonly", 2003, 512, 512, False),
]


def versions():
    v = {}
    for dist in ("invisible-watermark", "numpy", "opencv-python-headless", "PyWavelets",
                 "Pillow", "safetensors"):
        v[dist] = importlib.metadata.version(dist)
    v["cv2.__version__"] = cv2.__version__
    v["libjpeg API (Pillow)"] = str(features.version("jpg"))
    v["libjpeg-turbo (Pillow)"] = str(features.version("libjpeg_turbo"))
    v["python"] = platform.python_version()
    v["torch"] = "not installed; stub module injected (only imwatermark.rivaGan imports it)" \
        if TORCH_STUBBED else sys.modules["torch"].__version__
    v["diffusers"] = "not imported; StableDiffusionXLWatermarker of diffusers 0.30.3 reproduced"
    return v


def cpu_info():
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    disp = [l.strip() for l in cv2.getBuildInformation().splitlines()
            if l.strip().startswith(("Baseline:", "Dispatched code generation:"))]
    return {"machine": platform.machine(),
            "avx2": "avx2" in flags, "fma": "fma" in flags, "avx512f": "avx512f" in flags,
            "opencv_cpu_build": disp}


def main():
    tensors, notes, cases = {}, {}, {}
    summary = []

    tensors["sd1.message_bits"] = np.unpackbits(np.frombuffer(SD1_MESSAGE, np.uint8))
    tensors["sd2.message_bits"] = np.unpackbits(np.frombuffer(SD2_MESSAGE, np.uint8))
    tensors["sdxl.message_bits"] = np.array(SDXL_BITS, dtype=np.uint8)

    for name, seed, h, w, store in SD1_CASES:
        rgb = photo_like_u8(seed, h, w)
        out = sd1_put_watermark(rgb)
        bits, msg = decode_sd1(cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        if store:
            tensors[f"{name}.input"] = rgb
            tensors[f"{name}.output"] = out
        tensors[f"{name}.decoded_bits"] = bits
        notes[f"{name}.decoded_bytes"] = repr(msg)
        robustness(name, out, decode_sd1, tensors, notes)
        cases[name] = (
            f"SD v1 scripts (CompVis txt2img put_watermark): {h}x{w} (HxW) uint8 RGB image from "
            f"photo_like_u8(seed={seed}); WatermarkEncoder.set_watermark('bytes', b'StableDiffusionV1'), "
            f"cv2 RGB2BGR, encode(img, 'dwtDct'), [:, :, ::-1] back to RGB. decoded_bits*: "
            f"WatermarkDecoder('bytes', 136) on the BGR image, unpacked MSB first."
            + ("" if store else " Images not stored (size budget); regenerate from the seed."))

    for name, seed, h, w, store in SDXL_CASES:
        x = vae_like_f32(seed, h, w)
        y = sdxl_apply_watermark(x)
        bgr_float = np.ascontiguousarray((F32(255) * (y[0] / F32(2) + F32(0.5))).transpose(1, 2, 0)[:, :, ::-1])
        tensors[f"{name}.decoded_bits_float"] = decode_sdxl(bgr_float)[0]
        u8 = sdxl_to_u8_rgb(y)[0]
        tensors[f"{name}.decoded_bits"] = decode_sdxl(cv2.cvtColor(u8, cv2.COLOR_RGB2BGR))[0]
        robustness(name, u8, decode_sdxl, tensors, notes)
        if store:
            tensors[f"{name}.input"] = x
            tensors[f"{name}.output"] = y
        cases[name] = (
            f"diffusers 0.30.3 StableDiffusionXLWatermarker.apply_watermark: float32 [1,3,{h},{w}] "
            f"RGB input in [-1,1] from vae_like_f32(seed={seed}); 'bits' message of 48 bits; "
            f"x255 = 255*(x/2+0.5) float32, NHWC, RGB->BGR by channel flip, encode(img, 'dwtDct') on "
            f"float32, flip back, out = clamp(2*(y/255-0.5), -1, 1). decoded_bits_float: "
            f"WatermarkDecoder('bits', 48) on the float32 BGR image 255*(out/2+0.5); decoded_bits and "
            f"_jpeg*/_resize05: same decoder on the uint8 image diffusers saves, "
            f"round(clamp(out/2+0.5,0,1)*255)."
            + ("" if store else " Tensors not stored (size budget); regenerate from the seed."))

    # summary: how many message bits each decode got right
    for key in sorted(tensors):
        if ".decoded_bits" not in key:
            continue
        ref = tensors["sdxl.message_bits"] if key.startswith("sdxl") else tensors["sd1.message_bits"]
        ok = int((tensors[key] == ref).sum())
        summary.append((key, ok, len(ref)))
    notes["bits_recovered"] = json.dumps({k: f"{ok}/{n}" for k, ok, n in summary})

    meta = {
        "generator": "tools/reference/make_watermark_goldens.py",
        "versions": json.dumps(versions(), sort_keys=True),
        "cpu": json.dumps(cpu_info(), sort_keys=True),
        "cases": json.dumps(cases, sort_keys=True),
        "notes": json.dumps(notes, sort_keys=True),
        "layout": ("HxW in names = height x width. sd1_* images: uint8 [H,W,3] RGB. sdxl_* tensors: "
                   "float32 [1,3,H,W] RGB in [-1,1]. *.decoded_bits*: uint8 0/1 in message order. "
                   "Float (sdxl) outputs depend on OpenCV's SIMD dispatch (FMA) on the producing CPU, "
                   "see cpu and WATERMARK_NOTES.md."),
        "messages": json.dumps({
            "sd1": "bytes b'StableDiffusionV1' (17 bytes, 136 bits, np.unpackbits MSB first)",
            "sd2": "bytes b'SDV2' (4 bytes, 32 bits)",
            "sdxl": "bits 0b101100111110110010010000011110111011000110011110 = 0xB3EC907BB19E, 48 bits MSB first",
        }),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT, metadata=meta)

    # check and summarise
    size = os.path.getsize(OUT)
    back = load_file(OUT)
    assert set(back) == set(tensors)
    for k in tensors:
        assert back[k].dtype == tensors[k].dtype and np.array_equal(back[k], tensors[k]), k
    print(f"wrote {OUT}: {size} bytes, {len(back)} tensors")
    assert size < MAX_BYTES, f"file is {size} bytes, over the {MAX_BYTES} budget"
    for k in sorted(back):
        if ".decoded_bits" not in k:
            print(f"  {k:40s} {str(back[k].dtype):8s} {list(back[k].shape)}")
    print("bits recovered (decoded == message):")
    for k, ok, n in summary:
        print(f"  {k:40s} {ok:3d}/{n}")
    for k, v in notes.items():
        if k != "bits_recovered":
            print(f"  note {k}: {v}")


if __name__ == "__main__":
    main()
