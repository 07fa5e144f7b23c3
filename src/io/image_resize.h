// Pillow's Image.resize for 8-bit images, bit for bit (Pillow 9's Resample.c: precomputed fixed-point
// coefficients with 22 fraction bits, a horizontal pass then a vertical one, each only where the size changes):
// what the reference pipelines do to an image before it reaches a model (diffusers' VaeImageProcessor resizes
// ControlNet images with LANCZOS; masks are resized with BICUBIC).
//
//   Image small = resize_pillow(control, 512, 512, ResampleFilter::Lanczos);
#pragma once

#include "io/image.h"

namespace easel {

enum class ResampleFilter { Bicubic, Lanczos };

// Any channel count (each channel resampled alone, as Pillow does); out_w, out_h >= 1. The input itself when
// the size does not change.
Image resize_pillow(const Image& in, int out_w, int out_h, ResampleFilter filter);

// OpenCV's cv::resize for 8-bit images, any channel count, out_w and out_h >= 1, bit for bit as Debian's OpenCV 4.6
// computes it (imgproc/resize.cpp with its 128-bit SIMD paths; checked against it by
// tools/reference/make_preprocessor_goldens.py and make_control_resize_goldens.py). The scale of an axis is
// 1 / (out / in), in double, as OpenCV takes it.
//
// INTER_AREA. Shrinking both ways (out_w <= width, out_h <= height): each output pixel the area-weighted mean of
// the input pixels under it (weights in float, rows summed in float, rounded to nearest even); when both scales
// are whole numbers, the block mean (2x2: (sum + 2) >> 2, as its SIMD path; else rounded sum x (1 / area)).
// Growing either way: OpenCV's linear "area mode": per axis s = floor(d x scale), f = (d + 1) - (s + 1) / scale,
// weights 1 - frac(f), frac(f) (0 where f <= 0; the last input index where s + 1 runs out) as int16 of 2048,
// a horizontal pass in int32, then per value ((S0 >> 4) b0 >> 16) + ((S1 >> 4) b1 >> 16), + 2, >> 2.
Image resize_area_opencv(const Image& in, int out_w, int out_h);

// INTER_CUBIC: f = float((d + 0.5) x scale - 0.5), s = floor(f); Keys' cubic (A = -0.75) at f - s in float,
// as int16 of 2048 (rounded to nearest even); taps s - 1 .. s + 2 clamped to the image; a horizontal pass in
// int32, then the vertical one: the first floor(out_w x channels / 8) x 8 values of a row in float
// (S0 b0 + (S1 b1 + (S2 b2 + S3 b3)), b = beta / 2^22, rounded to nearest even, saturated), the rest in fixed point
// ((sum + 2^21) >> 22, saturated).
Image resize_cubic_opencv(const Image& in, int out_w, int out_h);

// INTER_NEAREST: the input index min(floor(d x scale), size - 1) on each axis.
Image resize_nearest_opencv(const Image& in, int out_w, int out_h);

}  // namespace easel
