"""Goldens for the model-free ControlNet preprocessors, as AUTOMATIC1111's ControlNet extension runs them.

Run with Debian's python:  /usr/bin/python3 tools/reference/make_preprocessor_goldens.py
(needs python3-numpy and python3-opencv from apt; single-threaded; a few seconds).
Writes tests/golden/data/preprocessors/*.png (inputs) and tests/golden/data/preprocessor_cases.safetensors.

Semantics below were established by READING Mikubill/sd-webui-controlnet at commit
56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81 (2024-07-25, "fix version parsing (#3016)"); the code here is ours.

Pipeline, uploaded image -> control map (scripts/controlnet.py: get_control, choose_input_image, detectmap_proc)
  * The unit image arrives as RGBA; for non-inpaint units choose_input_image keeps img[:, :, :3] (RGB, uint8)
    unless the alpha is a drawn mask (then HWC3(alpha) = canvas scribble). img2img fallback: HWC3(init image).
  * HWC3 (annotator/util.py): uint8 only; [H,W] or [H,W,1] -> channel repeated 3x; RGBA -> composite on white:
    float32 y = rgb * (a/255) + 255 * (1 - a/255), clip(0,255), astype(uint8) (truncation).
  * Preprocessor resolution ("processor_res"): Preprocessor.slider_resolution default 512 (min 64, max 2048,
    step 8); a unit value of -1 / out of range is replaced by the default (internal_controlnet/args.py).
    "Pixel Perfect" instead uses max(k0,k1)*min(H,W) (min for "Resize and Fill") with k0=h_gen/H, k1=w_gen/W.
  * resize_image_with_pad(img, res) (scripts/utils.py; the legacy copy in scripts/preprocessor/legacy/
    processor.py calls HWC3 first, the new one only expands 2-D grey to 3 channels, commit f1b536ec):
        k = float(res) / min(H, W);  interpolation = INTER_CUBIC if k > 1 else INTER_AREA  (k == 1 -> AREA)
        Ht = int(np.round(H * k)); Wt = int(np.round(W * k))      (np.round: half to even)
        img = cv2.resize(img, (Wt, Ht), interpolation)
        pad64(x) = ceil(x / 64) * 64 - x; np.pad(img, [[0, pad64(Ht)], [0, pad64(Wt)], [0, 0]], mode='edge')
        remove_pad(x) = x[:Ht, :Wt]   (the op runs on the padded image, then the pad is cropped away)
    Before commit a57a8f71 (2023-05-06) the extension resized differently (no pad): version-dependent.
  * The result goes through detectmap_proc: HWC3 (except 'inpaint' modules: astype float32), then resized to
    the generation size by high_quality_resize (binary/one-pixel-edge aware: unique colours == 2 and min<16,
    max>240 -> resize, mean over channels, NMS + Otsu + thinning or Otsu; 2<colours<200 -> INTER_NEAREST;
    smaller -> INTER_AREA; else INTER_CUBIC), by "Crop and Resize" (default, k = max, centre crop),
    "Just Resize" or "Resize and Fill" (k = min, median border colour fill). Then float32 /255 -> [1,3,H,W].
    Those post steps are NOT in these goldens.

Ops (sliders: UnitArgs.threshold_a/b are floats; defaults from the slider definitions)
  canny (scripts/preprocessor/model_free_preprocessors.py, PreprocessorCanny; slider_1 "Low Threshold"
    default 100, slider_2 "High Threshold" default 200, both 1..255 step 1):
        img, remove_pad = resize_image_with_pad(rgb, res)
        cv2.cvtColor(cv2.Canny(img, int(slider_1), int(slider_2)), cv2.COLOR_GRAY2RGB) -> remove_pad
    i.e. cv2.Canny on the 3-CHANNEL RGB image (no grey conversion), apertureSize=3 and L2gradient=False
    (OpenCV defaults, not passed). OpenCV (fact of its implementation): for a multi-channel image the Sobel
    dx/dy of the channel with the largest magnitude (|dx|+|dy| for L1) is used per pixel; low > high is
    swapped (checked: lo255_hi1 == lo1_hi255). Sobel 3x3 int16 with BORDER_REPLICATE; L1 magnitude
    |dx|+|dy| (L2: dx^2+dy^2 vs squared thresholds); NMS in 4 sectors (tan 22.5 deg); candidate if m > low,
    strong if m > high, 8-connected hysteresis; border pixels can be edges. Output uint8 {0,255}; the
    extension returns 3 equal channels. Edge padding == BORDER_REPLICATE, so the 64-pad never changed a
    pixel here (params pad_effect_pixels).
  invert (same file, PreprocessorInvert, label "invert (from white bg & black line)", no resolution):
        255 - HWC3(img)  -> uint8 [H,W,3] at the input size, no resize.
  threshold (legacy: scripts/preprocessor/legacy/processor.py threshold, preprocessor_compiled.py slider
    "Binarization Threshold" 0..255 default 127, resolution slider 512):
        img, remove_pad = resize_image_with_pad(img, res); out = zeros_like(img) (uint8 [H,W,3]);
        out[np.min(img, axis=2) > thr_a] = 255 (strictly greater, all 3 channels); remove_pad; HWC3 no-op.
  tile_resample (legacy processor.py tile_resample; slider "Down Sampling Rate" 1.0..8.0 step 0.01, default
    1.0; no resolution slider, no resize_with_pad):
        img = HWC3(img); if thr_a < 1.1: return img unchanged
        H = int(float(H) / float(thr_a)); W = int(...) (truncation); cv2.resize(img, (W, H), INTER_AREA)
  scribble_xdog (model_free_preprocessors.py PreprocessorScribbleXdog; slider "XDoG Threshold" 1..64,
    default 32; resolution 512):
        img, remove_pad = resize_image_with_pad(img, res)
        g1 = cv2.GaussianBlur(img.astype(float32), (0,0), 0.5); g2 = cv2.GaussianBlur(..., (0,0), 5.0)
          (sigmaY = sigmaX; BORDER_REFLECT_101 default; for float32 OpenCV picks ksize =
           cvRound(sigma*4*2+1)|1 -> 5 and 41)
        dog = (255 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(uint8)     (truncation toward zero)
        out = zeros_like(img) uint8 [H,W,3]; out[2 * (255 - dog) > thr] = 255
        NOTE: 255 - dog and 2 * (...) are uint8 numpy arithmetic (python int scalar, numpy 1.x and 2.x alike),
        so 2*(255-dog) WRAPS modulo 256: 255-dog in 128..143 gives 0..30 -> not an edge. Goldens keep the wrap;
        metadata "<name>.params" records how many pixels the wrap changes.
  t2ia_color_grid (legacy name "color"; processor.py color -> annotator/color/__init__.py apply_color,
    resolution 512, no sliders):
        img = HWC3(img); shortest edge -> res: if h < w: nh = res, nw = int(round(w / h * res)) else
        nw = res, nh = int(round(h / w * res)); cv2.resize INTER_AREA (even when enlarging);
        small = cv2.resize(img, (w // 64, h // 64), INTER_CUBIC); cv2.resize(small, (w, h), INTER_NEAREST).
  inpaint_only / inpaint_global_harmonious (scripts/preprocessor/inpaint.py): the preprocessor returns the
    RGBA input unchanged (A = mask, 255 = repaint). detectmap_proc: astype float32; on resize the mask channel
    uses the RGB interpolation; ALWAYS mask = (mask > 127) * 255; control = float32 / 255, [1,4,H,W].
    scripts/hook.py, "ControlNet inpaint protocol": m = (hint[:,3:4] > 0.5); hint = c * (1 - m) - m, so the
    ControlNet sees RGB in [0,1] with masked pixels exactly -1.0. inpaint_only additionally (hook.py) blends
    x0 = x0_pred * maxpool2d(mask,(10,10),stride 8,pad 1) + x0_origin * (1 - that) each step and
    (controlnet.py) post-blends pixels with mask dilated by ones(7,7) then cv2.blur 7x7 (opt
    control_net_inpaint_blur_sigma = 7): y = m * x + (1 - m) * raw. If A1111 img2img inpaint is active too,
    inpaint_only falls back to 'inpaint' (global_harmonious). Golden inpaint_hint covers the hint only.

Goldens (uint8 unless said; name <op>.<image>[.<params>]; JSON params in metadata "<name>.params"):
  canny_raw      [H,W]    cv2.Canny(rgb, lo, hi) at the image's own size (no resize, no pad)
  canny_a1111    [Ht,Wt]  whole PreprocessorCanny pipeline (one channel of the 3 equal ones)
  resize_with_pad [Hp,Wp,3] resize_image_with_pad output before the op (pad included; Ht, Wt in params)
  invert, threshold, scribble_xdog [H,W,3] at the image's own size; tile_resample [H',W',3];
  t2ia_color_grid [h,w,3]; inpaint_hint F32 [1,3,H,W].
"""

import hashlib
import json
import os
import platform
import subprocess
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors_io import save_file  # noqa: E402

cv2.setNumThreads(1)
EXT_COMMIT = "56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81"
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
IMG_DIR = os.path.join(ROOT, "tests", "golden", "data", "preprocessors")
OUT = os.path.join(ROOT, "tests", "golden", "data", "preprocessor_cases.safetensors")


# ----------------------------------------------------------------------------------------------- inputs
def u8(a):
    return np.clip(np.round(a), 0, 255).astype(np.uint8)


def grid(h, w):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    return y, x


def img_gradient(h=61, w=97):
    y, x = grid(h, w)
    r = x / (w - 1) * 255
    g = y / (h - 1) * 255
    b = 127.5 + 127.5 * np.cos(np.hypot(x - w * 0.3, y - h * 0.6) / 9.0)
    return u8(np.stack([r, g, b], 2))


def img_strokes(h=80, w=64):
    a = np.full((h, w, 3), 245, np.uint8)
    ink = (20, 20, 30)
    a[8:40, 6:9] = ink          # "H"
    a[8:40, 20:23] = ink
    a[22:25, 6:23] = ink
    a[8:11, 30:50] = ink        # "T"
    a[8:40, 38:41] = ink
    y, x = grid(h, w)
    a[(np.abs((x - 6) - (y - 48) * 0.8) < 1.3) & (y >= 48) & (y < 76)] = ink   # diagonal stroke
    ring = np.abs(np.hypot(x - 44, y - 60) - 12) < 1.5
    a[ring & (x < 50)] = ink                                              # "C"-like arc
    a[50:53, 10:28] = (200, 30, 30)                                       # red underline
    return a


def img_shapes(h=113, w=150):
    a = np.full((h, w, 3), 128, np.uint8)
    y, x = grid(h, w)
    a[10:50, 12:60] = (255, 0, 0)                     # red rectangle
    a[30:70, 40:75] = (0, 130, 0)                     # green, same BT.601 grey (76) as the red
    a[np.hypot(x - 110, y - 40) <= 25] = (30, 60, 220)  # blue disc
    a[np.abs((x - 10) - (y - 60) * 1.7) <= 2.0] = (250, 250, 60)  # thick diagonal line
    tri = (y >= 75) & (y <= 105) & (x >= 90 + (105 - y)) & (x <= 140 - (105 - y) * 0.3)
    a[tri] = (10, 10, 10)
    a[80:108, 20:22] = 255                            # 2-px white bar
    return a


def img_noise(h=200, w=33):
    rs = np.random.RandomState(1234)
    a = rs.randint(0, 256, size=(h, w, 3)).astype(np.float64)
    a[h // 2:] = 128 + rs.normal(0, 20, size=(h - h // 2, w, 3))
    return u8(a)


def img_flat(h=256, w=256):
    rs = np.random.RandomState(99)
    a = 128.0 + rs.randint(-1, 2, size=(h, w, 1)).astype(np.float64) * np.ones(3)
    a[96:160, 64:192] += 3.0                          # faint rectangle
    y, x = grid(h, w)
    a[..., 2] += 2.0 * (x / (w - 1))                  # tiny blue ramp
    return u8(a)


def img_thinlines(h=223, w=301):
    a = np.full((h, w, 3), 255, np.uint8)
    a[20, 10:290] = 0
    a[10:210, 30] = 0
    a[40, 10:290] = 128                               # grey 1-px line
    a[44, 10:290] = 0                                 # pair 4 px apart
    a[46, 10:290] = 0                                 # and 2 px apart
    for i in range(150):
        a[60 + i, 60 + i] = 0                         # 45 degrees
        a[60 + int(round(i * 0.37)), 100 + i] = 0     # shallow slope
    t = np.linspace(0, 2 * np.pi, 2000)
    a[np.round(150 + 40 * np.sin(t)).astype(int), np.round(230 + 40 * np.cos(t)).astype(int)] = 0
    a[180:215:4, 40:120:4] = (0, 0, 255)              # dot grid (blue)
    return a


def img_mixed(h=87, w=121):
    rs = np.random.RandomState(7)
    y, x = grid(h, w)
    a = np.stack([60 + 120 * x / w, 90 + 80 * y / h, 200 - 100 * x / w], 2)
    a[15:45, 10:50] = (255, 0, 0)
    a[30:60, 35:70] = (0, 130, 0)
    a[np.hypot(x - 90, y - 55) <= 20] = (240, 240, 240)
    a += rs.normal(0, 6, size=a.shape)
    return u8(a)


IMAGES = {
    "gradient_97x61": img_gradient, "strokes_64x80": img_strokes, "shapes_150x113": img_shapes,
    "noise_33x200": img_noise, "flat_256x256": img_flat, "thinlines_301x223": img_thinlines,
    "mixed_121x87": img_mixed,
}


def inpaint_mask(h=80, w=64):
    y, x = grid(h, w)
    d = np.hypot(x - 30, y - 36)
    return u8(np.clip((22 - d) * 40 + 128, 0, 255))    # soft-edged disc, values 0..255


def write_png(path, a):
    bgr = a[..., ::-1] if a.ndim == 3 else a
    assert cv2.imwrite(path, np.ascontiguousarray(bgr), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    back = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    back = back[..., ::-1] if back.ndim == 3 else back
    assert np.array_equal(back, a), path
    return np.ascontiguousarray(back)


# ----------------------------------------------------------------------------------------------- ops
def hwc3(x):
    assert x.dtype == np.uint8
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[2] == 1:
        return np.concatenate([x] * 3, axis=2)
    if x.shape[2] == 4:
        a = x[:, :, 3:4].astype(np.float32) / 255.0
        return (x[:, :, :3].astype(np.float32) * a + 255.0 * (1.0 - a)).clip(0, 255).astype(np.uint8)
    return x


def resize_with_pad(img, res):
    """Returns (padded image, Ht, Wt, interpolation name)."""
    img = hwc3(img)
    h, w = img.shape[:2]
    k = float(res) / float(min(h, w))
    interp = cv2.INTER_CUBIC if k > 1 else cv2.INTER_AREA
    ht, wt = int(np.round(float(h) * k)), int(np.round(float(w) * k))
    r = cv2.resize(img, (wt, ht), interpolation=interp)
    ph, pw = int(np.ceil(ht / 64.0) * 64 - ht), int(np.ceil(wt / 64.0) * 64 - wt)
    padded = np.pad(r, [[0, ph], [0, pw], [0, 0]], mode="edge")
    return np.ascontiguousarray(padded), ht, wt, ("INTER_CUBIC" if k > 1 else "INTER_AREA")


def canny_raw(img, lo, hi, l2=False):
    return cv2.Canny(img, int(lo), int(hi), L2gradient=l2) if l2 else cv2.Canny(img, int(lo), int(hi))


def canny_a1111(img, res, lo, hi):
    padded, ht, wt, interp = resize_with_pad(img, res)
    out = cv2.cvtColor(cv2.Canny(padded, int(lo), int(hi)), cv2.COLOR_GRAY2RGB)[:ht, :wt]
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])
    return np.ascontiguousarray(out[..., 0]), padded, ht, wt, interp


def threshold_op(img, thr):
    out = np.zeros_like(img, dtype=np.uint8)
    out[np.min(img, axis=2) > thr] = 255
    return out


def tile_resample(img, rate):
    img = hwc3(img)
    if rate < 1.1:
        return img
    h, w = img.shape[:2]
    return cv2.resize(img, (int(float(w) / float(rate)), int(float(h) / float(rate))), interpolation=cv2.INTER_AREA)


def xdog(img, thr):
    g1 = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 0.5)
    g2 = cv2.GaussianBlur(img.astype(np.float32), (0, 0), 5.0)
    dog = (255 - np.min(g2 - g1, axis=2)).clip(0, 255).astype(np.uint8)
    t = (255 - dog)
    t2 = 2 * t
    assert t.dtype == np.uint8 and t2.dtype == np.uint8       # the wrap is real in this numpy
    out = np.zeros_like(img, dtype=np.uint8)
    out[t2 > thr] = 255
    nowrap = (2 * t.astype(np.int32)) > thr
    return out, int(np.count_nonzero(nowrap != (t2 > thr)))


def color_grid(img, res):
    img = hwc3(img)
    h, w = img.shape[:2]
    if h < w:
        nh, nw = res, int(round(w / h * res))
    else:
        nw, nh = res, int(round(h / w * res))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    small = cv2.resize(img, (nw // 64, nh // 64), interpolation=cv2.INTER_CUBIC)
    return cv2.resize(small, (nw, nh), interpolation=cv2.INTER_NEAREST)


def inpaint_hint(rgb, mask):
    rgba = np.concatenate([rgb, mask[:, :, None]], axis=2).astype(np.float32)
    m_bin = (rgba[:, :, 3] > 127).astype(np.float32) * 255.0
    c = rgba[:, :, :3] / np.float32(255.0)
    m = ((m_bin / np.float32(255.0)) > 0.5).astype(np.float32)[:, :, None]
    hint = c * (1 - m) - m
    return np.ascontiguousarray(hint.transpose(2, 0, 1)[None]).astype(np.float32)


# ----------------------------------------------------------------------------------------------- main
def main():
    os.makedirs(IMG_DIR, exist_ok=True)
    imgs, tensors, meta, cases = {}, {}, {}, {}

    def add(op, name, arr, **params):
        assert name not in tensors, name
        tensors[name] = np.ascontiguousarray(arr)
        params.setdefault("shape", list(arr.shape))
        meta[name + ".params"] = json.dumps(params, sort_keys=True)
        cases.setdefault(op, []).append(name)

    for key, fn in IMAGES.items():
        imgs[key] = write_png(os.path.join(IMG_DIR, key + ".png"), fn())
    mask = write_png(os.path.join(IMG_DIR, "inpaint_mask_64x80.png"), inpaint_mask())
    png_sha = {k: hashlib.sha256(v.tobytes()).hexdigest()[:16] for k, v in imgs.items()}

    pairs = [(100, 200), (50, 100), (1, 255), (200, 200), (0, 0), (255, 1)]
    gray_diff = {}
    for key, img in imgs.items():
        for lo, hi in pairs:
            add("canny_raw", f"canny_raw.{key}.lo{lo}_hi{hi}", canny_raw(img, lo, hi),
                image=key, low=lo, high=hi, L2gradient=False, apertureSize=3, input="RGB uint8 3-channel")
        g = cv2.Canny(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 100, 200)
        gray_diff[key] = int(np.count_nonzero(g != canny_raw(img, 100, 200)))
        assert np.array_equal(canny_raw(img, 255, 1), canny_raw(img, 1, 255))   # low > high is swapped
    for key in ("shapes_150x113", "mixed_121x87"):
        for lo, hi in [(100, 200), (50, 100)]:
            add("canny_raw", f"canny_raw.{key}.lo{lo}_hi{hi}_L2", canny_raw(img=imgs[key], lo=lo, hi=hi, l2=True),
                image=key, low=lo, high=hi, L2gradient=True, apertureSize=3, input="RGB uint8 3-channel")

    a1111 = [("strokes_64x80", 512), ("shapes_150x113", 512), ("mixed_121x87", 512), ("thinlines_301x223", 128),
             ("shapes_150x113", 64)]
    for key, res in a1111:
        img = imgs[key]
        h, w = img.shape[:2]
        out, padded, ht, wt, interp = canny_a1111(img, res, 100, 200)
        raw = canny_raw(img, 100, 200)
        unpadded = cv2.Canny(padded[:ht, :wt], 100, 200)
        back_nn = cv2.resize(out, (w, h), interpolation=cv2.INTER_NEAREST)
        back_area = (cv2.resize(out, (w, h), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8) * 255
        add("canny_a1111", f"canny_a1111.{key}.res{res}.lo100_hi200", out, image=key, res=res, low=100, high=200,
            interpolation=interp, H_target=ht, W_target=wt, padded_shape=list(padded.shape),
            extension_returns="[Ht,Wt,3], 3 equal channels (COLOR_GRAY2RGB); stored: one channel",
            pad_effect_pixels=int(np.count_nonzero(unpadded != out)),
            raw_shape=[h, w], raw_edges=int(np.count_nonzero(raw)), a1111_edges=int(np.count_nonzero(out)),
            differ_vs_raw_nearest_back=int(np.count_nonzero(back_nn != raw)),
            differ_vs_raw_area_any_back=int(np.count_nonzero(back_area != raw)))

    for key, res in [("noise_33x200", 64), ("shapes_150x113", 64), ("gradient_97x61", 128)]:
        padded, ht, wt, interp = resize_with_pad(imgs[key], res)
        add("resize_with_pad", f"resize_with_pad.{key}.res{res}", padded, image=key, res=res, H_target=ht,
            W_target=wt, interpolation=interp, pad="np.pad mode=edge, bottom/right to multiples of 64")

    sub = ["gradient_97x61", "strokes_64x80", "shapes_150x113", "noise_33x200", "mixed_121x87"]
    for key in sub:
        add("invert", f"invert.{key}", 255 - hwc3(imgs[key]), image=key)
        for t in (127, 200):
            add("threshold", f"threshold.{key}.t{t}", threshold_op(imgs[key], t), image=key, thr=t,
                rule="out[min over RGB > thr] = 255, 3 channels", default=(t == 127))
    for key in ["gradient_97x61", "shapes_150x113", "noise_33x200", "thinlines_301x223"]:
        for rate in (1.0, 2.0, 3.5):
            if rate == 1.0 and key != "gradient_97x61":
                continue
            out = tile_resample(imgs[key], rate)
            add("tile_resample", f"tile_resample.{key}.rate{str(rate).replace('.', '_')}", out, image=key,
                rate=rate, interpolation=("none (rate < 1.1 returns input)" if rate < 1.1 else "INTER_AREA"))
    # Sizes the rate divides exactly: OpenCV's INTER_AREA then takes its integer-scale path (a block average).
    for key, rate in [("strokes_64x80", 2.0), ("mixed_121x87", 3.0), ("noise_33x200", 4.0)]:
        out = tile_resample(imgs[key], rate)
        add("tile_resample", f"tile_resample.{key}.rate{str(rate).replace('.', '_')}", out, image=key,
            rate=rate, interpolation="INTER_AREA (integer scale on both axes)"
            if imgs[key].shape[1] % rate == 0 and imgs[key].shape[0] % rate == 0 else "INTER_AREA")
    for key in ["strokes_64x80", "shapes_150x113", "thinlines_301x223", "mixed_121x87", "noise_33x200"]:
        for t in (32, 8):
            out, wrapped = xdog(imgs[key], t)
            add("scribble_xdog", f"scribble_xdog.{key}.t{t}", out, image=key, thr=t, default=(t == 32),
                sigmas=[0.5, 5.0], uint8_wrap_changed_pixels=wrapped)
    for key, res in [("shapes_150x113", 128), ("strokes_64x80", 256), ("mixed_121x87", 128)]:
        add("t2ia_color_grid", f"t2ia_color_grid.{key}.res{res}", color_grid(imgs[key], res), image=key, res=res)
    add("inpaint_hint", "inpaint_hint.strokes_64x80", inpaint_hint(imgs["strokes_64x80"], mask),
        image="strokes_64x80", mask="inpaint_mask_64x80.png (alpha; >127 = masked)",
        rule="c=rgb/255 (f32); m=(a>127); hint=c*(1-m)-m; layout [1,3,H,W]", masked=int((mask > 127).sum()))

    deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-opencv"], capture_output=True, text=True)
    par = [ln.strip() for ln in cv2.getBuildInformation().splitlines() if "Parallel framework" in ln or "IPP" in ln]
    meta.update({
        "script": "tools/reference/make_preprocessor_goldens.py",
        "extension": "Mikubill/sd-webui-controlnet@" + EXT_COMMIT + " (read for semantics only)",
        "versions": json.dumps({"python": platform.python_version(), "numpy": np.__version__,
                                "opencv": cv2.__version__, "opencv_install": "Debian apt python3-opencv " + deb.stdout.strip(),
                                "opencv_build": par, "cv2_threads": cv2.getNumThreads()}),
        "cases": json.dumps(cases),
        "images": json.dumps({k: {"shape": list(v.shape), "sha256_16": png_sha[k],
                                  "png": "tests/golden/data/preprocessors/" + k + ".png"} for k, v in imgs.items()}),
        "canny_rgb_vs_gray_differ_100_200": json.dumps(gray_diff),
        "naming": "<op>.<image>[.<params>]; image names are <kind>_<W>x<H>; arrays [H,W] / [H,W,3] uint8",
    })
    save_file(tensors, OUT, metadata=meta)
    total = sum(t.nbytes for t in tensors.values())
    print(f"wrote {OUT}: {len(tensors)} tensors, {total} data bytes")
    print({op: len(names) for op, names in cases.items()})
    for k in sorted(meta):
        if k.startswith(("canny_a1111", "scribble_xdog")):
            print(k, meta[k])
    print("canny rgb vs gray differ:", gray_diff)


if __name__ == "__main__":
    main()
