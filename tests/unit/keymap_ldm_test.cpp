// The LDM -> diffusers rename (src/io/keymap_ldm.*). The golden key lists in tests/data/keys were written by
// tools/reference/make_key_lists.py from diffusers v0.30.3 / transformers 4.40 models, and that script proves
// each LDM list against diffusers' own single-file loader (single_file_utils.convert_ldm_*). Here our map must
// turn each LDM list into exactly the diffusers list: same names, same shapes, nothing extra or missing.
// Tensors in those lists are shape-only placeholders (io/keymap_key_list.h): no data exists or is read.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/keymap_key_list.h"
#include "io/keymap_ldm.h"
#include "models/detect.h"

namespace easel {
namespace {

const std::string kKeys = std::string(EASEL_TEST_DATA_DIR) + "/keys/";
const char* kRegen = "regenerate with: source /work/refenv/env.sh && /usr/bin/python3 tools/reference/make_key_lists.py";

WeightSet load_list(const std::string& file) {
    auto r = read_key_list_file(kKeys + file);
    EXPECT_TRUE(r) << r.error().to_string() << "\n" << kRegen;
    return r ? std::move(r).value() : WeightSet();
}

nlohmann::json load_expect(const std::string& name) {
    std::ifstream in(kKeys + name + ".expect.json");
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << kKeys + name + ".expect.json is missing or broken; " << kRegen;
    return j;
}

// Compares two name->shape sets completely and describes every difference.
std::string diff_sets(const WeightSet& got, const WeightSet& want) {
    std::vector<std::string> missing, extra, shape;
    for (const std::string& n : want.names()) {
        const Tensor* g = got.find(n);
        if (!g) missing.push_back(n);
        else if (g->shape() != want.find(n)->shape())
            shape.push_back(fmt::format("{} {} vs {}", n, g->shape().to_string(), want.find(n)->shape().to_string()));
    }
    for (const std::string& n : got.names())
        if (!want.contains(n)) extra.push_back(n);
    if (missing.empty() && extra.empty() && shape.empty()) return {};
    return fmt::format("missing {}: {}\nextra {}: {}\nshape {}: {}", missing.size(), fmt::join(missing, ", "),
                       extra.size(), fmt::join(extra, ", "), shape.size(), fmt::join(shape, ", "));
}

class KeymapGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(KeymapGolden, LdmListBecomesDiffusersList) {
    const std::string name = GetParam();
    WeightSet ldm = load_list(name + ".ldm.json.gz");
    WeightSet want = load_list(name + ".diffusers.json.gz");
    const nlohmann::json expect = load_expect(name);
    ASSERT_GT(ldm.size(), 0u);
    const size_t ldm_count = ldm.size();

    KeymapReport report;
    auto got = ldm_to_diffusers(std::move(ldm), {}, &report);
    ASSERT_TRUE(got) << got.error().to_string();
    const std::string d = diff_sets(*got, want);
    EXPECT_TRUE(d.empty()) << d;
    EXPECT_TRUE(report.unknown.empty()) << fmt::format("{}", fmt::join(report.unknown, ", "));
    // The quietly dropped names are exactly the known extras the script put in (EMA bookkeeping, schedule
    // buffers, position_ids, OpenCLIP's last layer and contrastive head).
    std::set<std::string> ignored(report.ignored.begin(), report.ignored.end());
    std::set<std::string> extras;
    for (const auto& e : expect["ldm_extras"]) extras.insert(e.get<std::string>());
    EXPECT_EQ(ignored, extras);
    std::printf("[ %-12s ] %zu LDM names -> %zu diffusers names (want %zu), %zu ignored, %zu unknown\n", name.c_str(),
                ldm_count, got->size(), want.size(), report.ignored.size(), report.unknown.size());
}

TEST_P(KeymapGolden, LayoutReadOffNamesMatchesConfig) {
    const std::string name = GetParam();
    WeightSet ldm = load_list(name + ".ldm.json.gz");
    const nlohmann::json cfg = load_expect(name)["unet_config"];
    auto layout = infer_ldm_unet_layout(ldm);
    ASSERT_TRUE(layout) << layout.error().to_string();
    EXPECT_EQ(layout->num_levels, int(cfg["block_out_channels"].size()));
    EXPECT_EQ(layout->layers_per_block, cfg.value("layers_per_block", 2));
    auto vae_levels = infer_ldm_vae_levels(ldm);
    ASSERT_TRUE(vae_levels) << vae_levels.error().to_string();
    EXPECT_EQ(*vae_levels, int(load_expect(name)["vae_config"]["block_out_channels"].size()));
}

TEST_P(KeymapGolden, LayoutFromConfigGivesTheSameResult) {
    const std::string name = GetParam();
    const nlohmann::json expect = load_expect(name);
    auto cfg = UNetConfig::from_diffusers_json(expect["unet_config"].dump());
    ASSERT_TRUE(cfg) << cfg.error().to_string();
    LdmKeymapOptions opt;
    opt.unet = ldm_layout_of(*cfg);
    opt.vae_levels = int(expect["vae_config"]["block_out_channels"].size());
    auto got = ldm_to_diffusers(load_list(name + ".ldm.json.gz"), opt);
    ASSERT_TRUE(got) << got.error().to_string();
    const std::string d = diff_sets(*got, load_list(name + ".diffusers.json.gz"));
    EXPECT_TRUE(d.empty()) << d;
}

INSTANTIATE_TEST_SUITE_P(Keys, KeymapGolden,
                         ::testing::Values("sd15", "sd21", "sd15_inpaint", "sd2_inpaint", "tiny_a", "tiny_b",
                                           "sdxl_base", "sdxl_refiner", "sdxl_inpaint"));

// Spot checks of the index arithmetic on SD 1.5's layout (4 levels, 2 resnets each); the expected names are
// the pairs in diffusers' scripts/convert_diffusers_to_original_stable_diffusion.py table.
TEST(KeymapLdm, UNetIndexArithmeticSD15) {
    const LdmUNetLayout sd{4, 2};
    auto m = [&](const char* n) { return ldm_unet_name_to_diffusers(n, sd).value_or("<none>"); };
    EXPECT_EQ(m("input_blocks.0.0.weight"), "conv_in.weight");
    EXPECT_EQ(m("input_blocks.1.0.in_layers.2.weight"), "down_blocks.0.resnets.0.conv1.weight");
    EXPECT_EQ(m("input_blocks.2.1.proj_in.weight"), "down_blocks.0.attentions.1.proj_in.weight");
    EXPECT_EQ(m("input_blocks.3.0.op.weight"), "down_blocks.0.downsamplers.0.conv.weight");
    EXPECT_EQ(m("input_blocks.4.0.skip_connection.bias"), "down_blocks.1.resnets.0.conv_shortcut.bias");
    EXPECT_EQ(m("input_blocks.9.0.op.bias"), "down_blocks.2.downsamplers.0.conv.bias");
    EXPECT_EQ(m("input_blocks.11.0.emb_layers.1.weight"), "down_blocks.3.resnets.1.time_emb_proj.weight");
    EXPECT_EQ(m("middle_block.0.out_layers.3.weight"), "mid_block.resnets.0.conv2.weight");
    EXPECT_EQ(m("middle_block.1.transformer_blocks.0.attn2.to_k.weight"),
              "mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight");
    EXPECT_EQ(m("middle_block.2.in_layers.0.bias"), "mid_block.resnets.1.norm1.bias");
    EXPECT_EQ(m("output_blocks.2.1.conv.weight"), "up_blocks.0.upsamplers.0.conv.weight");
    EXPECT_EQ(m("output_blocks.5.2.conv.bias"), "up_blocks.1.upsamplers.0.conv.bias");
    EXPECT_EQ(m("output_blocks.5.1.norm.weight"), "up_blocks.1.attentions.2.norm.weight");
    EXPECT_EQ(m("output_blocks.11.1.proj_out.weight"), "up_blocks.3.attentions.2.proj_out.weight");
    EXPECT_EQ(m("time_embed.2.bias"), "time_embedding.linear_2.bias");
    EXPECT_EQ(m("out.2.weight"), "conv_out.weight");
    // Not in this layout, or malformed: no rule matches.
    for (const char* bad : {"input_blocks.12.0.in_layers.0.weight", "input_blocks.12.0.op.weight", "input_blocks.8.0.op.weight",
                            "output_blocks.11.2.conv.weight", "output_blocks.12.0.in_layers.0.weight",
                            "input_blocks.1.0.in_layers.1.weight", "input_blocks.-1.0.in_layers.0.weight",
                            "input_blocks.99999999.0.in_layers.0.weight", "middle_block.3.in_layers.0.weight",
                            "input_blocks.1.0.in_layers.2.weight.extra", "out.1.weight", "", ".", "input_blocks..0"})
        EXPECT_EQ(m(bad), "<none>") << bad;
}

TEST(KeymapLdm, VAEDecoderLevelsAreReversed) {
    auto m = [](const char* n) { return ldm_vae_name_to_diffusers(n, 4).value_or("<none>"); };
    EXPECT_EQ(m("decoder.up.0.block.2.conv1.weight"), "decoder.up_blocks.3.resnets.2.conv1.weight");
    EXPECT_EQ(m("decoder.up.3.upsample.conv.bias"), "decoder.up_blocks.0.upsamplers.0.conv.bias");
    EXPECT_EQ(m("encoder.down.1.block.0.nin_shortcut.weight"), "encoder.down_blocks.1.resnets.0.conv_shortcut.weight");
    EXPECT_EQ(m("encoder.down.2.downsample.conv.weight"), "encoder.down_blocks.2.downsamplers.0.conv.weight");
    EXPECT_EQ(m("encoder.mid.attn_1.proj_out.weight"), "encoder.mid_block.attentions.0.to_out.0.weight");
    EXPECT_EQ(m("decoder.mid.block_2.norm2.bias"), "decoder.mid_block.resnets.1.norm2.bias");
    EXPECT_EQ(m("encoder.norm_out.weight"), "encoder.conv_norm_out.weight");
    for (const char* bad : {"decoder.up.0.upsample.conv.weight", "encoder.down.3.downsample.conv.weight",
                            "encoder.down.4.block.0.conv1.weight", "encoder.mid.attn_2.q.weight",
                            "encoder.mid.block_3.conv1.weight", "decoder.up.1.block.0.conv3.weight", "vae"})
        EXPECT_EQ(m(bad), "<none>") << bad;
}

// A minimal SD-1-like LDM set with real data, for checks on values and aliasing.
WeightSet tiny_ldm_with_data() {
    WeightSet w;
    auto add = [&](const std::string& n, Tensor t) { EXPECT_TRUE(w.add(n, std::move(t))); };
    std::vector<float> v(12);
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
    add("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", Tensor::from_floats({6, 2}, v));
    add("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_bias",
        Tensor::from_floats({6}, {10, 11, 12, 13, 14, 15}));
    add("cond_stage_model.model.transformer.resblocks.1.ln_1.weight", Tensor::from_floats({2}, {1, 1}));  // last: dropped
    add("first_stage_model.encoder.down.0.block.0.conv1.weight", Tensor::zeros({2, 2, 3, 3}));
    add("first_stage_model.encoder.mid.attn_1.q.weight", Tensor::from_floats({2, 2, 1, 1}, {1, 2, 3, 4}));
    add("first_stage_model.encoder.mid.attn_1.q.bias", Tensor::from_floats({2}, {5, 6}));
    return w;
}

TEST(KeymapLdm, OpenCLIPInProjIsSplitIntoViews) {
    WeightSet ldm = tiny_ldm_with_data();
    const Tensor w_in = *ldm.find("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight");
    const Tensor b_in = *ldm.find("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_bias");
    KeymapReport report;
    auto got = ldm_to_diffusers(std::move(ldm), {}, &report);
    ASSERT_TRUE(got) << got.error().to_string();
    const char* parts[3] = {"q_proj", "k_proj", "v_proj"};
    for (int k = 0; k < 3; ++k) {
        const std::string head = fmt::format("text_encoder.text_model.encoder.layers.0.self_attn.{}.", parts[k]);
        const Tensor* w = got->find(head + "weight");
        const Tensor* b = got->find(head + "bias");
        ASSERT_TRUE(w && b) << head;
        EXPECT_EQ(w->shape(), Shape({2, 2}));
        // Rows 2k..2k+2 of the fused matrix, as a view into the same memory (zero copy).
        EXPECT_EQ(static_cast<const void*>(w->raw()), static_cast<const void*>(static_cast<const float*>(w_in.raw()) + 4 * k));
        EXPECT_EQ(static_cast<const void*>(b->raw()), static_cast<const void*>(static_cast<const float*>(b_in.raw()) + 2 * k));
        EXPECT_EQ(w->to_floats(), std::vector<float>({float(4 * k), float(4 * k + 1), float(4 * k + 2), float(4 * k + 3)}));
        EXPECT_EQ(b->to_floats(), std::vector<float>({float(10 + 2 * k), float(11 + 2 * k)}));
    }
    EXPECT_FALSE(got->contains("text_encoder.text_model.encoder.layers.1.layer_norm1.weight"));
    EXPECT_EQ(report.ignored, std::vector<std::string>{"cond_stage_model.model.transformer.resblocks.1.ln_1.weight"});
}

TEST(KeymapLdm, VAEAttentionConvBecomesLinearView) {
    WeightSet ldm = tiny_ldm_with_data();
    const Tensor q_in = *ldm.find("first_stage_model.encoder.mid.attn_1.q.weight");
    auto got = ldm_to_diffusers(std::move(ldm));
    ASSERT_TRUE(got) << got.error().to_string();
    const Tensor* q = got->find("vae.encoder.mid_block.attentions.0.to_q.weight");
    ASSERT_TRUE(q);
    EXPECT_EQ(q->shape(), Shape({2, 2}));
    EXPECT_EQ(q->raw(), q_in.raw());
    EXPECT_EQ(q->to_floats(), std::vector<float>({1, 2, 3, 4}));
    EXPECT_EQ(got->find("vae.encoder.mid_block.attentions.0.to_q.bias")->shape(), Shape({2}));
}

TEST(KeymapLdm, EveryUnknownNameIsListed) {
    WeightSet ldm = tiny_ldm_with_data();
    for (const char* n : {"model.diffusion.input_blocks.1.0.weight", "lora_unet_down.alpha", "state_dict"})
        ASSERT_TRUE(ldm.add(n, shape_only_tensor({1})));
    WeightSet copy = ldm;
    KeymapReport report;
    auto r = ldm_to_diffusers(std::move(ldm), {}, &report);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::BadFile);
    std::printf("message: %s\n", r.error().to_string().c_str());
    EXPECT_NE(r.error().message().find("3 tensor name(s)"), std::string::npos);
    for (const char* n : {"model.diffusion.input_blocks.1.0.weight", "lora_unet_down.alpha", "state_dict"})
        EXPECT_NE(r.error().message().find(n), std::string::npos) << n;
    EXPECT_EQ(report.unknown.size(), 3u);

    LdmKeymapOptions lenient;
    lenient.fail_on_unknown = false;
    KeymapReport report2;
    auto ok = ldm_to_diffusers(std::move(copy), lenient, &report2);
    ASSERT_TRUE(ok) << ok.error().to_string();
    EXPECT_EQ(report2.unknown.size(), 3u);
}

TEST(KeymapLdm, BadShapesAndMixedEncodersAreErrors) {
    {
        WeightSet w;
        ASSERT_TRUE(w.add("cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight", shape_only_tensor({5, 2})));
        ASSERT_TRUE(w.add("cond_stage_model.model.transformer.resblocks.1.attn.in_proj_bias", shape_only_tensor({3, 3})));
        ASSERT_TRUE(w.add("cond_stage_model.model.transformer.resblocks.2.ln_1.weight", shape_only_tensor({2})));
        auto r = ldm_to_diffusers(std::move(w));
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().message().find("2 tensor(s) have shapes"), std::string::npos) << r.error().to_string();
    }
    {
        WeightSet w;
        ASSERT_TRUE(w.add("first_stage_model.encoder.down.0.block.0.conv1.weight", shape_only_tensor({2, 2, 3, 3})));
        ASSERT_TRUE(w.add("first_stage_model.encoder.mid.attn_1.k.weight", shape_only_tensor({2, 2, 3, 3})));
        auto r = ldm_to_diffusers(std::move(w));
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().message().find("mid.attn_1.k.weight"), std::string::npos) << r.error().to_string();
    }
    {
        WeightSet w;
        ASSERT_TRUE(w.add("cond_stage_model.transformer.text_model.final_layer_norm.weight", shape_only_tensor({8})));
        ASSERT_TRUE(w.add("cond_stage_model.model.ln_final.weight", shape_only_tensor({8})));
        auto r = ldm_to_diffusers(std::move(w));
        ASSERT_FALSE(r);
        EXPECT_NE(r.error().message().find("both"), std::string::npos);
    }
}

TEST(KeymapLdm, InconsistentUNetBlockCountsAreReported) {
    WeightSet w;
    // First downsampler at input_blocks.3 (2 per level) but 5 input blocks and 6 output blocks.
    for (const char* n : {"model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.input_blocks.3.0.op.weight",
                          "model.diffusion_model.input_blocks.4.0.in_layers.0.weight",
                          "model.diffusion_model.output_blocks.5.0.in_layers.0.weight"})
        ASSERT_TRUE(w.add(n, shape_only_tensor({4})));
    auto l = infer_ldm_unet_layout(w);
    ASSERT_FALSE(l);
    EXPECT_EQ(l.error().code(), ErrorCode::BadFile);
    std::printf("message: %s\n", l.error().to_string().c_str());
    auto r = ldm_to_diffusers(std::move(w));
    EXPECT_FALSE(r);
}

TEST(KeymapLdm, OtherFamiliesAreNamed) {
    for (const char* n : {"model.diffusion_model.joint_blocks.0.x_block.attn.qkv.weight",
                          "model.diffusion_model.double_blocks.0.img_attn.norm.key_norm.scale"}) {
        WeightSet w;
        ASSERT_TRUE(w.add("model.diffusion_model.input_blocks.0.0.weight", shape_only_tensor({320, 4, 3, 3})));
        ASSERT_TRUE(w.add(n, shape_only_tensor({4})));
        auto r = ldm_to_diffusers(std::move(w));
        ASSERT_FALSE(r) << n;
        EXPECT_EQ(r.error().code(), ErrorCode::Unsupported) << r.error().to_string();
    }
}

TEST(KeymapLdm, KnownExtras) {
    for (const char* n : {"model_ema.decay", "model_ema.diffusion_modelinput_blocks00weight", "alphas_cumprod",
                          "posterior_mean_coef2", "cond_stage_model.transformer.text_model.embeddings.position_ids",
                          "first_stage_model.loss.discriminator.main.0.weight"})
        EXPECT_TRUE(is_known_ldm_extra(n)) << n;
    for (const char* n : {"model.diffusion_model.out.0.weight", "alphas", "model_emadecay", ""})
        EXPECT_FALSE(is_known_ldm_extra(n)) << n;
}

TEST(KeyList, ShapeOnlyTensorsCostNothingAndRoundTrip) {
    Tensor t = shape_only_tensor({49408, 1024}, DType::F16);
    EXPECT_EQ(t.shape(), Shape({49408, 1024}));
    EXPECT_EQ(t.dtype(), DType::F16);
    EXPECT_EQ(t.stride(0), 0);
    WeightSet w;
    ASSERT_TRUE(w.add("a.weight", t));
    ASSERT_TRUE(w.add("b", shape_only_tensor({})));
    auto back = parse_key_list(write_key_list(w, "test"), "roundtrip");
    ASSERT_TRUE(back) << back.error().to_string();
    EXPECT_EQ(back->names(), w.names());
    EXPECT_EQ(back->find("a.weight")->shape(), t.shape());
    EXPECT_EQ(back->find("a.weight")->dtype(), DType::F16);
    for (const char* bad : {"", "[]", "{\"format\":\"x\"}", "{\"format\":\"easel-key-list-1\",\"tensors\":[[1,[2]]]}",
                            "{\"format\":\"easel-key-list-1\",\"tensors\":[[\"a\",[-1]]]}",
                            "{\"format\":\"easel-key-list-1\",\"tensors\":[[\"a\",[1]],[\"a\",[1]]]}"}) {
        auto r = parse_key_list(bad, "bad");
        EXPECT_FALSE(r) << bad;
    }
    EXPECT_FALSE(read_key_list_file(kKeys + "does-not-exist.json.gz"));
}

}  // namespace
}  // namespace easel
