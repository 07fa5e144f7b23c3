// Flux.1 on tiny random-weight Flux-shaped models (tests/golden/data/pipeline_flux: dev-like with the guidance
// embedding and dynamic shifting; pipeline_flux_schnell: no guidance, shift 1), sharing one CLIP-L, one 2-layer
// T5 v1.1 and one 16-channel VAE, against diffusers 0.30.3's FluxPipeline (torch 2.4.1, transformers 4.40.2):
// tokenizers, encoders, the RoPE tables, packing, the transformer at two timesteps and two sizes, the scheduler's
// resolution-dependent sigmas, the VAE, and whole pipeline runs. Goldens: tools/reference/make_flux_goldens.py.
#include <gtest/gtest.h>

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "pipeline/families/flux.h"
#include "pipeline/generate.h"
#include "pipeline/tasks.h"
#include "sampling/diffusers_schedule.h"

using namespace easel;
using easel::testing::expect_close;
using easel::testing::golden_file;
using easel::testing::golden_tensor;

namespace {

const std::string kDev = std::string(EASEL_GOLDEN_DIR) + "/pipeline_flux";
const std::string kSchnell = std::string(EASEL_GOLDEN_DIR) + "/pipeline_flux_schnell";

const FluxModel& load(const std::string& folder) {
    static std::map<std::string, std::unique_ptr<FluxModel>> models;
    auto& m = models[folder];
    if (!m) {
        auto r = load_flux_model(folder, LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        m = std::move(r).value();
    }
    return *m;
}
const FluxModel& dev() { return load(kDev); }
const FluxModel& schnell() { return load(kSchnell); }

const WeightSet& components() { return golden_file("model_flux_tiny.safetensors"); }
const WeightSet& cases() { return golden_file("pipeline_flux_cases.safetensors"); }

constexpr easel::testing::Tolerance kTol{.atol = 1e-4, .rtol = 1e-4};

std::vector<int32_t> ids_of(const Tensor& t) {
    const Tensor i = t.to(DType::I32).contiguous();
    return {i.data<int32_t>(), i.data<int32_t>() + i.numel()};
}

std::vector<std::array<float, 3>> id_rows(const Tensor& t) {  // [1, n, 3]
    const Tensor f = t.to(DType::F32).contiguous();
    std::vector<std::array<float, 3>> r(size_t(f.size(1)));
    for (size_t i = 0; i < r.size(); ++i)
        for (size_t a = 0; a < 3; ++a) r[i][a] = f.data<float>()[i * 3 + a];
    return r;
}

// A FluxPipeline / FluxImg2ImgPipeline case's settings (its .params JSON) as easel's: diffusers' Euler on the
// folder's scheduler config; CFG 1 (FluxPipeline 0.30 has no CFG pass; its guidance_scale is the model's guidance
// input).
GenerateParams pipeline_case_params(const nlohmann::json& j) {
    GenerateParams p;
    p.prompt = j["prompt"];
    p.steps = j["steps"];
    p.cfg_scale = 1.0;
    p.guidance = j["guidance"].get<double>();
    p.seed = j["seed"];
    p.width = j["width"];
    p.height = j["height"];
    p.max_sequence_length = j["max_sequence_length"];
    p.schedule_from = ScheduleFrom::Diffusers;
    p.diffusers_scheduler = DiffusersScheduler::Euler;
    return p;
}

}  // namespace

TEST(Flux, IsDetectedAndLoadedThroughTheRegistry) {
    for (const std::string& folder : {kDev, kSchnell}) {
        auto m = load_model(folder, LoadOptions{});
        ASSERT_TRUE(m) << m.error().to_string();
        EXPECT_EQ((*m)->family, "flux");
        EXPECT_EQ((*m)->info.family, ModelFamily::Flux);
        EXPECT_EQ((*m)->latent.channels, 16);
        EXPECT_FLOAT_EQ((*m)->latent.scaling_factor, 0.3611f);
        EXPECT_FLOAT_EQ((*m)->latent.shift_factor, 0.1159f);
        EXPECT_EQ((*m)->latent.side_multiple, 2);
        EXPECT_EQ((*m)->sampling->prediction(), Prediction::Flow);
        EXPECT_EQ((*m)->guidance, folder == kDev ? GuidanceMode::Distilled : GuidanceMode::None);
        std::printf("%s\n", (*m)->describe().c_str());
        auto spec = load_model_spec(folder, LoadOptions{});
        ASSERT_TRUE(spec) << spec.error().to_string();
        EXPECT_EQ(spec->family, "flux");
    }
    EXPECT_EQ(dev().default_cfg_scale(), 1.0);  // distilled: no CFG pass unless asked
    EXPECT_EQ(dev().default_guidance, 3.5);
}

TEST(Flux, TokenizersMatchThePipeline) {
    const FluxModel& m = dev();
    const WeightSet& g = components();
    for (const char* key : {"p0", "p1", "p2", "long", "case.a", "case.b", "case.c"}) {
        const std::string prompt = g.metadata.at(std::string("prompt.") + key);
        const std::string base = std::string("text.") + key;
        auto t1 = m.tokenizer.encode_padded(prompt, m.pad_id);
        ASSERT_TRUE(t1);
        EXPECT_EQ(*t1, ids_of(golden_tensor(g, base + ".ids_1"))) << key;
        EXPECT_EQ(m.tokenizer_2.encode(prompt, 512), ids_of(golden_tensor(g, base + ".ids_2"))) << key;
        EXPECT_EQ(m.tokenizer_2.encode(prompt, 256), ids_of(golden_tensor(g, base + ".ids_2_256"))) << key;
    }
}

TEST(Flux, TextEncodersAndConditionerMatch) {
    const FluxModel& m = dev();
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    for (const char* key : {"p0", "p1", "p2"}) {
        const std::string base = std::string("text.") + key;
        const auto o = m.text_encoder.encode(c, {ids_of(golden_tensor(g, base + ".ids_1"))}, {.pooled = true});
        expect_close(*o.pooled, golden_tensor(g, base + ".pooled"), kTol, base + ".pooled");
        expect_close(m.text_encoder_2.encode(c, {ids_of(golden_tensor(g, base + ".ids_2"))}), golden_tensor(g, base + ".t5"),
                     kTol, base + ".t5");
    }
    for (auto [len, name] : {std::pair{0, "encode.long"}, std::pair{256, "encode.long256"}}) {
        auto conds = m.conditioner().encode(c, {.prompt = g.metadata.at("prompt.long"), .max_sequence_length = len});
        ASSERT_TRUE(conds) << conds.error().to_string();
        expect_close(conds->cond.context, golden_tensor(g, std::string(name) + ".prompt_embeds"), kTol, std::string(name) + " context");
        expect_close(*conds->cond.pooled, golden_tensor(g, std::string(name) + ".pooled_prompt_embeds"), kTol,
                     std::string(name) + " pooled");
    }
}

TEST(Flux, RopeTablesAndPackingMatch) {
    const WeightSet& g = components();
    for (const char* tag : {"sq", "wide"}) {
        const std::string base = fmt::format("rope.{}", tag);
        std::vector<float> cos, sin;
        flux_rope_tables(id_rows(golden_tensor(g, base + ".ids")), dev().transformer_config.axes_dims_rope, 10000, cos, sin);
        const Tensor want_cos = golden_tensor(g, base + ".cos"), want_sin = golden_tensor(g, base + ".sin");
        const int64_t L = want_cos.size(0), half = want_cos.size(1) / 2;  // the golden repeats each value for its pair
        ASSERT_EQ(int64_t(cos.size()), L * half);
        Tensor got_cos = Tensor::empty({L, 2 * half}), got_sin = Tensor::empty({L, 2 * half});
        for (int64_t i = 0; i < L * half; ++i) {
            got_cos.data<float>()[2 * i] = got_cos.data<float>()[2 * i + 1] = cos[size_t(i)];
            got_sin.data<float>()[2 * i] = got_sin.data<float>()[2 * i + 1] = sin[size_t(i)];
        }
        expect_close(got_cos, want_cos, {.atol = 1e-7, .rtol = 0}, base + ".cos");
        expect_close(got_sin, want_sin, {.atol = 1e-7, .rtol = 0}, base + ".sin");
    }
    const Tensor latent = golden_tensor(g, "pack.latent");
    const Tensor packed = flux_pack(latent);
    expect_close(packed, golden_tensor(g, "pack.packed"), {.atol = 0, .rtol = 0}, "pack");
    expect_close(flux_unpack(packed, latent.size(2), latent.size(3)), golden_tensor(g, "pack.unpacked"), {.atol = 0, .rtol = 0},
                 "unpack");
    // Image ids: (0, row, column) of the packed grid.
    const auto ids = flux_image_ids(16, 24);
    EXPECT_EQ(ids.size(), 96u);
    EXPECT_EQ(ids[13][1], 1.0f);
    EXPECT_EQ(ids[13][2], 1.0f);
}

TEST(Flux, TransformerMatchesDiffusers) {
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    for (const char* tag : {"sq", "wide"}) {
        const std::string base = fmt::format("transformer.{}", tag);
        const Tensor x = golden_tensor(g, base + ".hidden_states");
        const Tensor ctx = golden_tensor(g, base + ".encoder_hidden_states"), pooled = golden_tensor(g, base + ".pooled_projections");
        const auto img = id_rows(golden_tensor(g, base + ".img_ids")), txt = id_rows(golden_tensor(g, base + ".txt_ids"));
        for (const char* call : {"t1000", "t283_7"}) {
            const std::string cb = fmt::format("{}.{}", base, call);
            const float t = golden_tensor(g, cb + ".timestep").data<float>()[0] * 1000.0f;
            const float guidance = golden_tensor(g, cb + ".guidance").data<float>()[0];
            expect_close(dev().transformer.forward(c, x, t, guidance, ctx, pooled, img, txt), golden_tensor(g, cb + ".out"), kTol,
                         cb + " (dev)");
            const std::string sb = fmt::format("transformer_schnell.{}.{}.out", tag, call);
            expect_close(schnell().transformer.forward(c, x, t, std::nullopt, ctx, pooled, img, txt), golden_tensor(g, sb), kTol, sb);
        }
    }
}

TEST(Flux, DynamicShiftSchedulerMatchesDiffusers) {
    const WeightSet& g = components();
    struct Case {
        const char* name;
        int64_t h, w;
        int steps;
        bool dynamic;
    };
    for (const Case& k : {Case{"dev_seq64_n4", 16, 16, 4, true}, Case{"dev_seq64_n28", 16, 16, 28, true},
                          Case{"dev_seq96_n4", 16, 24, 4, true}, Case{"dev_seq96_n28", 16, 24, 28, true},
                          Case{"dev_seq4096_n28", 128, 128, 28, true}, Case{"schnell_n4", 16, 16, 4, false}}) {
        const FlowModelSampling base(k.dynamic ? 3.0 : 1.0, true, k.dynamic ? std::optional<DynamicShift>(DynamicShift{}) : std::nullopt);
        const auto sized = base.at_size(k.h, k.w);
        const ModelSampling& ms = sized ? *sized : base;
        if (k.dynamic) {
            const float mu = golden_tensor(g, fmt::format("sched.{}.mu", k.name)).to(DType::F32).data<float>()[0];
            EXPECT_NEAR(std::log(*ms.flow_shift()), mu, 1e-6);
        }
        auto plan = flow_match_euler_plan(*ms.flow_shift(), 1000, k.steps, true);
        ASSERT_TRUE(plan) << plan.error().to_string();
        const std::string b = fmt::format("sched.{}", k.name);
        expect_close(Tensor::from_floats({int64_t(plan->sigmas.size())}, plan->sigmas), golden_tensor(g, b + ".sigmas"),
                     {.atol = 0, .rtol = 1e-6}, b + ".sigmas");
        expect_close(Tensor::from_floats({int64_t(plan->timesteps.size())}, plan->timesteps), golden_tensor(g, b + ".timesteps"),
                     {.atol = 0, .rtol = 1e-6}, b + ".timesteps");
        // k-diffusion mode's automatic schedule is the same list.
        auto kd = ms.sigmas(ScheduleKind::Default, k.steps);
        ASSERT_TRUE(kd);
        EXPECT_EQ(*kd, plan->sigmas) << b;
    }
}

TEST(Flux, VAEMatches) {
    const FluxModel& m = dev();
    const WeightSet& g = components();
    BufferPool pool;
    Ctx c{&pool};
    expect_close(to_autoencoder_units(m.latent, golden_tensor(g, "vae.latent")), golden_tensor(g, "vae.z"), {.atol = 1e-6, .rtol = 1e-6},
                 "latent to VAE units");
    expect_close(m.autoencoder().decode(c, golden_tensor(g, "vae.z"), 0), golden_tensor(g, "vae.decoded"), kTol, "vae.decoded");
    auto [mean, logvar] = m.autoencoder().encode_moments(c, golden_tensor(g, "vae.image"), 0);
    expect_close(mean, golden_tensor(g, "vae.mean"), kTol, "vae.mean");
    expect_close(logvar, golden_tensor(g, "vae.logvar"), kTol, "vae.logvar");
}

class FluxPipeline : public ::testing::TestWithParam<std::string> {};

// fp32 through 4-6 steps of 2 + 2 blocks: rtol 1e-4 plus atol 1e-3, as the other pipeline goldens; the image
// within mean |diff| 1 level, max 2.
TEST_P(FluxPipeline, MatchesDiffusers) {
    const std::string name = GetParam();
    const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
    GenerateParams p = pipeline_case_params(j);
    const FluxModel& m = j["model"] == "dev" ? dev() : schnell();
    auto r = generate(m, p);
    ASSERT_TRUE(r) << r.error().to_string();
    easel::testing::expect_matches_hwc_case((*r)[0], cases(), name, "flux " + name, {.atol = 1e-3, .rtol = 1e-4});
    if (j["model"] == "dev") {
        EXPECT_NE((*r)[0].infotext.find(fmt::format("Distilled CFG Scale: {}", j["guidance"].get<double>())), std::string::npos)
            << (*r)[0].infotext;
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, FluxPipeline, ::testing::Values("a", "b", "c"));

// img2img against diffusers 0.31.0's FluxImg2ImgPipeline (tools/reference/make_flux_img2img_goldens.py; 0.30.3 has
// none): the same folders, the init image encoded by sampling the VAE posterior (the generator's first draw), noised
// to the schedule's sigma at t_start = int(N - N * strength) (the second draw), then the remaining Euler steps.
// f: dev, 32x32, strength 0.6, 6 steps (4 run); g: schnell, 48x32, strength 0.75, 4 steps (3 run).
TEST(FluxImg2Img, MatchesDiffusers) {
    const WeightSet& g = golden_file("pipeline_flux_img2img_cases.safetensors");
    for (const char* name : {"f", "g"}) {
        const nlohmann::json j = nlohmann::json::parse(g.metadata.at(std::string(name) + ".params"));
        GenerateParams p = pipeline_case_params(j);
        p.init_image = easel::testing::image_from_golden(golden_tensor(g, std::string(name) + ".init"));
        p.denoising_strength = j["strength"];
        const FluxModel& m = j["model"] == "dev" ? dev() : schnell();
        auto r = generate(m, p);
        ASSERT_TRUE(r) << r.error().to_string();
        easel::testing::expect_matches_hwc_case((*r)[0], g, name, std::string("flux img2img ") + name, {.atol = 1e-3, .rtol = 1e-4});
    }
}

// k-diffusion mode: euler on the automatic schedule is FluxPipeline's loop, so case a comes out the same; the
// negative prompt changes nothing (no unconditional pass).
TEST(Flux, KDiffusionEulerEqualsFluxPipeline) {
    const nlohmann::json j = nlohmann::json::parse(cases().metadata.at("a.params"));
    GenerateParams p;
    p.prompt = j["prompt"];
    p.negative_prompt = "anything at all";  // unused at CFG 1
    p.steps = j["steps"];
    p.cfg_scale = 1.0;
    p.guidance = j["guidance"].get<double>();
    p.seed = j["seed"];
    p.width = j["width"];
    p.height = j["height"];
    p.sampler = SamplerKind::Euler;
    auto r = generate(dev(), p);
    ASSERT_TRUE(r) << r.error().to_string();
    auto cmp = easel::testing::compare((*r)[0].latent, golden_tensor(cases(), "a.latent"), {.atol = 1e-3, .rtol = 1e-4});
    std::printf("k-diffusion euler vs FluxPipeline case a: %s\n", cmp.summary().c_str());
    EXPECT_TRUE(cmp.passed()) << cmp.summary();
    // True CFG when asked for: the negative prompt is encoded and the image changes; a shift of our own too.
    p.cfg_scale = 3.0;
    auto cfg = generate(dev(), p);
    ASSERT_TRUE(cfg) << cfg.error().to_string();
    EXPECT_FALSE(easel::testing::compare((*cfg)[0].latent, (*r)[0].latent, {.atol = 1e-3, .rtol = 1e-4}).passed());
    EXPECT_NE((*cfg)[0].infotext.find("CFG scale: 3"), std::string::npos) << (*cfg)[0].infotext;
    p.cfg_scale = 1.0;
    p.shift = 3.0;
    auto shifted = generate(dev(), p);
    ASSERT_TRUE(shifted) << shifted.error().to_string();
    EXPECT_FALSE(easel::testing::compare((*shifted)[0].latent, (*r)[0].latent, {.atol = 1e-3, .rtol = 1e-4}).passed());
    EXPECT_NE((*shifted)[0].infotext.find("Shift: 3"), std::string::npos) << (*shifted)[0].infotext;
    LoadOptions no_t5;
    no_t5.skip_t5 = true;
    auto refused = load_model(kDev, no_t5);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().to_string().find("--no-t5"), std::string::npos);
}

// BFL's single-file layout with ComfyUI's separate files (tools/reference/make_dit_single_files.py): the same
// weights as the folders, so FluxPipeline's cases come out the same.
TEST(FluxSingleFile, DevAndSchnellWithSeparateFilesMatchFluxPipeline) {
    const std::string dir = std::string(EASEL_GOLDEN_DIR) + "/flux_single/";
    for (const char* name : {"a", "c"}) {
        const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(std::string(name) + ".params"));
        LoadOptions o;
        o.vocab_path = kDev + "/tokenizer";
        o.t5_tokenizer = kDev + "/tokenizer_2";
        o.component_files = {dir + "t5xxl.safetensors", dir + "ae.safetensors", dir + "clip_l.safetensors"};
        const std::string file = dir + (j["model"] == "dev" ? "tiny-flux-dev.safetensors" : "tiny-flux-schnell.safetensors");
        auto m = load_model(file, o);
        ASSERT_TRUE(m) << m.error().to_string();
        EXPECT_EQ((*m)->family, "flux");
        EXPECT_EQ((*m)->info.layout, CheckpointLayout::LdmSingleFile);
        GenerateParams p = pipeline_case_params(j);
        auto r = generate(**m, p);
        ASSERT_TRUE(r) << r.error().to_string();
        easel::testing::expect_matches_hwc_case((*r)[0], cases(), name, std::string("flux single ") + name, {.atol = 1e-3, .rtol = 1e-4});
    }
    LoadOptions missing;
    missing.t5_tokenizer = kDev + "/tokenizer_2";
    auto r = load_model(dir + "tiny-flux-dev.safetensors", missing);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().to_string().find("--vae"), std::string::npos) << r.error().to_string();
}

// Components that are not what they are passed as get a clear error before any work: an SD3 autoencoder (the same
// layers and names as FLUX.1's, told apart by the scaling and shift its diffusers config gives), a whole
// checkpoint and a whole pipeline folder given as --vae. A diffusers vae/ folder is a component too: FLUX.1's own loads and gives the image of
// BFL's ae.safetensors (the same weights).
TEST(FluxSingleFile, WrongComponentsAreRefusedAndAVaeFolderIsAccepted) {
    const std::string dir = std::string(EASEL_GOLDEN_DIR) + "/flux_single/";
    const std::string golden = std::string(EASEL_GOLDEN_DIR);
    auto options = [&](const std::string& vae) {
        LoadOptions o;
        o.vocab_path = kDev + "/tokenizer";
        o.t5_tokenizer = kDev + "/tokenizer_2";
        o.component_files = {dir + "t5xxl.safetensors", vae, dir + "clip_l.safetensors"};
        return o;
    };
    const std::string file = dir + "tiny-flux-dev.safetensors";

    auto sd3_vae = load_model(file, options(golden + "/pipeline_sd3/vae"));
    ASSERT_FALSE(sd3_vae);
    const std::string e1 = sd3_vae.error().to_string();
    std::printf("SD3's vae folder as --vae: %s\n", e1.c_str());
    EXPECT_NE(e1.find("another model's autoencoder"), std::string::npos) << e1;
    EXPECT_NE(e1.find("1.5305"), std::string::npos) << e1;

    auto whole = load_model(file, options(golden + "/sd3_single/tiny-sd3-incl-clips-t5.safetensors"));
    ASSERT_FALSE(whole);
    const std::string e2 = whole.error().to_string();
    std::printf("a whole SD3 checkpoint as --vae: %s\n", e2.c_str());
    EXPECT_NE(e2.find("whole checkpoint"), std::string::npos) << e2;

    auto pipeline = load_model(file, options(golden + "/pipeline_sd3"));
    ASSERT_FALSE(pipeline);
    const std::string e3 = pipeline.error().to_string();
    EXPECT_NE(e3.find("whole diffusers pipeline folder"), std::string::npos) << e3;

    const nlohmann::json j = nlohmann::json::parse(cases().metadata.at("a.params"));
    ASSERT_EQ(j["model"], "dev");
    auto m = load_model(file, options(golden + "/pipeline_flux/vae/"));
    ASSERT_TRUE(m) << m.error().to_string();
    auto r = generate(**m, pipeline_case_params(j));
    ASSERT_TRUE(r) << r.error().to_string();
    easel::testing::expect_matches_hwc_case((*r)[0], cases(), "a", "flux single, vae folder a", {.atol = 1e-3, .rtol = 1e-4});
}
