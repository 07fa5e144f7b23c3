// Fuzz target: arbitrary bytes as an IP-Adapter safetensors file (image_proj.* + ip_adapter.N.to_k_ip/to_v_ip)
// matched to the tiny SD 1.x test model's UNet, and as a CLIP image encoder (vision_model.*) whose config is read
// off the tensors. What fits is loaded and run on a zero input (its size bounded by the file's own tensors);
// anything else is an error. Nothing reads out of bounds, asserts, or allocates what the file cannot justify.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "io/safetensors.h"
#include "pipeline/ip_adapter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto w = easel::read_safetensors_bytes(data, size, nullptr, "fuzz.safetensors");
    if (!w) return 0;
    easel::ModelInfo info;  // the tiny SD 1.x test model's UNet (tests/golden/data/pipeline_sd1)
    info.has_unet = info.has_vae = info.has_text_encoder = true;
    info.unet.block_out_channels = {16, 32, 32};
    info.unet.down_attention = {true, true, false};
    info.unet.up_attention = {false, true, true};
    info.unet.num_heads = {2, 2, 2};
    info.unet.transformer_depth = {1, 1, 1};
    info.unet.cross_attention_dim = 32;
    info.unet.norm_num_groups = 4;
    easel::BufferPool pool;
    easel::Ctx c{&pool};
    easel::WeightSet copy = *w;
    if (auto a = easel::ip_adapter_from_weights(std::move(*w), info, easel::Precision::F32, "fuzz.safetensors")) {
        const easel::IPAdapterConfig& cfg = (*a)->config;
        easel::Tensor in = cfg.reads_penultimate() ? easel::Tensor::empty({1, 3, cfg.embed_dim}) : easel::Tensor::empty({1, cfg.embed_dim});
        std::fill_n(in.data<float>(), in.numel(), 0.0f);
        (void)(*a)->adapter.keys_values(c, (*a)->adapter.project(c, in), 1.0f);
    }
    if (auto e = easel::image_encoder_from_weights(std::move(copy), "", easel::Precision::F32, "fuzz.safetensors")) {
        (void)e;  // a fitting encoder is at least ViT-L sized: loading it is the test, running it would be slow
    }
    return 0;
}
