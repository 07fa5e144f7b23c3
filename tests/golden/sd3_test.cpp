// SD3 on a tiny random-weight SD3-medium-shaped model (tests/golden/data/pipeline_sd3: CLIP-L and CLIP-G with
// projections, a 2-layer T5 v1.1 encoder with its own SentencePiece model, a 3-block MMDiT, a 16-channel 2-level
// VAE, FlowMatchEulerDiscreteScheduler shift 3) against diffusers 0.30.3 (torch 2.4.1, transformers 4.40.2,
// sentencepiece 0.1.99): tokenizers, each encoder, encode_prompt's context, the transformer at two timesteps and
// a non-square size, the VAE, the scheduler's sigmas, and whole StableDiffusion3Pipeline / Img2ImgPipeline runs.
// Goldens: tools/reference/make_sd3_goldens.py.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "models/t5/encoder.h"
#include "pipeline/families/sd3.h"
#include "pipeline/generate.h"
#include "pipeline/tasks.h"
#include "sampling/diffusers_schedule.h"

using namespace easel;
using easel::testing::expect_close;
using easel::testing::golden_file;
using easel::testing::golden_tensor;
namespace fs = std::filesystem;

namespace {

const std::string kFolder = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd3";

const SD3Model& model() {
    static std::unique_ptr<SD3Model> m = [] {
        auto r = load_sd3_model(kFolder, LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        return std::move(r).value();
    }();
    return *m;
}

// The same model without T5, as a user's folder whose model_index.json lists text_encoder_3 as null (diffusers'
// text_encoder_3=None): links to the other components.
const std::string& no_t5_folder() {
    static const std::string dir = [] {
        const fs::path d = fs::temp_directory_path() / fmt::format("easel-sd3-no-t5-{}", ::getpid());
        fs::remove_all(d);
        fs::create_directories(d);
        for (const char* c : {"transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"})
            fs::create_directory_symlink(fs::path(kFolder) / c, d / c);
        std::ifstream in(fs::path(kFolder) / "model_index.json");
        nlohmann::json j = nlohmann::json::parse(in);
        j["text_encoder_3"] = {nullptr, nullptr};
        j["tokenizer_3"] = {nullptr, nullptr};
        std::ofstream(d / "model_index.json") << j.dump(2);
        return d.string();
    }();
    return dir;
}

const SD3Model& model_without_t5() {
    static std::unique_ptr<SD3Model> m = [] {
        auto r = load_sd3_model(no_t5_folder(), LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        return std::move(r).value();
    }();
    return *m;
}

const WeightSet& components() { return golden_file("model_sd3_tiny.safetensors"); }
const WeightSet& cases() { return golden_file("pipeline_sd3_cases.safetensors"); }

// fp32 against torch's fp32 through two encoder layers or three joint blocks: measured max_abs printed; bound 1e-4.
constexpr easel::testing::Tolerance kTol{.atol = 1e-4, .rtol = 1e-4};

std::vector<int32_t> ids_of(const Tensor& t) {
    const Tensor i = t.to(DType::I32).contiguous();
    return {i.data<int32_t>(), i.data<int32_t>() + i.numel()};
}

}  // namespace

TEST(SD3, IsDetectedAndLoadedThroughTheRegistry) {
    auto m = load_model(kFolder, LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ((*m)->family, "sd3");
    EXPECT_EQ((*m)->info.family, ModelFamily::SD3);
    EXPECT_EQ((*m)->latent.channels, 16);
    EXPECT_FLOAT_EQ((*m)->latent.scaling_factor, 1.5305f);
    EXPECT_FLOAT_EQ((*m)->latent.shift_factor, 0.0609f);
    EXPECT_EQ((*m)->latent.downscale, 2);
    EXPECT_EQ((*m)->latent.side_multiple, 2);
    EXPECT_EQ((*m)->latent.max_side, 32);  // 16 patches of 2
    EXPECT_EQ((*m)->sampling->prediction(), Prediction::Flow);
    EXPECT_EQ((*m)->sampling->flow_shift(), 3.0);
    std::printf("%s\n", (*m)->describe().c_str());
    auto spec = load_model_spec(kFolder, LoadOptions{});
    ASSERT_TRUE(spec) << spec.error().to_string();
    EXPECT_EQ(spec->family, "sd3");
}

TEST(SD3, SizesOffTheGridAreRefusedBeforeAnyWork) {
    GenerateParams p;
    p.prompt = "x";
    p.steps = 1;
    p.width = 32;
    p.height = 30;  // not a multiple of 4 (VAE 2 x patch 2)
    auto r = generate(model(), p);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().to_string().find("height"), std::string::npos) << r.error().to_string();
    p.height = 32;
    p.width = 72;  // 36 latent pixels: beyond the 16 x 2 position grid
    r = generate(model(), p);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().to_string().find("at most 64"), std::string::npos) << r.error().to_string();
    p.width = 32;
    p.sampler = SamplerKind::DpmPP2MSde;  // its noise step is for eps/v models
    r = generate(model(), p);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().to_string().find("flow model"), std::string::npos) << r.error().to_string();
}

TEST(SD3, TokenizersMatchThePipelines) {
    const SD3Model& m = model();
    const WeightSet& g = components();
    for (const char* key : {"p0", "p1", "p2", "long", "case.a", "case.b", "case.c", "case.e"}) {
        const std::string prompt = g.metadata.at(std::string("prompt.") + key);
        auto t1 = m.tokenizer.encode_padded(prompt, m.pad_id);
        auto t2 = m.tokenizer_2.encode_padded(prompt, m.pad_id_2);
        ASSERT_TRUE(t1 && t2);
        const std::string base = std::string("text.") + key;
        EXPECT_EQ(*t1, ids_of(golden_tensor(g, base + ".ids_1"))) << key;
        EXPECT_EQ(*t2, ids_of(golden_tensor(g, base + ".ids_2"))) << key;
        EXPECT_EQ(m.tokenizer_3->encode(prompt, 256), ids_of(golden_tensor(g, base + ".ids_3"))) << key;
    }
    // Truncation to max_sequence_length 77 keeps 76 pieces and </s>.
    const std::string long_prompt = g.metadata.at("prompt.long");
    EXPECT_EQ(m.tokenizer_3->encode(long_prompt, 77), ids_of(golden_tensor(g, "text.long.ids_3_77")));
}

TEST(SD3, TextEncodersMatchTransformers) {
    const SD3Model& m = model();
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    for (const char* key : {"p0", "p1", "p2"}) {
        const std::string base = std::string("text.") + key;
        const auto o1 = m.text_encoder.encode(c, {ids_of(golden_tensor(g, base + ".ids_1"))},
                                              {.clip_skip = 2, .final_norm = false, .pooled = true});
        const auto o2 = m.text_encoder_2.encode(c, {ids_of(golden_tensor(g, base + ".ids_2"))},
                                                {.clip_skip = 2, .final_norm = false, .pooled = true});
        expect_close(o1.hidden, golden_tensor(g, base + ".hidden_1"), kTol, base + ".hidden_1");
        expect_close(o2.hidden, golden_tensor(g, base + ".hidden_2"), kTol, base + ".hidden_2");
        expect_close(*o1.pooled, golden_tensor(g, base + ".pooled_1"), kTol, base + ".pooled_1");
        expect_close(*o2.pooled, golden_tensor(g, base + ".pooled_2"), kTol, base + ".pooled_2");
        const Tensor t5 = m.text_encoder_3.encode(c, {ids_of(golden_tensor(g, base + ".ids_3"))});
        expect_close(t5, golden_tensor(g, base + ".t5"), kTol, base + ".t5");
    }
}

// transformers' _relative_position_bucket over every offset of a 512-token sequence, as T5-XXL's 32 buckets up to
// distance 128 place them: the exact-offset buckets, the log-spaced ones, their ends.
TEST(SD3, T5PositionBucketsFollowTransformers) {
    EXPECT_EQ(t5_relative_position_bucket(0, 32, 128), 0);
    EXPECT_EQ(t5_relative_position_bucket(-1, 32, 128), 1);
    EXPECT_EQ(t5_relative_position_bucket(1, 32, 128), 17);
    EXPECT_EQ(t5_relative_position_bucket(-7, 32, 128), 7);
    EXPECT_EQ(t5_relative_position_bucket(-8, 32, 128), 8);
    EXPECT_EQ(t5_relative_position_bucket(-500, 32, 128), 15);
    EXPECT_EQ(t5_relative_position_bucket(500, 32, 128), 31);
    int last = 0;
    for (int r = 0; r > -511; --r) {  // monotone in |r|, within the 16 key-before-query buckets
        const int b = t5_relative_position_bucket(r, 32, 128);
        EXPECT_GE(b, last);
        EXPECT_LT(b, 16);
        last = b;
    }
}

TEST(SD3, ConditionerMatchesEncodePrompt) {
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    // The long prompt: diffusers truncates CLIP at 77 tokens; easel, as AUTOMATIC1111 and ComfyUI, encodes every
    // 75-token chunk, so only the T5 rows and the pooled vector (from the first chunk) are diffusers'.
    const std::string long_prompt = g.metadata.at("prompt.long");
    auto conds = model().conditioner().encode(c, {.prompt = long_prompt, .negative = ""});
    ASSERT_TRUE(conds) << conds.error().to_string();
    const Tensor& ctx = conds->cond.context;
    const Tensor want = golden_tensor(g, "encode.long.prompt_embeds");
    ASSERT_EQ(ctx.size(2), 96);
    ASSERT_EQ((ctx.size(1) - 256) % 77, 0);
    expect_close(ctx.slice(1, ctx.size(1) - 256, ctx.size(1)).contiguous(), want.slice(1, 77, 333).contiguous(), kTol,
                 "encode.long T5 rows");
    if (ctx.size(1) == 333) expect_close(ctx, want, kTol, "encode.long prompt_embeds");
    expect_close(*conds->cond.pooled, golden_tensor(g, "encode.long.pooled"), kTol, "encode.long pooled");
    // Without T5: the CLIP block, then 77 rows of zeros.
    auto no_t5 = model_without_t5().conditioner().encode(c, {.prompt = g.metadata.at("prompt.p0"), .negative = ""});
    ASSERT_TRUE(no_t5) << no_t5.error().to_string();
    expect_close(no_t5->cond.context, golden_tensor(g, "encode.not5.prompt_embeds"), kTol, "encode.not5 prompt_embeds");
    const Tensor& n = no_t5->cond.context;
    for (int64_t i = 77 * 96; i < n.numel(); ++i) ASSERT_EQ(n.data<float>()[i], 0.0f);
    expect_close(*no_t5->cond.pooled, golden_tensor(g, "encode.not5.pooled"), kTol, "encode.not5 pooled");
}

TEST(SD3, TransformerMatchesDiffusers) {
    const SD3Model& m = model();
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    const Tensor ts = golden_tensor(g, "transformer.timesteps");
    for (const char* shape : {"sq", "wide"}) {
        const std::string s = shape;
        const Tensor x = golden_tensor(g, "transformer.x_" + s);
        const Tensor ctx = golden_tensor(g, "transformer.ctx_" + s), pooled = golden_tensor(g, "transformer.pooled_" + s);
        for (int i = 0; i < 2; ++i) {
            const float t = ts.data<float>()[i];
            const std::string name = fmt::format("transformer.{}_{}", s, i == 0 ? "t1000" : "t283_7");
            expect_close(m.transformer.forward(c, x, t, ctx, pooled), golden_tensor(g, name), kTol, name);
        }
    }
}

TEST(SD3, FlowMatchSchedulerMatchesDiffusers) {
    const WeightSet& g = components();
    for (auto [shift, steps] : {std::pair{3.0, 4}, std::pair{3.0, 10}, std::pair{3.0, 28}, std::pair{1.0, 10}}) {
        auto plan = flow_match_euler_plan(shift, 1000, steps);
        ASSERT_TRUE(plan) << plan.error().to_string();
        const std::string base = fmt::format("sched.s{}_n{}", int(shift), steps);
        const Tensor sig = Tensor::from_floats({int64_t(plan->sigmas.size())}, plan->sigmas);
        const Tensor ts = Tensor::from_floats({int64_t(plan->timesteps.size())}, plan->timesteps);
        expect_close(sig, golden_tensor(g, base + ".sigmas"), {.atol = 0, .rtol = 1e-6}, base + ".sigmas");
        expect_close(ts, golden_tensor(g, base + ".timesteps"), {.atol = 0, .rtol = 1e-6}, base + ".timesteps");
    }
}

TEST(SD3, VAEMatches) {
    const SD3Model& m = model();
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    // The pipeline's latents / scaling + shift is the VAE's input.
    expect_close(to_autoencoder_units(m.latent, golden_tensor(g, "vae.latent")), golden_tensor(g, "vae.z"), {.atol = 1e-6, .rtol = 1e-6},
                 "latent to VAE units");
    expect_close(m.autoencoder().decode(c, golden_tensor(g, "vae.z"), 0), golden_tensor(g, "vae.decoded"), kTol, "vae.decoded");
    auto [mean, logvar] = m.autoencoder().encode_moments(c, golden_tensor(g, "vae.image"), 0);
    expect_close(mean, golden_tensor(g, "vae.mean"), kTol, "vae.mean");
    expect_close(logvar, golden_tensor(g, "vae.logvar"), kTol, "vae.logvar");
}

namespace {

GenerateParams sd3_case_params(const nlohmann::json& j) {
    GenerateParams p = easel::testing::sized_case_params(j);
    p.schedule_from = ScheduleFrom::Diffusers;
    p.diffusers_scheduler = DiffusersScheduler::Euler;
    return p;
}

}  // namespace

class SD3Pipeline : public ::testing::TestWithParam<std::string> {};

// fp32 through 4-6 steps of 3 joint blocks: rtol 1e-4 plus atol 1e-3, as the other pipeline goldens; the image
// within mean |diff| 1 level, max 2.
TEST_P(SD3Pipeline, MatchesDiffusers) {
    const std::string name = GetParam();
    const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
    GenerateParams p = sd3_case_params(j);
    if (!j["strength"].is_null()) {
        p.init_image = easel::testing::image_from_golden(golden_tensor(cases(), name + ".init"));
        p.denoising_strength = j["strength"];
    }
    const SD3Model& m = j["t5"].get<bool>() ? model() : model_without_t5();
    auto r = generate(m, p);
    ASSERT_TRUE(r) << r.error().to_string();
    easel::testing::expect_matches_hwc_case((*r)[0], cases(), name, "sd3 " + name, {.atol = 1e-3, .rtol = 1e-4});
}

INSTANTIATE_TEST_SUITE_P(Cases, SD3Pipeline, ::testing::Values("a", "b", "c", "d", "e"));

// --no-t5 on a folder that has T5 is diffusers' text_encoder_3=None (case d); --shift 3 is SD3's own shift.
TEST(SD3, NoT5AndShiftFlags) {
    LoadOptions o;
    o.skip_t5 = true;
    auto r = load_sd3_model(kFolder, o);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_FALSE((*r)->t5_config);
    const nlohmann::json j = nlohmann::json::parse(cases().metadata.at("d.params"));
    GenerateParams p = sd3_case_params(j);
    auto d = generate(**r, p);
    ASSERT_TRUE(d) << d.error().to_string();
    easel::testing::expect_matches_hwc_case((*d)[0], cases(), "d", "sd3 d (--no-t5)", {.atol = 1e-3, .rtol = 1e-4});
    p.shift = 3.0;
    auto s3 = generate(**r, p);
    ASSERT_TRUE(s3) << s3.error().to_string();
    expect_close((*s3)[0].latent, (*d)[0].latent, {.atol = 0, .rtol = 0}, "--shift 3 = the model's shift");
}

// k-diffusion mode's euler on the default ("normal") schedule is the same list and the same step: it gives diffusers'
// latent of case a too; euler_a (ComfyUI's RF ancestral step) runs and differs from it.
TEST(SD3, KDiffusionEulerEqualsFlowMatchEuler) {
    const nlohmann::json j = nlohmann::json::parse(cases().metadata.at("a.params"));
    GenerateParams p = easel::testing::sized_case_params(j);
    p.sampler = SamplerKind::Euler;
    auto r = generate(model(), p);
    ASSERT_TRUE(r) << r.error().to_string();
    auto cmp = easel::testing::compare((*r)[0].latent, golden_tensor(cases(), "a.latent"), {.atol = 1e-3, .rtol = 1e-4});
    std::printf("k-diffusion euler vs diffusers case a: %s\n", cmp.summary().c_str());
    EXPECT_TRUE(cmp.passed()) << cmp.summary();
    EXPECT_NE((*r)[0].infotext.find("Sampler: Euler"), std::string::npos) << (*r)[0].infotext;
    p.sampler = SamplerKind::EulerAncestral;
    auto a = generate(model(), p);
    ASSERT_TRUE(a) << a.error().to_string();
    auto diff = easel::testing::compare((*a)[0].latent, (*r)[0].latent, {.atol = 1e-3, .rtol = 1e-4});
    EXPECT_FALSE(diff.passed());
    for (int64_t i = 0; i < (*a)[0].latent.numel(); ++i) ASSERT_TRUE(std::isfinite((*a)[0].latent.data<float>()[i]));
}

// SD3.5 (diffusers 0.31.0, where it first appeared; tools/reference/make_sd35_goldens.py): large's per-head q/k
// RMSNorm, medium's MMDiT-X second attention in blocks 0 and 1, each as a folder whose other components are
// pipeline_sd3's (linked).
namespace {

const SD3Model& sd35(const std::string& variant) {
    static std::map<std::string, std::unique_ptr<SD3Model>> models;
    auto& m = models[variant];
    if (!m) {
        auto r = load_sd3_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd35_" + variant, LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        m = std::move(r).value();
    }
    return *m;
}

const WeightSet& sd35_cases() { return golden_file("sd35_cases.safetensors"); }

}  // namespace

TEST(SD35, ConfigsComeFromTheFolders) {
    EXPECT_TRUE(sd35("large").transformer_config.qk_norm);
    EXPECT_TRUE(sd35("large").transformer_config.dual_attention_layers.empty());
    EXPECT_TRUE(sd35("medium").transformer_config.qk_norm);
    EXPECT_EQ(sd35("medium").transformer_config.dual_attention_layers, (std::vector<int>{0, 1}));
    std::printf("%s\n", sd35("medium").describe().c_str());
}

TEST(SD35, TransformersMatchDiffusers) {
    const WeightSet& g = sd35_cases();
    BufferPool pool;
    Ctx c{&pool};
    const Tensor ts = golden_tensor(g, "transformer.timesteps");
    for (const char* variant : {"large", "medium"}) {
        for (const char* shape : {"sq", "wide"}) {
            const std::string s = shape;
            const Tensor x = golden_tensor(g, "transformer.x_" + s);
            const Tensor ctx = golden_tensor(g, "transformer.ctx_" + s), pooled = golden_tensor(g, "transformer.pooled_" + s);
            for (int i = 0; i < 2; ++i) {
                const std::string name = fmt::format("transformer.{}.{}_{}", variant, s, i == 0 ? "t1000" : "t283_7");
                expect_close(sd35(variant).transformer.forward(c, x, ts.data<float>()[i], ctx, pooled), golden_tensor(g, name), kTol, name);
            }
        }
    }
}

class SD35Pipeline : public ::testing::TestWithParam<std::string> {};

TEST_P(SD35Pipeline, MatchesDiffusers) {
    const std::string name = GetParam();
    const nlohmann::json j = nlohmann::json::parse(sd35_cases().metadata.at(name + ".params"));
    GenerateParams p = sd3_case_params(j);
    auto r = generate(sd35(name.substr(0, name.find('_'))), p);
    ASSERT_TRUE(r) << r.error().to_string();
    easel::testing::expect_matches_hwc_case((*r)[0], sd35_cases(), name, "sd3.5 " + name, {.atol = 1e-3, .rtol = 1e-4});
}

INSTANTIATE_TEST_SUITE_P(Cases, SD35Pipeline, ::testing::Values("large_a", "medium_a", "medium_b"));

// Skip-layer guidance on the tiny SD3.5 medium (tools/reference/make_sd35_slg_goldens.py): diffusers 0.32.2's
// StableDiffusion3Pipeline(skip_guidance_layers=...) in diffusers mode, with its defaults (one step in the window)
// and with a wider window skipping the first and the last (context_pre_only) block; and ComfyUI's
// SkipLayerGuidanceDiT rule on k-diffusion euler, restated by the script on diffusers' networks.
namespace {
const WeightSet& slg_cases() { return golden_file("sd35_slg_cases.safetensors"); }
}  // namespace

class SD35SkipLayers : public ::testing::TestWithParam<std::string> {};

TEST_P(SD35SkipLayers, MatchesTheReference) {
    const std::string name = GetParam();
    const nlohmann::json j = nlohmann::json::parse(slg_cases().metadata.at(name + ".params"));
    GenerateParams p = easel::testing::sized_case_params(j);
    if (j["mode"] == "diffusers") {
        p.schedule_from = ScheduleFrom::Diffusers;
        p.diffusers_scheduler = DiffusersScheduler::Euler;
    } else {
        p.sampler = SamplerKind::Euler;
    }
    p.slg = {.layers = j["slg_layers"].get<std::vector<int>>(), .scale = j["slg_scale"], .start = j["slg_start"],
             .stop = j["slg_stop"]};
    auto r = generate(sd35("medium"), p);
    ASSERT_TRUE(r) << r.error().to_string();
    easel::testing::expect_matches_hwc_case((*r)[0], slg_cases(), name, "sd3.5 medium " + name, {.atol = 1e-3, .rtol = 1e-4});
    EXPECT_NE((*r)[0].infotext.find("SLG layers: "), std::string::npos) << (*r)[0].infotext;
    // The same request without skip layers is another image.
    p.slg.layers.clear();
    auto off = generate(sd35("medium"), p);
    ASSERT_TRUE(off) << off.error().to_string();
    EXPECT_FALSE(easel::testing::compare((*off)[0].latent, golden_tensor(slg_cases(), name + ".latent"),
                                         {.atol = 1e-3, .rtol = 1e-4}).passed());
}

INSTANTIATE_TEST_SUITE_P(Cases, SD35SkipLayers, ::testing::Values("slg_a", "slg_b", "slg_k"));

TEST(SD35SkipLayers, BadSettingsAreRefusedBeforeAnyWork) {
    GenerateParams p;
    p.prompt = "a red circle";
    p.width = p.height = 32;
    p.steps = 2;
    p.cfg_scale = 5;
    auto expect_error = [&](const GenerateParams& q, const std::string& field, const std::string& words) {
        auto r = generate(sd35("medium"), q);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().where(), field) << r.error().to_string();
        EXPECT_NE(r.error().to_string().find(words), std::string::npos) << r.error().to_string();
    };
    GenerateParams q = p;
    q.slg.layers = {3};  // the tiny transformer has blocks 0..2
    expect_error(q, "slg_layers", "blocks 0 to 2");
    q.slg.layers = {1};
    q.cfg_scale = 1;
    expect_error(q, "slg_layers", "classifier-free guidance");
    q.cfg_scale = 5;
    q.slg.start = 0.5;
    q.slg.stop = 0.2;
    expect_error(q, "slg_start", "start <= stop");
}

// Stability's single-file layouts (tools/reference/make_dit_single_files.py, proven with diffusers' own single-file
// loaders): the same weights as pipeline_sd3 / pipeline_sd35_medium, so every network computes exactly what the
// folder's does; CLIP-L pools unprojected there, as diffusers' single-file loader and ComfyUI make it.
namespace {

const std::string kSingle = std::string(EASEL_GOLDEN_DIR) + "/sd3_single/";

LoadOptions single_options(std::vector<std::string> files = {}) {
    LoadOptions o;
    o.vocab_path = kFolder + "/tokenizer";  // the tiny model's own vocabulary (real ones use the built-in CLIP one)
    o.t5_tokenizer = kFolder + "/tokenizer_3";
    for (std::string& f : files) f = kSingle + f;
    o.component_files = std::move(files);
    return o;
}

std::unique_ptr<SD3Model> load_single(const std::string& file, const LoadOptions& o) {
    auto r = load_sd3_model(kSingle + file, o);
    EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
    return std::move(r).value();
}

void expect_identical(const Tensor& a, const Tensor& b, const std::string& what) {
    expect_close(a, b, {.atol = 0, .rtol = 0}, what);
}

}  // namespace

TEST(SD3SingleFile, EveryNetworkEqualsTheFolders) {
    const auto s = load_single("tiny-sd3-incl-clips-t5.safetensors", single_options());
    EXPECT_EQ(s->family, "sd3");
    EXPECT_EQ(s->info.layout, CheckpointLayout::LdmSingleFile);
    EXPECT_FALSE(s->text_config.has_projection);
    const SD3Model& f = model();
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    const Tensor x = golden_tensor(g, "transformer.x_wide"), ctx = golden_tensor(g, "transformer.ctx_wide");
    const Tensor pooled = golden_tensor(g, "transformer.pooled_wide");
    expect_identical(s->transformer.forward(c, x, 283.7f, ctx, pooled), f.transformer.forward(c, x, 283.7f, ctx, pooled), "transformer");
    expect_identical(s->autoencoder().decode(c, golden_tensor(g, "vae.z"), 0), f.autoencoder().decode(c, golden_tensor(g, "vae.z"), 0), "vae");
    const auto ids1 = ids_of(golden_tensor(g, "text.p0.ids_1")), ids2 = ids_of(golden_tensor(g, "text.p0.ids_2"));
    const auto l_s = s->text_encoder.encode(c, {ids1}, {.clip_skip = 2, .final_norm = false, .pooled = true});
    const auto l_f = f.text_encoder.encode(c, {ids1}, {.clip_skip = 2, .final_norm = false, .pooled = true});
    expect_identical(l_s.hidden, l_f.hidden, "CLIP-L states");
    EXPECT_EQ(l_s.pooled->shape(), Shape({1, 32}));  // unprojected: the pooler output's width
    expect_identical(s->text_encoder_2.encode(c, {ids2}, {.clip_skip = 2, .final_norm = false, .pooled = true}).hidden,
                     f.text_encoder_2.encode(c, {ids2}, {.clip_skip = 2, .final_norm = false, .pooled = true}).hidden, "CLIP-G states");
    const auto ids3 = ids_of(golden_tensor(g, "text.p0.ids_3"));
    expect_identical(s->text_encoder_3.encode(c, {ids3}), f.text_encoder_3.encode(c, {ids3}), "T5");
}

TEST(SD3SingleFile, SeparateEncoderFilesEqualTheIncludedOnes) {
    GenerateParams p;
    p.prompt = "a red circle on a (blue:1.2) background";
    p.negative_prompt = "a green square";
    p.width = 32;
    p.height = 48;
    p.steps = 3;
    p.seed = 5;
    p.sampler = SamplerKind::Euler;
    const auto incl = load_single("tiny-sd3-incl-clips-t5.safetensors", single_options());
    const auto sep = load_single("tiny-sd3.safetensors",
                                 single_options({"clip_g.safetensors", "t5xxl.safetensors", "clip_l.safetensors"}));
    auto a = generate(*incl, p);
    auto b = generate(*sep, p);
    ASSERT_TRUE(a && b);
    expect_identical((*a)[0].latent, (*b)[0].latent, "separate files vs included");
    // What a single file lacks is named with the flag that gives it.
    auto missing = load_sd3_model(kSingle + "tiny-sd3.safetensors", single_options({"clip_l.safetensors"}));
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().to_string().find("--text-encoder"), std::string::npos) << missing.error().to_string();
    LoadOptions no_tok = single_options();
    no_tok.t5_tokenizer.clear();
    ::unsetenv("EASEL_T5_TOKENIZER");
    auto tok = load_sd3_model(kSingle + "tiny-sd3-incl-clips-t5.safetensors", no_tok);
    ASSERT_FALSE(tok);
    EXPECT_NE(tok.error().to_string().find("--t5-tokenizer"), std::string::npos) << tok.error().to_string();
    auto twice = load_sd3_model(kSingle + "tiny-sd3-incl-clips-t5.safetensors", single_options({"t5xxl.safetensors"}));
    ASSERT_FALSE(twice);
    EXPECT_NE(twice.error().to_string().find("two sources"), std::string::npos) << twice.error().to_string();
}

TEST(SD3SingleFile, SD35MediumEqualsItsFolder) {
    const auto s = load_single("tiny-sd35-medium.safetensors",
                               single_options({"clip_g.safetensors", "t5xxl.safetensors", "clip_l.safetensors"}));
    EXPECT_EQ(s->transformer_config.dual_attention_layers, (std::vector<int>{0, 1}));
    const WeightSet& g = sd35_cases();
    BufferPool pool;
    Ctx c{&pool};
    const Tensor x = golden_tensor(g, "transformer.x_sq"), ctx = golden_tensor(g, "transformer.ctx_sq");
    const Tensor pooled = golden_tensor(g, "transformer.pooled_sq");
    expect_identical(s->transformer.forward(c, x, 1000.0f, ctx, pooled), sd35("medium").transformer.forward(c, x, 1000.0f, ctx, pooled),
                     "SD3.5 medium transformer");
    expect_close(s->transformer.forward(c, x, 1000.0f, ctx, pooled), golden_tensor(g, "transformer.medium.sq_t1000"), kTol,
                 "SD3.5 medium single file vs diffusers");
}
