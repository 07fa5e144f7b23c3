#include <gtest/gtest.h>

#include "pipeline/infotext.h"

using namespace easel;

// Expected strings follow AUTOMATIC1111 v1.10 processing.create_infotext: keys in its order, values through
// infotext_utils.quote, floats as Python's str(), Clip skip only above 1, RNG only when not "GPU".
TEST(Infotext, FormatsLikeAutomatic1111) {
    InfotextParams p;
    p.prompt = "a photo of a cat, (masterpiece:1.2)";
    p.negative_prompt = "blurry";
    p.steps = 20;
    p.sampler = "DPM++ 2M";
    p.schedule_type = "Karras";
    p.cfg_scale = 7.0;
    p.seed = 1234;
    p.width = 512;
    p.height = 768;
    p.model_hash = "6ce0161689";
    p.model_name = "v1-5-pruned-emaonly";
    p.clip_skip = 2;
    p.rng = "CPU";
    p.version = "easel 0.1.0";
    EXPECT_EQ(format_infotext(p),
              "a photo of a cat, (masterpiece:1.2)\n"
              "Negative prompt: blurry\n"
              "Steps: 20, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 7.0, Seed: 1234, Size: 512x768, "
              "Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Clip skip: 2, RNG: CPU, Version: easel 0.1.0");
}

TEST(Infotext, QuotesValuesWithCommasColonsAndNewlines) {
    EXPECT_EQ(infotext_quote("plain"), "plain");
    EXPECT_EQ(infotext_quote("a, b"), "\"a, b\"");
    EXPECT_EQ(infotext_quote("k: \"v\""), "\"k: \\\"v\\\"\"");
    EXPECT_EQ(infotext_quote("café, 猫"), "\"café, 猫\"");  // ensure_ascii=False
    InfotextParams p;
    p.prompt = "x";
    p.denoising_strength = 0.75;
    p.clip_skip = 1;
    p.rng = "GPU";
    p.extra = {{"Lora hashes", "a: 1, b: 2"}};
    EXPECT_EQ(format_infotext(p), "x\nSteps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 0, Size: 512x512, "
                                  "Denoising strength: 0.75, Lora hashes: \"a: 1, b: 2\"");
}

TEST(Infotext, PythonFloatStrings) {
    EXPECT_EQ(python_float_str(7.0), "7.0");
    EXPECT_EQ(python_float_str(7.5), "7.5");
    EXPECT_EQ(python_float_str(0.1), "0.1");
    EXPECT_EQ(python_float_str(1e-05), "1e-05");
    EXPECT_EQ(python_float_str(12.0), "12.0");
}

TEST(Infotext, ParsesBackWhatItWrites) {
    InfotextParams p;
    p.prompt = "a cat\nsecond line";
    p.negative_prompt = "ugly, blurry";
    p.schedule_type = "Automatic";
    p.extra = {{"Note", "x: y"}};
    ParsedInfotext r = parse_infotext(format_infotext(p));
    EXPECT_EQ(r.prompt, "a cat\nsecond line");
    EXPECT_EQ(r.negative_prompt, "ugly, blurry");
    ASSERT_GE(r.params.size(), 6u);
    EXPECT_EQ(r.params[0], (std::pair<std::string, std::string>{"Steps", "20"}));
    EXPECT_EQ(r.params.back(), (std::pair<std::string, std::string>{"Note", "x: y"}));
    // junk never fails
    ParsedInfotext j = parse_infotext("\"unterminated: , ,: :");
    (void)j;
}
