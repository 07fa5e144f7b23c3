"""Goldens for how AUTOMATIC1111's ControlNet extension fits a control map to the generation's size, and for the
OpenCV resizes it uses: what easel's k-diffusion (A1111) mode does to a unit's map (pipeline/control_resize.h).

Run with Debian's python:  /usr/bin/python3 tools/reference/make_control_resize_goldens.py
(needs python3-numpy and python3-opencv 4.6 from apt; single-threaded; a few seconds). Reads the input PNGs of
make_preprocessor_goldens.py (tests/golden/data/preprocessors/) and writes tests/golden/data/control_resize_cases.safetensors.

The rules were established by READING Mikubill/sd-webui-controlnet at commit
56cec5b2958edf3b1807b7e7b2b1b5186dbd2f81 (2024-07-25): scripts/controlnet.py (Script.detectmap_proc and its inner
high_quality_resize), scripts/lvminthin.py (nake_nms, lvmin_thin and their kernels), scripts/utils.py
(get_unique_axis0). The code below is ours; it calls OpenCV as the extension calls it.

detectmap_proc(map, resize_mode, h, w), for a map that is not the inpaint module's (RGB uint8 [H, W, 3]):
  * Just Resize (RESIZE): hq(map, (w, h)).
  * Resize and Fill (OUTER_FIT): k = min(h / H, w / W); the border colour = per-channel numpy median of the first
    row, last row, first column and last column concatenated (corners counted twice), cast to uint8
    (truncation); hq(map, (round(W k), round(H k))) (np.round: half to even) pasted at
    (max(0, (h - h') // 2), max(0, (w - w') // 2)) on a canvas of that colour.
  * Crop and Resize (INNER_FIT, the default): k = max(h / H, w / W); hq(map, (round(W k), round(H k))); the
    window [(h' - h) // 2 : + h, (w' - w) // 2 : + w] (each offset at least 0).
  Then / 255 (get_pytorch_control).
hq(x, (w', h')) = high_quality_resize: x itself when the size is already (w', h'); else, with n = the number of
distinct RGB colours,
  * binary: n == 2 and min(x) < 16 and max(x) > 240 (over all channel values);
    one-pixel edges (binary only): opening = dilate(erode(x, 3x3 ones), 3x3 ones) per channel; ones =
    count of channel values where opening < x; all = count of channel values > 127; one-pixel iff 2 ones > all;
  * interpolation: INTER_NEAREST when 2 < n < 200, else INTER_AREA when w' h' < W H, else INTER_CUBIC;
  * binary maps afterwards: the float32 mean of the 3 channels, clipped, cast to uint8 (truncation); one-pixel edges:
    nake_nms, Otsu threshold (cv2.threshold(y, 0, 255, THRESH_BINARY + THRESH_OTSU)), lvmin_thin(prunings =
    w' h' > W H); else Otsu alone; the result repeated to 3 channels.
  nake_nms(x): y = 0; for each 3-pixel line kernel (horizontal, vertical, both diagonals, in that order), where
  dilate(x, kernel) == x, y = x.
  lvmin_thin(x, prunings): up to 32 rounds of: for each of the 8 thinning kernels (two 3x3 patterns and their
  rotations by 90, 180 and 270 degrees (np.rot90, counter-clockwise), interleaved: p0, p1, rot(p0), rot(p1), ...),
  every pixel where cv2.morphologyEx(x, MORPH_HITMISS, kernel) > 127 set to 0; stop after a round that changed
  nothing. With prunings, one more such round with the 8 pruning kernels.

OpenCV 4.6 as measured here (and restated in easel):
  * INTER_CUBIC on 8 bits: scale = 1 / (dst / src) in double, f = float((d + 0.5) scale - 0.5), s = floor(f),
    f -= s; Keys' cubic with A = -0.75 in float; coefficients cvRound(c * 2048) as int16; taps s - 1 .. s + 2
    clamped to the image; a horizontal pass in int32, then a vertical one: for the first floor(w' cn / 8) * 8
    values of a row in float (b = beta / 2^22; S0 b0 + (S1 b1 + (S2 b2 + S3 b3)), rounded half to even,
    saturated), the rest in fixed point ((sum + 2^21) >> 22, saturated).
  * INTER_NEAREST: source index min(floor(d * (1 / (dst / src))), src - 1).
  * INTER_AREA when shrinking both ways: easel's resize_area_opencv (tested by make_preprocessor_goldens.py).

Cases: maps from the preprocessor inputs (canny edges, thresholded shapes, a few-colour map, the images
themselves) fitted to other sizes in the three modes. File: map.<map> uint8 [H, W, 3] (the inputs), <case>.output
uint8 [h, w, 3]; metadata <case>.params (JSON: map, width, height, mode, colours, binary, one_pixel_edge,
interpolation), and resize cases "cubic.<...>" / "nearest.<...>" (output; params map, width, height) for the two
OpenCV resizes alone.
"""

import json
import os
import platform
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_preprocessor_goldens as mp  # noqa: E402  (one OpenCV thread; EXT_COMMIT, ROOT, IMG_DIR)
from make_preprocessor_goldens import cv2, np  # noqa: E402
from safetensors_io import save_file  # noqa: E402

EXT_COMMIT, IMG_DIR = mp.EXT_COMMIT, mp.IMG_DIR
OUT = os.path.join(mp.ROOT, "tests", "golden", "data", "control_resize_cases.safetensors")

# The thinning and pruning patterns (1: set, -1: clear, 0: either), before rotation.
THIN = [np.array([[-1, -1, -1], [0, 1, 0], [1, 1, 1]], np.int32),
        np.array([[0, -1, -1], [1, 1, -1], [0, 1, 0]], np.int32)]
PRUNE = [np.array([[-1, -1, -1], [-1, 1, -1], [0, 0, -1]], np.int32),
         np.array([[-1, -1, -1], [-1, 1, -1], [-1, 0, 0]], np.int32)]
LINES = [np.array(k, np.uint8) for k in ([[0, 0, 0], [1, 1, 1], [0, 0, 0]], [[0, 1, 0], [0, 1, 0], [0, 1, 0]],
                                         [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[0, 0, 1], [0, 1, 0], [1, 0, 0]])]
MODES = {"stretch": "Just Resize", "crop": "Crop and Resize", "fill": "Resize and Fill"}


def rotations(patterns):
    return [np.rot90(p, k=r, axes=(0, 1)) for r in range(4) for p in patterns]


def clear_matches(x, kernels):
    changed = False
    for k in kernels:
        hit = cv2.morphologyEx(x, cv2.MORPH_HITMISS, np.ascontiguousarray(k)) > 127
        changed |= bool(hit.any())
        x[hit] = 0
    return changed


def thin(x, prunings):
    for _ in range(32):
        if not clear_matches(x, rotations(THIN)):
            break
    if prunings:
        clear_matches(x, rotations(PRUNE))
    return x


def line_nms(x):
    y = np.zeros_like(x)
    for k in LINES:
        keep = cv2.dilate(x, k) == x
        y[keep] = x[keep]
    return y


def fit(x, size):
    """high_quality_resize(x, size = (w', h')) of an RGB uint8 map; returns (map, facts)."""
    w2, h2 = size
    h, w = x.shape[:2]
    if (h, w) == (h2, w2):
        return x, dict(interpolation="none")
    colours = len(np.unique(x.reshape(-1, 3), axis=0))
    binary = colours == 2 and int(x.min()) < 16 and int(x.max()) > 240
    one_pixel = False
    if binary:
        opened = cv2.dilate(cv2.erode(x, np.ones((3, 3), np.uint8)), np.ones((3, 3), np.uint8))
        one_pixel = int((opened < x).sum()) * 2 > int((x > 127).sum())
    if 2 < colours < 200:
        interp = "INTER_NEAREST"
    elif w2 * h2 < w * h:
        interp = "INTER_AREA"
    else:
        interp = "INTER_CUBIC"
    y = cv2.resize(x, (w2, h2), interpolation=getattr(cv2, interp))
    if binary:
        y = np.mean(y.astype(np.float32), axis=2).clip(0, 255).astype(np.uint8)
        if one_pixel:
            y = line_nms(y)
            _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
            y = thin(y, prunings=w2 * h2 > w * h)
        else:
            _, y = cv2.threshold(y, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        y = np.stack([y] * 3, axis=2)
    return np.ascontiguousarray(y), dict(interpolation=interp, colours=colours, binary=binary,
                                         one_pixel_edge=one_pixel)


def fit_map(x, mode, w, h):
    """detectmap_proc for an RGB map: the map as the ControlNet gets it (before / 255)."""
    if mode == "stretch":
        return fit(x, (w, h))
    H, W = x.shape[:2]
    if mode == "fill":
        k = min(h / float(H), w / float(W))
        border = np.concatenate([x[0, :, :], x[-1, :, :], x[:, 0, :], x[:, -1, :]], axis=0)
        colour = np.median(border, axis=0).astype(np.uint8)
        canvas = np.tile(colour[None, None], [h, w, 1])
        y, facts = fit(x, (int(np.round(W * k)), int(np.round(H * k))))
        nh, nw = y.shape[:2]
        ph, pw = max(0, (h - nh) // 2), max(0, (w - nw) // 2)
        canvas[ph:ph + nh, pw:pw + nw] = y
        return np.ascontiguousarray(canvas), dict(facts, border=colour.tolist())
    k = max(h / float(H), w / float(W))
    y, facts = fit(x, (int(np.round(W * k)), int(np.round(H * k))))
    nh, nw = y.shape[:2]
    ph, pw = max(0, (nh - h) // 2), max(0, (nw - w) // 2)
    return np.ascontiguousarray(y[ph:ph + h, pw:pw + w]), facts


def read(name):
    x = cv2.imread(os.path.join(IMG_DIR, name + ".png"), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(x[:, :, ::-1])  # RGB


def maps():
    shapes, strokes, thinlines = read("shapes_150x113"), read("strokes_64x80"), read("thinlines_301x223")
    mixed, gradient, noise = read("mixed_121x87"), read("gradient_97x61"), read("noise_33x200")

    def edges(img):
        e = cv2.Canny(img, 100, 200)
        return np.ascontiguousarray(np.stack([e] * 3, axis=2))

    def thresholded(img):
        out = np.zeros_like(img)
        out[np.min(img, axis=2) > 127] = 255
        return out

    few = (gradient // 86 * 86).astype(np.uint8)  # 3 levels per channel: a few-colour (segmentation-like) map
    return {"edges_shapes": edges(shapes), "edges_strokes": edges(strokes), "edges_thinlines": edges(thinlines),
            "thick_shapes": thresholded(shapes), "thick_mixed": thresholded(mixed), "few_gradient": few,
            "photo_mixed": mixed, "photo_gradient": gradient, "photo_noise": noise}


# name: map, mode, width, height
CASES = [
    ("edges_shapes", "stretch", 256, 192), ("edges_shapes", "crop", 96, 64), ("edges_strokes", "fill", 96, 96),
    ("edges_thinlines", "crop", 128, 128), ("edges_thinlines", "stretch", 452, 335),
    ("thick_shapes", "stretch", 200, 160), ("thick_mixed", "crop", 64, 64), ("thick_mixed", "fill", 160, 96),
    ("few_gradient", "stretch", 160, 100), ("few_gradient", "fill", 48, 48),
    ("photo_mixed", "crop", 192, 160), ("photo_noise", "stretch", 24, 96), ("photo_gradient", "fill", 128, 128),
    ("photo_gradient", "crop", 97, 61), ("photo_gradient", "stretch", 80, 70),
]
# the two OpenCV resizes alone: map, width, height
CUBIC = [("photo_mixed", 200, 150), ("photo_noise", 41, 250), ("photo_gradient", 13, 9), ("edges_strokes", 65, 81),
         ("few_gradient", 300, 20)]
NEAREST = [("photo_mixed", 200, 150), ("photo_noise", 17, 97), ("few_gradient", 301, 29)]


def main():
    tensors, meta = {}, {}
    srcs = maps()
    for key, x in srcs.items():
        tensors["map." + key] = x
    names = []
    for key, mode, w, h in CASES:
        name = f"{key}.{mode}_{w}x{h}"
        out, facts = fit_map(srcs[key], mode, w, h)
        assert out.shape == (h, w, 3), (name, out.shape)
        tensors[name + ".output"] = out
        meta[name + ".params"] = json.dumps(dict(map=key, mode=MODES[mode], width=w, height=h, **facts), sort_keys=True)
        names.append(name)
        print(f"{name:34s} {facts}")
    resizes = []
    for kind, table in (("cubic", CUBIC), ("nearest", NEAREST)):
        for key, w, h in table:
            name = f"{kind}.{key}_{w}x{h}"
            meta[name + ".params"] = json.dumps(dict(map=key, width=w, height=h), sort_keys=True)
            tensors[name + ".output"] = np.ascontiguousarray(cv2.resize(
                srcs[key], (w, h), interpolation=cv2.INTER_CUBIC if kind == "cubic" else cv2.INTER_NEAREST))
            resizes.append(name)
    deb = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-opencv"], capture_output=True, text=True)
    meta.update({
        "script": "tools/reference/make_control_resize_goldens.py",
        "extension": "Mikubill/sd-webui-controlnet@" + EXT_COMMIT + " (read for semantics only)",
        "versions": json.dumps({"python": platform.python_version(), "numpy": np.__version__, "opencv": cv2.__version__,
                                "opencv_install": "Debian apt python3-opencv " + deb.stdout.strip()}),
        "cases": json.dumps(names), "resizes": json.dumps(resizes),
    })
    save_file(tensors, OUT, metadata=meta)
    print(f"wrote {OUT}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
