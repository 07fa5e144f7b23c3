// CLIP text encoders layer by layer, without the final LayerNorm, and their pooled output (with the projection
// of CLIPTextModelWithProjection), against transformers 4.40.2 (torch 2.4.1) on two tiny random-weight models:
// "l" (quick_gelu, legacy argmax pooling) and "g" (gelu, projection, pooling at the first eos_token_id, with a
// larger id before it so the two rules differ). Golden: tools/reference/make_clip_layer_goldens.py.
// Also: weight adapters (runtime/param.h) applied before packing give exactly the model built from the changed
// weights.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include <fmt/format.h>

#include "common/golden.h"
#include "models/clip/text_encoder.h"

using namespace easel;
using easel::testing::compare;
using easel::testing::golden_file;
using easel::testing::golden_tensor;

namespace {

const WeightSet& golden() { return golden_file("clip_layers_tiny.safetensors"); }

CLIPTextConfig config_of(const std::string& m) {
    auto cfg = CLIPTextConfig::from_diffusers_json(golden().metadata.at(m + ".config"));
    EASEL_ASSERT(cfg.has_value(), cfg ? "" : cfg.error().to_string());
    CLIPTextConfig c = *cfg;
    c.has_projection = golden().contains(m + ".text_encoder.text_projection.weight");
    return c;
}

std::vector<std::vector<int32_t>> ids_of(const std::string& m) {
    const Tensor t = golden().find(m + ".input_ids")->to(DType::I32).contiguous();
    std::vector<std::vector<int32_t>> ids(size_t(t.size(0)));
    for (int64_t n = 0; n < t.size(0); ++n)
        ids[size_t(n)].assign(t.data<int32_t>() + n * t.size(1), t.data<int32_t>() + (n + 1) * t.size(1));
    return ids;
}

// fp32 through at most 4 layers of width 48: measured max_abs up to ~1e-6 against torch (see the printed lines).
constexpr easel::testing::Tolerance kTol{.atol = 1e-5, .rtol = 1e-4};

void expect_close(const Tensor& got, const std::string& name) {
    easel::testing::expect_close(got, golden_tensor(golden(), name), kTol, name);
}

class ClipLayers : public ::testing::TestWithParam<std::string> {};

TEST_P(ClipLayers, EveryLayerFinalNormAndPooledMatchTransformers) {
    const std::string m = GetParam();
    const CLIPTextConfig cfg = config_of(m);
    ParamLoader loader(golden(), Precision::F32);
    CLIPTextEncoder te = CLIPTextEncoder::declare(ParamScope(loader, m + ".text_encoder"), cfg);
    ASSERT_TRUE(loader.finish(m + ".text_encoder.")) << loader.finish().error().to_string();
    BufferPool pool;
    Ctx c{&pool};
    const auto ids = ids_of(m);
    // clip_skip k without the final norm = transformers' hidden_states[num_layers - (k - 1)].
    for (int k = 1; k <= cfg.num_layers; ++k) {
        auto o = te.encode(c, ids, {.clip_skip = k, .final_norm = false});
        expect_close(o.hidden, fmt::format("{}.hidden_states.{}", m, cfg.num_layers - (k - 1)));
        EXPECT_FALSE(o.pooled.has_value());
    }
    auto last = te.encode(c, ids, {.clip_skip = 1, .final_norm = true, .pooled = true});
    expect_close(last.hidden, m + ".last_hidden_state");
    ASSERT_TRUE(last.pooled.has_value());
    expect_close(*last.pooled, cfg.has_projection ? m + ".text_embeds" : m + ".pooler_output");
    // The pooled output does not depend on the layer chosen for the hidden states.
    auto penultimate = te.encode(c, ids, {.clip_skip = 2, .final_norm = false, .pooled = true});
    expect_close(penultimate.hidden, fmt::format("{}.hidden_states.{}", m, cfg.num_layers - 1));
    auto same = compare(*penultimate.pooled, *last.pooled, {.atol = 0, .rtol = 0});
    EXPECT_TRUE(same.passed()) << same.summary();
    // The older call is the same as final_norm with no pooling.
    auto old = compare(te.encode(c, ids, 1), last.hidden, {.atol = 0, .rtol = 0});
    EXPECT_TRUE(old.passed()) << old.summary();
}

INSTANTIATE_TEST_SUITE_P(Tiny, ClipLayers, ::testing::Values("l", "g"));

// Doubles one weight, adds 0.5 to one bias.
class TestAdapter : public WeightAdapter {
public:
    TestAdapter(std::string w, std::string b, std::vector<std::string> extra = {})
        : w_(std::move(w)), b_(std::move(b)), extra_(std::move(extra)) {}
    std::string identity() const override { return "test x2 " + w_; }
    bool touches(const std::string& n) const override { return n == w_ || n == b_; }
    Status apply(const std::string& n, Tensor& t) const override {
        for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n == w_ ? t.data<float>()[i] * 2.0f : t.data<float>()[i] + 0.5f;
        return ok();
    }
    std::vector<std::string> targets() const override {
        std::vector<std::string> t{w_};
        if (!b_.empty()) t.push_back(b_);
        t.insert(t.end(), extra_.begin(), extra_.end());
        return t;
    }

private:
    std::string w_, b_;
    std::vector<std::string> extra_;
};

TEST(WeightAdapter, AppliedBeforePackingEqualsChangedWeights) {
    const std::string w = "l.text_encoder.text_model.encoder.layers.1.mlp.fc1.weight";  // packed (Linear)
    const std::string b = "l.text_encoder.text_model.final_layer_norm.bias";            // f32 (take_f32)
    const CLIPTextConfig cfg = config_of("l");
    BufferPool pool;
    Ctx c{&pool};
    const auto ids = ids_of("l");
    for (Precision prec : {Precision::F32, Precision::BF16}) {
        ParamLoader adapted(golden(), prec);
        adapted.add_adapter(std::make_shared<TestAdapter>(w, b));
        CLIPTextEncoder a = CLIPTextEncoder::declare(ParamScope(adapted, "l.text_encoder"), cfg);
        ASSERT_TRUE(adapted.finish());
        ASSERT_TRUE(adapted.check_adapters_used());

        WeightSet changed;
        for (const std::string& n : golden().names()) {
            Tensor t = golden().find(n)->contiguous().clone();
            if (n == w || n == b)
                for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n == w ? t.data<float>()[i] * 2.0f : t.data<float>()[i] + 0.5f;
            ASSERT_TRUE(changed.add(n, t));
        }
        ParamLoader plain(changed, prec);
        CLIPTextEncoder e = CLIPTextEncoder::declare(ParamScope(plain, "l.text_encoder"), cfg);
        ASSERT_TRUE(plain.finish());
        auto r = compare(a.encode(c, ids, 1), e.encode(c, ids, 1), {.atol = 0, .rtol = 0});
        std::printf("adapter vs changed weights (%s): %s\n", precision_name(prec).data(), r.summary().c_str());
        EXPECT_TRUE(r.passed()) << r.summary();
        // And it did change something.
        ParamLoader original(golden(), prec);
        CLIPTextEncoder o = CLIPTextEncoder::declare(ParamScope(original, "l.text_encoder"), cfg);
        EXPECT_FALSE(compare(a.encode(c, ids, 1), o.encode(c, ids, 1), {.atol = 1e-3, .rtol = 0}).passed());
    }
}

TEST(WeightAdapter, TargetsTheModelLacksAreAnError) {
    ParamLoader loader(golden(), Precision::F32);
    loader.add_adapter(std::make_shared<TestAdapter>("l.text_encoder.text_model.encoder.layers.0.mlp.fc1.weight", "",
                                                     std::vector<std::string>{"l.text_encoder.text_model.encoder.layers.9.mlp.fc1.weight"}));
    (void)CLIPTextEncoder::declare(ParamScope(loader, "l.text_encoder"), config_of("l"));
    ASSERT_TRUE(loader.finish());
    Status st = loader.check_adapters_used();
    ASSERT_FALSE(st);
    std::printf("%s\n", st.error().to_string().c_str());
    EXPECT_NE(st.error().to_string().find("layers.9.mlp.fc1.weight"), std::string::npos);
}

}  // namespace
