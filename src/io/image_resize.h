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

// OpenCV's cv::resize with INTER_AREA when shrinking, for 8-bit images (imgproc/resize.cpp, 4.x): each output pixel
// the area-weighted mean of the input pixels under it (weights in float, rows summed in float, rounded to nearest
// even); when both scales are whole numbers, the block mean (2x2: (sum + 2) >> 2, as its SIMD path; else rounded
// sum x (1 / area)). out_w <= width and out_h <= height, both >= 1.
Image resize_area_opencv(const Image& in, int out_w, int out_h);

}  // namespace easel
