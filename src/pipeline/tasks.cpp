#include "pipeline/tasks.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include <fmt/format.h>

#include "pipeline/mask.h"
#include "pipeline/model.h"
#include "runtime/ops.h"
#include "sampling/noise.h"

namespace easel {

int diffusers_img2img_steps(const ModelSpec& m, int steps, double strength) {
    // StableDiffusion3Img2ImgPipeline.get_timesteps: t_start = int(max(steps - steps * strength, 0)) (no int()
    // around steps * strength, unlike StableDiffusionImg2ImgPipeline's).
    if (m.sampling && m.sampling->flow_shift())
        return steps - int(std::max(double(steps) - double(steps) * strength, 0.0));
    return std::min(int(double(steps) * strength), steps);
}

Result<SigmaPlan> plan_sigmas(const Model& m, const GenerateParams& p) {
    SigmaPlan s;
    s.diffusers = p.schedule_from == ScheduleFrom::Diffusers;
    // A model sampling that depends on the size (Flux's resolution-dependent shift), resolved for this request.
    std::shared_ptr<const ModelSampling> sized = m.sampling->at_size(p.height / m.latent.downscale, p.width / m.latent.downscale);
    if (p.shift) sized = std::make_shared<FlowModelSampling>(*p.shift, m.sampling->linear_sigmas());  // --shift
    const ModelSampling& ms = sized ? *sized : *m.sampling;
    if (s.diffusers && ms.flow_shift()) {
        // A flow model's diffusers scheduler is FlowMatchEulerDiscreteScheduler (the only one diffusers 0.30 has).
        if (p.diffusers_scheduler != DiffusersScheduler::Euler || p.schedule != ScheduleKind::Default)
            return Error::unsupported("a flow model (SD3) in diffusers mode runs FlowMatchEulerDiscreteScheduler: sampler "
                                      "euler with the automatic schedule; other samplers and schedules run in k-diffusion "
                                      "mode", "sampler");
        EASEL_TRY_ASSIGN(s.plan, flow_match_euler_plan(*ms.flow_shift(), 1000, p.steps, ms.linear_sigmas()));
        s.sigmas = s.plan.sigmas;
    } else if (s.diffusers) {
        EASEL_TRY(m.scheduler_config.check_supported(p.diffusers_scheduler));
        DiffusersSchedulerConfig sc = m.scheduler_config.for_scheduler(p.diffusers_scheduler);
        if (p.schedule == ScheduleKind::Karras) sc.use_karras_sigmas = true;
        if (p.timestep_spacing) sc.timestep_spacing = *p.timestep_spacing;
        EASEL_TRY_ASSIGN(s.plan, diffusers_plan(p.diffusers_scheduler, sc, p.steps));
        s.plan.v_prediction = m.sampling->prediction() == Prediction::V;
        s.sigmas = s.plan.sigmas;
    } else {
        EASEL_TRY_ASSIGN(s.sigmas, ms.sigmas(p.schedule, p.steps));
    }
    // diffusers' hand-off: the cut is at timestep int(round(T - f * T)); the base keeps the steps at or above
    // it, the refiner the ones below (StableDiffusionXLPipeline / ...Img2ImgPipeline, denoising_end / _start).
    auto steps_at_or_above = [&](double fraction) {
        const int train = m.scheduler_config.base.num_train_timesteps;
        const int cutoff = int(std::round(double(train) - fraction * double(train)));
        return int(std::count_if(s.plan.timesteps.begin(), s.plan.timesteps.end(),
                                 [&](float t) { return t >= float(cutoff); }));
    };
    if (p.init_latent) {
        const int skip = steps_at_or_above(p.denoising_start);
        if (skip >= int(s.plan.timesteps.size()))
            return Error::invalid_argument(fmt::format("denoising_start {} leaves none of the {} steps", p.denoising_start,
                                                       p.steps), "denoising_start");
        s.plan.begin_at(skip);
        s.sigmas = s.plan.sigmas;
    }
    if (p.denoising_end < 1.0) {
        const int keep = steps_at_or_above(p.denoising_end);
        if (keep < 1)
            return Error::invalid_argument(fmt::format("denoising_end {} leaves none of the {} steps", p.denoising_end,
                                                       p.steps), "denoising_end");
        s.plan.end_at(keep);
        s.sigmas = s.plan.sigmas;
    }
    if (p.init_image) {
        if (s.diffusers) {
            // StableDiffusionImg2ImgPipeline.get_timesteps: init_timestep = min(int(steps * strength), steps),
            // t_start = steps - init_timestep; the schedule from there on (set_begin_index), and add_noise at
            // its first sigma, which in our variables is x = init latent + sigma * noise for every class.
            s.plan.begin_at(p.steps - diffusers_img2img_steps(m, p.steps, p.denoising_strength));
            s.sigmas = s.plan.sigmas;
        } else {
            // A1111 (img2img_fix_steps off): t_enc = int(min(strength, 0.999) * steps); run the last t_enc + 1
            // sigmas.
            const int t_enc = int(std::min(p.denoising_strength, 0.999) * p.steps);
            s.sigmas.erase(s.sigmas.begin(), s.sigmas.begin() + (p.steps - t_enc - 1));
        }
    }
    return s;
}

Tensor to_autoencoder_units(const LatentFormat& f, const Tensor& latent) {
    Tensor z = scaled(latent, 1.0f / f.scaling_factor);
    if (f.shift_factor != 0.0f) {
        float* zp = z.data<float>();
        for (int64_t i = 0; i < z.numel(); ++i) zp[i] += f.shift_factor;
    }
    return z;
}

ImageStart stack_starts(const Ctx& c, std::vector<ImageStart> starts) {
    if (starts.size() == 1) return std::move(starts[0]);
    auto items = std::make_shared<std::vector<ImageStart>>(std::move(starts));
    const std::vector<ImageStart>& v = *items;
    const int64_t n = int64_t(v.size());
    ImageStart s;
    std::vector<Tensor> xs, concats;
    for (const ImageStart& i : v) {
        xs.push_back(i.x);
        if (i.hooks.concat) concats.push_back(*i.hooks.concat);
    }
    s.x = ops::concat(c, xs, 0);
    if (!concats.empty()) s.hooks.concat = ops::concat(c, concats, 0);
    // Tasks hand every image the same timestep map and hook kinds; each hook sees its own item (a view: what it
    // writes lands in the batch).
    s.hooks.timestep = v[0].hooks.timestep;
    if (v[0].hooks.after_denoise)
        s.hooks.after_denoise = [items, n](Tensor& d) {
            for (int64_t j = 0; j < n; ++j) {
                Tensor item = d.slice(0, j, j + 1);
                (*items)[size_t(j)].hooks.after_denoise(item);
            }
        };
    if (v[0].after_step)
        s.after_step = [items, n](int step, int total, const Tensor& x) {
            for (int64_t j = 0; j < n; ++j) (*items)[size_t(j)].after_step(step, total, x.slice(0, j, j + 1));
        };
    if (v[0].after_sampling)
        s.after_sampling = [items, n](Tensor& x0, bool completed) {
            for (int64_t j = 0; j < n; ++j) {
                Tensor item = x0.slice(0, j, j + 1);
                (*items)[size_t(j)].after_sampling(item, completed);
            }
        };
    return s;
}

namespace {

// Autoencoder units -> model latent units, element by element.
inline float to_model_units(const LatentFormat& f, float z) {
    return f.shift_factor != 0.0f ? (z - f.shift_factor) * f.scaling_factor : z * f.scaling_factor;
}

// What both inpainting flavours share: the autoencoder and its posterior, the latent size.
struct TaskBase {
    const Model& m;
    const GenerateParams& p;
    const SigmaPlan& plan;
    int lh, lw;
    Shape latent_shape;

    TaskBase(const Model& m_, const GenerateParams& p_, const SigmaPlan& plan_)
        : m(m_), p(p_), plan(plan_), lh(p_.height / m_.latent.downscale), lw(p_.width / m_.latent.downscale),
          latent_shape{1, m_.latent.channels, lh, lw} {}

    // The autoencoder's moments, tiled like the decoder when vae_tile is set (diffusers' enable_tiling does both).
    std::pair<Tensor, Tensor> encode(const Ctx& c, const Tensor& image) const {
        return m.autoencoder().encode_moments(c, image, p.vae_tile);
    }
    // The encoder's posterior as (mean, std): diffusers' DiagonalGaussianDistribution clamps logvar to [-30, 20]
    // and takes std = exp(logvar / 2).
    std::pair<Tensor, Tensor> posterior(const Ctx& c, const Tensor& image) const {
        auto [mean, logvar] = encode(c, image);
        Tensor sd = Tensor::empty(logvar.shape());
        for (int64_t i = 0; i < logvar.numel(); ++i)
            sd.data<float>()[i] = std::exp(0.5f * std::clamp(logvar.data<float>()[i], -30.0f, 20.0f));
        return {mean.contiguous(), sd};
    }
    // retrieve_latents(latent_dist.sample(generator)) in model units, the draw shaped like the mean.
    Tensor sample_latent(const Tensor& mean, const Tensor& sd, NoiseSource& noise) const {
        Tensor e = noise.randn_like(mean);
        Tensor lat = Tensor::empty(mean.shape());
        for (int64_t k = 0; k < lat.numel(); ++k)
            lat.data<float>()[k] = to_model_units(m.latent, mean.data<float>()[k] + sd.data<float>()[k] * e.data<float>()[k]);
        return lat;
    }
    // Nearest-neighbour resize of a full-size [1, 1, H, W] mask to the latent (torch interpolate(mode="nearest"):
    // src = floor(dst * in / out)) into `o`.
    void mask_to_latent(const Tensor& full, float* o) const {
        const int H = p.height, W = p.width;
        for (int64_t y = 0; y < lh; ++y)
            for (int64_t x = 0; x < lw; ++x) o[y * lw + x] = full.data<float>()[(y * H / lh) * W + (x * W / lw)];
    }
};

// txt2img, img2img and AUTOMATIC1111's inpainting (processing.py, "Inpaint upload": whole picture or only masked;
// masked content fill, original, latent noise or latent nothing), in k-diffusion or diffusers sampling; and an
// inpainting model's extra input for all of them.
class Img2ImgTask : public ImageTask, TaskBase {
public:
    // `blurred_mask`: the mask blurred at the init image's size (with a mask); `box`: "only masked"'s box in it.
    Img2ImgTask(const Ctx& c, const Model& m_, const GenerateParams& p_, const SigmaPlan& plan_,
                std::optional<Image> blurred_mask, std::optional<CropRegion> box)
        : TaskBase(m_, p_, plan_) {
        std::optional<Image> src;      // the picture at the processing size (width x height)
        std::optional<Image> blurred;  // the mask as A1111 prepares it (grey, blurred), at the processing size
        if (p.init_image) src = *p.init_image;
        if (blurred_mask) {
            Image full = std::move(*blurred_mask);
            if (box) {
                // "Only masked": the box cut out of the picture and the mask and resized (A1111's resize mode 2,
                // LANCZOS) to width x height. The paste-back weighs by the blurred mask itself.
                crop_ = box;
                src = resize_fill_a1111(crop_image(*p.init_image, *box), p.width, p.height);
                blurred = resize_fill_a1111(crop_image(full, *box), p.width, p.height);
                overlay_ = std::move(full);
            } else {
                blurred = full;
                // How much of the generated pixel to keep: the blurred mask doubled and clipped.
                for (uint8_t& v : full.pixels) v = uint8_t(std::min(255, 2 * int(v)));
                overlay_ = std::move(full);
            }
            // "fill": on the picture, before it is encoded.
            if (p.masked_content == MaskedContent::Fill) src = fill_masked_area(*src, *blurred);
            // The latent mask: the blurred mask resized (PIL BICUBIC) to the latent size, /255, rounded.
            const std::vector<uint8_t> lat = resize_bicubic_u8(*blurred, lw, lh);
            keep_ = Tensor::empty({1, 1, lh, lw});
            for (size_t i = 0; i < lat.size(); ++i) keep_->data<float>()[i] = lat[i] >= 128 ? 0.0f : 1.0f;
        }
        if (src) std::tie(init_mean_, init_std_) = posterior(c, image_to_tensor(*src));
        if (m.inpainting) {
            // The inpainting model's extra input: the full-size mask rounded to 0/1 (txt2img: all 1) and the latent
            // of the image with the masked part set to 0 (mid-grey; txt2img: all grey), mask resized (nearest) to
            // the latent. A1111 encodes that image with a posterior sample from torch's global RNG, which no seed
            // controls; easel takes the posterior mean (the two differ by the VAE's tiny posterior std).
            const int H = p.height, W = p.width;
            Tensor full_mask = Tensor::empty({1, 1, H, W});
            for (int64_t i = 0; i < int64_t(H) * W; ++i)
                full_mask.data<float>()[i] = !blurred || blurred->pixels[size_t(i)] >= 128 ? 1.0f : 0.0f;
            Tensor masked = src ? image_to_tensor(*src) : Tensor::zeros({1, 3, H, W});
            for (int64_t ch = 0; ch < 3; ++ch)
                for (int64_t i = 0; i < int64_t(H) * W; ++i)
                    masked.data<float>()[ch * H * W + i] *= 1.0f - full_mask.data<float>()[i];
            auto [mean, logvar] = encode(c, masked);
            const int C = m.latent.channels;
            Tensor cc = Tensor::empty({1, 1 + C, lh, lw});
            float* o = cc.data<float>();
            mask_to_latent(full_mask, o);
            const float* mp = mean.contiguous().data<float>();
            for (int64_t i = 0; i < C * int64_t(lh) * lw; ++i) o[int64_t(lh) * lw + i] = to_model_units(m.latent, mp[i]);
            concat_ = cc;
        }
    }

    Result<ImageStart> start(const Ctx& c, NoiseSource& noise) const override {
        ImageStart s;
        if (plan.diffusers) s.hooks.timestep = [pl = &plan.plan](float sigma) { return pl->timestep_for(sigma); };
        s.hooks.concat = concat_;
        if (p.init_latent) {
            s.x = p.init_latent->contiguous().clone();  // diffusers' hand-off: the latent as the base left it
        } else if (init_mean_) {
            // The init latent is a sample of the encoder's distribution, drawn from the image's generator before
            // the noise (diffusers' img2img order).
            Tensor lat = sample_latent(*init_mean_, *init_std_, noise);
            Tensor n0 = noise.randn_like(lat);
            if (keep_ && (p.masked_content == MaskedContent::LatentNoise || p.masked_content == MaskedContent::LatentNothing)) {
                // A1111: init_latent = init_latent * mask + noise * nmask ("latent noise": the seed's first
                // noise, which is the sampling noise), or init_latent * mask ("latent nothing").
                const bool noise_in = p.masked_content == MaskedContent::LatentNoise;
                float* lp = lat.data<float>();
                const float* np0 = n0.data<float>();
                const float* kp = keep_->data<float>();
                const int64_t plane = keep_->numel();
                for (int64_t j = 0; j < lat.numel(); ++j)
                    lp[j] = lp[j] * kp[j % plane] + (noise_in ? np0[j] * (1.0f - kp[j % plane]) : 0.0f);
            }
            s.x = m.sampling->noise_latent(c, lat, n0, plan.sigmas[0]);
            if (keep_) {
                // A1111's CFGDenoiser: denoised = init_latent * mask + nmask * denoised (masks 0/1, nmask = 1 - mask).
                auto blend = [lat, keep = *keep_](Tensor& d) {
                    const float* il = lat.data<float>();
                    const float* kp = keep.data<float>();
                    float* dp = d.data<float>();
                    const int64_t plane = keep.numel(), channels = d.numel() / plane;
                    for (int64_t ch = 0; ch < channels; ++ch)
                        for (int64_t i = 0; i < plane; ++i) {
                            const int64_t j = ch * plane + i;
                            dp[j] = il[j] * kp[i] + (1.0f - kp[i]) * dp[j];
                        }
                };
                s.hooks.after_denoise = blend;
                // A1111 after sampling: samples = samples * nmask + init_latent * mask.
                s.after_sampling = [lat, keep = *keep_](Tensor& x0, bool) {
                    float* xp = x0.data<float>();
                    const float* il = lat.data<float>();
                    const float* kp = keep.data<float>();
                    const int64_t plane = keep.numel();
                    for (int64_t j = 0; j < x0.numel(); ++j) xp[j] = xp[j] * (1.0f - kp[j % plane]) + il[j] * kp[j % plane];
                };
            }
        } else {
            Tensor n0 = noise.randn_like(Tensor::empty(latent_shape));
            s.x = plan.diffusers ? scaled(n0, plan.plan.init_noise_scale) : m.sampling->pure_noise(n0, plan.sigmas[0]);
        }
        return s;
    }

    void after_decode(Image& img) const override {
        if (!overlay_) return;
        const Image& orig = *p.init_image;
        if (crop_) {
            // "Only masked": the picture resized back to the box (A1111's resize mode 1) and put in its place on
            // the original.
            const Image gen = resize_crop_a1111(img, crop_->width(), crop_->height());
            Image full{orig.width, orig.height, 3, std::vector<uint8_t>(size_t(orig.width) * size_t(orig.height) * 3)};
            for (size_t k = 0; k < size_t(orig.width) * size_t(orig.height); ++k)
                for (size_t ch = 0; ch < 3; ++ch)
                    full.pixels[k * 3 + ch] = orig.pixels[k * size_t(orig.channels) + (orig.channels == 1 ? 0 : ch)];
            for (int y = 0; y < gen.height; ++y)
                std::copy_n(&gen.pixels[size_t(y) * size_t(gen.width) * 3], size_t(gen.width) * 3,
                            &full.pixels[(size_t(crop_->y1 + y) * size_t(orig.width) + size_t(crop_->x1)) * 3]);
            img = std::move(full);
        }
        // A1111 pastes the original back over what was not repainted, weighted by the overlay mask.
        for (size_t k = 0; k < size_t(orig.width) * size_t(orig.height); ++k) {
            const int a = overlay_->pixels[k];
            for (size_t ch = 0; ch < 3; ++ch) {
                const int o = orig.pixels[k * size_t(orig.channels) + (orig.channels == 1 ? 0 : ch)];
                uint8_t& v = img.pixels[k * 3 + ch];
                v = uint8_t((int(v) * a + o * (255 - a) + 127) / 255);
            }
        }
    }

    void describe(InfotextParams& ip) const override {
        if (p.init_image) ip.denoising_strength = p.denoising_strength;
        if (p.denoising_end < 1.0) ip.extra.emplace_back("Denoising end", fmt::format("{}", p.denoising_end));
        if (p.init_latent) ip.extra.emplace_back("Denoising start", fmt::format("{}", p.denoising_start));
        if (p.mask) ip.extra.emplace_back("Mask blur", std::to_string(p.mask_blur));
        if (p.mask && p.masked_content != MaskedContent::Original)
            ip.extra.emplace_back("Masked content", masked_content_name(p.masked_content));
        if (crop_) {
            ip.extra.emplace_back("Inpaint area", "Only masked");
            ip.extra.emplace_back("Masked area padding", std::to_string(p.inpaint_padding));
        }
    }

private:
    std::optional<Tensor> init_mean_, init_std_;
    std::optional<Tensor> keep_;     // [1, 1, h, w]: 1 where the picture is kept
    std::optional<Image> overlay_;   // the paste-back's weight of the generated pixel, at the init image's size
    std::optional<CropRegion> crop_;  // "only masked": the box inpainted
    std::optional<Tensor> concat_;   // inpainting models: [1, 1 + C, h, w]
};

// diffusers' StableDiffusionInpaintPipeline (VaeImageProcessor for masks: convert("L"), / 255, binarised at 0.5,
// no blur; prepare_mask_latents: interpolate(mode="nearest") to the latent size). Strength 1 (is_strength_max)
// starts from pure noise, and then an inpainting model never needs the init image's own latent.
class DiffusersInpaintTask : public ImageTask, TaskBase {
public:
    DiffusersInpaintTask(const Ctx& c, const Model& m_, const GenerateParams& p_, const SigmaPlan& plan_)
        : TaskBase(m_, p_, plan_), noise_start_(p_.denoising_strength == 1.0) {
        if (!(noise_start_ && m.inpainting)) std::tie(init_mean_, init_std_) = posterior(c, image_to_tensor(*p.init_image));
        const Image gray = mask_to_luma(*p.mask);
        const int H = p.height, W = p.width;
        Tensor full = Tensor::empty({1, 1, H, W});
        for (int64_t i = 0; i < int64_t(H) * W; ++i)
            full.data<float>()[i] = float(gray.pixels[size_t(i)]) / 255.0f >= 0.5f ? 1.0f : 0.0f;
        repaint_ = Tensor::empty({1, 1, lh, lw});  // 1 = repaint
        mask_to_latent(full, repaint_.data<float>());
        if (m.inpainting) {
            Tensor src = image_to_tensor(*p.init_image);
            for (int64_t ch = 0; ch < 3; ++ch)
                for (int64_t i = 0; i < int64_t(H) * W; ++i)
                    if (full.data<float>()[i] >= 0.5f) src.data<float>()[ch * H * W + i] = 0.0f;
            std::tie(masked_mean_, masked_std_) = posterior(c, src);
        }
    }

    Result<ImageStart> start(const Ctx& c, NoiseSource& noise) const override {
        // The pipeline's draws from the generator, in order: the init image's posterior sample (prepare_latents,
        // when 4-channel or strength < 1), the noise, the masked image's posterior sample (prepare_mask_latents;
        // drawn for 4-channel models too, which do not use it), then the sampler's own noise.
        ImageStart s;
        s.hooks.timestep = [pl = &plan.plan](float sigma) { return pl->timestep_for(sigma); };
        std::optional<Tensor> lat;
        if (init_mean_) lat = sample_latent(*init_mean_, *init_std_, noise);
        Tensor n0 = noise.randn_like(Tensor::empty(latent_shape));
        // Strength 1: noise * init_noise_sigma; else add_noise at the first timestep (lat + sigma * noise in our
        // variables, as img2img).
        s.x = noise_start_ ? scaled(n0, plan.plan.init_noise_scale) : m.sampling->noise_latent(c, *lat, n0, plan.sigmas[0]);
        if (m.inpainting) {
            const Tensor masked = sample_latent(*masked_mean_, *masked_std_, noise);
            s.hooks.concat = ops::concat(c, {repaint_, masked}, 1);  // model input: [x * c_in, mask, masked latent]
            return s;
        }
        (void)noise.randn_like(Tensor::empty(latent_shape));
        // After each scheduler step but the last: latents = (1 - mask) * add_noise(image_latents, noise,
        // timesteps[i + 1]) + mask * latents; add_noise is alpha * (lat + sigma * noise) and the scheduler's latents
        // alpha * x in every class here (alpha 1 for the Euler family), so in our x: lat + sigma_next * noise
        // outside the mask. x is the sampler's own state (sampler.h): the blend carries into the next step.
        const std::vector<float>& sigmas = plan.sigmas;
        s.after_step = [lat = *lat, n0, repaint = repaint_, &sigmas](int step, int total, const Tensor& xs) {
            if (step >= total) return;
            float* xp = xs.data<float>();
            const float* lp = lat.data<float>();
            const float* np = n0.data<float>();
            const float* rp = repaint.data<float>();
            const float s_next = sigmas[size_t(step)];
            const int64_t plane = repaint.numel();
            for (int64_t j = 0; j < xs.numel(); ++j) {
                const float keep = 1.0f - rp[j % plane];
                xp[j] = keep * (lp[j] + s_next * np[j]) + rp[j % plane] * xp[j];
            }
        };
        // After the last step the pipeline blends with the un-noised image latents: outside the mask the final
        // latent is the init image's exactly.
        s.after_sampling = [lat = *lat, repaint = repaint_](Tensor& x0, bool completed) {
            if (!completed) return;
            float* xp = x0.data<float>();
            const float* lp = lat.data<float>();
            const float* rp = repaint.data<float>();
            const int64_t plane = repaint.numel();
            for (int64_t j = 0; j < x0.numel(); ++j) xp[j] = (1.0f - rp[j % plane]) * lp[j] + rp[j % plane] * xp[j];
        };
        return s;
    }

    void after_decode(Image&) const override {}
    void describe(InfotextParams& ip) const override { ip.denoising_strength = p.denoising_strength; }

private:
    bool noise_start_;
    std::optional<Tensor> init_mean_, init_std_;
    Tensor repaint_;
    std::optional<Tensor> masked_mean_, masked_std_;  // inpainting models: the posterior of image * (mask < 0.5)
};

}  // namespace

Result<std::unique_ptr<ImageTask>> make_image_task(const Ctx& c, const Model& m, const GenerateParams& p,
                                                   const SigmaPlan& plan) {
    if (p.mask && plan.diffusers) return std::unique_ptr<ImageTask>(new DiffusersInpaintTask(c, m, p, plan));
    std::optional<Image> full;  // the mask as A1111 prepares it (grey, blurred), at the init image's size
    std::optional<CropRegion> box;
    if (p.mask) {
        full = blur_mask(mask_to_gray(*p.mask), p.mask_blur);
        if (p.inpaint_only_masked) {
            // "Only masked": the box around the blurred mask, grown by the padding and to width:height. A mask of
            // a few pixels can blur away to nothing (each pass rounds to 8 bits).
            const std::optional<CropRegion> r = mask_crop_region(*full, p.inpaint_padding);
            if (!r)
                return Error::invalid_argument(fmt::format("the mask is blank once blurred by {} px: 'only masked' needs "
                                                           "a painted area to cut out (paint more, or lower mask_blur)",
                                                           p.mask_blur), "mask");
            box = expand_crop_region(*r, p.width, p.height, full->width, full->height);
        }
    }
    return std::unique_ptr<ImageTask>(new Img2ImgTask(c, m, p, plan, std::move(full), box));
}

}  // namespace easel
