#include "pipeline/generate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "models/clip/prompt_parser.h"
#include "pipeline/infotext.h"
#include "pipeline/mask.h"
#include "sampling/noise.h"
#include "sampling/rng_philox.h"
#include "sampling/rng_torch_cpu.h"

namespace easel {

namespace {
constexpr int kMaxSide = 4096;
constexpr int kMaxSteps = 1000;
constexpr int kMaxBatch = 64;

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
}  // namespace

std::string sampler_display_name(SamplerKind k) {
    switch (k) {
        case SamplerKind::Euler: return "Euler";
        case SamplerKind::EulerAncestral: return "Euler a";
        case SamplerKind::Heun: return "Heun";
        case SamplerKind::Dpm2: return "DPM2";
        case SamplerKind::Lms: return "LMS";
        case SamplerKind::DpmPP2M: return "DPM++ 2M";
        case SamplerKind::DpmPP2MSde: return "DPM++ 2M SDE";
        case SamplerKind::DpmPPSde: return "DPM++ SDE";
        case SamplerKind::Ddim: return "DDIM";
        case SamplerKind::Lcm: return "LCM";
    }
    return "?";
}

std::string sampler_display_name(DiffusersScheduler k) {
    switch (k) {
        case DiffusersScheduler::Euler: return "Euler";
        case DiffusersScheduler::EulerAncestral: return "Euler a";
        case DiffusersScheduler::Heun: return "Heun";
        case DiffusersScheduler::Lms: return "LMS";
        case DiffusersScheduler::DpmSolverMultistep: return "DPM++ 2M";
        case DiffusersScheduler::Ddim: return "DDIM";
        case DiffusersScheduler::Pndm: return "PNDM";
        case DiffusersScheduler::UniPC: return "UniPC";
        case DiffusersScheduler::Lcm: return "LCM";
    }
    return "?";
}

std::string schedule_display_name(ScheduleKind k) {
    switch (k) {
        case ScheduleKind::Default: return "Automatic";
        case ScheduleKind::Karras: return "Karras";
        case ScheduleKind::Exponential: return "Exponential";
        case ScheduleKind::SgmUniform: return "SGM Uniform";
        case ScheduleKind::Simple: return "Simple";
        case ScheduleKind::DdimUniform: return "DDIM";
        case ScheduleKind::AlignYourSteps: return "Align Your Steps";
        case ScheduleKind::AlignYourStepsXL: return "Align Your Steps";
    }
    return "?";
}

int image_size_multiple(const ModelInfo& info) {
    return std::max(8, info.vae.downscale() * info.unet.latent_multiple());
}

Status validate_params(const GenerateParams& p, const ModelSpec& m) {
    if (m.spent)
        return Error::invalid_argument("this model's weights were dropped after a one-shot generation (generate_once); "
                                       "load it again");
    const int f = m.info.vae.downscale();
    const int multiple = image_size_multiple(m.info);
    auto side = [&](const char* name, int v) -> Status {
        if (v < multiple || v > kMaxSide)
            return Error::invalid_argument(fmt::format("must be between {} and {}, got {}", multiple, kMaxSide, v), name);
        if (v % multiple != 0)
            return Error::invalid_argument(
                fmt::format("must be a multiple of {} for this model (its VAE divides each side by {} and its UNet's "
                            "latent by {} more), got {}; nearest: {} or {}", multiple, f, m.info.unet.latent_multiple(), v,
                            std::max(multiple, v / multiple * multiple), (v / multiple + 1) * multiple), name);
        return ok();
    };
    EASEL_TRY(side("width", p.width));
    EASEL_TRY(side("height", p.height));
    if (p.steps < 1 || p.steps > kMaxSteps)
        return Error::invalid_argument(fmt::format("must be between 1 and {}, got {}", kMaxSteps, p.steps), "steps");
    if (!std::isfinite(p.cfg_scale) || p.cfg_scale < 0 || p.cfg_scale > 100)
        return Error::invalid_argument(fmt::format("must be between 0 and 100, got {}", p.cfg_scale), "cfg_scale");
    if (p.vae_tile != 0 && (p.vae_tile < 2 * f || p.vae_tile % f != 0 || p.vae_tile > kMaxSide))
        return Error::invalid_argument(fmt::format("must be 0 (off) or a multiple of {} between {} and {}, got {}", f, 2 * f,
                                                   kMaxSide, p.vae_tile), "vae_tile");
    if (p.batch_size < 1 || p.batch_size > kMaxBatch)
        return Error::invalid_argument(fmt::format("must be between 1 and {}, got {}", kMaxBatch, p.batch_size), "batch_size");
    if (p.batch_count < 1 || p.batch_count > 1000)
        return Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", p.batch_count), "batch_count");
    if (p.clip_skip < 1 || p.clip_skip > 12)
        return Error::invalid_argument(fmt::format("must be between 1 and 12, got {}", p.clip_skip), "clip_skip");
    if (p.init_image) {
        if (!(p.denoising_strength >= 0.0 && p.denoising_strength <= 1.0))
            return Error::invalid_argument(fmt::format("must be between 0 and 1, got {}", p.denoising_strength),
                                           "denoising_strength");
        if (p.init_image->width != p.width || p.init_image->height != p.height)
            return Error::invalid_argument(fmt::format("init image is {}x{}, expected {}x{}", p.init_image->width,
                                                       p.init_image->height, p.width, p.height), "init_image");
        if (!m.has_vae_encoder) return Error::invalid_argument("the model was loaded without its VAE encoder", "init_image");
    }
    if (p.schedule_from == ScheduleFrom::Diffusers) {
        if (p.schedule != ScheduleKind::Default && p.schedule != ScheduleKind::Karras)
            return Error::invalid_argument(fmt::format("diffusers mode takes automatic (the model's scheduler config) or "
                                                       "karras (use_karras_sigmas), got {}", schedule_display_name(p.schedule)),
                                           "scheduler");
        if (p.mask && p.diffusers_scheduler == DiffusersScheduler::Heun)
            return Error::unsupported("inpainting with heun in diffusers mode (StableDiffusionInpaintPipeline blends "
                                      "after every scheduler call, Heun's half steps included, which our heun step "
                                      "does not expose; use euler, euler_a, dpm++2m, ddim or lms, or k-diffusion mode)",
                                      "schedule_from");
        if (p.mask && (p.diffusers_scheduler == DiffusersScheduler::UniPC || p.diffusers_scheduler == DiffusersScheduler::Lcm))
            return Error::unsupported(fmt::format("inpainting with {} in diffusers mode (not checked against diffusers' "
                                                  "StableDiffusionInpaintPipeline yet; use euler, euler_a, dpm++2m, "
                                                  "ddim or lms, or k-diffusion mode)",
                                                  p.diffusers_scheduler == DiffusersScheduler::UniPC ? "unipc" : "lcm"),
                                      "schedule_from");
        if (p.init_image && p.diffusers_scheduler == DiffusersScheduler::Pndm)
            return Error::unsupported("img2img and inpainting with pndm in diffusers mode (its PLMS warm-up does not "
                                      "restart at the truncated timesteps; use ddim, euler or dpm++2m, or k-diffusion "
                                      "mode)",
                                      "schedule_from");
        if (p.init_image && int(double(p.steps) * p.denoising_strength) < 1)
            return Error::invalid_argument(fmt::format("strength {} x {} steps leaves no step to run in diffusers mode "
                                                       "(diffusers' int(steps * strength) must be at least 1)",
                                                       p.denoising_strength, p.steps),
                                           "denoising_strength");
    }
    if (p.mask) {
        if (!p.init_image) return Error::invalid_argument("a mask needs an init image (the picture to inpaint)", "mask");
        if (p.mask->width != p.init_image->width || p.mask->height != p.init_image->height)
            return Error::invalid_argument(fmt::format("mask is {}x{}, the init image {}x{}; they must be the same size",
                                                       p.mask->width, p.mask->height, p.init_image->width,
                                                       p.init_image->height), "mask");
        if (p.mask_blur < 0 || p.mask_blur > 64)
            return Error::invalid_argument(fmt::format("must be between 0 and 64, got {}", p.mask_blur), "mask_blur");
    }
    if (m.info.unet.in_channels != 4 && m.info.unet.in_channels != 9)
        return Error::unsupported(fmt::format("a UNet with {} input channels (expected 4, or 9 for inpainting models)",
                                              m.info.unet.in_channels));
    if (m.info.unet.in_channels == 9 && !m.has_vae_encoder)
        return Error::invalid_argument("inpainting models need the VAE encoder; the model was loaded without it");
    return ok();
}

Result<Tensor> encode_prompt(const Ctx& c, const SDModel& m, const std::string& prompt, int clip_skip, int min_chunks) {
    clip::ChunkOptions opt;
    opt.pad_id = m.pad_id;
    EASEL_TRY_ASSIGN(clip::WeightedPrompt wp, clip::tokenize_weighted(m.tokenizer, prompt, opt));
    while (int(wp.chunks.size()) < min_chunks) {
        EASEL_TRY_ASSIGN(clip::WeightedPrompt empty, clip::tokenize_weighted(m.tokenizer, "", opt));
        wp.chunks.push_back(empty.chunks[0]);
    }
    std::vector<Tensor> parts;
    for (const clip::PromptChunk& ch : wp.chunks) {
        Tensor z = m.text_encoder.encode(c, {ch.ids}, clip_skip);  // [1, 77, D]
        // AUTOMATIC1111 sd_hijack_clip.process_tokens: multiply each token by its weight, then restore the
        // mean of the whole chunk's output ("Original" emphasis). All weights 1: unchanged.
        const bool weighted = std::any_of(ch.weights.begin(), ch.weights.end(), [](float w) { return w != 1.0f; });
        if (weighted) {
            float* p = z.data<float>();
            const int64_t L = z.size(1), D = z.size(2);
            double before = 0;
            for (int64_t i = 0; i < L * D; ++i) before += p[i];
            const float original_mean = float(before / double(L * D));
            double after = 0;
            for (int64_t t = 0; t < L; ++t)
                for (int64_t d = 0; d < D; ++d) {
                    p[t * D + d] *= ch.weights[size_t(t)];
                    after += p[t * D + d];
                }
            const float new_mean = float(after / double(L * D));
            const float k = original_mean / new_mean;
            for (int64_t i = 0; i < L * D; ++i) p[i] *= k;
        }
        parts.push_back(z);
    }
    return parts.size() == 1 ? parts[0] : ops::concat(c, parts, 1);
}

Denoiser make_cfg_denoiser(const Ctx& c, const SDModel& m, const DiscreteSchedule& schedule, const Tensor& cond,
                           const Tensor& uncond, double cfg_scale, const DenoiserOptions& options) {
    const bool v_pred = m.info.unet.prediction == Prediction::V;
    const bool guided = cfg_scale != 1.0;
    // Both conditionings in one batch, cond first (A1111's CFGDenoiser order); uncond padded to cond's length
    // by the caller (same number of chunks).
    const bool batched = guided && !options.sequential_cfg;
    Tensor context = batched ? ops::concat(c, {cond, uncond}, 0) : cond;
    return [&m, &schedule, c, context, uncond, guided, batched, cfg_scale, v_pred,
            options](const Tensor& x, float sigma) -> Result<Tensor> {
        // k-diffusion CompVisDenoiser.get_scalings: c_in = 1/sqrt(sigma^2 + 1), c_out = -sigma;
        // CompVisVDenoiser (sigma_data 1): c_skip = 1/(sigma^2+1), c_out = -sigma/sqrt(sigma^2+1).
        const float c_in = float(1.0 / std::sqrt(double(sigma) * sigma + 1.0));
        float t = options.timestep ? options.timestep(sigma) : -1.0f;
        if (t < 0) t = schedule.sigma_to_t(sigma);
        Tensor xin = ops::scale(c, x, c_in);
        if (options.concat) xin = ops::concat(c, {xin, *options.concat}, 1);
        Tensor out, out_uncond;
        if (batched) {
            out = m.unet.forward(c, ops::concat(c, {xin, xin}, 0), t, context);
        } else {
            out = m.unet.forward(c, xin, t, context);
            if (guided) out_uncond = m.unet.forward(c, xin, t, uncond);
        }
        const int64_t n = x.numel();
        const float* o = out.data<float>();
        const float* ou = guided ? (batched ? o + n : out_uncond.data<float>()) : nullptr;
        const float* xp = x.data<float>();
        Tensor den = Tensor::empty(x.shape());
        float* d = den.data<float>();
        const float c_skip = float(1.0 / (double(sigma) * sigma + 1.0));
        const float c_out = float(-double(sigma) / std::sqrt(double(sigma) * sigma + 1.0));
        auto x0 = [&](int64_t row, int64_t i) -> float {
            const float e = row == 0 ? o[i] : ou[i];
            if (!v_pred) return xp[i] + e * -sigma;
            return e * c_out + xp[i] * c_skip;
        };
        for (int64_t i = 0; i < n; ++i) {
            if (!guided) {
                d[i] = x0(0, i);
            } else {
                const float dc = x0(0, i), du = x0(1, i);
                d[i] = du + (dc - du) * float(cfg_scale);
            }
        }
        if (options.init_latent) {
            // A1111: denoised = init_latent * mask + nmask * denoised (the masks are 0/1, nmask = 1 - mask).
            const float* il = options.init_latent->data<float>();
            const float* keep = options.keep->data<float>();
            const int64_t plane = options.keep->numel(), channels = n / plane;
            for (int64_t ch = 0; ch < channels; ++ch)
                for (int64_t i = 0; i < plane; ++i) {
                    const int64_t j = ch * plane + i;
                    d[j] = il[j] * keep[i] + (1.0f - keep[i]) * d[j];
                }
        }
        return den;
    };
}

Image tensor_to_image(const Tensor& x0, int index) {
    Tensor x = x0.to(DType::F32).contiguous();
    const int64_t H = x.size(2), W = x.size(3);
    Image img;
    img.width = int(W);
    img.height = int(H);
    img.channels = 3;
    img.pixels.resize(size_t(W * H * 3));
    const float* p = x.data<float>() + int64_t(index) * 3 * H * W;
    for (int64_t ch = 0; ch < 3; ++ch)
        for (int64_t i = 0; i < H * W; ++i) {
            // diffusers: (x / 2 + 0.5).clamp(0, 1), then numpy_to_pil: (images * 255).round()
            float v = std::clamp(p[ch * H * W + i] / 2.0f + 0.5f, 0.0f, 1.0f);
            img.pixels[size_t(i * 3 + ch)] = uint8_t(std::nearbyint(v * 255.0f));
        }
    return img;
}

Tensor image_to_tensor(const Image& img) {
    Tensor t = Tensor::empty({1, 3, img.height, img.width});
    float* p = t.data<float>();
    const int64_t HW = int64_t(img.width) * img.height;
    for (int64_t i = 0; i < HW; ++i)
        for (int ch = 0; ch < 3; ++ch) {
            const int src = img.channels == 1 ? 0 : ch;
            p[ch * HW + i] = float(img.pixels[size_t(i * img.channels + src)]) / 127.5f - 1.0f;
        }
    return t;
}

namespace {

// generate() and generate_once(): with `release` (the same model, writable), networks are dropped after use.
Result<std::vector<GeneratedImage>> generate_impl(const SDModel& m, SDModel* release, const GenerateParams& p,
                                                  const ProgressFn& progress, const StopFn& stop) {
    EASEL_TRY(validate_params(p, m));
    BufferPool pool;
    Ctx c{&pool};
    const auto t0 = std::chrono::steady_clock::now();
    const int images = p.batch_size * p.batch_count;
    auto emit = [&](ProgressEvent e) -> Status {
        if (!progress) return ok();
        e.images = images;
        e.elapsed_s = seconds_since(t0);
        return progress(e);
    };

    EASEL_TRY(emit({.phase = "encode", .step = 0, .total = 1}));
    EASEL_TRY_ASSIGN(Tensor cond, encode_prompt(c, m, p.prompt, p.clip_skip));
    const int chunks = int(cond.size(1) / 77);
    EASEL_TRY_ASSIGN(Tensor uncond, encode_prompt(c, m, p.negative_prompt, p.clip_skip, chunks));
    if (uncond.size(1) > cond.size(1)) {
        // A1111 pads the shorter conditioning with empty chunks so both have the same length.
        EASEL_TRY_ASSIGN(cond, encode_prompt(c, m, p.prompt, p.clip_skip, int(uncond.size(1) / 77)));
    }
    EASEL_TRY(emit({.phase = "encode", .step = 1, .total = 1}));
    if (release) {
        release->spent = true;  // from here on: the text encoder is gone, the UNet goes after the last image
        release->text_encoder = CLIPTextEncoder{};
    }

    const DiscreteSchedule schedule = DiscreteSchedule::stable_diffusion();
    const bool diffusers_mode = p.schedule_from == ScheduleFrom::Diffusers;
    std::vector<float> sigmas;
    DiffusersPlan plan;
    if (diffusers_mode) {
        EASEL_TRY(m.scheduler_config.check_supported(p.diffusers_scheduler));
        DiffusersSchedulerConfig sc = m.scheduler_config.for_scheduler(p.diffusers_scheduler);
        if (p.schedule == ScheduleKind::Karras) sc.use_karras_sigmas = true;
        EASEL_TRY_ASSIGN(plan, diffusers_plan(p.diffusers_scheduler, sc, p.steps));
        plan.v_prediction = m.info.unet.prediction == Prediction::V;
        sigmas = plan.sigmas;
    } else {
        EASEL_TRY_ASSIGN(sigmas, make_sigmas(p.schedule, schedule, p.steps));
    }
    std::optional<Tensor> init_mean, init_std;
    // The VAE encoder, tiled like the decoder when vae_tile is set (diffusers' enable_tiling does both).
    auto encode = [&](const Tensor& image) {
        return p.vae_tile > 0 ? m.vae.encode_moments_tiled(c, image, p.vae_tile) : m.vae.encode_moments(c, image);
    };
    // The encoder's posterior as (mean, std): diffusers' DiagonalGaussianDistribution clamps logvar to [-30, 20]
    // and takes std = exp(logvar / 2).
    auto posterior = [&](const Tensor& image) {
        auto [mean, logvar] = encode(image);
        Tensor sd = Tensor::empty(logvar.shape());
        for (int64_t i = 0; i < logvar.numel(); ++i)
            sd.data<float>()[i] = std::exp(0.5f * std::clamp(logvar.data<float>()[i], -30.0f, 20.0f));
        return std::pair<Tensor, Tensor>{mean.contiguous(), sd};
    };
    const bool nine_channels = m.info.unet.in_channels == 9;
    // diffusers' StableDiffusionInpaintPipeline; strength 1 (is_strength_max) starts from pure noise, and then a
    // 9-channel model never needs the init image's own latent.
    const bool diffusers_inpaint = diffusers_mode && p.mask.has_value();
    const bool noise_start = diffusers_inpaint && p.denoising_strength == 1.0;
    if (p.init_image) {
        if (diffusers_mode) {
            // StableDiffusionImg2ImgPipeline.get_timesteps: init_timestep = min(int(steps * strength), steps),
            // t_start = steps - init_timestep; the schedule from there on (set_begin_index), and add_noise at
            // its first sigma, which in our variables is x = init latent + sigma * noise for every class.
            const int init_steps = std::min(int(double(p.steps) * p.denoising_strength), p.steps);
            plan.begin_at(p.steps - init_steps);
            sigmas = plan.sigmas;
        } else {
            // A1111 (img2img_fix_steps off): t_enc = int(min(strength, 0.999) * steps); run the last t_enc + 1
            // sigmas.
            const int t_enc = int(std::min(p.denoising_strength, 0.999) * p.steps);
            sigmas.erase(sigmas.begin(), sigmas.begin() + (p.steps - t_enc - 1));
        }
        if (!(noise_start && nine_channels)) std::tie(init_mean, init_std) = posterior(image_to_tensor(*p.init_image));
    }
    DenoiserOptions dopt;
    dopt.sequential_cfg = release != nullptr;  // one-shot runs keep memory low: CFG halves one after the other
    if (diffusers_mode) dopt.timestep = [&plan](float sigma) { return plan.timestep_for(sigma); };
    const int f = m.info.vae.downscale();
    const int lh = p.height / f, lw = p.width / f;
    const Shape latent_shape{1, m.info.unet.out_channels, lh, lw};
    const float scaling = m.info.vae.scaling_factor;

    // Inpainting (A1111 processing.py, "Inpaint upload", whole picture, "original" fill).
    std::optional<Image> overlay;  // the blurred mask doubled and clipped: how much of the generated pixel to keep
    std::optional<Image> blurred;  // the mask as A1111 prepares it (grey, blurred); both uses below read it
    if (p.mask && !diffusers_mode) blurred = blur_mask(mask_to_gray(*p.mask), p.mask_blur);
    if (blurred) {
        // The latent mask: the blurred mask resized (PIL BICUBIC) to the latent size, /255, rounded.
        const std::vector<uint8_t> lat = resize_bicubic_u8(*blurred, lw, lh);
        Tensor keep = Tensor::empty({1, 1, lh, lw});
        for (size_t i = 0; i < lat.size(); ++i) keep.data<float>()[i] = lat[i] >= 128 ? 0.0f : 1.0f;
        dopt.keep = keep;
        Image o = *blurred;
        for (uint8_t& v : o.pixels) v = uint8_t(std::min(255, 2 * int(v)));
        overlay = std::move(o);
    }
    if (nine_channels && !diffusers_inpaint) {
        // The inpainting model's extra input: the full-size mask rounded to 0/1 (txt2img: all 1) and the latent of
        // the image with the masked part set to 0 (mid-grey; txt2img: all grey), mask resized (nearest) to the
        // latent. A1111 encodes that image with a posterior sample from torch's global RNG, which no seed
        // controls; easel takes the posterior mean (the two differ by the VAE's tiny posterior std).
        const int H = p.height, W = p.width;
        Tensor full_mask = Tensor::empty({1, 1, H, W});
        if (blurred) {
            for (int64_t i = 0; i < int64_t(H) * W; ++i) full_mask.data<float>()[i] = blurred->pixels[size_t(i)] >= 128 ? 1.0f : 0.0f;
        } else {
            for (int64_t i = 0; i < int64_t(H) * W; ++i) full_mask.data<float>()[i] = 1.0f;
        }
        Tensor src = p.init_image ? image_to_tensor(*p.init_image) : Tensor::zeros({1, 3, H, W});
        for (int64_t ch = 0; ch < 3; ++ch)
            for (int64_t i = 0; i < int64_t(H) * W; ++i) src.data<float>()[ch * H * W + i] *= 1.0f - full_mask.data<float>()[i];
        auto [mean, logvar] = encode(src);
        Tensor cc = Tensor::empty({1, 5, lh, lw});
        float* o = cc.data<float>();
        for (int64_t y = 0; y < lh; ++y)
            for (int64_t x = 0; x < lw; ++x)  // torch interpolate(mode="nearest"): src = floor(dst * in / out)
                o[y * lw + x] = full_mask.data<float>()[(y * H / lh) * W + (x * W / lw)];
        const float* mp = mean.contiguous().data<float>();
        for (int64_t i = 0; i < 4 * int64_t(lh) * lw; ++i) o[int64_t(lh) * lw + i] = mp[i] * scaling;
        dopt.concat = cc;
    }
    // diffusers' inpainting inputs (VaeImageProcessor for masks: convert("L"), / 255, binarised at 0.5, no blur;
    // prepare_mask_latents: interpolate(mode="nearest") to the latent size). 1 = repaint.
    Tensor repaint;
    std::optional<Tensor> masked_mean, masked_std;  // 9-channel models: the posterior of image * (mask < 0.5)
    if (diffusers_inpaint) {
        const Image gray = mask_to_luma(*p.mask);
        const int H = p.height, W = p.width;
        Tensor full = Tensor::empty({1, 1, H, W});
        for (int64_t i = 0; i < int64_t(H) * W; ++i)
            full.data<float>()[i] = float(gray.pixels[size_t(i)]) / 255.0f >= 0.5f ? 1.0f : 0.0f;
        repaint = Tensor::empty({1, 1, lh, lw});
        for (int64_t y = 0; y < lh; ++y)
            for (int64_t x = 0; x < lw; ++x)  // src = floor(dst * in / out)
                repaint.data<float>()[y * lw + x] = full.data<float>()[(y * H / lh) * W + (x * W / lw)];
        if (nine_channels) {
            Tensor src = image_to_tensor(*p.init_image);
            for (int64_t ch = 0; ch < 3; ++ch)
                for (int64_t i = 0; i < int64_t(H) * W; ++i)
                    if (full.data<float>()[i] >= 0.5f) src.data<float>()[ch * H * W + i] = 0.0f;
            std::tie(masked_mean, masked_std) = posterior(src);
        }
    }
    // retrieve_latents(latent_dist.sample(generator)) * scaling_factor, the draw shaped like the mean.
    auto sample_latent = [&](const Tensor& mean, const Tensor& sd, NoiseSource& noise) {
        Tensor e = noise.randn_like(mean);
        Tensor lat = Tensor::empty(mean.shape());
        for (int64_t k = 0; k < lat.numel(); ++k)
            lat.data<float>()[k] = (mean.data<float>()[k] + sd.data<float>()[k] * e.data<float>()[k]) * scaling;
        return lat;
    };

    std::vector<GeneratedImage> out;
    for (int i = 0; i < images; ++i) {
        const int64_t seed = p.seed + i;
        std::unique_ptr<TorchCpuGenerator> cpu_gen;
        std::unique_ptr<PhiloxGenerator> cuda_gen;
        std::unique_ptr<NoiseSource> noise;
        if (p.rng == RngKind::Cpu) {
            cpu_gen = std::make_unique<TorchCpuGenerator>(TorchCpuGenerator::seed_from_int64(seed));
            noise = std::make_unique<TorchCpuNoise>(*cpu_gen);
        } else {
            cuda_gen = std::make_unique<PhiloxGenerator>(uint64_t(seed));
            noise = std::make_unique<PhiloxNoise>(*cuda_gen);
        }
        Tensor x;
        std::optional<Tensor> blend_latent, blend_noise;  // diffusers inpainting with a 4-channel model
        if (diffusers_inpaint) {
            // StableDiffusionInpaintPipeline's draws from the generator, in order: the init image's posterior
            // sample (prepare_latents, when 4-channel or strength < 1), the noise, the masked image's posterior
            // sample (prepare_mask_latents; drawn for 4-channel models too, which do not use it), then the
            // ancestral steps' noise.
            std::optional<Tensor> lat;
            if (init_mean) lat = sample_latent(*init_mean, *init_std, *noise);
            Tensor n0 = noise->randn_like(Tensor::empty(latent_shape));
            // Strength 1: noise * init_noise_sigma; else add_noise at the first timestep (lat + sigma * noise in
            // our variables, as img2img).
            x = noise_start ? scaled(n0, plan.init_noise_scale) : ops::add(c, *lat, scaled(n0, sigmas[0]));
            if (nine_channels) {
                const Tensor masked = sample_latent(*masked_mean, *masked_std, *noise);
                dopt.concat = ops::concat(c, {repaint, masked}, 1);  // UNet input: [x * c_in, mask, masked latent]
            } else {
                (void)noise->randn_like(Tensor::empty(latent_shape));
                blend_latent = lat;
                blend_noise = n0;
            }
        } else if (init_mean) {
            // The init latent is a sample of the encoder's distribution, drawn from the image's generator before
            // the noise (diffusers' img2img order): latent = (mean + std * eps) * scaling_factor.
            Tensor e = noise->randn_like(*init_mean);
            Tensor lat = Tensor::empty(init_mean->shape());
            for (int64_t k = 0; k < lat.numel(); ++k)
                lat.data<float>()[k] = (init_mean->data<float>()[k] + init_std->data<float>()[k] * e.data<float>()[k]) * scaling;
            Tensor n0 = noise->randn_like(lat);
            x = ops::add(c, lat, scaled(n0, sigmas[0]));
            if (p.mask) dopt.init_latent = lat;
        } else {
            x = scaled(noise->randn_like(Tensor::empty(latent_shape)), diffusers_mode ? plan.init_noise_scale : sigmas[0]);
        }
        const Denoiser denoise = make_cfg_denoiser(c, m, schedule, cond, uncond, p.cfg_scale, dopt);
        const int total = int(sigmas.size()) - 1;
        EASEL_TRY(emit({.phase = "sampling", .image = i, .step = 0, .total = total}));
        StopRequest stopped = StopRequest::None;
        Tensor partial;  // the x reached when a stop request came
        auto on_step = [&](int step, int tot, const Tensor& xs) -> Status {
            if (blend_latent && step < tot) {
                // diffusers (4-channel UNet): after each scheduler step but the last, latents = (1 - mask) *
                // add_noise(image_latents, noise, timesteps[i + 1]) + mask * latents (after the last one: the
                // clean image_latents, below, once the final scale is applied). add_noise is
                // alpha * (lat + sigma * noise) and the scheduler's latents alpha * x in every class here
                // (alpha 1 for the Euler family), so in our x: lat + sigma_next * noise outside the mask.
                // xs is the sampler's own state (sampler.h): the blend carries into the next step.
                float* xp = xs.data<float>();
                const float* lp = blend_latent->data<float>();
                const float* np = blend_noise->data<float>();
                const float* rp = repaint.data<float>();
                const float s_next = sigmas[size_t(step)];
                const int64_t plane = int64_t(lh) * lw;
                for (int64_t j = 0; j < xs.numel(); ++j) {
                    const float keep = 1.0f - rp[j % plane];
                    xp[j] = keep * (lp[j] + s_next * np[j]) + rp[j % plane] * xp[j];
                }
            }
            EASEL_TRY(emit({.phase = "sampling", .image = i, .step = step, .total = tot, .latent = &xs}));
            if (stop && step < tot && (stopped = stop()) != StopRequest::None) {
                partial = xs.contiguous().clone();
                return Error::cancelled("stopped");
            }
            return ok();
        };
        Result<Tensor> sampled = diffusers_mode ? sample_diffusers(plan, denoise, x, *noise, on_step)
                                                : sample(p.sampler, denoise, x, sigmas, *noise, on_step, p.sampler_options);
        if (!sampled && stopped == StopRequest::None) return sampled.error();
        Tensor x0 = sampled ? std::move(sampled).value() : partial;
        if (blend_latent && sampled) {
            // diffusers blends after the last step too, with the un-noised image latents: outside the mask the
            // final latent is the init image's exactly.
            float* xp = x0.data<float>();
            const float* lp = blend_latent->data<float>();
            const float* rp = repaint.data<float>();
            const int64_t plane = int64_t(lh) * lw;
            for (int64_t j = 0; j < x0.numel(); ++j) xp[j] = (1.0f - rp[j % plane]) * lp[j] + rp[j % plane] * xp[j];
        }
        if (p.mask && !diffusers_mode) {
            // A1111: samples = samples * nmask + init_latent * mask.
            float* xp = x0.data<float>();
            const float* il = dopt.init_latent->data<float>();
            const float* keep = dopt.keep->data<float>();
            const int64_t plane = int64_t(lh) * lw;
            for (int64_t j = 0; j < x0.numel(); ++j) xp[j] = xp[j] * (1.0f - keep[j % plane]) + il[j] * keep[j % plane];
        }
        if (release && i == images - 1) release->unet = UNet{};  // no image needs it any more
        // The sampler's activations stay cached in the pool for the next image; the decoder's are larger and
        // of other sizes, so give the cache back first (a 512x512 decode then peaks lower by the UNet's share).
        pool.trim();
        EASEL_TRY(emit({.phase = "decode", .image = i, .step = 0, .total = 1}));
        Tensor img = p.vae_tile > 0 ? m.vae.decode_tiled(c, scaled(x0, 1.0f / scaling), p.vae_tile / f)
                                    : m.vae.decode(c, scaled(x0, 1.0f / scaling));
        EASEL_TRY(emit({.phase = "decode", .image = i, .step = 1, .total = 1}));

        GeneratedImage g;
        g.image = tensor_to_image(img);
        if (overlay) {
            // A1111 pastes the original back over what was not repainted, weighted by the doubled blurred mask.
            const Image& orig = *p.init_image;
            for (size_t k = 0; k < size_t(p.width) * size_t(p.height); ++k) {
                const int a = overlay->pixels[k];
                for (size_t ch = 0; ch < 3; ++ch) {
                    const int o = orig.pixels[k * size_t(orig.channels) + (orig.channels == 1 ? 0 : ch)];
                    uint8_t& v = g.image.pixels[k * 3 + ch];
                    v = uint8_t((int(v) * a + o * (255 - a) + 127) / 255);
                }
            }
        }
        g.seed = seed;
        g.latent = x0;
        InfotextParams ip;
        ip.prompt = p.prompt;
        ip.negative_prompt = p.negative_prompt;
        ip.steps = p.steps;
        ip.sampler = diffusers_mode ? sampler_display_name(p.diffusers_scheduler) : sampler_display_name(p.sampler);
        ip.schedule_type = schedule_display_name(p.schedule);
        if (diffusers_mode) ip.extra.emplace_back("Schedule from", "diffusers");
        ip.cfg_scale = p.cfg_scale;
        ip.seed = seed;
        ip.width = p.width;
        ip.height = p.height;
        ip.model_name = m.name;
        if (p.init_image) ip.denoising_strength = p.denoising_strength;
        if (p.mask && !diffusers_mode) ip.extra.emplace_back("Mask blur", std::to_string(p.mask_blur));
        ip.clip_skip = p.clip_skip;
        ip.rng = p.rng == RngKind::Cpu ? "CPU" : "GPU";
        ip.version = "easel 0.1.0";
        g.infotext = format_infotext(ip);
        out.push_back(std::move(g));
        if (stopped == StopRequest::Interrupt) break;
    }
    return out;
}

}  // namespace

Result<std::vector<GeneratedImage>> generate(const SDModel& m, const GenerateParams& p, const ProgressFn& progress,
                                             const StopFn& stop) {
    return generate_impl(m, nullptr, p, progress, stop);
}

Result<std::vector<GeneratedImage>> generate_once(SDModel& m, const GenerateParams& p, const ProgressFn& progress,
                                                  const StopFn& stop) {
    return generate_impl(m, &m, p, progress, stop);
}

}  // namespace easel
