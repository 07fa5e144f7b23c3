// What the CLIP-conditioned families (SD 1.x/2.x, SDXL) share on the prompt side: AUTOMATIC1111's emphasis.
#pragma once

#include <vector>

#include "core/tensor.h"
#include "models/clip/prompt_parser.h"

namespace easel {

// AUTOMATIC1111 sd_hijack_clip.process_tokens ("Original" emphasis): multiply each token's hidden state
// ([1, L, D], in place) by its weight, then restore the mean of the whole chunk's output. All weights 1: unchanged.
void apply_a1111_emphasis(Tensor& z, const std::vector<float>& weights);

// A1111 pads the shorter of two conditionings with empty chunks so both have the same length: appends the chunk
// of "" (BOS, EOS, padding as `opt` says) until `wp` has `chunks`.
Status pad_chunks(clip::WeightedPrompt& wp, const clip::CLIPTokenizer& tok, const clip::ChunkOptions& opt, int chunks);

}  // namespace easel
