// Image filters the ControlNet preprocessors run (AUTOMATIC1111's ControlNet extension's model-free ones), with
// OpenCV's semantics where the extension calls OpenCV.
//
//   Image edges = canny(photo, 100, 200);     // cv::Canny(photo, edges, 100, 200): 1 channel, 0 or 255
#pragma once

#include "io/image.h"

namespace easel {

// cv::Canny (OpenCV 4.x, imgproc/canny.cpp) with aperture 3: Sobel derivatives in int16 with replicated borders;
// for a colour image, at each pixel the channel of largest magnitude (the first on a tie); |dx| + |dy| (or dx^2 +
// dy^2 with `l2_gradient`, thresholds squared); non-maximum suppression along the gradient quantised with
// tan(22.5 deg) in 15-bit fixed point; hysteresis over 8-neighbours from the pixels above `high` through those
// above `low` (thresholds floored; swapped when low > high). 1 or 3 channels (4: alpha ignored) -> 1 channel.
Image canny(const Image& img, double low, double high, bool l2_gradient = false);

// 255 - every value (the extension's "invert (from white bg & black line)").
Image invert(const Image& img);

// cv::GaussianBlur(float32 image, (0, 0), sigma) per channel: a kernel of cvRound(sigma * 8 + 1) | 1 taps
// (exp(-x^2 / (2 sigma^2)), normalised), rows then columns, BORDER_REFLECT_101. Interleaved float [h, w, c].
std::vector<float> gaussian_blur_f32(const std::vector<float>& img, int w, int h, int c, double sigma);

// The extension's "scribble_xdog": the difference of Gaussians (sigma 0.5 and 5) of the RGB image, its channel
// minimum as 8 bits (255 - min, clipped, truncated), white where 2 x (255 - that) in 8-bit arithmetic (wrapping,
// as numpy's uint8 does) is above `t` (default 32). RGB in, RGB out.
Image scribble_xdog(const Image& rgb, int t);

// The extension's "threshold": white (every channel 255) where the smallest of R, G, B is above `t`, else black.
// RGB in, RGB out.
Image threshold(const Image& rgb, int t);

}  // namespace easel
