// What the CLIP-conditioned families (SD 1.x/2.x, SDXL) share on the prompt side: AUTOMATIC1111's emphasis.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace easel {

// AUTOMATIC1111 sd_hijack_clip.process_tokens ("Original" emphasis): multiply each token's hidden state
// ([1, L, D], in place) by its weight, then restore the mean of the whole chunk's output. All weights 1: unchanged.
void apply_a1111_emphasis(Tensor& z, const std::vector<float>& weights);

}  // namespace easel
