// Fuzz target: arbitrary bytes as a ControlNet safetensors file (diffusers names, or the original layout's
// input_hint_block / zero_convs / middle_block_out with or without control_model.), renamed, its layout read
// off the tensors and declared against the tiny test model's UNet layout. A file that does not fit is an
// error; nothing reads out of bounds or allocates what the file's size cannot justify.
#include <cstddef>
#include <cstdint>

#include "io/safetensors.h"
#include "pipeline/controlnet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto w = easel::read_safetensors_bytes(data, size, nullptr, "fuzz.safetensors");
    if (!w) return 0;
    easel::ModelInfo info;  // the tiny SD 1.x test model's UNet: small enough that a fitting file can be had
    info.has_unet = info.has_vae = info.has_text_encoder = true;
    info.unet.block_out_channels = {16, 32, 32};
    info.unet.down_attention = {true, true, false};
    info.unet.up_attention = {false, true, true};
    info.unet.num_heads = {2, 2, 2};
    info.unet.transformer_depth = {1, 1, 1};
    info.unet.cross_attention_dim = 32;
    info.unet.norm_num_groups = 4;
    auto net = easel::controlnet_from_weights(std::move(*w), "", info, easel::Precision::F32, "fuzz.safetensors");
    (void)net;
    return 0;
}
