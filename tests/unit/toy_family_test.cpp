// A family that exists only in this test: a 2-channel latent at 1/4 of the image's size, a conditioner that
// turns a prompt into two numbers, a "diffusion model" that predicts the clean latent outright (its own model
// sampling: x0-prediction, model time = sigma) and a nearest-neighbour autoencoder. It is registered here and
// nowhere else, and runs through the same load_model() and generate() as SD: proof that the driver
// (src/pipeline/generate.cpp) knows no family. Because the model predicts a constant latent, the result is known
// in closed form: Euler's last step lands on the guided prediction uncond + (cond - uncond) * cfg.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "common/compare.h"
#include "pipeline/generate.h"
#include "runtime/ops.h"

using namespace easel;
using easel::testing::compare;

namespace {

constexpr int kChannels = 2;
constexpr int kDownscale = 4;

// Two numbers per prompt, from its length and its first character: the "context" [1, 1, 2].
Tensor prompt_numbers(const std::string& s) {
    Tensor t = Tensor::empty({1, 1, kChannels});
    t.data<float>()[0] = 0.1f * float(s.size());
    t.data<float>()[1] = s.empty() ? -0.5f : float(s[0] - 'a') / 25.0f;
    return t;
}

class ToyConditioner : public Conditioner {
public:
    Result<ConditioningPair> encode(const Ctx&, const PromptRequest& p) const override {
        ConditioningPair r;
        r.cond.context = prompt_numbers(p.prompt);
        r.uncond.context = prompt_numbers(p.negative);
        return r;
    }
};

// Predicts the clean latent: every pixel of channel k is context[n, 0, k]. Counts its calls.
class ToyDiffusion : public DiffusionModel {
public:
    Result<Tensor> predict(const Ctx&, const Tensor& x, float t, const DiffusionInputs& in) const override {
        ++calls;
        if (in.concat || !in.control.empty()) return Error::unsupported("the toy model takes no extra inputs");
        const int64_t N = x.size(0), plane = x.size(2) * x.size(3);
        EXPECT_EQ(in.cond->context.size(0), N);
        Tensor out = Tensor::empty(x.shape());
        for (int64_t n = 0; n < N; ++n)
            for (int64_t k = 0; k < kChannels; ++k)
                for (int64_t i = 0; i < plane; ++i)
                    out.data<float>()[(n * kChannels + k) * plane + i] = in.cond->context.data<float>()[n * kChannels + k];
        last_t = t;
        return out;
    }
    mutable int calls = 0;
    mutable float last_t = -1;
};

// Latent channel 0 -> red, 1 -> green (blue -1), each latent pixel a 4x4 block; encoding averages the blocks.
class ToyAutoencoder : public Autoencoder {
public:
    std::pair<Tensor, Tensor> encode_moments(const Ctx&, const Tensor& image, int) const override {
        const int64_t H = image.size(2), W = image.size(3), h = H / kDownscale, w = W / kDownscale;
        Tensor mean = Tensor::zeros({1, kChannels, h, w});
        Tensor logvar = Tensor::full({1, kChannels, h, w}, -30.0f);
        for (int64_t k = 0; k < kChannels; ++k)
            for (int64_t y = 0; y < H; ++y)
                for (int64_t x = 0; x < W; ++x)
                    mean.data<float>()[(k * h + y / kDownscale) * w + x / kDownscale] +=
                        image.data<float>()[(k * H + y) * W + x] / float(kDownscale * kDownscale);
        return {mean, logvar};
    }
    Tensor decode(const Ctx&, const Tensor& z, int) const override {
        const int64_t h = z.size(2), w = z.size(3), H = h * kDownscale, W = w * kDownscale;
        Tensor img = Tensor::full({1, 3, H, W}, -1.0f);
        for (int64_t k = 0; k < kChannels; ++k)
            for (int64_t y = 0; y < H; ++y)
                for (int64_t x = 0; x < W; ++x)
                    img.data<float>()[(k * H + y) * W + x] = z.data<float>()[(k * h + y / kDownscale) * w + x / kDownscale];
        return img;
    }
    bool has_encoder() const override { return true; }
};

// x0-prediction; model time = sigma; sigmas 8 .. 0.1 geometric, then 0.
class ToySampling : public ModelSampling {
public:
    float input_scale(float) const override { return 1.0f; }
    float timestep(float sigma) const override { return sigma; }
    Tensor denoised(const Tensor&, const Tensor& out, float) const override { return out; }
    Tensor noise_latent(const Ctx& c, const Tensor& latent, const Tensor& noise, float sigma) const override {
        return ops::add(c, latent, ops::scale(c, noise, sigma));
    }
    Tensor pure_noise(const Tensor& noise, float sigma) const override { return scaled(noise, sigma); }
    Result<std::vector<float>> sigmas(ScheduleKind kind, int steps) const override {
        if (kind != ScheduleKind::Default) return Error::unsupported("the toy family has one schedule");
        std::vector<float> s;
        for (int i = 0; i < steps; ++i) s.push_back(8.0f * std::pow(0.1f / 8.0f, float(i) / float(std::max(1, steps - 1))));
        s.push_back(0.0f);
        return s;
    }
    Prediction prediction() const override { return Prediction::Epsilon; }
    float schedule_fraction(float sigma) const override { return std::clamp(1.0f - sigma / 8.0f, 0.0f, 1.0f); }
    double percent_to_sigma(double percent) const override { return 8.0 * (1.0 - std::clamp(percent, 0.0, 1.0)); }
};

struct ToyModel : Model {
    ToyConditioner conditioner_;
    ToyDiffusion diffusion_;
    ToyAutoencoder autoencoder_;
    bool conditioner_released = false, diffusion_released = false;
    const Conditioner& conditioner() const override { return conditioner_; }
    const DiffusionModel& diffusion_model() const override { return diffusion_; }
    const Autoencoder& autoencoder() const override { return autoencoder_; }
    void release_conditioner() override { conditioner_released = true; }
    void release_diffusion_model() override { diffusion_released = true; }
};

void register_toy_family() {
    static bool done = [] {
        Family f;
        f.name = "toy";
        f.claim = [](const std::string& path) -> Result<Family::Claim> {
            Family::Claim c;
            c.mine = path.size() > 4 && path.compare(path.size() - 4, 4, ".toy") == 0;
            return c;
        };
        auto spec = [](const std::string& path, ModelSpec& m) {
            m.path = path;
            m.name = "toy";
            m.family = "toy";
            m.latent = {.channels = kChannels, .scaling_factor = 0.5f, .shift_factor = 0.25f, .downscale = kDownscale,
                        .side_multiple = 2, .native_side = 8};
            m.sampling = std::make_shared<ToySampling>();
            m.has_vae_encoder = true;
        };
        f.load = [spec](const std::string& path, const LoadOptions&) -> Result<std::unique_ptr<Model>> {
            auto m = std::make_unique<ToyModel>();
            spec(path, *m);
            return std::unique_ptr<Model>(std::move(m));
        };
        f.load_spec = [spec](const std::string& path, const LoadOptions&) -> Result<ModelSpec> {
            ModelSpec m;
            spec(path, m);
            return m;
        };
        register_family(std::move(f));
        return true;
    }();
    (void)done;
}

std::unique_ptr<Model> load_toy() {
    register_toy_family();
    auto m = load_model("anything.toy", LoadOptions{});
    EASEL_ASSERT(m.has_value(), m ? "" : m.error().to_string());
    return std::move(m).value();
}

GenerateParams toy_params() {
    GenerateParams p;
    p.prompt = "kite";
    p.negative_prompt = "";
    p.width = 32;
    p.height = 24;
    p.steps = 5;
    p.cfg_scale = 3.0;
    p.sampler = SamplerKind::Euler;
    p.seed = 7;
    return p;
}

// The latent Euler lands on: the guided prediction in each channel, every pixel.
Tensor expected_latent(const GenerateParams& p, int h, int w) {
    const Tensor c = prompt_numbers(p.prompt), u = prompt_numbers(p.negative_prompt);
    Tensor e = Tensor::empty({1, kChannels, h, w});
    for (int64_t k = 0; k < kChannels; ++k) {
        const float du = u.data<float>()[k], dc = c.data<float>()[k];
        const float v = du + (dc - du) * float(p.cfg_scale);
        for (int64_t i = 0; i < int64_t(h) * w; ++i) e.data<float>()[k * h * w + i] = v;
    }
    return e;
}

}  // namespace

TEST(ToyFamily, IsLoadedThroughTheRegistry) {
    auto m = load_toy();
    EXPECT_EQ(m->family, "toy");
    EXPECT_NE(dynamic_cast<ToyModel*>(m.get()), nullptr);
    auto spec = load_model_spec("other.toy", LoadOptions{});
    ASSERT_TRUE(spec.has_value()) << spec.error().to_string();
    EXPECT_EQ(spec->latent.image_multiple(), 8);
    // A path no family claims: one clear error, not a crash.
    auto none = load_model(std::string(EASEL_TEST_DATA_DIR) + "/no-such-model.safetensors", LoadOptions{});
    ASSERT_FALSE(none.has_value());
    std::printf("no such model: %s\n", none.error().to_string().c_str());
}

TEST(ToyFamily, Txt2ImgRunsThroughTheSameDriver) {
    auto m = load_toy();
    const GenerateParams p = toy_params();
    auto r = generate(*m, p);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    ASSERT_EQ(r->size(), 1u);
    const GeneratedImage& g = (*r)[0];
    ASSERT_EQ(g.latent.shape(), Shape({1, kChannels, 6, 8}));
    // Measured: max_abs 1.2e-7 (one rounding of the last Euler step).
    auto rep = compare(g.latent, expected_latent(p, 6, 8), {.atol = 1e-5, .rtol = 1e-5});
    std::printf("toy txt2img latent vs closed form: %s\n", rep.summary().c_str());
    EXPECT_TRUE(rep.passed()) << rep.summary();
    // Batched CFG: one model call per step with a batch of 2.
    EXPECT_EQ(static_cast<const ToyDiffusion&>(m->diffusion_model()).calls, p.steps);
    EXPECT_FLOAT_EQ(static_cast<const ToyDiffusion&>(m->diffusion_model()).last_t, 0.1f);  // model time = sigma
    // The image: the latent's autoencoder units (latent / 0.5 + 0.25) in red and green, 4x4 blocks.
    ASSERT_EQ(g.image.width, 32);
    ASSERT_EQ(g.image.height, 24);
    const float red = expected_latent(p, 1, 1).data<float>()[0] / 0.5f + 0.25f;
    const int red_u8 = int(std::nearbyint(std::clamp(red / 2.0f + 0.5f, 0.0f, 1.0f) * 255.0f));
    EXPECT_NEAR(g.image.pixels[0], red_u8, 1);
    EXPECT_EQ(g.image.pixels[2], 0);  // blue: -1
    EXPECT_NE(g.infotext.find("Model: toy"), std::string::npos) << g.infotext;
}

TEST(ToyFamily, Img2ImgAndOneShotUseTheFamilysHooks) {
    auto m = load_toy();
    GenerateParams p = toy_params();
    p.init_image = Image{p.width, p.height, 3, std::vector<uint8_t>(size_t(p.width * p.height * 3), 200)};
    p.denoising_strength = 0.6;
    p.cfg_scale = 1.0;  // one conditional call per step
    auto r = generate_once(*m, p);
    ASSERT_TRUE(r.has_value()) << r.error().to_string();
    auto rep = compare((*r)[0].latent, expected_latent(p, 6, 8), {.atol = 1e-5, .rtol = 1e-5});
    std::printf("toy img2img latent vs closed form: %s\n", rep.summary().c_str());
    EXPECT_TRUE(rep.passed()) << rep.summary();
    auto* toy = dynamic_cast<ToyModel*>(m.get());
    EXPECT_TRUE(toy->conditioner_released);
    EXPECT_TRUE(toy->diffusion_released);
    // A1111 (img2img_fix_steps off): strength 0.6 of 5 steps runs t_enc + 1 = int(0.6 * 5) + 1 = 4 steps.
    EXPECT_EQ(toy->diffusion_.calls, 4);
    EXPECT_TRUE(m->spent);
}

TEST(ToyFamily, SizesFollowTheFamilysLatentFormat) {
    auto m = load_toy();
    GenerateParams p = toy_params();
    p.width = 36;  // not a multiple of 4 * 2
    auto r = generate(*m, p);
    ASSERT_FALSE(r.has_value());
    const std::string msg = r.error().to_string();
    std::printf("36 wide: %s\n", msg.c_str());
    EXPECT_NE(msg.find("multiple of 8"), std::string::npos) << msg;
    EXPECT_NE(msg.find("width"), std::string::npos) << msg;
}
