// UNetConfig / VAEConfig / CLIPTextConfig: reading diffusers config.json and LDM yaml, detecting the structure
// from names and shapes, validating. The published configs and the key lists come from
// tools/reference/make_key_lists.py (tests/data/keys/*.expect.json, *.diffusers.json.gz).
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "io/keymap_config_doc.h"
#include "io/keymap_key_list.h"
#include "models/clip/config.h"
#include "models/unet/config.h"
#include "models/vae/config.h"

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

// The published v1-inference.yaml's model section (CompVis/stable-diffusion configs/stable-diffusion), in the
// shape AUTOMATIC1111 reads beside a checkpoint: block lists at the key's indent, inline lists, comments.
const char* kV1Yaml = R"(model:
  base_learning_rate: 1.0e-04
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: 64
    channels: 4
    cond_stage_trainable: false   # Note: different from the one we trained before
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: 0.18215
    use_ema: False

    scheduler_config: # 10000 warmup steps
      target: ldm.lr_scheduler.LambdaLinearScheduler
      params:
        warm_up_steps: [ 10000 ]
        cycle_lengths: [ 10000000000000 ] # incredibly large number to prevent corner cases
        f_start: [ 1.e-6 ]
        f_max: [ 1. ]
        f_min: [ 1. ]

    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        image_size: 32 # unused
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_heads: 8
        use_spatial_transformer: True
        transformer_depth: 1
        context_dim: 768
        use_checkpoint: True
        legacy: False

    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          double_z: true
          z_channels: 4
          resolution: 256
          in_channels: 3
          out_ch: 3
          ch: 128
          ch_mult:
          - 1
          - 2
          - 4
          - 4
          num_res_blocks: 2
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity

    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenCLIPEmbedder
)";

// The published v2-inference-v.yaml's model section (Stability-AI/stablediffusion configs/stable-diffusion).
const char* kV2VYaml = R"(model:
  base_learning_rate: 1.0e-4
  target: ldm.models.diffusion.ddpm.LatentDiffusion
  params:
    parameterization: "v"
    linear_start: 0.00085
    linear_end: 0.0120
    num_timesteps_cond: 1
    log_every_t: 200
    timesteps: 1000
    first_stage_key: "jpg"
    cond_stage_key: "txt"
    image_size: 64
    channels: 4
    cond_stage_trainable: false
    conditioning_key: crossattn
    monitor: val/loss_simple_ema
    scale_factor: 0.18215
    use_ema: False # we set this to false because this is an inference only config

    unet_config:
      target: ldm.modules.diffusionmodules.openaimodel.UNetModel
      params:
        use_checkpoint: True
        use_fp16: True
        image_size: 32 # unused
        in_channels: 4
        out_channels: 4
        model_channels: 320
        attention_resolutions: [ 4, 2, 1 ]
        num_res_blocks: 2
        channel_mult: [ 1, 2, 4, 4 ]
        num_head_channels: 64 # need to fix for flash-attn
        use_spatial_transformer: True
        use_linear_in_transformer: True
        transformer_depth: 1
        context_dim: 1024
        legacy: False

    first_stage_config:
      target: ldm.models.autoencoder.AutoencoderKL
      params:
        embed_dim: 4
        monitor: val/rec_loss
        ddconfig:
          #attn_type: "vanilla-xformers"
          double_z: true
          z_channels: 4
          resolution: 256
          in_channels: 3
          out_ch: 3
          ch: 128
          ch_mult:
          - 1
          - 2
          - 4
          - 4
          num_res_blocks: 2
          attn_resolutions: []
          dropout: 0.0
        lossconfig:
          target: torch.nn.Identity

    cond_stage_config:
      target: ldm.modules.encoders.modules.FrozenOpenCLIPEmbedder
      params:
        freeze: True
        layer: "penultimate"
)";

// ---- diffusers config.json -------------------------------------------------------------------------------

TEST(UNetConfig, PublishedSD15) {
    auto c = UNetConfig::from_diffusers_json(load_expect("sd15")["unet_config"].dump());
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->block_out_channels, (std::vector<int>{320, 640, 1280, 1280}));
    EXPECT_EQ(c->num_heads, (std::vector<int>{8, 8, 8, 8}));  // foreign key attention_head_dim: 8 means 8 heads
    EXPECT_EQ(c->down_attention, (std::vector<bool>{true, true, true, false}));
    EXPECT_EQ(c->up_attention, (std::vector<bool>{false, true, true, true}));
    EXPECT_EQ(c->transformer_depth, (std::vector<int>{1, 1, 1, 1}));
    EXPECT_EQ(c->layers_per_block, 2);
    EXPECT_EQ(c->cross_attention_dim, 768);
    EXPECT_FALSE(c->use_linear_projection);
    EXPECT_FALSE(c->upcast_attention);
    EXPECT_EQ(c->in_channels, 4);
    EXPECT_EQ(c->norm_num_groups, 32);
    EXPECT_FLOAT_EQ(c->norm_eps, 1e-5f);
    EXPECT_EQ(c->prediction, Prediction::Unknown);  // lives in scheduler_config.json
    EXPECT_EQ(c->head_dim(0), 40);
    std::printf("sd15 unet: %s\n", c->summary().c_str());
}

TEST(UNetConfig, PublishedSD21) {
    auto c = UNetConfig::from_diffusers_json(load_expect("sd21")["unet_config"].dump());
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->num_heads, (std::vector<int>{5, 10, 20, 20}));
    for (int l = 0; l < 4; ++l) EXPECT_EQ(c->head_dim(l), 64);
    EXPECT_EQ(c->cross_attention_dim, 1024);
    EXPECT_TRUE(c->use_linear_projection);
    EXPECT_TRUE(c->upcast_attention);
    EXPECT_EQ(c->sample_size, 96);
    auto inpaint = UNetConfig::from_diffusers_json(load_expect("sd2_inpaint")["unet_config"].dump());
    ASSERT_TRUE(inpaint);
    EXPECT_EQ(inpaint->in_channels, 9);
}

TEST(UNetConfig, AbsentKeysTakeDiffusersDefaults) {
    auto c = UNetConfig::from_diffusers_json("{}");
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->cross_attention_dim, 1280);  // UNet2DConditionModel's default, not SD 1.5's 768
    EXPECT_EQ(c->num_heads, (std::vector<int>{8, 8, 8, 8}));
    // num_attention_heads, when set, wins over the misnamed attention_head_dim (diffusers: `num_attention_heads or
    // attention_head_dim`).
    auto n = UNetConfig::from_diffusers_json(R"({"attention_head_dim": 64, "num_attention_heads": [5, 10, 20, 20]})");
    ASSERT_TRUE(n) << n.error().to_string();
    EXPECT_EQ(n->num_heads, (std::vector<int>{5, 10, 20, 20}));
}

TEST(UNetConfig, RefusesOtherArchitecturesAndBadValues) {
    struct Case { const char* json; ErrorCode code; };
    const Case cases[] = {
        {R"({"addition_embed_type": "image"})", ErrorCode::Unsupported},      // Kandinsky
        {R"({"addition_embed_type": "text_time"})", ErrorCode::BadFile},      // SDXL's, without its widths
        {R"({"time_cond_proj_dim": 256})", ErrorCode::Unsupported},            // LCM
        {R"({"_class_name": "UNet2DModel"})", ErrorCode::Unsupported},
        {R"({"down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D", "SimpleCrossAttnDownBlock2D", "DownBlock2D"]})",
         ErrorCode::Unsupported},
        {R"({"layers_per_block": [2, 2, 1, 2]})", ErrorCode::Unsupported},
        {R"({"block_out_channels": "wide"})", ErrorCode::BadFile},
        {R"({"block_out_channels": [320, -640, 1280, 1280]})", ErrorCode::BadFile},
        {R"({"attention_head_dim": [8, 8]})", ErrorCode::BadFile},
        {R"({"block_out_channels": [320, 640]})", ErrorCode::BadFile},  // default block types have 4 entries
        {R"({"norm_num_groups": 7})", ErrorCode::InvalidArgument},       // 320 is not a multiple of 7
        {R"({"attention_head_dim": 7})", ErrorCode::InvalidArgument},    // 320 channels, 7 heads
        {R"({"in_channels": 4.5})", ErrorCode::BadFile},
        {"[1, 2]", ErrorCode::BadFile},
        {"{\"block_out_channels\": [320, ", ErrorCode::BadFile},
    };
    for (const Case& c : cases) {
        auto r = UNetConfig::from_diffusers_json(c.json);
        ASSERT_FALSE(r) << c.json;
        EXPECT_EQ(r.error().code(), c.code) << c.json << " -> " << r.error().to_string();
        std::printf("%-70.70s -> %s\n", c.json, r.error().to_string().c_str());
    }
}

// stabilityai/stable-diffusion-xl-base-1.0's unet/config.json, the fields that shape it.
TEST(UNetConfig, ReadsSDXLBase) {
    auto c = UNetConfig::from_diffusers_json(R"({
        "_class_name": "UNet2DConditionModel", "addition_embed_type": "text_time", "addition_time_embed_dim": 256,
        "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280], "cross_attention_dim": 2048,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "projection_class_embeddings_input_dim": 2816, "sample_size": 128, "transformer_layers_per_block": [1, 2, 10],
        "use_linear_projection": true})");
    ASSERT_TRUE(c) << c.error().to_string();
    std::printf("sdxl base: %s\n", c->summary().c_str());
    EXPECT_EQ(c->addition_embed_input_dim, 2816);
    EXPECT_EQ(c->addition_time_embed_dim, 256);
    EXPECT_EQ(c->transformer_depth, (std::vector<int>{1, 2, 10}));
    EXPECT_EQ(c->num_heads, (std::vector<int>{5, 10, 20}));
    EXPECT_EQ(c->down_attention, (std::vector<bool>{false, true, true}));
    EXPECT_EQ(c->latent_multiple(), 4);
    EXPECT_EQ(c->head_dim(2), 64);
}

TEST(UNetConfig, ValidateChecksEveryLevel) {
    UNetConfig c;
    c.block_out_channels = {16, 24};
    c.down_attention = {true, false};
    c.up_attention = {false, true};
    c.num_heads = {2, 3};
    c.transformer_depth = {1, 1};
    c.norm_num_groups = 8;
    c.layers_per_block = 1;
    c.cross_attention_dim = 8;
    EXPECT_TRUE(c.validate()) << c.validate().error().to_string();
    UNetConfig g = c;
    g.norm_num_groups = 16;  // 24 is not a multiple of 16
    EXPECT_FALSE(g.validate());
    UNetConfig h = c;
    h.num_heads = {2, 5};  // 24 channels (mid block attention) in 5 heads
    EXPECT_FALSE(h.validate());
    UNetConfig n = c;
    n.num_heads = {2};  // per-level list of the wrong length
    EXPECT_FALSE(n.validate());
    UNetConfig e = c;
    e.norm_eps = 0.0f;
    EXPECT_FALSE(e.validate());
    UNetConfig l = c;
    l.block_out_channels = std::vector<int>(9, 16);
    EXPECT_FALSE(l.validate());
}

TEST(VAEConfig, PublishedSDAndDefaults) {
    auto c = VAEConfig::from_diffusers_json(load_expect("sd15")["vae_config"].dump());
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->block_out_channels, (std::vector<int>{128, 256, 512, 512}));
    EXPECT_EQ(c->layers_per_block, 2);
    EXPECT_EQ(c->latent_channels, 4);
    EXPECT_FLOAT_EQ(c->scaling_factor, 0.18215f);  // absent from SD 1.5's config: AutoencoderKL's default
    EXPECT_EQ(c->downscale(), 8);
    auto d = VAEConfig::from_diffusers_json("{}");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->block_out_channels, (std::vector<int>{64}));
    EXPECT_EQ(d->layers_per_block, 1);
    auto sf = VAEConfig::from_diffusers_json(R"({"scaling_factor": 0.13025, "block_out_channels": [128]})");
    ASSERT_TRUE(sf);
    EXPECT_FLOAT_EQ(sf->scaling_factor, 0.13025f);
    // SD3's and Flux's VAEs shift the latent (model latent = (z - shift) * scaling).
    auto shifted = VAEConfig::from_diffusers_json(R"({"shift_factor": 0.0609, "scaling_factor": 1.5305})");
    ASSERT_TRUE(shifted) << shifted.error().to_string();
    EXPECT_FLOAT_EQ(shifted->shift_factor, 0.0609f);
    for (const char* bad : {R"({"shift_factor": "x"})", R"({"shift_factor": 1e9})", R"({"latents_mean": [0, 0, 0, 0]})",
                            R"({"scaling_factor": -1})", R"({"_class_name": "AutoencoderTiny"})",
                            R"({"down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"]})"})
        EXPECT_FALSE(VAEConfig::from_diffusers_json(bad)) << bad;
}

TEST(CLIPTextConfig, PublishedAndDefaults) {
    auto l = CLIPTextConfig::from_diffusers_json(load_expect("sd15")["text_encoder_config"].dump());
    ASSERT_TRUE(l) << l.error().to_string();
    EXPECT_EQ(l->hidden_size, 768);
    EXPECT_EQ(l->num_layers, 12);
    EXPECT_EQ(l->num_heads, 12);
    EXPECT_EQ(l->hidden_act, CLIPActivation::QuickGelu);
    EXPECT_EQ(l->eos_token_id, 2);
    auto h = CLIPTextConfig::from_diffusers_json(load_expect("sd21")["text_encoder_config"].dump());
    ASSERT_TRUE(h) << h.error().to_string();
    EXPECT_EQ(h->hidden_size, 1024);
    EXPECT_EQ(h->num_layers, 23);
    EXPECT_EQ(h->num_heads, 16);
    EXPECT_EQ(h->hidden_act, CLIPActivation::Gelu);
    EXPECT_EQ(h->projection_dim, 512);
    const CLIPTextConfig oc = open_clip_vit_h14_text_config();
    EXPECT_EQ(oc.hidden_size, h->hidden_size);
    EXPECT_EQ(oc.num_layers, h->num_layers);
    EXPECT_EQ(oc.intermediate_size, h->intermediate_size);
    auto d = CLIPTextConfig::from_diffusers_json("{}");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->hidden_size, 512);  // transformers' CLIPTextConfig default
    EXPECT_EQ(d->eos_token_id, 49407);
    auto nested = CLIPTextConfig::from_diffusers_json(R"({"model_type": "clip", "text_config": {"hidden_size": 64, "num_attention_heads": 2}})");
    ASSERT_TRUE(nested) << nested.error().to_string();
    EXPECT_EQ(nested->hidden_size, 64);
    for (const char* bad : {R"({"hidden_act": "relu"})", R"({"hidden_size": 100, "num_attention_heads": 3})",
                            R"({"model_type": "t5"})", R"({"num_hidden_layers": 0})"})
        EXPECT_FALSE(CLIPTextConfig::from_diffusers_json(bad)) << bad;
}

// ---- detection from names and shapes ----------------------------------------------------------------------

class DetectGolden : public ::testing::TestWithParam<std::string> {};

// detect_from_weights must recover every structural field of the config the model was built from.
TEST_P(DetectGolden, RecoversStructureOfThePublishedConfig) {
    const std::string name = GetParam();
    const nlohmann::json expect = load_expect(name);
    const WeightSet w = load_list(name + ".diffusers.json.gz");

    auto want_u = UNetConfig::from_diffusers_json(expect["unet_config"].dump());
    auto got_u = UNetConfig::detect_from_weights(w, "unet.");
    ASSERT_TRUE(want_u) << want_u.error().to_string();
    ASSERT_TRUE(got_u) << got_u.error().to_string();
    EXPECT_EQ(got_u->in_channels, want_u->in_channels);
    EXPECT_EQ(got_u->out_channels, want_u->out_channels);
    EXPECT_EQ(got_u->block_out_channels, want_u->block_out_channels);
    EXPECT_EQ(got_u->layers_per_block, want_u->layers_per_block);
    EXPECT_EQ(got_u->down_attention, want_u->down_attention);
    EXPECT_EQ(got_u->up_attention, want_u->up_attention);
    EXPECT_EQ(got_u->mid_attention, want_u->mid_attention);
    EXPECT_EQ(got_u->cross_attention_dim, want_u->cross_attention_dim);
    EXPECT_EQ(got_u->use_linear_projection, want_u->use_linear_projection);
    for (int l = 0; l < want_u->num_levels(); ++l)
        if (want_u->down_attention[size_t(l)]) {
            EXPECT_EQ(got_u->transformer_depth[size_t(l)], want_u->transformer_depth[size_t(l)]) << "level " << l;
        }
    EXPECT_EQ(got_u->time_embed_dim(), int(w.find("unet.time_embedding.linear_1.weight")->size(0)));

    auto want_v = VAEConfig::from_diffusers_json(expect["vae_config"].dump());
    auto got_v = VAEConfig::detect_from_weights(w, "vae.");
    ASSERT_TRUE(want_v) << want_v.error().to_string();
    ASSERT_TRUE(got_v) << got_v.error().to_string();
    EXPECT_EQ(got_v->block_out_channels, want_v->block_out_channels);
    EXPECT_EQ(got_v->layers_per_block, want_v->layers_per_block);
    EXPECT_EQ(got_v->latent_channels, want_v->latent_channels);
    EXPECT_EQ(got_v->in_channels, want_v->in_channels);
    EXPECT_EQ(got_v->out_channels, want_v->out_channels);
    EXPECT_EQ(got_v->mid_attention, want_v->mid_attention);
    EXPECT_TRUE(got_v->use_quant_conv && got_v->use_post_quant_conv);

    auto want_t = CLIPTextConfig::from_diffusers_json(expect["text_encoder_config"].dump());
    auto got_t = CLIPTextConfig::detect_from_weights(w, "text_encoder.");
    ASSERT_TRUE(want_t) << want_t.error().to_string();
    ASSERT_TRUE(got_t) << got_t.error().to_string();
    EXPECT_EQ(got_t->vocab_size, want_t->vocab_size);
    EXPECT_EQ(got_t->hidden_size, want_t->hidden_size);
    EXPECT_EQ(got_t->intermediate_size, want_t->intermediate_size);
    EXPECT_EQ(got_t->num_layers, want_t->num_layers);
    EXPECT_EQ(got_t->max_positions, want_t->max_positions);
    EXPECT_EQ(got_t->num_heads, want_t->num_heads);  // the head-width-64 rule holds for every CLIP tower here
    EXPECT_FALSE(got_t->has_projection);
    std::printf("[ %-12s ] unet: %s\n                 vae: %s\n                 text: %s\n", name.c_str(),
                got_u->summary().c_str(), got_v->summary().c_str(), got_t->summary().c_str());
}

INSTANTIATE_TEST_SUITE_P(Keys, DetectGolden,
                         ::testing::Values("sd15", "sd21", "sd15_inpaint", "sd2_inpaint", "tiny_a", "tiny_b"));

TEST(DetectFromWeights, MissingOrMalformedTensorsAreErrors) {
    WeightSet w = load_list("tiny_a.diffusers.json.gz");
    {
        WeightSet v = w;
        v.erase("unet.conv_in.weight");
        auto r = UNetConfig::detect_from_weights(v, "unet.");
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().code(), ErrorCode::NotFound);
        EXPECT_EQ(r.error().where(), "unet.conv_in.weight");
    }
    {
        WeightSet v = w;
        v.erase("unet.down_blocks.0.attentions.0.proj_in.weight");
        ASSERT_TRUE(v.add("unet.down_blocks.0.attentions.0.proj_in.weight", shape_only_tensor({32, 32, 1})));
        auto r = UNetConfig::detect_from_weights(v, "unet.");
        ASSERT_FALSE(r);
        std::printf("%s\n", r.error().to_string().c_str());
    }
    {
        WeightSet v = w;  // a gap in the level indices
        for (const std::string& n : w.names())
            if (n.rfind("unet.up_blocks.1.", 0) == 0) v.erase(n);
        auto r = UNetConfig::detect_from_weights(v, "unet.");
        ASSERT_FALSE(r);
        std::printf("%s\n", r.error().to_string().c_str());
    }
    {
        WeightSet v = w;
        v.erase("text_encoder.text_model.embeddings.position_embedding.weight");
        ASSERT_TRUE(v.add("text_encoder.text_model.embeddings.position_embedding.weight", shape_only_tensor({16, 64})));
        EXPECT_FALSE(CLIPTextConfig::detect_from_weights(v, "text_encoder."));
    }
    EXPECT_FALSE(UNetConfig::detect_from_weights(WeightSet(), "unet."));
    EXPECT_FALSE(VAEConfig::detect_from_weights(WeightSet(), "vae."));
    EXPECT_FALSE(CLIPTextConfig::detect_from_weights(WeightSet(), ""));
}

// ---- LDM yaml --------------------------------------------------------------------------------------------

TEST(LdmYaml, V1InferenceGivesSD15Configs) {
    auto root = parse_yaml_subset(kV1Yaml, "v1-inference.yaml");
    ASSERT_TRUE(root) << root.error().to_string();
    auto u = UNetConfig::from_ldm_yaml(*root);
    ASSERT_TRUE(u) << u.error().to_string();
    auto want = UNetConfig::from_diffusers_json(load_expect("sd15")["unet_config"].dump());
    ASSERT_TRUE(want);
    EXPECT_EQ(u->block_out_channels, want->block_out_channels);
    EXPECT_EQ(u->num_heads, want->num_heads);
    EXPECT_EQ(u->down_attention, want->down_attention);
    EXPECT_EQ(u->up_attention, want->up_attention);
    EXPECT_EQ(u->layers_per_block, want->layers_per_block);
    EXPECT_EQ(u->cross_attention_dim, want->cross_attention_dim);
    EXPECT_EQ(u->use_linear_projection, want->use_linear_projection);
    EXPECT_EQ(u->prediction, Prediction::Epsilon);
    auto v = VAEConfig::from_ldm_yaml(*root);
    ASSERT_TRUE(v) << v.error().to_string();
    EXPECT_EQ(v->block_out_channels, (std::vector<int>{128, 256, 512, 512}));
    EXPECT_FLOAT_EQ(v->scaling_factor, 0.18215f);
    auto t = CLIPTextConfig::from_ldm_yaml(*root);
    ASSERT_TRUE(t) << t.error().to_string();
    EXPECT_EQ(t->hidden_size, 768);
    EXPECT_EQ(t->num_layers, 12);
    EXPECT_EQ(t->hidden_act, CLIPActivation::QuickGelu);
    // Scalar access through the tree.
    auto lr = root->path("model.base_learning_rate")->as_double("lr");
    ASSERT_TRUE(lr);
    EXPECT_DOUBLE_EQ(*lr, 1.0e-4);
    EXPECT_EQ(root->path("model.params.first_stage_key")->scalar(), "jpg");
    auto f_start = root->path("model.params.scheduler_config.params.f_start");
    ASSERT_TRUE(f_start && f_start->is_list());
    EXPECT_DOUBLE_EQ(*f_start->items()[0].as_double("f_start"), 1e-6);
}

TEST(LdmYaml, V2InferenceVGivesSD21Configs) {
    auto root = parse_yaml_subset(kV2VYaml, "v2-inference-v.yaml");
    ASSERT_TRUE(root) << root.error().to_string();
    auto u = UNetConfig::from_ldm_yaml(*root);
    ASSERT_TRUE(u) << u.error().to_string();
    auto want = UNetConfig::from_diffusers_json(load_expect("sd21")["unet_config"].dump());
    ASSERT_TRUE(want);
    EXPECT_EQ(u->num_heads, want->num_heads);  // num_head_channels 64 -> 5/10/20/20
    EXPECT_EQ(u->cross_attention_dim, 1024);
    EXPECT_TRUE(u->use_linear_projection);
    EXPECT_EQ(u->prediction, Prediction::V);
    auto t = CLIPTextConfig::from_ldm_yaml(*root);
    ASSERT_TRUE(t) << t.error().to_string();
    EXPECT_EQ(t->num_layers, 23);  // "penultimate"
    EXPECT_EQ(t->hidden_act, CLIPActivation::Gelu);
    EXPECT_EQ(t->hidden_size, 1024);
}

TEST(LdmYaml, SubsetFeatures) {
    const char* text = R"(# leading comment
---
a: 1
b: "quoted # not a comment"
c: 'it''s'
d: [1, [2, 3], {x: 4}, "five"]
e: {}
f:
  - name: one
    value: 1
  - name: two
    value: [2]
  -
    - 7
    - 8
g: ~
h: -3
url: http://example.com/x
)";
    auto r = parse_yaml_subset(text, "t.yaml");
    ASSERT_TRUE(r) << r.error().to_string();
    EXPECT_EQ(*r->get("a")->as_int("a"), 1);
    EXPECT_EQ(r->get("b")->scalar(), "quoted # not a comment");
    EXPECT_EQ(r->get("c")->scalar(), "it's");
    const ConfigNode* d = r->get("d");
    ASSERT_TRUE(d->is_list());
    ASSERT_EQ(d->items().size(), 4u);
    EXPECT_EQ(*d->items()[1].as_int_list("d1"), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(*d->items()[2].get("x")->as_int("x"), 4);
    EXPECT_FALSE(d->items()[3].as_int("quoted"));  // a quoted scalar is text, never a number
    EXPECT_TRUE(r->get("e")->is_map());
    const ConfigNode* f = r->get("f");
    ASSERT_TRUE(f && f->is_list());
    ASSERT_EQ(f->items().size(), 3u);
    EXPECT_EQ(f->items()[1].get("name")->scalar(), "two");
    EXPECT_EQ(*f->items()[2].as_int_list("f2"), (std::vector<int64_t>{7, 8}));
    EXPECT_TRUE(r->get("g")->is_null());
    EXPECT_EQ(*r->get("h")->as_int("h"), -3);
    EXPECT_EQ(r->get("url")->scalar(), "http://example.com/x");
}

TEST(LdmYaml, RefusesWhatItDoesNotSupportAndNeverCrashes) {
    const char* bad[] = {
        "a: &anchor 1\nb: *anchor\n", "a: |\n  text\n", "a: 1\na: 2\n", "a:\n\t b: 1\n", "a: [1, 2\n",
        "a: {b: 1\n", "a: \"unterminated\n", "- 1\nb: 2\n", "a: 1\n  b: 2\n", "a: 1\n---\nb: 2\n",
        "just text\n", "a: [1]]\n", "a: \"bad \\q escape\"\n",
    };
    for (const char* text : bad) {
        auto r = parse_yaml_subset(text, "bad.yaml");
        EXPECT_FALSE(r) << text;
        if (!r) { EXPECT_NE(r.error().message().find("line"), std::string::npos) << r.error().to_string(); }
    }
    EXPECT_FALSE(parse_yaml_subset(std::string("a: 1\0b: 2\n", 11), "nul.yaml"));
    EXPECT_FALSE(parse_yaml_subset(std::string(kYamlMaxBytes + 1, 'a'), "big.yaml"));
    // Deep nesting: inline and block, far past the depth limit, must end in an error, not a stack overflow.
    EXPECT_FALSE(parse_yaml_subset("a: " + std::string(100000, '['), "deep.yaml"));
    std::string block;
    for (int i = 0; i < 2000; ++i) block += std::string(size_t(i), ' ') + "k:\n";
    EXPECT_FALSE(parse_yaml_subset(block, "deep.yaml"));
    EXPECT_FALSE(parse_json_config(std::string(100000, '[') + std::string(100000, ']'), "deep.json"));
    // Mutations of a real config: every result is a value or an Error (run under ASan in the asan preset).
    std::mt19937 rng(1234);
    const std::string base = kV2VYaml;
    const char alphabet[] = " :-[]{},#'\"\n\tab1.&*|>";
    int parsed = 0;
    for (int i = 0; i < 2000; ++i) {
        std::string s = base;
        const int edits = 1 + int(rng() % 8);
        for (int e = 0; e < edits; ++e) {
            const size_t pos = rng() % s.size();
            switch (rng() % 3) {
                case 0: s[pos] = alphabet[rng() % (sizeof alphabet - 1)]; break;
                case 1: s.erase(pos, 1 + rng() % 4); break;
                default: s.insert(pos, 1, alphabet[rng() % (sizeof alphabet - 1)]); break;
            }
            if (s.empty()) s = "x";
        }
        auto r = parse_yaml_subset(s, "mutated.yaml");
        if (r) {
            ++parsed;
            (void)UNetConfig::from_ldm_yaml(*r);
            (void)VAEConfig::from_ldm_yaml(*r);
            (void)CLIPTextConfig::from_ldm_yaml(*r);
        }
    }
    std::printf("mutated yaml: %d of 2000 still parsed\n", parsed);
}

TEST(LdmYaml, UnsupportedModelsAreNamed) {
    std::string sdxl = kV1Yaml;
    sdxl.replace(sdxl.find("        num_heads: 8"), 20, "        num_classes: sequential\n        num_heads: 8");
    auto root = parse_yaml_subset(sdxl, "sdxl.yaml");
    ASSERT_TRUE(root) << root.error().to_string();
    auto u = UNetConfig::from_ldm_yaml(*root);
    ASSERT_FALSE(u);
    EXPECT_EQ(u.error().code(), ErrorCode::Unsupported);
    std::string x0 = kV2VYaml;
    x0.replace(x0.find("parameterization: \"v\""), 21, "parameterization: \"x0\"");
    auto r2 = parse_yaml_subset(x0, "x0.yaml");
    ASSERT_TRUE(r2);
    EXPECT_FALSE(UNetConfig::from_ldm_yaml(*r2));
    auto empty = parse_yaml_subset("model: {}\n", "empty.yaml");
    ASSERT_TRUE(empty);
    EXPECT_EQ(UNetConfig::from_ldm_yaml(*empty).error().code(), ErrorCode::NotFound);
    EXPECT_FALSE(VAEConfig::from_ldm_yaml(*empty));
    EXPECT_FALSE(CLIPTextConfig::from_ldm_yaml(*empty));
}

}  // namespace
}  // namespace easel
