// Sinusoidal timestep embedding, following diffusers' get_timestep_embedding (models/embeddings.py, v0.30.3)
// step by step. torch evaluates each line in float32, so each intermediate here is rounded to float where
// torch rounds it; transcendental functions run in double and round once (torch's are within ~1 ulp of that).
#include <cmath>

#include "core/error.h"
#include "kernels/embedding.h"

namespace easel {

void timestep_embedding_f32(const float* t, size_t count, float* out, const TimestepEmbeddingParams& p) {
    EASEL_ASSERT(p.dim >= 2, "timestep embedding needs dim >= 2");
    const int64_t half = p.dim / 2;
    // `-math.log(max_period) * torch.arange(..., dtype=float32)`: the Python scalar becomes a float32 operand.
    const float neg_log_period = float(-std::log(double(p.max_period)));
    // `exponent / (half_dim - downscale_freq_shift)`: again a float32 division.
    const float denom = float(double(half) - double(p.downscale_freq_shift));
    EASEL_ASSERT(denom != 0.0f, "timestep embedding: half - downscale_freq_shift is 0");
    for (size_t n = 0; n < count; ++n) {
        float* row = out + n * size_t(p.dim);
        for (int64_t i = 0; i < half; ++i) {
            const float exponent = (neg_log_period * float(i)) / denom;
            const float freq = float(std::exp(double(exponent)));
            const float arg = (t[n] * freq) * p.scale;
            const float s = float(std::sin(double(arg)));
            const float c = float(std::cos(double(arg)));
            // [sin, cos], or [cos, sin] when flipped.
            row[p.flip_sin_to_cos ? half + i : i] = s;
            row[p.flip_sin_to_cos ? i : half + i] = c;
        }
        if (p.dim % 2 == 1) row[p.dim - 1] = 0.0f;  // F.pad(emb, (0, 1, 0, 0))
    }
}

}  // namespace easel
