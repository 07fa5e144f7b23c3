// The diffusion transformers' real key lists (tests/data/keys, written by tools/reference/make_sd3_key_lists.py from
// diffusers' and transformers' own classes at the published configs, no weights): SD3 medium, SD3.5 large, FLUX.1
// dev and schnell in diffusers' names and in the single-file names Stability and Black Forest Labs publish, and
// T5 v1.1 XXL. Each config is detected from names and shapes alone, and each single-file list renames to exactly
// the diffusers list (names and shapes).
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "io/keymap_dit.h"
#include "io/keymap_key_list.h"
#include "models/flux/config.h"
#include "models/mmdit/config.h"
#include "models/t5/config.h"

using namespace easel;

namespace {

const std::string kKeys = std::string(EASEL_TEST_DATA_DIR) + "/keys/";

WeightSet load_list(const std::string& name) {
    auto r = read_key_list_file(kKeys + name + ".json.gz");
    EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
    return std::move(r).value();
}

nlohmann::json expect_of(const std::string& name) {
    std::ifstream in(kKeys + name + ".expect.json");
    return nlohmann::json::parse(in);
}

// Same names, same shapes, nothing more or less.
void expect_same_keys(const WeightSet& got, const WeightSet& want, const std::string& what) {
    EXPECT_EQ(got.size(), want.size()) << what;
    size_t missing = 0, wrong = 0;
    for (const std::string& n : want.names()) {
        const Tensor* t = got.find(n);
        if (!t) {
            if (missing++ < 5) ADD_FAILURE() << what << ": missing " << n;
        } else if (t->shape() != want.find(n)->shape()) {
            if (wrong++ < 5) ADD_FAILURE() << what << ": " << n << " is " << t->shape().to_string() << ", expected "
                                           << want.find(n)->shape().to_string();
        }
    }
    EXPECT_EQ(missing, 0u) << what;
    EXPECT_EQ(wrong, 0u) << what;
}

void expect_mmdit(const MMDiTConfig& c, const nlohmann::json& want) {
    EXPECT_EQ(c.num_layers, want["num_layers"]);
    EXPECT_EQ(c.num_heads, want["num_attention_heads"]);
    EXPECT_EQ(c.head_dim, want["attention_head_dim"]);
    EXPECT_EQ(c.joint_attention_dim, want["joint_attention_dim"]);
    EXPECT_EQ(c.caption_projection_dim, want["caption_projection_dim"]);
    EXPECT_EQ(c.pooled_projection_dim, want["pooled_projection_dim"]);
    EXPECT_EQ(c.pos_embed_max_size, want["pos_embed_max_size"]);
    EXPECT_EQ(c.patch_size, want["patch_size"]);
    EXPECT_EQ(c.in_channels, want["in_channels"]);
    EXPECT_EQ(c.qk_norm, want.contains("qk_norm"));
    EXPECT_TRUE(c.dual_attention_layers.empty());
}

void expect_flux(const FluxConfig& c, const nlohmann::json& want) {
    EXPECT_EQ(c.num_layers, want["num_layers"]);
    EXPECT_EQ(c.num_single_layers, want["num_single_layers"]);
    EXPECT_EQ(c.num_heads, want["num_attention_heads"]);
    EXPECT_EQ(c.head_dim, want["attention_head_dim"]);
    EXPECT_EQ(c.in_channels, want["in_channels"]);
    EXPECT_EQ(c.joint_attention_dim, want["joint_attention_dim"]);
    EXPECT_EQ(c.pooled_projection_dim, want["pooled_projection_dim"]);
    EXPECT_EQ(c.guidance_embeds, want["guidance_embeds"].get<bool>());
    EXPECT_EQ(c.axes_dims_rope, want["axes_dims_rope"].get<std::vector<int>>());
}

}  // namespace

TEST(DetectDiT, SD3AndSD35TransformersFromTheirKeys) {
    for (const char* name : {"sd3_medium_transformer", "sd35_large_transformer"}) {
        auto c = MMDiTConfig::detect_from_weights(load_list(name), "");
        ASSERT_TRUE(c) << name << ": " << c.error().to_string();
        expect_mmdit(*c, expect_of(name)["config"]);
        std::printf("%s: %s\n", name, c->summary().c_str());
    }
}

TEST(DetectDiT, SD3SingleFilesRenameToTheDiffusersLists) {
    for (const char* name : {"sd3_medium_original", "sd35_large_original"}) {
        const nlohmann::json e = expect_of(name);
        auto renamed = sd3_transformer_to_diffusers(load_list(name), e["prefix"].get<std::string>(), "");
        ASSERT_TRUE(renamed) << name << ": " << renamed.error().to_string();
        expect_same_keys(*renamed, load_list(e["diffusers_list"]), name);
        auto c = MMDiTConfig::detect_from_weights(*renamed, "");
        ASSERT_TRUE(c) << c.error().to_string();
        expect_mmdit(*c, e["config"]);
    }
}

TEST(DetectDiT, FluxTransformersAndSingleFiles) {
    for (const char* variant : {"dev", "schnell"}) {
        const std::string diffusers = fmt::format("flux1_{}_transformer", variant), original = fmt::format("flux1_{}_original", variant);
        auto c = FluxConfig::detect_from_weights(load_list(diffusers), "");
        ASSERT_TRUE(c) << c.error().to_string();
        expect_flux(*c, expect_of(diffusers)["config"]);
        std::printf("%s: %s\n", diffusers.c_str(), c->summary().c_str());
        auto renamed = flux_transformer_to_diffusers(load_list(original), "", "");
        ASSERT_TRUE(renamed) << original << ": " << renamed.error().to_string();
        expect_same_keys(*renamed, load_list(diffusers), original);
    }
}

TEST(DetectDiT, T5XXLFromItsKeys) {
    auto c = T5Config::detect_from_weights(load_list("t5_v1_1_xxl_encoder"), "");
    ASSERT_TRUE(c) << c.error().to_string();
    const nlohmann::json want = expect_of("t5_v1_1_xxl_encoder")["config"];
    EXPECT_EQ(c->d_model, want["d_model"]);
    EXPECT_EQ(c->d_kv, want["d_kv"]);
    EXPECT_EQ(c->num_heads, want["num_heads"]);
    EXPECT_EQ(c->d_ff, want["d_ff"]);
    EXPECT_EQ(c->num_layers, want["num_layers"]);
    EXPECT_EQ(c->vocab_size, want["vocab_size"]);
    EXPECT_TRUE(c->gated);
    std::printf("t5_v1_1_xxl_encoder: %s\n", c->summary().c_str());
}

// A name the layout lacks and a fused tensor that does not split are errors that name them.
TEST(DetectDiT, RenamingRefusesWhatTheLayoutLacks) {
    WeightSet w = load_list("flux1_schnell_original");
    ASSERT_TRUE(w.add("double_blocks.0.img_attn.extra.weight", shape_only_tensor({4, 4})));
    auto r = flux_transformer_to_diffusers(std::move(w), "", "");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().to_string().find("double_blocks.0.img_attn.extra.weight"), std::string::npos) << r.error().to_string();
    WeightSet s = load_list("sd3_medium_original");
    s.erase("model.diffusion_model.joint_blocks.3.x_block.attn.qkv.weight");
    ASSERT_TRUE(s.add("model.diffusion_model.joint_blocks.3.x_block.attn.qkv.weight", shape_only_tensor({1537, 1536})));
    auto q = sd3_transformer_to_diffusers(std::move(s), "model.diffusion_model.", "");
    ASSERT_FALSE(q);
    EXPECT_NE(q.error().to_string().find("1537 rows"), std::string::npos) << q.error().to_string();
}
