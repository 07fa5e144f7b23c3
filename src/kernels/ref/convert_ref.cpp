// The scalar definitions of the half-to-f32 conversions: core/half.h, one element at a time.
#include "core/half.h"
#include "kernels/convert.h"

namespace easel {

void f16_to_f32_n_ref(const uint16_t* in, int64_t n, float* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(in[i]);
}

void bf16_to_f32_n_ref(const uint16_t* in, int64_t n, float* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(in[i]);
}

}  // namespace easel
