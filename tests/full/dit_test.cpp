// SD3 medium's transformer at its real size (24 blocks of 24 heads x 64, the 192 x 192 position grid: 2.03 B
// parameters) and FLUX.1-dev's at its real widths with 2 double and 2 single blocks (every block Flux's, fewer of
// them: the whole 12 B model does not fit this machine), against diffusers 0.30.3 in fp32
// (tools/reference/make_fullsize_dit_goldens.py). The weights are not shipped: each tensor is a pure function of its
// index in the published key list (tests/data/keys/sd3_medium_transformer / flux1_dev_transformer) and torch's CPU
// generator (random_checkpoint_weight, the full-size SDXL rule), rounded to fp16; SD3's position grid is diffusers'
// sin-cos buffer, computed here. `make test-full`: about 8 GB of memory each, a few minutes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/random_checkpoint.h"
#include "io/keymap_key_list.h"
#include "models/flux/flux.h"
#include "models/mmdit/mmdit.h"

using namespace easel;
using easel::testing::expect_close;
using easel::testing::golden_file;
using easel::testing::golden_tensor;

namespace {

const std::string kKeys = std::string(EASEL_TEST_DATA_DIR) + "/keys/";
const WeightSet& cases() { return golden_file("fullsize_dit_cases.safetensors"); }

// fp32 through 24 full-size joint blocks (or 2 + 2 Flux blocks) against torch: the full-size SD bounds.
constexpr easel::testing::Tolerance kTol{.atol = 2e-3, .rtol = 2e-4};

// diffusers get_2d_sincos_pos_embed(width, 192, base_size = 64, interpolation_scale 1), as fp16: the
// first half of each vector from the column coordinate, the second from the row, each [sin | cos] over
// omega_k = 1 / 10000^(k / (width / 4)).
Tensor sd3_position_grid(int64_t grid, int64_t width, int64_t base_size) {
    Tensor t = Tensor::empty({1, grid * grid, width}, DType::F32);
    float* p = t.data<float>();
    const int64_t quarter = width / 4;
    for (int64_t r = 0; r < grid; ++r)
        for (int64_t c = 0; c < grid; ++c) {
            float* v = p + (r * grid + c) * width;
            // numpy: np.arange(grid, dtype=float32) / (grid / base_size) stays float32; the angles are float64.
            const float step = float(double(grid) / double(base_size));
            const double coord[2] = {double(float(c) / step), double(float(r) / step)};
            for (int half = 0; half < 2; ++half)
                for (int64_t k = 0; k < quarter; ++k) {
                    const double omega = 1.0 / std::pow(10000.0, double(k) / double(quarter));
                    v[half * 2 * quarter + k] = float(std::sin(coord[half] * omega));
                    v[half * 2 * quarter + quarter + k] = float(std::cos(coord[half] * omega));
                }
        }
    return t.to(DType::F16);
}

// The key list's tensors (all, or those `keep` says) under "transformer.", each the index rule's weight.
WeightSet rebuild(const std::string& list, const std::function<bool(const std::string&)>& keep) {
    auto keys = read_key_list_file(kKeys + list + ".json.gz");
    EASEL_ASSERT(keys.has_value(), keys ? "" : keys.error().to_string());
    WeightSet w;
    for (size_t i = 0; i < keys->names().size(); ++i) {
        const std::string& name = keys->names()[i];
        if (!keep(name)) continue;
        const Shape& shape = keys->find(name)->shape();
        Tensor t = name == "pos_embed.pos_embed" ? sd3_position_grid(192, shape.dim(2), 64)
                                                 : easel::testing::random_checkpoint_weight(i, name, shape);
        EASEL_ASSERT(w.add("transformer." + name, std::move(t)), "duplicate name");
    }
    return w;
}

Tensor f32(const Tensor& t) { return t.to(DType::F32).contiguous(); }

std::vector<std::array<float, 3>> id_rows(const Tensor& t) {
    const Tensor f = f32(t);
    std::vector<std::array<float, 3>> r(size_t(f.size(1)));
    for (size_t i = 0; i < r.size(); ++i)
        for (size_t a = 0; a < 3; ++a) r[i][a] = f.data<float>()[i * 3 + a];
    return r;
}

}  // namespace

TEST(FullSizeDiT, SD3MediumTransformerMatchesDiffusers) {
    const WeightSet w = rebuild("sd3_medium_transformer", [](const std::string&) { return true; });
    auto cfg = MMDiTConfig::detect_from_weights(w, "transformer.");
    ASSERT_TRUE(cfg) << cfg.error().to_string();
    const nlohmann::json want = nlohmann::json::parse(cases().metadata.at("sd3_medium.config"));
    EXPECT_EQ(cfg->num_layers, want["num_layers"]);
    EXPECT_EQ(cfg->pos_embed_max_size, want["pos_embed_max_size"]);
    ParamLoader loader(w, Precision::F32);
    const MMDiT dit = MMDiT::declare(ParamScope(loader, "transformer"), *cfg);
    ASSERT_TRUE(loader.finish("transformer."));
    BufferPool pool;
    Ctx c{&pool};
    const Tensor ctx = f32(golden_tensor(cases(), "sd3.context")), pooled = golden_tensor(cases(), "sd3.pooled");
    for (auto [latent, name] : {std::pair{"sd3.latent_sq", "sd3.sq_t1000"}, std::pair{"sd3.latent_sq", "sd3.sq_t400"},
                                std::pair{"sd3.latent_wide", "sd3.wide_t700"}}) {
        const float t = golden_tensor(cases(), std::string(name) + ".timestep").data<float>()[0];
        expect_close(dit.forward(c, golden_tensor(cases(), latent), t, ctx, pooled), golden_tensor(cases(), std::string(name) + ".out"),
                     kTol, fmt::format("full-size SD3 medium, {}", name));
    }
}

TEST(FullSizeDiT, FluxDevBlocksAtFullWidthMatchDiffusers) {
    auto keep = [](const std::string& n) {
        for (const char* blocks : {"transformer_blocks.", "single_transformer_blocks."})
            if (n.rfind(blocks, 0) == 0) {
                const int b = std::stoi(n.substr(std::string(blocks).size()));
                return b < 2;
            }
        return true;
    };
    const WeightSet w = rebuild("flux1_dev_transformer", keep);
    auto cfg = FluxConfig::detect_from_weights(w, "transformer.");
    ASSERT_TRUE(cfg) << cfg.error().to_string();
    EXPECT_EQ(cfg->num_layers, 2);
    EXPECT_EQ(cfg->num_single_layers, 2);
    EXPECT_EQ(cfg->inner_dim(), 3072);
    ParamLoader loader(w, Precision::F32);
    const FluxTransformer f = FluxTransformer::declare(ParamScope(loader, "transformer"), *cfg);
    ASSERT_TRUE(loader.finish("transformer."));
    BufferPool pool;
    Ctx c{&pool};
    const Tensor x = golden_tensor(cases(), "flux.hidden_states");
    const Tensor ctx = f32(golden_tensor(cases(), "flux.encoder_hidden_states")), pooled = golden_tensor(cases(), "flux.pooled_projections");
    const auto img = id_rows(golden_tensor(cases(), "flux.img_ids")), txt = id_rows(golden_tensor(cases(), "flux.txt_ids"));
    for (const char* call : {"flux.t1000", "flux.t400"}) {
        const float t = golden_tensor(cases(), std::string(call) + ".timestep").data<float>()[0] * 1000.0f;
        const float g = golden_tensor(cases(), std::string(call) + ".guidance").data<float>()[0];
        expect_close(f.forward(c, x, t, g, ctx, pooled, img, txt), golden_tensor(cases(), std::string(call) + ".out"), kTol,
                     fmt::format("full-width Flux dev, {}", call));
    }
}
