// Sinusoidal timestep embedding, exactly as diffusers' get_timestep_embedding (models/embeddings.py, v0.30.3):
//
//   half     = dim / 2
//   exponent = -ln(max_period) * arange(half) / (half - downscale_freq_shift)      (float32)
//   emb      = scale * t[:, None] * exp(exponent)[None, :]                          (float32)
//   out      = [sin(emb), cos(emb)], or [cos(emb), sin(emb)] when flip_sin_to_cos; a zero column if dim is odd
//
//   TimestepEmbeddingParams p{.dim = 320, .flip_sin_to_cos = true, .downscale_freq_shift = 0};  // SD UNet
//   timestep_embedding_f32(timesteps, /*count=*/2, out, p);    // out: [2, 320]
//
// Every intermediate is rounded to float32 where torch rounds it, and sin/cos/exp are evaluated in double
// and rounded once. torch's float32 exp is not correctly rounded (16 of SD's 160 frequencies differ by 1 ulp
// under torch 1.13.1 CPU), so entries can differ from torch's by up to ~6e-5 at t ~ 1000. A few hundred
// values per step: there is no SIMD variant.
#pragma once

#include <cstddef>
#include <cstdint>

namespace easel {

struct TimestepEmbeddingParams {
    int64_t dim = 320;
    bool flip_sin_to_cos = true;       // SD's UNet: True (diffusers' default is False)
    float downscale_freq_shift = 0.0f;  // SD's UNet: 0 (diffusers' default is 1)
    float scale = 1.0f;
    float max_period = 10000.0f;
};

// t: [count] (may be fractional) -> out: [count, dim]. dim >= 2, and half - downscale_freq_shift != 0.
void timestep_embedding_f32(const float* t, size_t count, float* out, const TimestepEmbeddingParams& p);

}  // namespace easel
