// Batches sampled together (GenerateParams::batch_size): every model call takes the group's images at once, and each
// image must still be the one its seed gives alone, as AUTOMATIC1111 (ImageRNG) and diffusers (a generator per
// image) make it. Each case runs a batch of 3 and the same request three times with batch 1 and seeds seed, seed+1,
// seed+2, on the tiny random models the goldens use, and compares latents and pixels.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/golden_case.h"
#include "io/image.h"
#include "pipeline/controlnet.h"
#include "pipeline/generate.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/model.h"

using namespace easel;

namespace {

const std::string kData = std::string(EASEL_GOLDEN_DIR) + "/";

const Model& model(const std::string& folder) {
    static std::map<std::string, std::unique_ptr<Model>> models;
    auto& m = models[folder];
    if (!m) {
        auto r = load_model(kData + folder, LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        m = std::move(r).value();
    }
    return *m;
}

Image read(const std::string& rel) {
    auto r = read_image(kData + rel);
    EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
    return *r;
}

GenerateParams base(int side) {
    GenerateParams p;
    p.prompt = "a red circle on a blue background";
    p.negative_prompt = "blurry";
    p.width = p.height = side;
    p.steps = 4;
    p.cfg_scale = 5.0;
    p.seed = 1234;
    return p;
}

// How far a batched latent may stray from its image alone. A model call computes each item of a batch as it
// computes a batch of one (the same kernels, the same summation order per output), so the bound is 0; the
// printed figure says which it was.
constexpr float kLatentTolerance = 0.0f;

struct Events {
    std::vector<ProgressEvent> sampling;
};

void expect_batch_is_images_alone(const Model& m, GenerateParams p, const std::string& label, int n = 3) {
    p.batch_size = n;
    Events ev;
    auto batched = generate(m, p, [&](const ProgressEvent& e) -> Status {
        if (e.phase == "sampling") {
            ev.sampling.push_back(e);
            if (e.latent) {
                EXPECT_EQ(e.latent->size(0), n) << label << ": the latent of the images sampled together";
            }
        }
        return ok();
    });
    ASSERT_TRUE(batched) << label << ": " << batched.error().to_string();
    ASSERT_EQ(int(batched->size()), n) << label;
    // The group was sampled together: every sampling event names image 0 and the whole batch.
    ASSERT_FALSE(ev.sampling.empty()) << label;
    for (const ProgressEvent& e : ev.sampling) {
        EXPECT_EQ(e.image, 0) << label;
        EXPECT_EQ(e.batch, n) << label;
    }
    const int64_t seed = p.seed;
    for (int i = 0; i < n; ++i) {
        GenerateParams q = p;
        q.batch_size = 1;
        q.seed = seed + i;
        const GeneratedImage& b = (*batched)[size_t(i)];
        auto alone = generate(m, q);
        ASSERT_TRUE(alone) << label << ": " << alone.error().to_string();
        const GeneratedImage& a = (*alone)[0];
        EXPECT_EQ(b.seed, seed + i) << label;
        ASSERT_EQ(b.latent.shape(), a.latent.shape()) << label;
        const Tensor bl = b.latent.contiguous(), al = a.latent.contiguous();
        float worst = 0.0f, scale = 0.0f;
        for (int64_t k = 0; k < al.numel(); ++k) {
            worst = std::max(worst, std::fabs(bl.data<float>()[k] - al.data<float>()[k]));
            scale = std::max(scale, std::fabs(al.data<float>()[k]));
        }
        int pixel = 0;
        ASSERT_EQ(b.image.pixels.size(), a.image.pixels.size()) << label;
        for (size_t k = 0; k < a.image.pixels.size(); ++k)
            pixel = std::max(pixel, std::abs(int(b.image.pixels[k]) - int(a.image.pixels[k])));
        std::printf("%s, image %d of %d: latent max |batched - alone| %.3g (latent max |x| %.3g), pixels %d\n",
                    label.c_str(), i, n, double(worst), double(scale), pixel);
        EXPECT_LE(worst, kLatentTolerance) << label << " image " << i;
        EXPECT_EQ(pixel, 0) << label << " image " << i;
        EXPECT_EQ(b.infotext, a.infotext) << label << " image " << i;
    }
}

}  // namespace

TEST(Batch, Txt2ImgKDiffusionSamplers) {
    const Model& m = model("pipeline_sd1");
    for (SamplerKind k : {SamplerKind::EulerAncestral, SamplerKind::DpmPP2MSde, SamplerKind::Heun, SamplerKind::Lms}) {
        GenerateParams p = base(32);
        p.sampler = k;
        expect_batch_is_images_alone(m, p, std::string("sd1 txt2img ") + sampler_name(k));
    }
}

TEST(Batch, Txt2ImgPhiloxAndCfgOne) {
    GenerateParams p = base(32);
    p.rng = RngKind::Cuda;
    expect_batch_is_images_alone(model("pipeline_sd1"), p, "sd1 txt2img philox");
    p = base(32);
    p.cfg_scale = 1.0;  // the conditional half alone
    expect_batch_is_images_alone(model("pipeline_sd1"), p, "sd1 txt2img cfg 1");
}

TEST(Batch, DiffusersSchedulers) {
    for (DiffusersScheduler k : {DiffusersScheduler::EulerAncestral, DiffusersScheduler::DpmSolverMultistep,
                                 DiffusersScheduler::UniPC}) {
        GenerateParams p = base(32);
        p.schedule_from = ScheduleFrom::Diffusers;
        p.diffusers_scheduler = k;
        expect_batch_is_images_alone(model("pipeline_sd1"), p, "sd1 diffusers " + sampler_display_name(k));
    }
}

TEST(Batch, Img2ImgAndInpainting) {
    const Image init = read("controlnet/more_init_sd1.png");
    const Image mask = read("controlnet/more_mask_sd1.png");
    GenerateParams p = base(init.width);
    p.height = init.height;
    p.init_image = init;
    p.denoising_strength = 0.6;
    expect_batch_is_images_alone(model("pipeline_sd1"), p, "sd1 img2img");
    p.mask = mask;  // A1111's latent blend in the denoiser
    p.masked_content = MaskedContent::LatentNoise;
    expect_batch_is_images_alone(model("pipeline_sd1"), p, "sd1 inpaint, latent noise");
    p.masked_content = MaskedContent::Original;
    expect_batch_is_images_alone(model("pipeline_sd1_inpaint"), p, "sd1 9-channel inpaint");
    p.schedule_from = ScheduleFrom::Diffusers;  // the blend after each step
    expect_batch_is_images_alone(model("pipeline_sd1"), p, "sd1 diffusers inpaint");
    expect_batch_is_images_alone(model("pipeline_sd1_inpaint"), p, "sd1 diffusers 9-channel inpaint");
}

TEST(Batch, ControlNetAndIPAdapter) {
    const Model& m = model("pipeline_sd1");
    auto net = load_controlnet(kData + "controlnet/sd1_a", m.info, Precision::F32);
    ASSERT_TRUE(net) << net.error().to_string();
    GenerateParams p = base(32);
    p.control.push_back({.net = *net, .image = read("controlnet/control_a.png"), .scale = 0.8, .start = 0.0, .end = 0.7,
                         .mode = ControlMode::ControlNetMoreImportant});
    expect_batch_is_images_alone(m, p, "sd1 ControlNet (guess mode)");
    auto enc = load_image_encoder(kData + "ip_adapter/image_encoder", Precision::F32);
    auto adapter = load_ip_adapter(kData + "ip_adapter/sd1_plain.safetensors", m.info, Precision::F32);
    ASSERT_TRUE(enc && adapter);
    p.control.clear();
    p.ip_adapters.push_back({.adapter = *adapter, .encoder = *enc, .images = {read("ip_adapter/ip_ref_a.png")},
                             .scale = 0.7, .start = 0.25, .end = 1.0});
    expect_batch_is_images_alone(m, p, "sd1 IP-Adapter");
}

TEST(Batch, OtherFamilies) {
    GenerateParams p = base(64);
    expect_batch_is_images_alone(model("pipeline_sdxl"), p, "sdxl");
    p.refiner = &model("pipeline_sdxl_refiner");  // A1111's switch inside the sampling loop
    p.refiner_switch_at = 0.5;
    expect_batch_is_images_alone(model("pipeline_sdxl"), p, "sdxl with its refiner from 0.5");
    p = base(32);
    p.sampler = SamplerKind::Euler;
    expect_batch_is_images_alone(model("pipeline_sd3"), p, "sd3");
    p.cfg_scale = 1.0;
    expect_batch_is_images_alone(model("pipeline_flux"), p, "flux dev");
}

// batch_count continues the seeds, and a group never takes images of two batches.
TEST(Batch, BatchCountContinuesSeeds) {
    GenerateParams p = base(32);
    p.batch_size = 2;
    p.batch_count = 2;
    std::vector<std::pair<int, int>> groups;
    auto out = generate(model("pipeline_sd1"), p, [&](const ProgressEvent& e) -> Status {
        if (e.phase == "sampling" && e.step == 0) groups.emplace_back(e.image, e.batch);
        return ok();
    });
    ASSERT_TRUE(out) << out.error().to_string();
    ASSERT_EQ(out->size(), 4u);
    EXPECT_EQ(groups, (std::vector<std::pair<int, int>>{{0, 2}, {2, 2}}));
    for (int i = 0; i < 4; ++i) {
        GenerateParams q = base(32);
        q.seed = p.seed + i;
        auto alone = generate(model("pipeline_sd1"), q);
        ASSERT_TRUE(alone) << alone.error().to_string();
        EXPECT_EQ((*out)[size_t(i)].image.pixels, (*alone)[0].image.pixels) << "image " << i;
    }
}

// The activation budget: up to 4 x 64 x 64 latent pixels per call, so a batch of 5 with a 64x64 latent (SD 1.5 at
// 512x512) goes as 4 + 1, and with a 32x32 latent all 5 together.
TEST(Batch, GroupsFollowTheLatentBudget) {
    const Model& m = model("pipeline_sd1");
    const int f = m.latent.downscale;  // 2 for the tiny model
    for (auto [side, expected] : {std::pair{64 * f, std::vector<std::pair<int, int>>{{0, 4}, {4, 1}}},
                                  std::pair{32 * f, std::vector<std::pair<int, int>>{{0, 5}}}}) {
        GenerateParams p = base(side);
        p.steps = 1;
        p.batch_size = 5;
        p.decode = false;
        std::vector<std::pair<int, int>> groups;
        auto out = generate(m, p, [&](const ProgressEvent& e) -> Status {
            if (e.phase == "sampling" && e.step == 0) groups.emplace_back(e.image, e.batch);
            return ok();
        });
        ASSERT_TRUE(out) << out.error().to_string();
        EXPECT_EQ(out->size(), 5u);
        EXPECT_EQ(groups, expected) << side;
    }
}
