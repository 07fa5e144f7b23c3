// CLIP text encoder, UNet and VAE against diffusers/transformers on tiny random-weight models.
// Goldens made by tools/reference/make_model_goldens.py (diffusers v0.30.3, transformers 4.40, torch 1.13.1,
// fp32 compute; sd1_tiny stores fp16 weights, sd2_tiny fp32). Regenerate:
//   source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_model_goldens.py
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "common/compare.h"
#include "io/safetensors.h"
#include "models/clip/text_encoder.h"
#include "models/unet/unet.h"
#include "models/vae/vae.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::CompareReport;

namespace {

struct Golden {
    WeightSet w;
    const Tensor& t(const std::string& name) const {
        const Tensor* p = w.find(name);
        EASEL_ASSERT(p != nullptr, "golden tensor missing: " + name);
        return *p;
    }
};

Golden open_golden(const std::string& variant) {
    const std::string path = std::string(EASEL_GOLDEN_DIR) + "/model_" + variant + ".safetensors";
    auto r = read_safetensors(path);
    EASEL_ASSERT(r.has_value(), "cannot read " + path + " (regenerate with tools/reference/make_model_goldens.py): " +
                                    (r ? "" : r.error().to_string()));
    return Golden{std::move(r).value()};
}

void report(const std::string& what, const CompareReport& r) {
    std::printf("%-28s %s\n", what.c_str(), r.summary().c_str());
}

class ModelGolden : public ::testing::TestWithParam<std::string> {};

}  // namespace

// Tolerances: fp32 compute with a different summation order than torch (blocked GEMM, flash attention).
// Outputs are O(1). Measured on this Zen 4 (avx512bf16 dispatch, 2026-11-26): max_abs 3.1e-6 (CLIP),
// 1.4e-6 (UNet), 7.5e-7 (VAE), i.e. at most ~16% of atol 2e-5 + rtol 1e-4; any wrong weight or op is O(1e-2).
TEST_P(ModelGolden, TextEncoderMatchesTransformers) {
    Golden g = open_golden(GetParam());
    auto cfg = CLIPTextConfig::from_diffusers_json(g.w.metadata.at("text_encoder_config"));
    ASSERT_TRUE(cfg) << cfg.error().to_string();
    ParamLoader loader(g.w, Precision::F32);
    CLIPTextEncoder te = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder"), *cfg);
    auto st = loader.finish("text_encoder.");
    ASSERT_TRUE(st) << st.error().to_string();

    const Tensor& ids_t = g.t("io.clip.input_ids");
    std::vector<std::vector<int32_t>> ids(size_t(ids_t.size(0)));
    for (int64_t n = 0; n < ids_t.size(0); ++n)
        for (int64_t i = 0; i < ids_t.size(1); ++i) ids[size_t(n)].push_back(int32_t(ids_t.item({n, i})));
    Ctx c;
    CompareReport r1 = compare(te.encode(c, ids, 1), g.t("io.clip.last_hidden_state"), {.atol = 2e-5, .rtol = 1e-4});
    report(GetParam() + " clip last", r1);
    EXPECT_TRUE(r1.passed()) << r1.summary();
    CompareReport r2 = compare(te.encode(c, ids, 2), g.t("io.clip.skip2"), {.atol = 2e-5, .rtol = 1e-4});
    report(GetParam() + " clip skip2", r2);
    EXPECT_TRUE(r2.passed()) << r2.summary();
}

TEST_P(ModelGolden, UNetMatchesDiffusers) {
    Golden g = open_golden(GetParam());
    auto cfg = UNetConfig::from_diffusers_json(g.w.metadata.at("unet_config"));
    ASSERT_TRUE(cfg) << cfg.error().to_string();
    ParamLoader loader(g.w, Precision::F32);
    UNet unet = UNet::declare(ParamScope(loader, "unet"), *cfg);
    auto st = loader.finish("unet.");
    ASSERT_TRUE(st) << st.error().to_string();
    Ctx c;
    for (auto [t, key] : {std::pair{999.0f, "t999"}, std::pair{421.37f, "t421_37"}}) {
        Tensor out = unet.forward(c, g.t("io.unet.x"), t, g.t("io.unet.context"));
        CompareReport r = compare(out, g.t(std::string("io.unet.out_") + key), {.atol = 2e-5, .rtol = 1e-4});
        report(GetParam() + " unet " + key, r);
        EXPECT_TRUE(r.passed()) << r.summary();
    }
}

TEST_P(ModelGolden, VAEMatchesDiffusers) {
    Golden g = open_golden(GetParam());
    auto cfg = VAEConfig::from_diffusers_json(g.w.metadata.at("vae_config"));
    ASSERT_TRUE(cfg) << cfg.error().to_string();
    ParamLoader loader(g.w, Precision::F32);
    VAE vae = VAE::declare(ParamScope(loader, "vae"), *cfg);
    auto st = loader.finish("vae.");
    ASSERT_TRUE(st) << st.error().to_string();
    Ctx c;
    CompareReport rd = compare(vae.decode(c, g.t("io.vae.z")), g.t("io.vae.decoded"), {.atol = 2e-5, .rtol = 1e-4});
    report(GetParam() + " vae decode", rd);
    EXPECT_TRUE(rd.passed()) << rd.summary();
    auto [mean, logvar] = vae.encode_moments(c, g.t("io.vae.image"));
    CompareReport rm = compare(mean, g.t("io.vae.mean"), {.atol = 2e-5, .rtol = 1e-4});
    report(GetParam() + " vae mean", rm);
    EXPECT_TRUE(rm.passed()) << rm.summary();
    CompareReport rl = compare(logvar, g.t("io.vae.logvar"), {.atol = 2e-5, .rtol = 1e-4});
    report(GetParam() + " vae logvar", rl);
    EXPECT_TRUE(rl.passed()) << rl.summary();
}

TEST(ModelGoldenLoading, WrongWeightsListEveryProblem) {
    Golden g = open_golden("sd1_tiny");
    auto cfg = UNetConfig::from_diffusers_json(g.w.metadata.at("unet_config"));
    ASSERT_TRUE(cfg);
    UNetConfig bigger = *cfg;
    bigger.block_out_channels = {32, 64, 64};
    ParamLoader loader(g.w, Precision::F32);
    (void)UNet::declare(ParamScope(loader, "unet"), bigger);
    auto st = loader.finish("unet.");
    ASSERT_FALSE(st);
    const std::string msg = st.error().to_string();
    EXPECT_NE(msg.find("wrong shape"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unet.conv_in.weight is [16, 4, 3, 3], expected [32, 4, 3, 3]"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(Tiny, ModelGolden, ::testing::Values("sd1_tiny", "sd2_tiny"));
