// Fuzz target: arbitrary bytes as a LoRA / LyCORIS safetensors file, read against an SD 1.x model's layout and
// every module's delta computed for a few layer shapes. Whatever the reader accepts must be safe to compute
// with: a bad shape is an error, never an out-of-bounds read or an allocation the file's size cannot justify.
#include <cstddef>
#include <cstdint>

#include "io/safetensors.h"
#include "pipeline/lora.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    auto w = easel::read_safetensors_bytes(data, size, nullptr, "fuzz.safetensors");
    if (!w) return 0;
    easel::ModelInfo info;  // SD 1.x defaults: the UNet layout of SD 1.5, one text encoder
    info.has_unet = info.has_vae = info.has_text_encoder = true;
    auto f = easel::read_lora(*w, info, "fuzz.safetensors", "0");
    if (!f) return 0;
    for (const easel::LoraModule& m : (*f)->modules)
        for (const easel::Shape& s : {easel::Shape{16, 16}, easel::Shape{16, 8, 3, 3}, easel::Shape{4, 12}}) {
            auto d = easel::lora_delta(m, s);
            if (d && d->shape() != s) __builtin_trap();
        }
    return 0;
}
