// How a control map of another size becomes the generation's: diffusers' Pillow LANCZOS (diffusers mode), or
// AUTOMATIC1111's ControlNet extension's own resize (k-diffusion mode), which keeps edge maps sharp.
//
//   Image hint = fit_control_map_a1111(edges, 768, 512, ControlResize::Crop);   // RGB, 768x512
#pragma once

#include <cstdint>

#include "io/image.h"

namespace easel {

// How an image of another shape becomes the output's: stretched (diffusers, A1111's "Just Resize"), or scaled to
// cover it and cropped in the middle (A1111's default "Crop and Resize"), or scaled to fit inside it and centred on
// the median colour of its border ("Resize and Fill").
enum class ControlResize { Stretch, Crop, Fill };

// The extension's detectmap_proc for a map that is not the inpaint module's (scripts/controlnet.py at commit
// 56cec5b, restated in tools/reference/make_control_resize_goldens.py): `rgb` (3 channels) fitted to
// width x height by `mode` (Crop: scaled by max(h / H, w / W) to round(W k) x round(H k), rounding half to even,
// then the middle cut out; Fill: scaled by the min to fit, pasted centred on the per-channel median of the border
// pixels), each resize its high_quality_resize:
//  - n = the number of distinct colours; binary when n == 2 with a value below 16 and one above 240;
//  - OpenCV's INTER_NEAREST when 2 < n < 200, else INTER_AREA when the new size has fewer pixels, else
//    INTER_CUBIC (io/image_resize.h, bit for bit);
//  - a binary map is then averaged to gray, thresholded by Otsu's method, and when it holds one-pixel edges (more
//    than half of its set values are removed by a 3x3 opening) first thinned by a line NMS and, after the
//    threshold, by the extension's hit-or-miss thinning (lvmin_thin; pruned when the map grew); gray to RGB.
// The map itself when its size is already width x height.
Image fit_control_map_a1111(const Image& rgb, int width, int height, ControlResize mode);

// The per-channel median of an RGB image's border pixels (first row, last row, first column, last column; corners
// counted twice), numpy's (the mean of the middle two) truncated to 8 bits: "Resize and Fill"'s background.
void border_median_colour(const Image& rgb, uint8_t out[3]);
// A width x height canvas of `colour` with `rgb` (no larger than it) pasted at ((width - w) / 2, (height - h) / 2).
Image centred_on(const Image& rgb, int width, int height, const uint8_t colour[3]);

}  // namespace easel
