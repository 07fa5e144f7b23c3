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

// The extension's "threshold": white (every channel 255) where the smallest of R, G, B is above `t`, else black.
// RGB in, RGB out.
Image threshold(const Image& rgb, int t);

}  // namespace easel
