// AUTOMATIC1111's infotext: the `parameters` text its PNGs carry, which its "PNG Info" tab, its API's
// `info`, CivitAI and many tools read back. We write it exactly as A1111 v1.10's processing.create_infotext
// formats it, so images made by easel paste back into those tools.
//
//   InfotextParams p;  p.prompt = "a cat"; p.steps = 20; p.sampler = "Euler a"; p.seed = 1234; ...
//   std::string text = format_infotext(p);
//   // a cat
//   // Negative prompt: blurry
//   // Steps: 20, Sampler: Euler a, Schedule type: Karras, CFG scale: 7.0, Seed: 1234, Size: 512x512, ...
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace easel {

struct InfotextParams {
    std::string prompt;
    std::string negative_prompt;
    int steps = 20;
    std::string sampler = "Euler a";        // A1111's display name
    std::string schedule_type;               // "Karras", "Automatic", ...; empty = omitted
    double cfg_scale = 7.0;
    int64_t seed = 0;
    int width = 512;
    int height = 512;
    std::string model_hash;                  // A1111 short hash (first 10 hex of sha256); empty = omitted
    std::string model_name;                  // file name without extension; empty = omitted
    std::optional<double> denoising_strength;  // img2img / inpaint only
    int clip_skip = 1;                       // shown only when > 1, as A1111 does
    std::string rng;                         // "CPU" / "NV"; A1111 omits its default ("GPU")
    std::vector<std::pair<std::string, std::string>> extra;  // more "Key: value" pairs, in order
    std::string version;                     // e.g. "easel 0.1.0"; empty = omitted
};

std::string format_infotext(const InfotextParams& p);

// A1111's infotext_utils.quote: a value containing ',', ':' or a newline is written as a JSON string.
std::string infotext_quote(const std::string& value);

// Python's str() of a float, as A1111's f-strings print it: 7.0 -> "7.0", 0.75 -> "0.75", 1e-05 -> "1e-05".
std::string python_float_str(double v);

// Parses an infotext back into prompt, negative prompt and the "Key: value" pairs (A1111's
// parse_generation_parameters, without its model-specific fix-ups). Never fails on junk: unknown text ends
// up in the prompt.
struct ParsedInfotext {
    std::string prompt;
    std::string negative_prompt;
    std::vector<std::pair<std::string, std::string>> params;
};
ParsedInfotext parse_infotext(const std::string& text);

}  // namespace easel
