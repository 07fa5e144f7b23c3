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

}  // namespace easel
