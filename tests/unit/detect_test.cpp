// detect_model: family, layout, dtype and configs from names and shapes, for each golden key list in both
// layouts (tests/data/keys, written by tools/reference/make_key_lists.py), plus the configs that travel with
// a model and the families we recognise but refuse.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/keymap_key_list.h"
#include "models/detect.h"

namespace easel {
namespace {

const std::string kKeys = std::string(EASEL_TEST_DATA_DIR) + "/keys/";

nlohmann::json load_expect(const std::string& name) {
    std::ifstream in(kKeys + name + ".expect.json");
    std::stringstream ss;
    ss << in.rdbuf();
    nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << "regenerate tests/data/keys with tools/reference/make_key_lists.py";
    return j;
}

WeightSet load_list(const std::string& file) {
    auto r = read_key_list_file(kKeys + file);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? std::move(r).value() : WeightSet();
}

// The published configs travel with the diffusers layout; the tiny models need theirs (their widths are not
// multiples of SD 2's head width, so the family default cannot apply).
ModelConfigSources configs_of(const nlohmann::json& expect) {
    ModelConfigSources s;
    s.unet_json = expect["unet_config"].dump();
    s.vae_json = expect["vae_config"].dump();
    s.text_encoder_json = expect["text_encoder_config"].dump();
    return s;
}

void expect_matches_published(const ModelInfo& info, const nlohmann::json& expect, bool heads_too) {
    auto u = UNetConfig::from_diffusers_json(expect["unet_config"].dump());
    auto v = VAEConfig::from_diffusers_json(expect["vae_config"].dump());
    auto t = CLIPTextConfig::from_diffusers_json(expect["text_encoder_config"].dump());
    ASSERT_TRUE(u && v && t);
    EXPECT_EQ(model_kind_name(info), expect["family"].get<std::string>());
    EXPECT_EQ(dtype_name(info.weight_dtype), expect["weight_dtype"].get<std::string>());
    EXPECT_TRUE(info.has_unet && info.has_vae && info.has_text_encoder);
    EXPECT_EQ(info.unet.block_out_channels, u->block_out_channels);
    EXPECT_EQ(info.unet.in_channels, u->in_channels);
    EXPECT_EQ(info.unet.cross_attention_dim, u->cross_attention_dim);
    EXPECT_EQ(info.unet.use_linear_projection, u->use_linear_projection);
    EXPECT_EQ(info.unet.down_attention, u->down_attention);
    EXPECT_EQ(info.unet.upcast_attention, u->upcast_attention);
    if (heads_too) {
        EXPECT_EQ(info.unet.num_heads, u->num_heads);
        EXPECT_EQ(info.text.num_heads, t->num_heads);
        EXPECT_EQ(info.text.hidden_act, t->hidden_act);
    }
    EXPECT_EQ(info.vae.block_out_channels, v->block_out_channels);
    EXPECT_EQ(info.vae.latent_channels, v->latent_channels);
    EXPECT_EQ(info.text.hidden_size, t->hidden_size);
    EXPECT_EQ(info.text.num_layers, t->num_layers);  // layers that run: SD 2 stores 24 (LDM) and runs 23
}

class DetectModel : public ::testing::TestWithParam<std::string> {};

TEST_P(DetectModel, LdmLayoutFromNamesAlone) {
    const std::string name = GetParam();
    const nlohmann::json expect = load_expect(name);
    const bool tiny = name.rfind("tiny", 0) == 0;
    auto info = detect_model(load_list(name + ".ldm.json.gz"), tiny ? configs_of(expect) : ModelConfigSources{});
    ASSERT_TRUE(info) << info.error().to_string();
    EXPECT_EQ(info->layout, CheckpointLayout::LdmSingleFile);
    // Family defaults must reproduce the published head counts: 8 everywhere (SD 1), head dim 64 (SD 2).
    expect_matches_published(*info, expect, /*heads_too=*/true);
    std::printf("[ %-12s ] %s, %s, %s\n  unet: %s\n  notes: %s\n", name.c_str(),
                model_kind_name(*info).c_str(), std::string(layout_name(info->layout)).c_str(),
                std::string(dtype_name(info->weight_dtype)).c_str(), info->unet.summary().c_str(),
                fmt::format("{}", fmt::join(info->notes, " | ")).c_str());
}

TEST_P(DetectModel, DiffusersLayoutWithItsConfigs) {
    const std::string name = GetParam();
    const nlohmann::json expect = load_expect(name);
    auto info = detect_model(load_list(name + ".diffusers.json.gz"), configs_of(expect));
    ASSERT_TRUE(info) << info.error().to_string();
    EXPECT_EQ(info->layout, CheckpointLayout::Diffusers);
    expect_matches_published(*info, expect, /*heads_too=*/true);
}

INSTANTIATE_TEST_SUITE_P(Keys, DetectModel,
                         ::testing::Values("sd15", "sd21", "sd15_inpaint", "sd2_inpaint", "tiny_a", "tiny_b"));

// SDXL's real key lists (tools/reference/make_sdxl_key_lists.py): the base and its 9-channel inpainting UNet
// (CLIP-L + OpenCLIP bigG) and the refiner (bigG alone, 5 ids), as Stability's single files and as diffusers
// folders, detected from names and shapes alone.
class DetectSDXL : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(DetectSDXL, FromNamesAlone) {
    const auto [name, layout] = GetParam();
    const nlohmann::json expect = load_expect(name);
    auto info = detect_model(load_list(name + "." + layout + ".json.gz"));
    ASSERT_TRUE(info) << info.error().to_string();
    std::printf("[ %-13s %-9s ] %s, %s\n  unet: %s\n  text 2: %s\n", name.c_str(), layout.c_str(),
                model_kind_name(*info).c_str(), std::string(dtype_name(info->weight_dtype)).c_str(),
                info->unet.summary().c_str(), info->text_2.summary().c_str());
    EXPECT_EQ(info->layout, layout == "ldm" ? CheckpointLayout::LdmSingleFile : CheckpointLayout::Diffusers);
    EXPECT_EQ(model_kind_name(*info), expect["family"].get<std::string>());
    EXPECT_EQ(dtype_name(info->weight_dtype), expect["weight_dtype"].get<std::string>());
    auto u = UNetConfig::from_diffusers_json(expect["unet_config"].dump());
    auto v = VAEConfig::from_diffusers_json(expect["vae_config"].dump());
    auto t2 = CLIPTextConfig::from_diffusers_json(expect["text_encoder_2_config"].dump());
    ASSERT_TRUE(u && v && t2) << (u ? "" : u.error().to_string()) << (t2 ? "" : t2.error().to_string());
    EXPECT_EQ(info->unet.block_out_channels, u->block_out_channels);
    EXPECT_EQ(info->unet.in_channels, u->in_channels);
    EXPECT_EQ(info->unet.cross_attention_dim, u->cross_attention_dim);
    EXPECT_EQ(info->unet.down_attention, u->down_attention);
    EXPECT_EQ(info->unet.up_attention, u->up_attention);
    EXPECT_EQ(info->unet.num_heads, u->num_heads);  // head width 64, the family default
    EXPECT_EQ(info->unet.addition_embed_input_dim, u->addition_embed_input_dim);
    EXPECT_EQ(info->unet.addition_time_embed_dim, u->addition_time_embed_dim);
    std::vector<int> depth;  // where there are transformers
    std::vector<int> want_depth;
    for (int l = 0; l < info->unet.num_levels(); ++l)
        if (info->unet.down_attention[size_t(l)]) {
            depth.push_back(info->unet.transformer_depth[size_t(l)]);
            want_depth.push_back(u->transformer_depth[size_t(l)]);
        }
    EXPECT_EQ(depth, want_depth);
    // The mid block's depth (the refiner's last level has no transformers of its own).
    EXPECT_EQ(info->unet.transformer_depth.back(), u->transformer_depth.back());
    EXPECT_EQ(info->vae.block_out_channels, v->block_out_channels);
    EXPECT_FLOAT_EQ(info->vae.scaling_factor, 0.13025f);
    ASSERT_TRUE(info->has_text_encoder_2);
    EXPECT_EQ(info->text_2.hidden_size, t2->hidden_size);
    EXPECT_EQ(info->text_2.num_layers, t2->num_layers);  // all 32: the pooled output needs the last
    EXPECT_EQ(info->text_2.num_heads, t2->num_heads);
    EXPECT_EQ(info->text_2.hidden_act, CLIPActivation::Gelu);
    EXPECT_TRUE(info->text_2.has_projection);
    EXPECT_EQ(info->text_2.projection_dim, t2->projection_dim);
    if (expect["text_encoder_config"].is_null()) {
        EXPECT_FALSE(info->has_text_encoder);  // the refiner
    } else {
        auto t = CLIPTextConfig::from_diffusers_json(expect["text_encoder_config"].dump());
        ASSERT_TRUE(t);
        ASSERT_TRUE(info->has_text_encoder);
        EXPECT_EQ(info->text.hidden_size, t->hidden_size);
        EXPECT_EQ(info->text.num_layers, t->num_layers);
        EXPECT_EQ(info->text.hidden_act, CLIPActivation::QuickGelu);
    }
}

INSTANTIATE_TEST_SUITE_P(Keys, DetectSDXL,
                         ::testing::Combine(::testing::Values("sdxl_base", "sdxl_refiner", "sdxl_inpaint"),
                                            ::testing::Values("ldm", "diffusers")));

TEST(DetectModel, DiffusersLayoutWithoutConfigsUsesFamilyDefaults) {
    auto sd21 = detect_model(load_list("sd21.diffusers.json.gz"));
    ASSERT_TRUE(sd21) << sd21.error().to_string();
    EXPECT_EQ(sd21->family, ModelFamily::SD2);
    EXPECT_EQ(sd21->unet.num_heads, (std::vector<int>{5, 10, 20, 20}));
    EXPECT_EQ(sd21->text.num_layers, 23);  // a diffusers text_encoder stores only what runs
    EXPECT_EQ(sd21->text.hidden_act, CLIPActivation::Gelu);
    EXPECT_EQ(sd21->unet.prediction, Prediction::Unknown);
    auto sd15 = detect_model(load_list("sd15.diffusers.json.gz"));
    ASSERT_TRUE(sd15) << sd15.error().to_string();
    EXPECT_EQ(sd15->family, ModelFamily::SD1);
    EXPECT_EQ(sd15->unet.prediction, Prediction::Epsilon);
    EXPECT_EQ(sd15->text.hidden_act, CLIPActivation::QuickGelu);
    // A tiny SD-2-like UNet has no family head count: the error says to give the config.
    auto tiny = detect_model(load_list("tiny_b.diffusers.json.gz"));
    ASSERT_FALSE(tiny);
    EXPECT_NE(tiny.error().message().find("config.json"), std::string::npos) << tiny.error().to_string();
}

// SD 2's 9-channel model is stable-diffusion-2-inpainting (512-inpainting-ema), an epsilon model: the family
// says so, as its yaml and diffusers' single-file loader do, where a 4-channel SD 2 file leaves it unknown.
TEST(DetectModel, Sd2InpaintingSingleFileIsAnEpsilonModel) {
    auto info = detect_model(load_list("sd2_inpaint.ldm.json.gz"));
    ASSERT_TRUE(info) << info.error().to_string();
    EXPECT_EQ(info->family, ModelFamily::SD2);
    EXPECT_TRUE(info->inpainting);
    EXPECT_EQ(info->unet.in_channels, 9);
    EXPECT_EQ(info->unet.prediction, Prediction::Epsilon);
    EXPECT_FALSE(info->unet.upcast_attention);
}

TEST(DetectModel, PredictionTypeComesOnlyFromWhatTravelsWithTheModel) {
    auto unknown = detect_model(load_list("sd21.ldm.json.gz"));
    ASSERT_TRUE(unknown) << unknown.error().to_string();
    EXPECT_EQ(unknown->unet.prediction, Prediction::Unknown);
    bool noted = false;
    for (const std::string& n : unknown->notes) noted |= n.find("prediction type unknown") != std::string::npos;
    EXPECT_TRUE(noted);

    ModelConfigSources sched;
    sched.scheduler_json = R"({"_class_name": "DDIMScheduler", "prediction_type": "v_prediction"})";
    auto v = detect_model(load_list("sd21.diffusers.json.gz"), sched);
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_EQ(v->unet.prediction, Prediction::V);

    WeightSet with_md = load_list("sd21.ldm.json.gz");
    with_md.metadata["modelspec.architecture"] = "stable-diffusion-v2-768-v";
    auto md = detect_model(with_md);
    ASSERT_TRUE(md) << md.error().to_string();
    EXPECT_EQ(md->unet.prediction, Prediction::V);

    // An LDM yaml: parameterization "v", num_head_channels 64, penultimate layer.
    ModelConfigSources yaml;
    yaml.ldm_yaml = R"(model:
  params:
    parameterization: "v"
    scale_factor: 0.18215
    unet_config:
      params:
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [4, 2, 1]
        num_res_blocks: 2
        channel_mult: [1, 2, 4, 4]
        num_head_channels: 64
        use_linear_in_transformer: True
        transformer_depth: 1
        context_dim: 1024
    first_stage_config:
      params:
        ddconfig: {z_channels: 4, in_channels: 3, out_ch: 3, ch: 128, ch_mult: [1, 2, 4, 4], num_res_blocks: 2, attn_resolutions: []}
    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder
      params:
        layer: "penultimate"
)";
    auto y = detect_model(load_list("sd21.ldm.json.gz"), yaml);
    ASSERT_TRUE(y) << y.error().to_string();
    EXPECT_EQ(y->unet.prediction, Prediction::V);
    EXPECT_EQ(y->text.num_layers, 23);

    // The same yaml beside an SD 1.5 file disagrees with the weights: every difference is named.
    auto wrong = detect_model(load_list("sd15.ldm.json.gz"), yaml);
    ASSERT_FALSE(wrong);
    std::printf("message: %s\n", wrong.error().to_string().c_str());
    EXPECT_NE(wrong.error().message().find("cross_attention_dim"), std::string::npos);
    EXPECT_NE(wrong.error().message().find("use_linear_projection"), std::string::npos);
}

TEST(DetectModel, RecognisedButUnsupportedFamilies) {
    struct Case { const char* name; const char* family; };
    const Case cases[] = {
        {"model.diffusion_model.joint_blocks.0.context_block.adaLN_modulation.1.bias", "SD3"},
        {"transformer.joint_blocks.0.x_block.attn.qkv.weight", "SD3"},
        {"double_blocks.0.img_attn.norm.key_norm.scale", "Flux"},
    };
    for (const Case& c : cases) {
        WeightSet w = load_list("sd15.ldm.json.gz");
        ASSERT_TRUE(w.add(c.name, shape_only_tensor({4})));
        auto r = detect_model(w);
        ASSERT_FALSE(r) << c.name;
        EXPECT_EQ(r.error().code(), ErrorCode::Unsupported);
        EXPECT_NE(r.error().message().find(c.family), std::string::npos) << r.error().to_string();
    }
}

// An SD 1.5 single file with one SDXL tensor in it is neither: a clear error, not a crash or a half-built model.
TEST(DetectModel, MixedSDAndSDXLNamesAreRefused) {
    for (const char* extra : {"conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias",
                              "model.diffusion_model.label_emb.0.0.weight"}) {
        WeightSet w = load_list("sd15.ldm.json.gz");
        ASSERT_TRUE(w.add(extra, shape_only_tensor({4})));
        auto r = detect_model(w);
        ASSERT_FALSE(r) << extra;
        std::printf("%s -> %s\n", extra, r.error().to_string().substr(0, 300).c_str());
    }
}

TEST(DetectModel, OtherInputChannelCountsAndMismatchedParts) {
    WeightSet w = load_list("sd15.diffusers.json.gz");
    w.erase("unet.conv_in.weight");
    ASSERT_TRUE(w.add("unet.conv_in.weight", shape_only_tensor({320, 8, 3, 3})));  // InstructPix2Pix
    auto r = detect_model(w);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code(), ErrorCode::Unsupported);
    EXPECT_NE(r.error().message().find("8 input channels"), std::string::npos) << r.error().to_string();

    // An SD 2.1 UNet with SD 1.5's text encoder: the widths disagree.
    WeightSet mixed;
    WeightSet a = load_list("sd21.diffusers.json.gz"), b = load_list("sd15.diffusers.json.gz");
    for (const std::string& n : a.names())
        if (n.rfind("unet.", 0) == 0) { ASSERT_TRUE(mixed.add(n, *a.find(n))); }
    for (const std::string& n : b.names())
        if (n.rfind("unet.", 0) != 0) { ASSERT_TRUE(mixed.add(n, *b.find(n))); }
    auto m = detect_model(mixed);
    ASSERT_FALSE(m);
    EXPECT_NE(m.error().message().find("do not belong together"), std::string::npos) << m.error().to_string();

    EXPECT_FALSE(detect_model(WeightSet()));
}

TEST(DetectModel, SingleComponentDiffusersFiles) {
    WeightSet full = load_list("sd21.diffusers.json.gz");
    WeightSet unet, vae;
    for (const std::string& n : full.names()) {
        if (n.rfind("unet.", 0) == 0) { ASSERT_TRUE(unet.add(n.substr(5), *full.find(n))); }
        if (n.rfind("vae.", 0) == 0) { ASSERT_TRUE(vae.add(n.substr(4), *full.find(n))); }
    }
    auto u = detect_model(unet);
    ASSERT_TRUE(u) << u.error().to_string();
    EXPECT_EQ(u->family, ModelFamily::SD2);  // linear projections
    EXPECT_TRUE(u->has_unet);
    EXPECT_FALSE(u->has_vae || u->has_text_encoder);
    auto v = detect_model(vae);
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_TRUE(v->has_vae);
    EXPECT_EQ(v->vae.block_out_channels, (std::vector<int>{128, 256, 512, 512}));
}

}  // namespace
}  // namespace easel

// Add-on files passed as a model (a common mistake) are named for what they are, before any work.
TEST(DetectAddOn, LoRAAndEmbeddingsAreNotModels) {
    using namespace easel;
    struct Case {
        std::vector<std::string> names;
        std::string want;
    };
    const Case cases[] = {
        {{"lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_k.lora_down.weight",
          "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight"}, "an SDXL LoRA file"},
        {{"lora_unet_input_blocks_1_1_proj_in.lora_down.weight", "lora_te_text_model_encoder_layers_0_mlp_fc1.alpha"},
         "a LoRA file"},
        {{"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight"}, "a LoRA file"},
        {{"lora_unet_input_blocks_4_1_proj_in.hada_w1_a"}, "a LyCORIS (LoHa / LoKr) file"},
        {{"emb_params"}, "a textual-inversion embedding"},
        {{"clip_l", "clip_g"}, "an SDXL textual-inversion embedding"},
    };
    for (const Case& c : cases) {
        WeightSet w;
        for (const std::string& n : c.names) ASSERT_TRUE(w.add(n, Tensor::zeros({4, 4})));
        auto info = detect_model(w);
        ASSERT_FALSE(info) << c.want;
        std::printf("%s\n", info.error().to_string().c_str());
        EXPECT_NE(info.error().to_string().find("this is " + c.want + ", an add-on"), std::string::npos)
            << info.error().to_string();
    }
}
