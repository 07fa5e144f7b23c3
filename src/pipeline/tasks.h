// What a request does besides plain txt2img, as hooks the driver (generate.cpp) calls without knowing which
// task it runs: img2img's start from the init image, AUTOMATIC1111's inpainting (latent blend in the denoiser,
// blurred mask, paste-back), diffusers' StableDiffusionInpaintPipeline (blend after each step) and the extra
// input channels of inpainting models (ModelSpec::inpainting). Also the request's sigma plan (k-diffusion or
// diffusers schedules, with img2img's strength applied).
//
//   EASEL_TRY_ASSIGN(SigmaPlan plan, plan_sigmas(m, p));
//   EASEL_TRY_ASSIGN(auto task, make_image_task(c, m, p, plan));
//   EASEL_TRY_ASSIGN(ImageStart s, task->start(c, noise));   // per image, drawing noise in the reference's order
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "pipeline/generate.h"
#include "pipeline/guidance.h"
#include "pipeline/infotext.h"

namespace easel {

struct SigmaPlan {
    std::vector<float> sigmas;  // what the sampler runs (steps + 1 values, img2img: the last part)
    bool diffusers = false;     // diffusers mode: `plan` drives the sampler and gives the timesteps
    DiffusersPlan plan;
};
Result<SigmaPlan> plan_sigmas(const Model& m, const GenerateParams& p);
// How many of `steps` an img2img run at `strength` takes in diffusers mode (the pipeline's get_timesteps).
int diffusers_img2img_steps(const ModelSpec& m, int steps, double strength);

// One image's start: the initial x and the hooks for its sampling.
struct ImageStart {
    Tensor x;            // [1, C, h, w]
    DenoiserHooks hooks;
    // After each sampler step (step 1..total) with the sampler's own x (changes carry into the next step).
    std::function<void(int step, int total, const Tensor& x)> after_step;
    // On the final latent; `completed` is false when a stop request cut sampling short.
    std::function<void(Tensor& x0, bool completed)> after_sampling;
};

// Images sampled together (one model call for all of them): their starts as one, x and the extra model input
// stacked in order, each hook applied to its own image's item. One start is returned as it is.
ImageStart stack_starts(const Ctx& c, std::vector<ImageStart> starts);

class ImageTask {
public:
    virtual ~ImageTask() = default;
    // Draws from `noise` what the reference draws before sampling, in its order.
    virtual Result<ImageStart> start(const Ctx& c, NoiseSource& noise) const = 0;
    // On the decoded picture (A1111's paste-back of what was not repainted).
    virtual void after_decode(Image& image) const = 0;
    // The task's infotext fields (denoising strength, mask blur).
    virtual void describe(InfotextParams& ip) const = 0;
};
Result<std::unique_ptr<ImageTask>> make_image_task(const Ctx& c, const Model& m, const GenerateParams& p,
                                                   const SigmaPlan& plan);

// Latent <-> autoencoder units (LatentFormat's scaling and shift): model = (z - shift) * scaling.
Tensor to_autoencoder_units(const LatentFormat& f, const Tensor& latent);

}  // namespace easel
