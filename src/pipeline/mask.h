// Inpainting masks as AUTOMATIC1111 prepares them (img2img "Inpaint upload", "Whole picture", "original" fill):
//
//   Image m = mask_to_gray(mask_image);          // white = repaint; RGBA with transparency: the alpha channel
//   Image b = blur_mask(m, 4);                   // A1111's mask blur (Gaussian, sigma = blur, per axis)
//   std::vector<float> lat = resize_bicubic_u8(b, w / 8, h / 8);   // PIL's BICUBIC resize, 8-bit results
//
// Bit-exactness: mask_to_gray and resize_bicubic_u8 follow Pillow 9's integer arithmetic (ITU-R 601-2 luma with
// 16-bit fixed point; convolution resampling with 22-bit fixed-point coefficients). blur_mask computes OpenCV's
// Gaussian kernel in double and rounds each pass to 8 bits; OpenCV's own fixed-point path may differ by one
// level, which moves a latent mask cell only when its value sits at the rounding threshold.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/error.h"
#include "io/image.h"

namespace easel {

// One channel, 0..255. RGB(A) -> luma as Pillow's convert("L"); an RGBA mask whose alpha is not all opaque uses
// its alpha, thresholded at > 128 (A1111's create_binary_mask).
Image mask_to_gray(const Image& mask);

// One channel, 0..255, as Pillow's convert("L") (what diffusers' VaeImageProcessor does with a mask): RGB(A) ->
// luma, the alpha channel ignored.
Image mask_to_luma(const Image& mask);

// A1111 processing.py: for blur > 0, a horizontal then a vertical Gaussian pass with kernel size
// 2 * int(2.5 * blur + 0.5) + 1 and sigma = blur, borders reflected without repeating the edge (OpenCV's
// BORDER_REFLECT_101), each pass rounded to 8 bits. blur 0 returns the mask unchanged.
Image blur_mask(const Image& gray, int blur);

// Pillow's Image.resize(size, BICUBIC) of a one-channel 8-bit image (horizontal pass first, then vertical).
std::vector<uint8_t> resize_bicubic_u8(const Image& gray, int out_w, int out_h);

// A1111's masked content "fill" (masking.fill): the masked part of an RGB image replaced by colours blurred in
// from what is not masked. The unmasked pixels (alpha 255 - mask) are blurred, premultiplied, with Gaussians of
// radius 256, 64, 16 (twice), 4 (four times), 2 (twice) and 0, and each blur is alpha-composited over the last, so
// a pixel takes its colour from the nearest unmasked surroundings. Pillow's arithmetic throughout (three extended
// box passes per axis in its fixed point, its premultiplied paste, unpremultiply and alpha_composite), so the
// result is Pillow's, bit for bit. `gray`: one channel, the size of `rgb`.
Image fill_masked_area(const Image& rgb, const Image& gray);

// A1111's "Inpaint area: Only masked": a box of the picture (x2, y2 exclusive).
struct CropRegion {
    int x1 = 0, y1 = 0, x2 = 0, y2 = 0;
    int width() const { return x2 - x1; }
    int height() const { return y2 - y1; }
};
// The box around the mask's non-zero pixels grown by `pad` on every side and clipped to the picture (masking.py's
// get_crop_region); nullopt for a blank mask.
std::optional<CropRegion> mask_crop_region(const Image& gray, int pad);
// The box grown to the processing size's aspect ratio, centred on the old one and moved back inside the picture
// where it can be (masking.py's expand_crop_region).
CropRegion expand_crop_region(CropRegion r, int processing_w, int processing_h, int image_w, int image_h);
Image crop_image(const Image& in, const CropRegion& r);
// A1111's images.resize_image with Pillow's LANCZOS (no upscaler), output RGB, or gray for a gray input:
// mode 1 "crop and resize" (scaled to cover, centred, cut) and mode 2 "resize and fill" (scaled to fit, centred,
// the bands beside it filled from the picture's edge rows or columns, as Pillow resizes a zero-size box there).
Image resize_crop_a1111(const Image& in, int out_w, int out_h);
Image resize_fill_a1111(const Image& in, int out_w, int out_h);

}  // namespace easel
