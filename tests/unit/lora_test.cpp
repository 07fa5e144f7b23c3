// LoRA-family files (pipeline/lora.h): prompt tags, module names matched to layers, each kind's delta against a
// plain loop, the errors a bad file gets, and a model that gets its base weights back bit for bit.
// The images against diffusers are in tests/golden/lora_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <unistd.h>
#include <cstring>

#include <fmt/format.h>

#include "common/golden.h"
#include "common/scoped_path.h"
#include "io/file_hash.h"
#include "io/safetensors.h"
#include "pipeline/generate.h"
#include "pipeline/lora.h"
#include "pipeline/model.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1";
const std::string kTinyXL = std::string(EASEL_GOLDEN_DIR) + "/pipeline_sdxl";

const ModelInfo& info_of(const std::string& path) {
    static std::map<std::string, ModelInfo> cache;
    auto it = cache.find(path);
    if (it == cache.end()) {
        auto s = load_model_spec(path, LoadOptions{});
        EASEL_ASSERT(s.has_value(), s ? "" : s.error().to_string());
        it = cache.emplace(path, s->info).first;
    }
    return it->second;
}

Tensor rnd(const Shape& s, uint32_t seed, float scale = 0.1f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> n(0.f, scale);
    std::vector<float> v(size_t(s.numel()));
    for (float& x : v) x = n(g);
    return Tensor::from_floats(s, v);
}

Tensor scalar(float v) { return Tensor::from_floats(Shape{}, {v}); }

Result<std::shared_ptr<const LoraFile>> read(const WeightSet& w, const std::string& model = kTiny) {
    return read_lora(w, info_of(model), "test.safetensors", "0123456789abcdef");
}

std::string target_of(const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& model = kTiny) {
    WeightSet w;
    for (const auto& [n, t] : tensors) EXPECT_TRUE(w.add(n, t));
    auto f = read(w, model);
    if (!f) return "error: " + f.error().to_string();
    return (*f)->modules.empty() ? "" : (*f)->modules.front().target;
}

// A LoRA pair under `module` (kohya or diffusers naming by its form).
std::string lora_target(const std::string& module, int64_t out = 16, int64_t in = 16, const std::string& model = kTiny) {
    const bool kohya = module.rfind("lora_", 0) == 0;
    return target_of({{module + (kohya ? ".lora_down.weight" : ".lora_A.weight"), rnd(Shape{2, in}, 1)},
                      {module + (kohya ? ".lora_up.weight" : ".lora_B.weight"), rnd(Shape{out, 2}, 2)}},
                     model);
}

// A LoRA for a layer the tiny model lacks (attn9): it reads, and fails where it meets the model.
WeightSet lora_for_missing_layer() {
    const std::string key = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn9_to_q";
    WeightSet w;
    EXPECT_TRUE(w.add(key + ".lora_down.weight", rnd(Shape{2, 16}, 1)));
    EXPECT_TRUE(w.add(key + ".lora_up.weight", rnd(Shape{16, 2}, 2)));
    return w;
}

}  // namespace

TEST(ExtraNetworks, ParsesAutomatic1111Tags) {
    auto x = parse_extra_networks("a cat <lora:detail:0.8>, <lora:style:te=0.5:unet=1.25> <lora:plain> <hypernet:h:1> end");
    ASSERT_TRUE(x.has_value()) << x.error().to_string();
    EXPECT_EQ(x->prompt, "a cat ,    end");
    ASSERT_EQ(x->loras.size(), 3u);
    EXPECT_EQ(x->loras[0].name, "detail");
    EXPECT_DOUBLE_EQ(x->loras[0].te, 0.8);
    EXPECT_DOUBLE_EQ(x->loras[0].unet, 0.8);
    EXPECT_EQ(x->loras[1].name, "style");
    EXPECT_DOUBLE_EQ(x->loras[1].te, 0.5);
    EXPECT_DOUBLE_EQ(x->loras[1].unet, 1.25);
    EXPECT_EQ(x->loras[2].name, "plain");
    EXPECT_DOUBLE_EQ(x->loras[2].te, 1.0);
    EXPECT_DOUBLE_EQ(x->loras[2].unet, 1.0);
    ASSERT_EQ(x->other.size(), 1u);
    EXPECT_EQ(x->other[0], "<hypernet:h:1>");
    // Positional te then unet; a negative multiplier.
    auto y = parse_extra_networks("<lora:a:0.3:-0.7>");
    ASSERT_TRUE(y.has_value());
    EXPECT_DOUBLE_EQ(y->loras[0].te, 0.3);
    EXPECT_DOUBLE_EQ(y->loras[0].unet, -0.7);
    EXPECT_EQ(y->prompt, "");
    EXPECT_EQ(strip_extra_networks("x <lora:a:1> y <embedding> <:no> <lora:>"), "x  y <embedding> <:no> <lora:>");
}

TEST(ExtraNetworks, BadMultipliersAreErrors) {
    for (const char* p : {"<lora:x:abc>", "<lora:x:1:nan>", "<lora:x:te=>", "<lora::1>", "<lora:x:1e9>"}) {
        auto x = parse_extra_networks(p);
        ASSERT_FALSE(x.has_value()) << p;
        EXPECT_NE(x.error().to_string().find("prompt"), std::string::npos) << x.error().to_string();
        std::printf("%s -> %s\n", p, x.error().to_string().c_str());
    }
}

TEST(LoraRead, KohyaAndDiffusersNamesFindTheirLayers) {
    // kohya-ss, diffusers module naming.
    EXPECT_EQ(lora_target("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"),
              "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight");
    EXPECT_EQ(lora_target("lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_out_0", 32, 32),
              "unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_out.0.weight");
    EXPECT_EQ(lora_target("lora_unet_down_blocks_0_attentions_1_transformer_blocks_0_ff_net_0_proj", 128),
              "unet.down_blocks.0.attentions.1.transformer_blocks.0.ff.net.0.proj.weight");
    EXPECT_EQ(lora_target("lora_unet_down_blocks_1_resnets_0_conv_shortcut", 32),
              "unet.down_blocks.1.resnets.0.conv_shortcut.weight");
    EXPECT_EQ(lora_target("lora_te_text_model_encoder_layers_1_self_attn_q_proj", 32, 32),
              "text_encoder.text_model.encoder.layers.1.self_attn.q_proj.weight");
    EXPECT_EQ(lora_target("lora_te_text_model_encoder_layers_0_mlp_fc1", 37, 32),
              "text_encoder.text_model.encoder.layers.0.mlp.fc1.weight");
    // kohya-ss, LDM (CompVis) naming: the tiny model has 3 levels of 2 resnets.
    EXPECT_EQ(lora_target("lora_unet_input_blocks_1_1_proj_in"), "unet.down_blocks.0.attentions.0.proj_in.weight");
    EXPECT_EQ(lora_target("lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_k", 32, 32),
              "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_k.weight");
    EXPECT_EQ(lora_target("lora_unet_input_blocks_1_0_in_layers_2"), "unet.down_blocks.0.resnets.0.conv1.weight");
    EXPECT_EQ(lora_target("lora_unet_input_blocks_1_0_emb_layers_1"), "unet.down_blocks.0.resnets.0.time_emb_proj.weight");
    EXPECT_EQ(lora_target("lora_unet_middle_block_1_proj_out", 32, 32), "unet.mid_block.attentions.0.proj_out.weight");
    EXPECT_EQ(lora_target("lora_unet_output_blocks_3_1_transformer_blocks_0_attn2_to_v", 32, 32),
              "unet.up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.weight");
    EXPECT_EQ(lora_target("lora_unet_time_embed_0", 64), "unet.time_embedding.linear_1.weight");
    // diffusers / PEFT, and the older attention-processor form.
    EXPECT_EQ(lora_target("unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v"),
              "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_v.weight");
    EXPECT_EQ(lora_target("text_encoder.text_model.encoder.layers.0.self_attn.out_proj", 32, 32),
              "text_encoder.text_model.encoder.layers.0.self_attn.out_proj.weight");
    EXPECT_EQ(target_of({{"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.down.weight",
                          rnd(Shape{2, 16}, 1)},
                         {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out_lora.up.weight",
                          rnd(Shape{16, 2}, 2)}}),
              "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0.weight");
    // SDXL: te1 is CLIP-L, te2 bigG.
    EXPECT_EQ(lora_target("lora_te2_text_model_encoder_layers_0_self_attn_k_proj", 32, 32, kTinyXL),
              "text_encoder_2.text_model.encoder.layers.0.self_attn.k_proj.weight");
    EXPECT_EQ(lora_target("lora_te1_text_model_encoder_layers_0_self_attn_k_proj", 32, 32, kTinyXL),
              "text_encoder.text_model.encoder.layers.0.self_attn.k_proj.weight");
}

TEST(LoraRead, BadFilesGetErrorsNamingTheKey) {
    auto expect_error = [](const std::vector<std::pair<std::string, Tensor>>& tensors, const std::string& needle) {
        const std::string got = target_of(tensors);
        std::printf("%s\n", got.c_str());
        EXPECT_EQ(got.rfind("error: ", 0), 0u) << got;
        EXPECT_NE(got.find(needle), std::string::npos) << got;
    };
    const std::string q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    expect_error({{q + ".lora_down.weight", rnd(Shape{2, 16}, 1)}, {q + ".lora_up.weight", rnd(Shape{16, 2}, 2)},
                  {"something_else", rnd(Shape{2}, 3)}},
                 "something_else");
    expect_error({{q + ".lora_down.weight", rnd(Shape{2, 16}, 1)}}, q);                        // up missing
    expect_error({{q + ".lora_down.weight", rnd(Shape{0, 16}, 1)}, {q + ".lora_up.weight", rnd(Shape{16, 0}, 2)}},
                 "rank of 0");
    Tensor nan = rnd(Shape{2, 16}, 1);
    nan.data<float>()[5] = std::nanf("");
    expect_error({{q + ".lora_down.weight", nan}, {q + ".lora_up.weight", rnd(Shape{16, 2}, 2)}}, "nan");
    // In f16 and bf16 too (read by their exponent bits), at the last element as at the first.
    Tensor inf = rnd(Shape{16, 2}, 2);
    inf.data<float>()[31] = -INFINITY;
    expect_error({{q + ".lora_down.weight", rnd(Shape{2, 16}, 1).to(DType::F16)}, {q + ".lora_up.weight", inf.to(DType::F16)}},
                 "-inf at element 31");
    expect_error({{q + ".lora_down.weight", nan.to(DType::BF16)}, {q + ".lora_up.weight", rnd(Shape{16, 2}, 2).to(DType::BF16)}},
                 "nan at element 5");
    Tensor big = rnd(Shape{2, 16}, 1);
    big.data<float>()[0] = 65504.0f;  // f16's largest finite value
    EXPECT_EQ(target_of({{q + ".lora_down.weight", big.to(DType::F16)}, {q + ".lora_up.weight", rnd(Shape{16, 2}, 2).to(DType::F16)}}).rfind("error", 0),
              std::string::npos);
    expect_error({{"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", rnd(Shape{2, 32}, 1)},
                  {"lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", rnd(Shape{37, 2}, 2)}},
                 "text_encoder_2");
    expect_error({{"lora_unet_input_blocks_99_1_proj_in.lora_down.weight", rnd(Shape{2, 16}, 1)},
                  {"lora_unet_input_blocks_99_1_proj_in.lora_up.weight", rnd(Shape{16, 2}, 2)}},
                 "input_blocks.99.1.proj_in");
    expect_error({{q + ".dora_scale", rnd(Shape{1, 16}, 2)}}, "dora_scale without lora_up");
    expect_error({}, "no LoRA modules");
}

// A LoRA saved with torch.save (.pt, through the pickle reader that never runs code) reads as its safetensors twin:
// the same modules, targets, alphas and values. Its A1111 hash is the whole file's SHA-256 (not the data's).
TEST(LoraRead, PickledFileEqualsSafetensors) {
    const std::string dir = std::string(EASEL_GOLDEN_DIR) + "/lora/";
    auto a = read_lora(dir + "sd1_kohya.safetensors", info_of(kTiny));
    auto b = read_lora(dir + "sd1_kohya_pt.pt", info_of(kTiny));
    ASSERT_TRUE(a) << a.error().to_string();
    ASSERT_TRUE(b) << b.error().to_string();
    ASSERT_EQ((*a)->modules.size(), (*b)->modules.size());
    for (const LoraModule& ma : (*a)->modules) {
        const auto it = std::find_if((*b)->modules.begin(), (*b)->modules.end(), [&](const LoraModule& x) { return x.key == ma.key; });
        ASSERT_NE(it, (*b)->modules.end()) << ma.key;
        EXPECT_EQ(it->target, ma.target);
        EXPECT_EQ(it->alpha, ma.alpha) << ma.key;
        for (const auto& [name, t] : ma.parts) {
            ASSERT_TRUE(it->parts.count(name)) << ma.key << "." << name;
            EXPECT_EQ(t.to_floats(), it->parts.at(name).to_floats()) << ma.key << "." << name;
        }
    }
    auto whole = sha256_file(dir + "sd1_kohya_pt.pt");
    ASSERT_TRUE(whole);
    EXPECT_EQ((*b)->sha256, *whole);
    EXPECT_NE((*a)->sha256, *sha256_file(dir + "sd1_kohya.safetensors")) << "a safetensors LoRA's hash skips its header";
}

// Each kind's delta against the formula written out as loops.
TEST(LoraDelta, EachKindEqualsItsFormula) {
    const easel::testing::Tolerance tol{.atol = 1e-6, .rtol = 1e-5};
    auto check = [&](const LoraModule& m, const Shape& shape, const std::vector<float>& want, const char* label) {
        auto d = lora_delta(m, shape);
        ASSERT_TRUE(d.has_value()) << d.error().to_string();
        easel::testing::expect_close(*d, Tensor::from_floats(shape, want), tol, label);
    };
    const int64_t O = 6, I = 5, R = 3, K = 3;
    {  // LoRA on a linear, alpha 1.5: (alpha / rank) up . down
        LoraModule m;
        m.parts["up"] = rnd(Shape{O, R}, 1);
        m.parts["down"] = rnd(Shape{R, I}, 2);
        m.alpha = 1.5;
        std::vector<float> want(size_t(O * I));
        const Tensor& up = m.parts["up"];
        const Tensor& dn = m.parts["down"];
        for (int64_t o = 0; o < O; ++o)
            for (int64_t i = 0; i < I; ++i) {
                double s = 0;
                for (int64_t r = 0; r < R; ++r) s += double(up.data<float>()[o * R + r]) * dn.data<float>()[r * I + i];
                want[size_t(o * I + i)] = float(s * 1.5 / R);
            }
        check(m, Shape{O, I}, want, "lora linear");
    }
    {  // LoCon 3x3 with a CP core: delta[i,j,k,l] = sum_nm mid[n,m,k,l] up[i,n] down[m,j], no alpha
        LoraModule m;
        m.parts["up"] = rnd(Shape{O, R, 1, 1}, 3);
        m.parts["down"] = rnd(Shape{R, I, 1, 1}, 4);
        m.parts["mid"] = rnd(Shape{R, R, K, K}, 5);
        std::vector<float> want(size_t(O * I * K * K));
        const float* up = m.parts["up"].data<float>();
        const float* dn = m.parts["down"].data<float>();
        const float* mid = m.parts["mid"].data<float>();
        for (int64_t i = 0; i < O; ++i)
            for (int64_t j = 0; j < I; ++j)
                for (int64_t k = 0; k < K * K; ++k) {
                    double s = 0;
                    for (int64_t n = 0; n < R; ++n)
                        for (int64_t mm = 0; mm < R; ++mm) s += double(mid[(n * R + mm) * K * K + k]) * up[i * R + n] * dn[mm * I + j];
                    want[size_t((i * I + j) * K * K + k)] = float(s);
                }
        check(m, Shape{O, I, K, K}, want, "locon cp");
    }
    {  // LoCon 3x3 plain: up [O, R, 1, 1] . down [R, I, 3, 3], alpha 6 (scale 2)
        LoraModule m;
        m.parts["up"] = rnd(Shape{O, R, 1, 1}, 6);
        m.parts["down"] = rnd(Shape{R, I, K, K}, 7);
        m.alpha = 6.0;
        std::vector<float> want(size_t(O * I * K * K));
        const float* up = m.parts["up"].data<float>();
        const float* dn = m.parts["down"].data<float>();
        for (int64_t o = 0; o < O; ++o)
            for (int64_t x = 0; x < I * K * K; ++x) {
                double s = 0;
                for (int64_t r = 0; r < R; ++r) s += double(up[o * R + r]) * dn[r * I * K * K + x];
                want[size_t(o * I * K * K + x)] = float(2 * s);
            }
        check(m, Shape{O, I, K, K}, want, "locon 3x3");
    }
    {  // LoHa: (alpha / rank) (w1a . w1b) * (w2a . w2b)
        LoraModule m;
        m.kind = LoraModule::Kind::LoHa;
        m.parts["hada_w1_a"] = rnd(Shape{O, R}, 8);
        m.parts["hada_w1_b"] = rnd(Shape{R, I}, 9);
        m.parts["hada_w2_a"] = rnd(Shape{O, R}, 10);
        m.parts["hada_w2_b"] = rnd(Shape{R, I}, 11);
        m.alpha = 1.0;
        auto mm = [&](const char* a, const char* b, int64_t o, int64_t i) {
            double s = 0;
            for (int64_t r = 0; r < R; ++r) s += double(m.parts[a].data<float>()[o * R + r]) * m.parts[b].data<float>()[r * I + i];
            return s;
        };
        std::vector<float> want(size_t(O * I));
        for (int64_t o = 0; o < O; ++o)
            for (int64_t i = 0; i < I; ++i)
                want[size_t(o * I + i)] = float(mm("hada_w1_a", "hada_w1_b", o, i) * mm("hada_w2_a", "hada_w2_b", o, i) / R);
        check(m, Shape{O, I}, want, "loha");
    }
    {  // LoKr: kron(w1 [2, 1], w2_a . w2_b [3, 5]) -> [6, 5], alpha 1 over w2_b's rank 3
        LoraModule m;
        m.kind = LoraModule::Kind::LoKr;
        m.parts["lokr_w1"] = rnd(Shape{2, 1}, 12, 1.0f);
        m.parts["lokr_w2_a"] = rnd(Shape{3, R}, 13);
        m.parts["lokr_w2_b"] = rnd(Shape{R, I}, 14);
        m.alpha = 1.0;
        std::vector<float> want(size_t(O * I));
        for (int64_t a = 0; a < 2; ++a)
            for (int64_t c = 0; c < 3; ++c)
                for (int64_t i = 0; i < I; ++i) {
                    double s = 0;
                    for (int64_t r = 0; r < R; ++r)
                        s += double(m.parts["lokr_w2_a"].data<float>()[c * R + r]) * m.parts["lokr_w2_b"].data<float>()[r * I + i];
                    want[size_t((a * 3 + c) * I + i)] = float(m.parts["lokr_w1"].data<float>()[a] * s / R);
                }
        check(m, Shape{O, I}, want, "lokr");
    }
    {  // A shape that does not fit names the module, the layer and both shapes.
        LoraModule m;
        m.key = "lora_unet_x";
        m.target = "unet.x.weight";
        m.parts["up"] = rnd(Shape{O + 1, R}, 1);
        m.parts["down"] = rnd(Shape{R, I}, 2);
        auto d = lora_delta(m, Shape{O, I});
        ASSERT_FALSE(d.has_value());
        const std::string e = d.error().to_string();
        std::printf("%s\n", e.c_str());
        EXPECT_NE(e.find("lora_unet_x"), std::string::npos);
        EXPECT_NE(e.find("unet.x.weight [6, 5]"), std::string::npos);
        EXPECT_NE(e.find("up [7, 3]"), std::string::npos);
    }
}

// The tiny model with a LoRA on one attention projection: the image changes; the model loaded again without it
// (through the same weight cache folder) gives the base image bit for bit; a LoRA whose shape does not fit
// fails the load naming the layer.
TEST(LoraApply, ChangesTheImageAndTheBaseComesBack) {
    const easel::testing::ScopedPath cache{fs::temp_directory_path() / fmt::format("easel-lora-cache-{}", ::getpid())};
    LoadOptions o;
    o.weight_cache_dir = cache.path.string();
    o.weight_cache_min_bytes = 0;
    GenerateParams p;
    p.prompt = "a red circle";
    p.width = p.height = 32;
    p.steps = 3;
    p.seed = 5;
    auto run = [&](const LoadOptions& lo) {
        auto m = load_model(kTiny, lo);
        EXPECT_TRUE(m.has_value()) << (m ? "" : m.error().to_string());
        if (!m) return Tensor();
        auto img = generate(**m, p);
        EXPECT_TRUE(img.has_value()) << (img ? "" : img.error().to_string());
        return img ? (*img)[0].latent.clone() : Tensor();
    };
    const Tensor base = run(o);
    const std::string q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
    WeightSet w;
    ASSERT_TRUE(w.add(q + ".lora_down.weight", rnd(Shape{2, 16}, 1, 1.0f)));
    ASSERT_TRUE(w.add(q + ".lora_up.weight", rnd(Shape{16, 2}, 2, 1.0f)));
    ASSERT_TRUE(w.add(q + ".alpha", scalar(2.0f)));
    auto file = read(w);
    ASSERT_TRUE(file.has_value()) << file.error().to_string();
    LoadOptions with = o;
    with.adapters.push_back(lora_adapter(*file, 1.0, 1.0));
    const Tensor changed = run(with);
    const Tensor again = run(o);
    ASSERT_EQ(base.numel(), changed.numel());
    ASSERT_EQ(base.numel(), again.numel());
    EXPECT_EQ(std::memcmp(base.raw(), again.raw(), base.nbytes()), 0) << "the base model did not come back bit for bit";
    double diff = 0;
    for (int64_t i = 0; i < base.numel(); ++i) diff = std::max(diff, double(std::fabs(base.data<float>()[i] - changed.data<float>()[i])));
    std::printf("LoRA on one to_q: max |latent diff| %.4g\n", diff);
    EXPECT_GT(diff, 1e-3);

    // A delta of another shape: the load fails naming the key, the layer and the shapes.
    WeightSet bad;
    ASSERT_TRUE(bad.add(q + ".lora_down.weight", rnd(Shape{2, 16}, 1)));
    ASSERT_TRUE(bad.add(q + ".lora_up.weight", rnd(Shape{32, 2}, 2)));
    auto bad_file = read(bad);
    ASSERT_TRUE(bad_file.has_value());
    LoadOptions bo = o;
    bo.adapters.push_back(lora_adapter(*bad_file, 1.0, 1.0));
    auto m = load_model(kTiny, bo);
    ASSERT_FALSE(m.has_value());
    std::printf("%s\n", m.error().to_string().c_str());
    EXPECT_NE(m.error().to_string().find(q), std::string::npos);
    EXPECT_NE(m.error().to_string().find("[16, 16]"), std::string::npos);

    // A module for a layer this model lacks.
    auto mf = read(lora_for_missing_layer());
    ASSERT_TRUE(mf.has_value());
    LoadOptions mo = o;
    mo.adapters.push_back(lora_adapter(*mf, 1.0, 1.0));
    auto m2 = load_model(kTiny, mo);
    ASSERT_FALSE(m2.has_value());
    std::printf("%s\n", m2.error().to_string().c_str());
    EXPECT_NE(m2.error().to_string().find("attn9.to_q.weight"), std::string::npos);
}

// LivePatch: LoRAs applied to a loaded model in place give the image of the model loaded with them (bit for bit:
// the same merge and packing), and taking them off gives the base image bit for bit; with the packed weights in
// fresh memory and mapped from the weight cache.
TEST(LivePatch, EqualsLoadingWithTheLorasAndRestoresTheBase) {
    const std::string loras = std::string(EASEL_GOLDEN_DIR) + "/lora";
    auto kohya = read_lora(loras + "/sd1_kohya.safetensors", info_of(kTiny));
    auto locon = read_lora(loras + "/sd1_locon.safetensors", info_of(kTiny));
    ASSERT_TRUE(kohya && locon);
    const std::vector<std::shared_ptr<const WeightAdapter>> adapters = {lora_adapter(*kohya, 0.8, 0.5),
                                                                         lora_adapter(*locon, 0.6, 0.6)};
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.negative_prompt = "green";
    p.width = p.height = 32;
    p.steps = 4;
    p.seed = 11;
    auto latent = [&](const Model& m) {
        auto out = generate(m, p);
        EXPECT_TRUE(out.has_value()) << (out ? "" : out.error().to_string());
        return out ? (*out)[0].latent.clone() : Tensor();
    };
    auto same = [](const Tensor& a, const Tensor& b) {
        return a.numel() == b.numel() && a.numel() > 0 && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
    };
    LoadOptions merged_o;
    merged_o.adapters = adapters;
    auto merged = load_model(kTiny, merged_o);
    ASSERT_TRUE(merged) << merged.error().to_string();
    const Tensor want = latent(**merged);
    for (const bool cached : {false, true}) {
        SCOPED_TRACE(cached ? "weights mapped from the weight cache" : "weights packed in memory");
        const easel::testing::ScopedPath cache{fs::temp_directory_path() / fmt::format("easel-livepatch-{}", ::getpid())};
        LoadOptions o;
        o.keep_param_registry = true;
        if (cached) {
            o.weight_cache_dir = cache.path.string();
            o.weight_cache_min_bytes = 0;
            auto first = load_model(kTiny, o);  // writes the cache file
            ASSERT_TRUE(first);
        }
        auto m = load_model(kTiny, o);
        ASSERT_TRUE(m) << m.error().to_string();
        if (cached) {
            EXPECT_TRUE((*m)->weight_cache == WeightCacheUse::Mapped || (*m)->weight_cache == WeightCacheUse::Copied)
                << (*m)->weight_cache_note;
        }
        const Tensor base = latent(**m);
        for (int round = 0; round < 2; ++round) {
            auto patch = LivePatch::apply(**m, adapters);
            ASSERT_TRUE(patch) << patch.error().to_string();
            std::printf("patched %zu parameters, %zu bytes\n", (*patch)->params(), (*patch)->bytes());
            EXPECT_TRUE(same(latent(**m), want)) << "patched model != model loaded with the LoRAs";
            EXPECT_FALSE(LivePatch::apply(**m, adapters)) << "a second patch at once";
            patch->reset();
            EXPECT_TRUE(same(latent(**m), base)) << "the base did not come back bit for bit";
        }
    }
    // A model without a registry, and a target it lacks, are errors that change nothing.
    auto plain = load_model(kTiny, LoadOptions{});
    ASSERT_TRUE(plain);
    auto no = LivePatch::apply(**plain, adapters);
    ASSERT_FALSE(no);
    std::printf("%s\n", no.error().to_string().c_str());
    LoadOptions o;
    o.keep_param_registry = true;
    auto m = load_model(kTiny, o);
    ASSERT_TRUE(m);
    const Tensor base = latent(**m);
    auto mf = read(lora_for_missing_layer());
    ASSERT_TRUE(mf);
    auto bad = LivePatch::apply(**m, {lora_adapter(*kohya, 1.0, 1.0), lora_adapter(*mf, 1.0, 1.0)});
    ASSERT_FALSE(bad);
    std::printf("%s\n", bad.error().to_string().c_str());
    EXPECT_NE(bad.error().to_string().find("attn9"), std::string::npos);
    EXPECT_TRUE(same(latent(**m), base));
}
