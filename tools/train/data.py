"""Seeded generator of captioned scenes for easel's embedded tiny model.

Each scene is one flat-coloured shape (circle, square or triangle) on a flat background, drawn
anti-aliased (supersampled, then box-filtered down) so the VAE sees clean, repeatable edges. Every
scene comes with a caption made from one of several templates, and with the attributes it was drawn
from, so the same module can also score generated images (`analyse`).

    from data import SceneSampler
    s = SceneSampler(seed=1, image_size=32)
    img, caption, attrs = s.sample()       # img: uint8 [H, W, 3]
    imgs, captions, attrs = s.batch(64)    # imgs: uint8 [N, H, W, 3]
    python3 tools/train/data.py --write-heldout tools/train/heldout.json --grid /tmp/grid.png

A fixed set of colour/shape/position/background combinations (HELDOUT_SEED) is never drawn for
training; `heldout_scenes()` lists them with one full caption each, for the acceptance check.
Only numpy and PIL are needed.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageDraw

# Saturated, well separated colours: the analyser classifies by nearest colour, so the palette must
# stay far apart in RGB (the closest pair, red/orange, is ~115 apart).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 220),
    "yellow": (240, 220, 40),
    "purple": (140, 40, 170),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
POSITIONS = ("centre", "left", "right", "top", "bottom")

# Shape centre in units of the image side; chosen so a large shape at an edge position still fits and
# does not reach the middle third, which keeps the five positions clearly apart at 32x32.
POSITION_CENTRES = {
    "centre": (0.5, 0.5),
    "left": (0.24, 0.5),
    "right": (0.76, 0.5),
    "top": (0.5, 0.24),
    "bottom": (0.5, 0.76),
}
# Half-extent (circle radius, half the square's side) in units of the image side.
SIZE_HALF_EXTENT = {"small": 0.12, "large": 0.19}
POSITION_JITTER = 0.02   # +- uniform, image-side units
SIZE_JITTER = 0.08       # +- relative
SUPERSAMPLE = 4

POSITION_PHRASES = {
    "centre": "in the centre",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}

# {obj} is "<size> <colour> <shape>" or "<colour> <shape>", {pos} a POSITION_PHRASES value.
TEMPLATES = (
    "a {obj} {pos} on a {bg} background",
    "a {obj} {pos}, {bg} background",
    "{bg} background with a {obj} {pos}",
    "a {obj} on a {bg} background, {pos}",
    "a {bg} background with a {obj} {pos}",
)
TEMPLATES_NO_POSITION = (
    "a {obj} on a {bg} background",
    "{bg} background with a {obj}",
)
P_OMIT_SIZE = 0.3        # caption leaves out the size (the image still has one)
P_OMIT_POSITION = 0.1    # caption leaves out the position

HELDOUT_SEED = 20240601
HELDOUT_COUNT = 40


@dataclass(frozen=True)
class Scene:
    colour: str
    shape: str
    size: str
    position: str
    background: str

    def combo(self) -> tuple[str, str, str, str]:
        """The key the held-out split is made on (size is not part of it)."""
        return (self.colour, self.shape, self.position, self.background)


def all_combos() -> list[tuple[str, str, str, str]]:
    return [(c, s, p, b) for c in COLOURS for s in SHAPES for p in POSITIONS for b in COLOURS if b != c]


def heldout_combos() -> set[tuple[str, str, str, str]]:
    """A fixed, seeded set of combinations training never sees."""
    rng = random.Random(HELDOUT_SEED)
    combos = all_combos()
    rng.shuffle(combos)
    return set(combos[:HELDOUT_COUNT])


def _articles(text: str) -> str:
    """'a orange ...' -> 'an orange ...' (the only vowel-initial word that can follow 'a')."""
    return re.sub(r"\ba (?=orange\b)", "an ", text)


def full_caption(scene: Scene, template: int = 0) -> str:
    obj = f"{scene.size} {scene.colour} {scene.shape}"
    return _articles(TEMPLATES[template].format(obj=obj, pos=POSITION_PHRASES[scene.position], bg=scene.background))


def heldout_scenes() -> list[dict]:
    """Held-out combinations, each with both sizes and a full caption (template cycled)."""
    out = []
    for i, (c, s, p, b) in enumerate(sorted(heldout_combos())):
        for size in SIZES:
            scene = Scene(c, s, size, p, b)
            out.append({**asdict(scene), "caption": full_caption(scene, (2 * i + SIZES.index(size)) % len(TEMPLATES))})
    return out


VALIDATION_SEED = 99


def validation_scenes(count: int, seed: int = VALIDATION_SEED) -> list[dict]:
    """`count` random scenes from the *training* combinations (never a held-out one), each with a full caption:
    the validation set that tunes settings (the recommended guidance scale), so the held-out set tunes nothing."""
    rng = random.Random(seed)
    excluded = heldout_combos()
    out = []
    while len(out) < count:
        scene = Scene(rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(SIZES), rng.choice(POSITIONS),
                      rng.choice(list(COLOURS)))
        if scene.colour == scene.background or scene.combo() in excluded:
            continue
        out.append({**asdict(scene), "caption": full_caption(scene)})
    return out


def make_caption(scene: Scene, rng: random.Random) -> str:
    size = "" if rng.random() < P_OMIT_SIZE else scene.size + " "
    obj = f"{size}{scene.colour} {scene.shape}"
    if rng.random() < P_OMIT_POSITION:
        return _articles(rng.choice(TEMPLATES_NO_POSITION).format(obj=obj, bg=scene.background))
    return _articles(rng.choice(TEMPLATES).format(obj=obj, pos=POSITION_PHRASES[scene.position], bg=scene.background))


def draw(scene: Scene, image_size: int, rng: random.Random | None = None) -> np.ndarray:
    """Renders the scene as uint8 [H, W, 3]. `rng` adds position/size jitter; None draws it exactly."""
    big = image_size * SUPERSAMPLE
    img = Image.new("RGB", (big, big), COLOURS[scene.background])
    d = ImageDraw.Draw(img)
    cx, cy = POSITION_CENTRES[scene.position]
    r = SIZE_HALF_EXTENT[scene.size]
    if rng is not None:
        cx += rng.uniform(-POSITION_JITTER, POSITION_JITTER)
        cy += rng.uniform(-POSITION_JITTER, POSITION_JITTER)
        r *= 1.0 + rng.uniform(-SIZE_JITTER, SIZE_JITTER)
    cx, cy, r = cx * big, cy * big, r * big
    fill = COLOURS[scene.colour]
    if scene.shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif scene.shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:  # upward triangle with the same bounding box as the square, so sizes compare
        d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
    return np.asarray(img.resize((image_size, image_size), Image.BOX), dtype=np.uint8)


class SceneSampler:
    """Draws random training scenes, never one whose combo is held out. Deterministic per seed."""

    def __init__(self, seed: int, image_size: int = 32, exclude_heldout: bool = True):
        self.rng = random.Random(seed)
        self.image_size = image_size
        self.excluded = heldout_combos() if exclude_heldout else set()

    def random_scene(self) -> Scene:
        while True:
            colour = self.rng.choice(list(COLOURS))
            background = self.rng.choice([b for b in COLOURS if b != colour])
            scene = Scene(colour, self.rng.choice(SHAPES), self.rng.choice(SIZES),
                          self.rng.choice(POSITIONS), background)
            if scene.combo() not in self.excluded:
                return scene

    def sample(self) -> tuple[np.ndarray, str, Scene]:
        scene = self.random_scene()
        return draw(scene, self.image_size, self.rng), make_caption(scene, self.rng), scene

    def batch(self, n: int) -> tuple[np.ndarray, list[str], list[Scene]]:
        items = [self.sample() for _ in range(n)]
        return np.stack([i[0] for i in items]), [i[1] for i in items], [i[2] for i in items]


def all_caption_words() -> list[str]:
    """Every word any template can produce (what bpe.py must turn into single tokens)."""
    words: set[str] = set()
    texts = list(TEMPLATES) + list(TEMPLATES_NO_POSITION) + list(POSITION_PHRASES.values())
    for t in texts:
        for w in t.replace("{obj}", " ").replace("{pos}", " ").replace("{bg}", " ").replace(",", " ").split():
            words.add(w)
    words.update(COLOURS, SHAPES, SIZES)
    words.add("an")
    return sorted(words)


# ---------------------------------------------------------------------------------------------
# Image analysis: the simple classifier the acceptance check uses on generated images.

def _nearest_colour(rgb: np.ndarray) -> str:
    names = list(COLOURS)
    pal = np.array([COLOURS[n] for n in names], dtype=np.float32)
    return names[int(np.argmin(((pal - rgb[None, :]) ** 2).sum(axis=1)))]


def analyse(img: np.ndarray) -> dict:
    """Classifies colour, shape, size, position and background of a uint8 [H, W, 3] scene.

    Background: nearest palette colour of the border pixels' median. Foreground: pixels further than
    a threshold from the background colour; colour = nearest palette colour of their median; position
    from the centroid; size and shape from the area filled inside the foreground's bounding box
    (circle pi/4, square 1, triangle 1/2)."""
    h, w, _ = img.shape
    x = img.astype(np.float32)
    border = np.concatenate([x[0], x[-1], x[:, 0], x[:, -1]])
    bg_rgb = np.median(border, axis=0)
    background = _nearest_colour(bg_rgb)
    dist = np.sqrt(((x - np.array(COLOURS[background], np.float32)) ** 2).sum(axis=2))
    mask = dist > 60.0
    result = {"background": background, "colour": None, "shape": None, "size": None, "position": None}
    if mask.sum() < 3:
        return result
    result["colour"] = _nearest_colour(np.median(x[mask], axis=0))
    ys, xs = np.nonzero(mask)
    cx, cy = (xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h
    best = min(POSITION_CENTRES, key=lambda p: (POSITION_CENTRES[p][0] - cx) ** 2 + (POSITION_CENTRES[p][1] - cy) ** 2)
    result["position"] = best
    bw, bh = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    extent = max(bw, bh) / (2.0 * w)
    result["size"] = "small" if extent < (SIZE_HALF_EXTENT["small"] + SIZE_HALF_EXTENT["large"]) / 2 else "large"
    fill = mask.sum() / float(bw * bh)
    # Midpoints between the ideal fill ratios 0.5 (triangle), 0.785 (circle), 1.0 (square).
    result["shape"] = "triangle" if fill < 0.64 else ("circle" if fill < 0.89 else "square")
    return result


def score(expected: list[dict], images: list[np.ndarray]) -> dict[str, float]:
    """Fraction of images whose analysed attribute matches the expected one, per attribute."""
    keys = ("colour", "shape", "size", "position", "background")
    hits = {k: 0 for k in keys}
    for exp, img in zip(expected, images):
        got = analyse(img)
        for k in keys:
            hits[k] += int(got[k] == exp[k])
    return {k: hits[k] / max(1, len(images)) for k in keys}


def _main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--write-heldout", metavar="JSON", help="write the held-out scenes to this file")
    ap.add_argument("--grid", metavar="PNG", help="write a grid of 64 samples (upscaled 4x) here")
    ap.add_argument("--check", type=int, default=0, metavar="N",
                    help="draw N scenes and report how often analyse() recovers their attributes")
    a = ap.parse_args()
    if a.write_heldout:
        with open(a.write_heldout, "w") as f:
            json.dump({"image_size": a.image_size, "seed": HELDOUT_SEED, "scenes": heldout_scenes()}, f, indent=1)
            f.write("\n")
        print(f"wrote {len(heldout_scenes())} held-out scenes to {a.write_heldout}")
    s = SceneSampler(a.seed, a.image_size)
    if a.grid:
        imgs, caps, _ = s.batch(64)
        g = imgs.reshape(8, 8, a.image_size, a.image_size, 3).transpose(0, 2, 1, 3, 4)
        g = g.reshape(8 * a.image_size, 8 * a.image_size, 3)
        Image.fromarray(g).resize((g.shape[1] * 4, g.shape[0] * 4), Image.NEAREST).save(a.grid)
        print("\n".join(caps[:8]))
    if a.check:
        imgs, _, scenes = s.batch(a.check)
        print(score([asdict(x) for x in scenes], list(imgs)))


if __name__ == "__main__":
    _main()
