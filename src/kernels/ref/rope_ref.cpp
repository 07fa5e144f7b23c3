// Reference rotary embedding: each pair in float32 as torch computes it (two products and a sum per value).
#include "kernels/rope.h"

namespace easel {

void rope_f32_ref(float* x, const float* cos, const float* sin, size_t rows, size_t heads, size_t head_dim) {
    const size_t half = head_dim / 2;
    for (size_t r = 0; r < rows; ++r)
        for (size_t h = 0; h < heads; ++h) {
            float* p = x + (r * heads + h) * head_dim;
            for (size_t i = 0; i < half; ++i) {
                const float c = cos[r * half + i], s = sin[r * half + i];
                const float a = p[2 * i], b = p[2 * i + 1];
                p[2 * i] = c * a - s * b;
                p[2 * i + 1] = s * a + c * b;
            }
        }
}

}  // namespace easel
