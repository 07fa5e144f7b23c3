// Quantized models end to end: `easel quantize` (pipeline/quantize.h) rewrites the tiny Flux dev and SD3 single
// files (tests/golden/data/flux_single, sd3_single: f16, the same weights as the diffusers-checked folders) and
// their T5 as GGUF; easel loads the GGUF like any single file, keeps the Linear weights as stored and multiplies
// them quantized. Same prompt, seed and sampler as the f16 original: the images must agree within a PSNR bound
// per type (q8_0 >= 35 dB, the acceptance; q4_0 >= 22 dB, measured 30.9 dB when this was written on a Zen 3).
// SD3's transformer is also written with ComfyUI-GGUF's bare names (joint_blocks.* without model.diffusion_model.).
// The embedded SD 1.x model (trained weights, an LDM single file with its .yaml) in q8_0: >= 33 dB (measured 50.4;
// `easel generate` with its defaults, 36.0 dB).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "common/golden.h"
#include "io/gguf.h"
#include "io/model_file.h"
#include "io/safetensors.h"
#include "pipeline/generate.h"
#include "pipeline/quantize.h"
#include "runtime/nn.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

const std::string kFlux = std::string(EASEL_GOLDEN_DIR) + "/flux_single/";
const std::string kFluxFolder = std::string(EASEL_GOLDEN_DIR) + "/pipeline_flux";
const std::string kSD3 = std::string(EASEL_GOLDEN_DIR) + "/sd3_single/";
const std::string kSD3Folder = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd3";

struct RemoveScratch : ::testing::Environment {
    void TearDown() override {
        std::error_code ec;
        fs::remove_all(fs::temp_directory_path() / fmt::format("easel_quantized_test_{}", ::getpid()), ec);
    }
};
[[maybe_unused]] ::testing::Environment* const kRemove = ::testing::AddGlobalTestEnvironment(new RemoveScratch);

fs::path scratch() {
    static const fs::path d = [] {
        fs::path p = fs::temp_directory_path() / fmt::format("easel_quantized_test_{}", ::getpid());
        fs::create_directories(p);
        return p;
    }();
    return d;
}

std::string quantized(const std::string& in, const std::string& name, QuantType t, QuantizeReport* report = nullptr) {
    const std::string out = (scratch() / name).string();
    auto r = quantize_model_file(in, out, {.type = t});
    EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
    if (report) *report = *r;
    return out;
}

double psnr(const Image& a, const Image& b) {
    EXPECT_EQ(a.pixels.size(), b.pixels.size());
    double se = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) se += std::pow(double(a.pixels[i]) - double(b.pixels[i]), 2);
    const double mse = se / double(a.pixels.size());
    return mse == 0 ? 99.0 : 10.0 * std::log10(255.0 * 255.0 / mse);
}

Image run(const std::string& file, const LoadOptions& o, bool flux) {
    auto m = load_model(file, o);
    EASEL_ASSERT(m.has_value(), m ? "" : m.error().to_string());
    GenerateParams p;
    p.prompt = "a red fox in the snow, watercolor";
    p.negative_prompt = flux ? "" : "blurry";
    p.steps = 6;
    p.cfg_scale = flux ? 1.0 : 4.0;
    p.seed = 1234;
    p.width = 64;
    p.height = 64;
    auto r = generate(**m, p);
    EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
    return (*r)[0].image;
}

LoadOptions flux_options(const std::string& t5) {
    LoadOptions o;
    o.vocab_path = kFluxFolder + "/tokenizer";
    o.t5_tokenizer = kFluxFolder + "/tokenizer_2";
    o.component_files = {t5, kFlux + "ae.safetensors", kFlux + "clip_l.safetensors"};
    return o;
}

LoadOptions sd3_options(const std::string& t5) {
    LoadOptions o;
    o.vocab_path = kSD3Folder + "/tokenizer";
    o.t5_tokenizer = kSD3Folder + "/tokenizer_3";
    o.component_files = {kSD3 + "clip_l.safetensors", kSD3 + "clip_g.safetensors", t5};
    return o;
}

}  // namespace

TEST(Quantized, WriterKeepsLinearWeightsQuantizedAndTheRestAsStored) {
    QuantizeReport rep;
    const std::string f = quantized(kFlux + "tiny-flux-dev.safetensors", "flux-q8.gguf", QuantType::Q8_0, &rep);
    EXPECT_EQ(rep.architecture, "flux");
    EXPECT_GT(rep.quantized, 0u);
    EXPECT_GT(rep.kept, 0u);
    auto w = read_gguf(f);
    ASSERT_TRUE(w) << w.error().to_string();
    EXPECT_EQ(w->metadata.at("general.architecture"), "flux");
    const Tensor* qkv = w->find("double_blocks.0.img_attn.qkv.weight");
    ASSERT_NE(qkv, nullptr);
    EXPECT_EQ(qkv->quant(), QuantType::Q8_0);
    EXPECT_EQ(qkv->shape(), Shape({96, 32}));
    const Tensor* bias = w->find("double_blocks.0.img_attn.qkv.bias");
    ASSERT_NE(bias, nullptr);
    EXPECT_FALSE(bias->quantized());
    EXPECT_EQ(bias->dtype(), DType::F16);
    // A Linear layer keeps the blocks as stored, a view of the file (no decoded copy), and takes the bias as f32.
    {
        ParamLoader loader(*w, Precision::F32);
        const Linear l = Linear::declare(ParamScope(loader, "double_blocks.0.img_attn.qkv"), 32, 96);
        ASSERT_TRUE(loader.finish()) << loader.finish().error().to_string();
        EXPECT_EQ(l.weight.quant, QuantType::Q8_0);
        EXPECT_EQ(l.weight.data.get(), qkv->raw());
        EXPECT_EQ(l.weight.bytes(), size_t(96 * 34));
    }
    // The decoded q8_0 weight is the f16 one within q8_0's step (max |w| / 127 per block of 32).
    auto orig = read_weights(kFlux + "tiny-flux-dev.safetensors");
    ASSERT_TRUE(orig);
    const std::vector<float> a = qkv->to_floats(), b = orig->find("double_blocks.0.img_attn.qkv.weight")->to_floats();
    double worst = 0, amax = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
        amax = std::max(amax, std::fabs(double(b[i])));
    }
    EXPECT_LE(worst, amax / 127.0 * 0.51 + 1e-6) << "largest q8_0 rounding error";
    // K-quants on 32-wide rows fall back to the 32-element type of about the same size.
    QuantizeReport k;
    quantized(kFlux + "tiny-flux-dev.safetensors", "flux-q4k.gguf", QuantType::Q4_K, &k);
    EXPECT_GT(k.fell_back, 0u);
    EXPECT_EQ(k.quantized + k.fell_back, rep.quantized);  // rows of 256 (time_in's) take q4_K itself
    // Types easel cannot write, and folders, are refused before any work.
    auto bad = quantize_model_file(kFlux + "tiny-flux-dev.safetensors", (scratch() / "x.gguf").string(), {.type = QuantType::Q2_K});
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().to_string().find("q4_K"), std::string::npos) << bad.error().to_string();
    EXPECT_FALSE(fs::exists(scratch() / "x.gguf"));
    EXPECT_FALSE(quantize_model_file(kFluxFolder, (scratch() / "y.gguf").string(), {}));
}

TEST(Quantized, FluxDevQ8AndQ4MatchTheF16Original) {
    const Image ref = run(kFlux + "tiny-flux-dev.safetensors", flux_options(kFlux + "t5xxl.safetensors"), true);
    struct Case {
        QuantType type;
        double bound;
    };
    for (const Case c : {Case{QuantType::Q8_0, 35.0}, Case{QuantType::Q4_0, 22.0}}) {
        const std::string name(quant_info(c.type).name);
        const std::string model = quantized(kFlux + "tiny-flux-dev.safetensors", "flux-" + name + ".gguf", c.type);
        const std::string t5 = quantized(kFlux + "t5xxl.safetensors", "t5-" + name + ".gguf", c.type);
        const double db = psnr(run(model, flux_options(t5), true), ref);
        std::printf("  flux dev, transformer and T5 in %s: PSNR %.1f dB against f16 (bound %.0f)\n", name.c_str(), db, c.bound);
        EXPECT_GE(db, c.bound) << name;
    }
}

TEST(Quantized, SD3Q8MatchesTheF16OriginalAlsoWithBareNames) {
    const Image ref = run(kSD3 + "tiny-sd3.safetensors", sd3_options(kSD3 + "t5xxl.safetensors"), false);
    const std::string t5 = quantized(kSD3 + "t5xxl.safetensors", "sd3-t5-q8_0.gguf", QuantType::Q8_0);
    const std::string model = quantized(kSD3 + "tiny-sd3.safetensors", "sd3-q8_0.gguf", QuantType::Q8_0);
    const double db = psnr(run(model, sd3_options(t5), false), ref);
    std::printf("  sd3, transformer and T5 in q8_0: PSNR %.1f dB against f16\n", db);
    EXPECT_GE(db, 35.0);

    // ComfyUI-GGUF's layout: the transformer's names without model.diffusion_model.
    auto w = read_weights(kSD3 + "tiny-sd3.safetensors");
    ASSERT_TRUE(w);
    WeightSet bare;
    bare.metadata = w->metadata;  // the tiny model's configs (easel.config.*)
    for (const std::string& n : w->names()) {
        const std::string p = "model.diffusion_model.";
        ASSERT_TRUE(bare.add(n.rfind(p, 0) == 0 ? n.substr(p.size()) : n, *w->find(n)));
    }
    const std::string bare_st = (scratch() / "tiny-sd3-bare.safetensors").string();
    ASSERT_TRUE(write_safetensors(bare_st, bare, {}));
    const std::string bare_q = quantized(bare_st, "sd3-bare-q8_0.gguf", QuantType::Q8_0);
    const double bare_db = psnr(run(bare_q, sd3_options(t5), false), ref);
    std::printf("  sd3 with bare names in q8_0: PSNR %.1f dB against f16\n", bare_db);
    EXPECT_GE(bare_db, 35.0);
}

TEST(Quantized, EmbeddedSDModelQ8MatchesItsF16Original) {
    const std::string src = std::string(EASEL_SOURCE_DIR) + "/models/tiny/easel-tiny";
    const std::string q = quantized(src + ".safetensors", "easel-tiny-q8_0.gguf", QuantType::Q8_0);
    fs::copy_file(src + ".yaml", scratch() / "easel-tiny-q8_0.yaml", fs::copy_options::overwrite_existing);
    auto image = [](const std::string& file) {
        auto m = load_model(file, LoadOptions{});
        EASEL_ASSERT(m.has_value(), m ? "" : m.error().to_string());
        GenerateParams p;
        p.prompt = "a yellow triangle on a purple background";
        p.seed = 3;
        p.width = p.height = 32;
        p.steps = 12;
        p.cfg_scale = 3.0;
        auto r = generate(**m, p);
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        return (*r)[0].image;
    };
    const double db = psnr(image(q), image(src + ".safetensors"));
    std::printf("  embedded SD model in q8_0: PSNR %.1f dB against f16\n", db);
    EXPECT_GE(db, 33.0);
}

// stable-diffusion.cpp's own SDXL GGUF files (tests/golden/data/sdxl_gguf_sdcpp, written by its `sd-cli -M convert`
// from the tiny SDXL single file: tools/reference/make_sdcpp_gguf_fixtures.py). The peer keeps the checkpoint's
// names and quantizes every tensor whose rows are whole blocks of 32, 1-D norm weights and 2-D embeddings
// included; easel decodes what it does not multiply quantized. Against the f16 original: q8_0 >= 35 dB, q4_0 >= 22.
TEST(Quantized, StableDiffusionCppSDXLFilesMatchTheF16Original) {
    const std::string dir = std::string(EASEL_GOLDEN_DIR) + "/sdxl_gguf_sdcpp/";
    LoadOptions o;
    o.vocab_path = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl/tokenizer";
    const Image ref = run(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl_single/tiny-sdxl.safetensors", o, false);
    for (auto [name, bound] : {std::pair{"q8_0", 35.0}, std::pair{"q4_0", 22.0}}) {
        const std::string file = dir + "tiny-sdxl-" + name + ".gguf";
        auto w = read_gguf(file);
        ASSERT_TRUE(w) << w.error().to_string();
        size_t quantized_1d = 0, quantized_all = 0;
        for (const std::string& n : w->names()) {
            const Tensor* t = w->find(n);
            quantized_all += t->quantized();
            quantized_1d += t->quantized() && t->shape().rank() == 1;
        }
        EXPECT_GT(quantized_1d, 0u) << name << ": the peer's file should have quantized norm weights";
        const double db = psnr(run(file, o, false), ref);
        std::printf("  sdxl from stable-diffusion.cpp in %s (%zu quantized tensors, %zu of them 1-D): PSNR %.1f dB "
                    "against f16 (bound %.0f)\n", name, quantized_all, quantized_1d, db, bound);
        EXPECT_GE(db, bound) << name;
    }
}
