// Fuzz target: arbitrary bytes as what SD3 and Flux bring that earlier models did not: a T5 tokenizer model
// (SentencePiece's protobuf, read by Debian's libsentencepiece), a safetensors file renamed from Stability's and
// BFL's single-file layouts, and the transformer configs. Accepted tokenizers encode to exactly max_length ids
// below their id limit; accepted configs validate.
#include <cstddef>
#include <cstdint>
#include <string>

#include "io/keymap_dit.h"
#include "io/safetensors.h"
#include "models/flux/config.h"
#include "models/mmdit/config.h"
#include "models/t5/config.h"
#include "models/t5/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    if (auto t = easel::T5Tokenizer::from_bytes(bytes, "fuzz.model")) {
        const auto ids = t->encode("a photo of a cat, 42 dogs! \xe2\x9c\x93", 16);
        if (ids.size() != 16) __builtin_trap();
        for (int32_t id : ids)
            if (id < 0 || (id >= t->id_limit() && id != t->eos_id() && id != t->pad_id())) __builtin_trap();
    }
    if (auto w = easel::read_safetensors_bytes(data, size, nullptr, "fuzz.safetensors")) {
        if (auto r = easel::sd3_transformer_to_diffusers(*w, "model.diffusion_model.", "transformer.")) {
            (void)easel::MMDiTConfig::detect_from_weights(*r, "transformer.");
        }
        if (auto r = easel::flux_transformer_to_diffusers(*w, "", "transformer.")) {
            (void)easel::FluxConfig::detect_from_weights(*r, "transformer.");
        }
        (void)easel::T5Config::detect_from_weights(*w, "");
    }
    const std::string text(bytes);
    if (auto c = easel::MMDiTConfig::from_diffusers_json(text); c && !c->validate()) __builtin_trap();
    if (auto c = easel::FluxConfig::from_diffusers_json(text); c && !c->validate()) __builtin_trap();
    if (auto c = easel::T5Config::from_diffusers_json(text); c && !c->validate()) __builtin_trap();
    return 0;
}
