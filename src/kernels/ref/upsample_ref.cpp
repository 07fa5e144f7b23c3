// Reference nearest 2x upsample: every output pixel reads its source pixel.
#include "kernels/upsample.h"

namespace easel {

void upsample_nearest2x_f32_ref(const float* x, float* y, size_t planes, size_t height, size_t width) {
    const size_t ow = 2 * width;
    for (size_t p = 0; p < planes; ++p) {
        const float* xp = x + p * height * width;
        float* yp = y + p * 4 * height * width;
        for (size_t oy = 0; oy < 2 * height; ++oy)
            for (size_t ox = 0; ox < ow; ++ox) yp[oy * ow + ox] = xp[(oy / 2) * width + ox / 2];
    }
}

}  // namespace easel
