// SDXL on a tiny random-weight SDXL-shaped model (tests/golden/data/pipeline_sdxl, a diffusers folder with both
// text encoders, the text_time UNet and a 2-level VAE) against diffusers 0.30.3 (torch 2.4.1, transformers
// 4.40.2): the conditioning, the UNet with its added conditioning, the VAE, and whole StableDiffusionXLPipeline
// runs in diffusers mode. Goldens: tools/reference/make_sdxl_goldens.py.
#include <gtest/gtest.h>

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "pipeline/families/sdxl.h"
#include "pipeline/generate.h"
#include "pipeline/tasks.h"

using namespace easel;
using easel::testing::expect_close;
using easel::testing::golden_file;
using easel::testing::golden_tensor;

namespace {

const std::string kFolder = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl";

const SDXLModel& model() {
    static std::unique_ptr<SDXLModel> m = [] {
        auto r = load_sdxl_model(kFolder, LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        return std::move(r).value();
    }();
    return *m;
}

const WeightSet& components() { return golden_file("model_sdxl_tiny.safetensors"); }

// fp32 against torch's fp32 through two encoder layers / one UNet call: measured max_abs below 1e-5 (printed).
constexpr easel::testing::Tolerance kTol{.atol = 1e-4, .rtol = 1e-4};

std::vector<int32_t> ids_of(const Tensor& t) {
    const Tensor i = t.to(DType::I32).contiguous();
    return {i.data<int32_t>(), i.data<int32_t>() + i.numel()};
}

}  // namespace

TEST(SDXL, IsDetectedAndLoadedThroughTheRegistry) {
    auto m = load_model(kFolder, LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_EQ((*m)->family, "sdxl");
    EXPECT_EQ((*m)->info.family, ModelFamily::SDXL);
    EXPECT_TRUE((*m)->info.unet.has_added_conditioning());
    EXPECT_FLOAT_EQ((*m)->latent.scaling_factor, 0.13025f);
    EXPECT_EQ((*m)->latent.downscale, 2);
    EXPECT_EQ((*m)->latent.image_multiple(), 8);
    std::printf("%s\n", (*m)->describe().c_str());
    auto spec = load_model_spec(kFolder, LoadOptions{});
    ASSERT_TRUE(spec) << spec.error().to_string();
    EXPECT_EQ(spec->family, "sdxl");
}

// Stability's single-file layout of the same weights (tools/reference/make_sdxl_single_file.py: sgm names, bigG's
// fused in_proj and transposed text_projection, 1x1-conv VAE attention) gives the folder's images bit for bit.
TEST(SDXL, SingleFileEqualsTheFolder) {
    LoadOptions o;
    o.vocab_path = kFolder + "/tokenizer";  // a single file carries no tokenizer; this tiny model's vocabulary is its own
    auto single = load_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl_single/tiny-sdxl.safetensors", o);
    ASSERT_TRUE(single) << single.error().to_string();
    EXPECT_EQ((*single)->family, "sdxl");
    EXPECT_EQ((*single)->info.layout, CheckpointLayout::LdmSingleFile);
    GenerateParams p;
    p.prompt = "a red circle on a (blue:1.2) background";
    p.negative_prompt = "a green square";
    p.width = 64;
    p.height = 96;
    p.steps = 4;
    p.seed = 5;
    auto a = generate(**single, p);
    auto b = generate(model(), p);
    ASSERT_TRUE(a && b);
    auto r = easel::testing::compare((*a)[0].latent, (*b)[0].latent, {.atol = 0, .rtol = 0});
    std::printf("single file vs folder: %s\n", r.summary().c_str());
    EXPECT_TRUE(r.passed()) << r.summary();
    EXPECT_EQ((*a)[0].image.pixels, (*b)[0].image.pixels);
}

TEST(SDXL, TextConditioningMatchesEncodePrompt) {
    const SDXLModel& m = model();
    const WeightSet& g = components();
    const std::string prompt = g.metadata.at("prompt");
    // Tokenization as the pipeline's two tokenizers do it (BOS, words, EOS, then EOS / "!" padding).
    auto t1 = m.tokenizer.encode_padded(prompt, m.pad_id);
    auto t2 = m.tokenizer_2.encode_padded(prompt, m.pad_id_2);
    ASSERT_TRUE(t1 && t2);
    EXPECT_EQ(*t1, ids_of(golden_tensor(g, "text.ids_1")));
    EXPECT_EQ(*t2, ids_of(golden_tensor(g, "text.ids_2")));
    BufferPool pool;
    Ctx c{&pool};
    auto h1 = m.text_encoder.encode(c, {*t1}, {.clip_skip = 2, .final_norm = false});
    auto h2 = m.text_encoder_2.encode(c, {*t2}, {.clip_skip = 2, .final_norm = false, .pooled = true});
    expect_close(h1.hidden, golden_tensor(g, "text.hidden_1"), kTol, "text.hidden_1");
    expect_close(h2.hidden, golden_tensor(g, "text.hidden_2"), kTol, "text.hidden_2");
    expect_close(*h2.pooled, golden_tensor(g, "text.text_embeds"), kTol, "text.text_embeds");
    // The conditioner: context and pooled vector as encode_prompt returns them; the ids (height, width, crop,
    // target) from the request.
    auto conds = m.conditioner().encode(c, {.prompt = prompt, .negative = "x", .width = 96, .height = 64});
    ASSERT_TRUE(conds) << conds.error().to_string();
    expect_close(conds->cond.context, golden_tensor(g, "text.context"), kTol, "conditioner context");
    expect_close(*conds->cond.pooled, golden_tensor(g, "text.text_embeds"), kTol, "conditioner pooled");
    const float want_ids[6] = {64, 96, 0, 0, 64, 96};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(conds->cond.ids->data<float>()[i], want_ids[i]);
    // An empty negative prompt is zeros (force_zeros_for_empty_prompt, diffusers' negative_prompt=None).
    auto zero = m.conditioner().encode(c, {.prompt = prompt, .negative = "", .width = 64, .height = 64});
    ASSERT_TRUE(zero);
    for (int64_t i = 0; i < zero->uncond.context.numel(); ++i) ASSERT_EQ(zero->uncond.context.data<float>()[i], 0.0f);
    for (int64_t i = 0; i < zero->uncond.pooled->numel(); ++i) ASSERT_EQ(zero->uncond.pooled->data<float>()[i], 0.0f);
}

TEST(SDXL, UNetWithAddedConditioningMatches) {
    const SDXLModel& m = model();
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    const UNet::Added added{golden_tensor(g, "unet.text_embeds"), golden_tensor(g, "unet.time_ids")};
    for (auto [t, name] : {std::pair{421.0f, "unet.out_t421"}, std::pair{999.0f, "unet.out_t999"}}) {
        Tensor out = m.unet.forward(c, golden_tensor(g, "unet.x"), t, golden_tensor(g, "unet.context"), &added);
        expect_close(out, golden_tensor(g, name), kTol, name);
    }
}

TEST(SDXL, VAEMatches) {
    const SDXLModel& m = model();
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    const Tensor z = to_autoencoder_units(m.latent, golden_tensor(g, "vae.z"));
    expect_close(m.autoencoder().decode(c, z, 0), golden_tensor(g, "vae.decoded"), kTol, "vae.decoded");
    auto [mean, logvar] = m.autoencoder().encode_moments(c, golden_tensor(g, "vae.image"), 0);
    expect_close(mean, golden_tensor(g, "vae.mean"), kTol, "vae.mean");
    expect_close(logvar, golden_tensor(g, "vae.logvar"), kTol, "vae.logvar");
}

using easel::testing::sdxl_case_params;

// Our run of `p` against the golden latent and [H, W, 3] image of case `name`. fp32 through ~12 UNet calls of a
// random model whose latents reach |x| ~ 50: rtol 1e-4 plus atol 1e-3, as the SD 1.x pipeline goldens; the image
// within mean |diff| 1 level, max 2.
void expect_case(const Model& m, const WeightSet& cases, const std::string& name, const GenerateParams& p) {
    auto r = generate(m, p);
    ASSERT_TRUE(r) << r.error().to_string();
    easel::testing::expect_matches_hwc_case((*r)[0], cases, name, "sdxl " + name, {.atol = 1e-3, .rtol = 1e-4});
}

class SDXLPipeline : public ::testing::TestWithParam<std::string> {};

TEST_P(SDXLPipeline, MatchesDiffusers) {
    const std::string name = GetParam();
    const WeightSet& cases = golden_file("pipeline_sdxl_cases.safetensors");
    expect_case(model(), cases, name, sdxl_case_params(nlohmann::json::parse(cases.metadata.at(name + ".params"))));
}

// euler_negsizes (negative_original_size etc.) is not run: easel gives the negative the positive's size
// conditioning, as diffusers does by default.
INSTANTIATE_TEST_SUITE_P(Cases, SDXLPipeline,
                         ::testing::Values("euler", "euler_a", "dpmpp2m", "ddim", "euler_nocfg", "euler_prompt2",
                                           "euler_sizes", "euler_noneg"));

// StableDiffusionXLImg2ImgPipeline and StableDiffusionXLInpaintPipeline (4-channel model: latent blending).
class SDXLImageToImage : public ::testing::TestWithParam<std::string> {};

TEST_P(SDXLImageToImage, MatchesDiffusers) {
    const std::string name = GetParam();
    const WeightSet& cases = golden_file("pipeline_sdxl_img2img_cases.safetensors");
    const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    GenerateParams p = sdxl_case_params(j);
    p.init_image = easel::testing::image_from_golden(golden_tensor(cases, name + ".init"));
    p.denoising_strength = j["strength"];
    if (j["pipeline"] == "inpaint") p.mask = easel::testing::mask_from_golden(golden_tensor(cases, name + ".mask"));
    expect_case(model(), cases, name, p);
}

INSTANTIATE_TEST_SUITE_P(Cases, SDXLImageToImage,
                         ::testing::Values("i2i_euler", "i2i_euler_wide", "i2i_dpmpp2m", "i2i_dpmpp2m_wide",
                                           "inpaint_euler_s100", "inpaint_euler_s075"));

// The refiner (bigG alone, 5 ids with the aesthetic score), diffusers' base-to-refiner hand-off and SDXL Turbo's way
// of sampling (trailing spacing, no guidance), against tools/reference/make_sdxl_refiner_goldens.py.
namespace {

const SDXLModel& refiner() {
    static std::unique_ptr<SDXLModel> m = [] {
        auto r = load_sdxl_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl_refiner", LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        return std::move(r).value();
    }();
    return *m;
}

const WeightSet& refiner_cases() { return golden_file("pipeline_sdxl_refiner_cases.safetensors"); }

nlohmann::json refiner_params(const std::string& name) {
    return nlohmann::json::parse(refiner_cases().metadata.at(name + ".params"));
}

}  // namespace

TEST(SDXLRefiner, IsRecognisedAndConditionsOnBigGAlone) {
    const SDXLModel& m = refiner();
    EXPECT_TRUE(m.refiner);
    EXPECT_FALSE(m.info.has_text_encoder);
    EXPECT_FALSE(m.zero_empty_negative);  // force_zeros_for_empty_prompt false
    BufferPool pool;
    Ctx c{&pool};
    auto conds = m.conditioner().encode(c, {.prompt = "a red circle", .negative = "", .width = 64, .height = 48});
    ASSERT_TRUE(conds) << conds.error().to_string();
    EXPECT_EQ(conds->cond.context.shape(), Shape({1, 77, 48}));
    const float want_pos[5] = {48, 64, 0, 0, 6.0f}, want_neg[5] = {48, 64, 0, 0, 2.5f};
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(conds->cond.ids->data<float>()[i], want_pos[i]);
        EXPECT_EQ(conds->uncond.ids->data<float>()[i], want_neg[i]);
    }
    // The empty negative is encoded, not zeroed, for the refiner.
    bool any = false;
    for (int64_t i = 0; i < conds->uncond.context.numel(); ++i) any |= conds->uncond.context.data<float>()[i] != 0.0f;
    EXPECT_TRUE(any);
}

TEST(SDXLRefiner, Img2ImgMatchesDiffusers) {
    for (const char* name : {"refiner_img2img", "refiner_img2img_noneg"}) {
        const nlohmann::json j = refiner_params(name);
        GenerateParams p = sdxl_case_params(j);
        p.init_image = easel::testing::image_from_golden(golden_tensor(refiner_cases(), std::string(name) + ".init"));
        p.denoising_strength = j["strength"];
        expect_case(refiner(), refiner_cases(), name, p);
    }
}

// StableDiffusionXLPipeline(denoising_end=0.8) then StableDiffusionXLImg2ImgPipeline(denoising_start=0.8) on its
// latent: the base runs timesteps 901..201 and hands over at sigma 0.346 without decoding; the refiner runs 101 and
// 1 from that latent as it is.
TEST(SDXLRefiner, BaseToRefinerHandOffMatchesDiffusers) {
    const std::string name = "base_refiner_handoff";
    const nlohmann::json j = refiner_params(name);
    GenerateParams base = sdxl_case_params(j);
    base.denoising_end = j["denoising_end"];
    base.decode = false;
    auto b = generate(model(), base);
    ASSERT_TRUE(b) << b.error().to_string();
    EXPECT_TRUE((*b)[0].image.pixels.empty());
    EXPECT_NE((*b)[0].infotext.find("Denoising end: 0.8"), std::string::npos) << (*b)[0].infotext;
    expect_close((*b)[0].latent, golden_tensor(refiner_cases(), name + ".base_latent"), {.atol = 1e-3, .rtol = 1e-4},
                 "hand-off base latent");
    GenerateParams ref = sdxl_case_params(j);
    ref.init_latent = (*b)[0].latent;
    ref.denoising_start = j["denoising_start"];
    expect_case(refiner(), refiner_cases(), name, ref);
}

TEST(SDXLTurbo, TrailingSpacingWithoutGuidanceMatchesDiffusers) {
    for (const char* name : {"turbo", "turbo_4"}) {
        const nlohmann::json j = refiner_params(name);
        auto m = load_sdxl_model(kFolder, LoadOptions{});
        ASSERT_TRUE(m) << m.error().to_string();
        auto sc = parse_scheduler_config(j["scheduler_config"].dump(), "sdxl-turbo scheduler_config.json");
        ASSERT_TRUE(sc) << sc.error().to_string();
        (*m)->scheduler_config = *sc;
        GenerateParams p;
        p.prompt = j["prompt"];
        p.steps = j["steps"];
        p.cfg_scale = j["cfg"];  // 0: no guidance in diffusers mode (do_classifier_free_guidance needs > 1)
        p.seed = j["seed"];
        p.width = j["width"];
        p.height = j["height"];
        p.schedule_from = ScheduleFrom::Diffusers;
        p.diffusers_scheduler = DiffusersScheduler::EulerAncestral;
        expect_case(**m, refiner_cases(), name, p);
    }
}

TEST(SDXLRefiner, HandOffMisuseIsRefused) {
    GenerateParams p;
    p.prompt = "x";
    p.width = p.height = 64;
    p.steps = 10;
    p.denoising_end = 0.8;  // k-diffusion mode
    auto r = generate(model(), p);
    ASSERT_FALSE(r);
    std::printf("%s\n", r.error().to_string().c_str());
    p.schedule_from = ScheduleFrom::Diffusers;
    p.denoising_end = 1.0;
    p.init_latent = Tensor::zeros({1, 4, 8, 8});  // not 64x64's [1, 4, 32, 32]
    p.denoising_start = 0.8;
    r = generate(model(), p);
    ASSERT_FALSE(r);
    std::printf("%s\n", r.error().to_string().c_str());
    EXPECT_NE(r.error().to_string().find("[1, 4, 32, 32]"), std::string::npos);
    p.init_latent = Tensor::zeros({1, 4, 32, 32});
    p.denoising_start = 0.0;
    r = generate(model(), p);
    ASSERT_FALSE(r);
    std::printf("%s\n", r.error().to_string().c_str());
}

// AUTOMATIC1111's "Refiner" / "Switch at" in k-diffusion mode: one sampler loop, the base's evaluations until the
// sigma's place on the training schedule reaches the switch, the refiner's after, with the prompts encoded by the
// refiner (aesthetic scores 6 / 2.5, an empty negative zeroed): tools/reference/make_sdxl_refiner_switch_goldens.py.
class SDXLRefinerSwitch : public ::testing::TestWithParam<std::string> {};

TEST_P(SDXLRefinerSwitch, MatchesAutomatic1111) {
    const std::string name = GetParam();
    const WeightSet& cases = golden_file("pipeline_sdxl_refiner_switch_cases.safetensors");
    const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    GenerateParams p = easel::testing::sdxl_kdiffusion_case_params(j);
    p.refiner = &refiner();
    p.refiner_switch_at = j["refiner_switch_at"];
    auto r = generate(model(), p);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_NE((*r)[0].infotext.find(fmt::format("Refiner: pipeline_sdxl_refiner, Refiner switch at: {}", p.refiner_switch_at)),
              std::string::npos) << (*r)[0].infotext;
    easel::testing::expect_matches_hwc_case((*r)[0], cases, name, "switch " + name, {.atol = 1e-3, .rtol = 1e-4});
}

INSTANTIATE_TEST_SUITE_P(Cases, SDXLRefinerSwitch,
                         ::testing::Values("switch_euler_a", "switch_dpmpp2m_karras", "switch_heun", "switch_euler_64x96"));

// The same request in diffusers mode is the ensemble of experts done inside generate(): the base to denoising_end,
// the refiner from denoising_start, as the by-hand hand-off above.
TEST(SDXLRefinerSwitch, DiffusersModeIsTheHandOff) {
    const std::string name = "base_refiner_handoff";
    const nlohmann::json j = refiner_params(name);
    GenerateParams p = sdxl_case_params(j);
    p.refiner = &refiner();
    p.refiner_switch_at = j["denoising_end"];
    auto r = generate(model(), p);
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_NE((*r)[0].infotext.find("Refiner: pipeline_sdxl_refiner, Refiner switch at: 0.8"), std::string::npos)
        << (*r)[0].infotext;
    easel::testing::expect_matches_hwc_case((*r)[0], refiner_cases(), name, "in-library " + name, {.atol = 1e-3, .rtol = 1e-4});
}

// A refiner that cannot finish the base's images is refused before any work, naming both.
TEST(SDXLRefinerSwitch, MisuseIsRefused) {
    auto sd1 = load_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1", LoadOptions{});
    ASSERT_TRUE(sd1) << sd1.error().to_string();
    GenerateParams p;
    p.prompt = "x";
    p.width = p.height = 64;
    p.steps = 4;
    p.refiner = &refiner();
    auto r = generate(**sd1, p);  // an SD 1.x base: another latent space
    ASSERT_FALSE(r);
    std::printf("%s\n", r.error().to_string().c_str());
    EXPECT_NE(r.error().to_string().find("latent spaces differ"), std::string::npos);
    p.refiner = sd1->get();  // SD 1.x as the refiner of SDXL
    r = generate(model(), p);
    ASSERT_FALSE(r);
    std::printf("%s\n", r.error().to_string().c_str());
    p.refiner = &refiner();
    for (double at : {0.0, 1.0, -0.5}) {
        p.refiner_switch_at = at;
        r = generate(model(), p);
        ASSERT_FALSE(r) << at;
        EXPECT_NE(r.error().to_string().find("refiner_switch_at"), std::string::npos) << r.error().to_string();
    }
}

// The refiner's conditioning as StableDiffusionXLImg2ImgPipeline.encode_prompt makes it (rows: negative, positive).
TEST(SDXLRefiner, ConditioningMatchesEncodePrompt) {
    const nlohmann::json j = refiner_params("refiner_img2img");
    BufferPool pool;
    Ctx c{&pool};
    auto conds = refiner().conditioner().encode(c, {.prompt = j["prompt"], .negative = j["negative"], .width = 64, .height = 64});
    ASSERT_TRUE(conds);
    const Tensor& ctx = golden_tensor(refiner_cases(), "refiner_img2img.context");
    const Tensor& te = golden_tensor(refiner_cases(), "refiner_img2img.text_embeds");
    // golden rows: [negative, positive]
    expect_close(conds->uncond.context, ctx.slice(0, 0, 1).contiguous(), kTol, "refiner neg context");
    expect_close(conds->cond.context, ctx.slice(0, 1, 2).contiguous(), kTol, "refiner pos context");
    expect_close(*conds->uncond.pooled, te.slice(0, 0, 1).contiguous(), kTol, "refiner neg pooled");
    expect_close(*conds->cond.pooled, te.slice(0, 1, 2).contiguous(), kTol, "refiner pos pooled");
}

// k-diffusion semantics (AUTOMATIC1111's CFGDenoiser around CompVisDenoiser, what A1111 and ComfyUI run) on the
// same model: tools/reference/make_sdxl_kdiffusion_goldens.py (k-diffusion 0.0.16). An empty negative prompt is
// zeroed as A1111 does.
class SDXLKDiffusion : public ::testing::TestWithParam<std::string> {};

TEST_P(SDXLKDiffusion, MatchesKDiffusion) {
    const std::string name = GetParam();
    const WeightSet& cases = golden_file("pipeline_sdxl_kdiffusion_cases.safetensors");
    const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(name + ".params"));
    const GenerateParams p = easel::testing::sdxl_kdiffusion_case_params(j);
    expect_case(model(), cases, name, p);
}

INSTANTIATE_TEST_SUITE_P(Cases, SDXLKDiffusion,
                         ::testing::Values("euler", "euler_a", "dpmpp2m_karras", "heun", "euler_64x96", "euler_zero_neg"));

// The 9-channel SDXL inpainting UNet (mask and masked-image latent as extra input channels, no latent blending)
// against StableDiffusionXLInpaintPipeline: tools/reference/make_sdxl_inpaint9_goldens.py.
TEST(SDXLInpaintModel, MatchesDiffusers) {
    auto m = load_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl_inpaint9", LoadOptions{});
    ASSERT_TRUE(m) << m.error().to_string();
    EXPECT_TRUE((*m)->inpainting);
    EXPECT_EQ(model_kind_name((*m)->info), "sdxl-inpaint");
    const WeightSet& cases = golden_file("pipeline_sdxl_inpaint9_cases.safetensors");
    for (const char* name : {"inpaint9_euler_s100", "inpaint9_euler_s075", "inpaint9_dpmpp2m_s075"}) {
        const nlohmann::json j = nlohmann::json::parse(cases.metadata.at(std::string(name) + ".params"));
        GenerateParams p = sdxl_case_params(j);
        p.init_image = easel::testing::image_from_golden(golden_tensor(cases, std::string(name) + ".init"));
        p.mask = easel::testing::mask_from_golden(golden_tensor(cases, std::string(name) + ".mask"));
        p.denoising_strength = j["strength"];
        expect_case(**m, cases, name, p);
    }
}
