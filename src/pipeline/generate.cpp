#include "pipeline/generate.h"

#include "pipeline/provenance.h"
#include "pipeline/watermark.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <memory>
#include <tuple>
#include <utility>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "pipeline/infotext.h"
#include "pipeline/lora.h"
#include "pipeline/mask.h"
#include "pipeline/tasks.h"
#include "sampling/noise.h"
#include "sampling/rng_philox.h"
#include "sampling/rng_torch_cpu.h"

namespace easel {

Result<std::vector<int>> parse_slg_layers(std::string_view text) {
    std::vector<int> out;
    for (std::string_view rest = text; !rest.empty();) {
        const size_t comma = rest.find(',');
        std::string_view item = rest.substr(0, comma);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        int v = 0;
        const auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
        if (item.empty() || ec != std::errc() || end != item.data() + item.size() || v < 0 || v > 1000)
            return Error::invalid_argument(fmt::format("expected block numbers such as \"7,8,9\", got \"{}\"", text),
                                           "slg_layers");
        out.push_back(v);
    }
    return out;
}


const char* masked_content_name(MaskedContent m) {
    switch (m) {
        case MaskedContent::Fill: return "fill";
        case MaskedContent::Original: return "original";
        case MaskedContent::LatentNoise: return "latent noise";
        case MaskedContent::LatentNothing: return "latent nothing";
    }
    return "unknown";
}

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

Status validate_params(const GenerateParams& p, const ModelSpec& m, const ModelSpec* refiner) {
    if (m.spent)
        return Error::invalid_argument("this model's weights were dropped after a one-shot generation (generate_once); "
                                       "load it again");
    const int f = m.latent.downscale;
    const int multiple = m.latent.image_multiple();
    auto side = [&](const char* name, int v) -> Status {
        if (v < multiple || v > kMaxSide)
            return Error::invalid_argument(fmt::format("must be between {} and {}, got {}", multiple, kMaxSide, v), name);
        if (v % multiple != 0)
            return Error::invalid_argument(
                fmt::format("must be a multiple of {} for this model (its autoencoder divides each side by {} and its "
                            "latent sides must be multiples of {}), got {}; nearest: {} or {}", multiple, f,
                            m.latent.side_multiple, v,
                            std::max(multiple, v / multiple * multiple), (v / multiple + 1) * multiple), name);
        if (m.latent.max_side > 0 && v / f > m.latent.max_side)
            return Error::invalid_argument(fmt::format("must be at most {} for this model (its position embeddings cover {} "
                                                       "latent pixels a side), got {}", m.latent.max_side * f,
                                                       m.latent.max_side, v), name);
        return ok();
    };
    EASEL_TRY(side("width", p.width));
    EASEL_TRY(side("height", p.height));
    EASEL_TRY(validate_control(p.control));
    if (!p.control.empty() && (p.refiner || refiner))
        return Error::unsupported("ControlNets with a refiner: the refiner is another UNet the ControlNet was not made "
                                  "for", "control");
    EASEL_TRY(validate_ip_adapters(p.ip_adapters));
    if (!p.ip_adapters.empty() && (p.refiner || refiner))
        return Error::unsupported("IP-Adapters with a refiner: the refiner is another UNet the adapter was not made for",
                                  "ip_adapter");
    for (const IPAdapterUnit& u : p.ip_adapters)
        if (!m.info.has_unet || u.adapter->config.block_widths != m.info.unet.cross_attention_blocks() ||
            u.adapter->config.cross_attention_dim != m.info.unet.cross_attention_dim)
            return Error::invalid_argument(fmt::format("the IP-Adapter {} was made for another model family than {}",
                                                       u.adapter->name, model_kind_name(m.info)), "ip_adapter");
    for (const ControlUnit& u : p.control) {
        const UNetConfig& cu = u.net->config.unet;
        if (!m.info.has_unet || cu.block_out_channels != m.info.unet.block_out_channels || cu.cross_attention_dim != m.info.unet.cross_attention_dim)
            return Error::invalid_argument(fmt::format("the ControlNet {} was made for another model family than {}",
                                                       u.net->name, model_kind_name(m.info)), "control");
    }
    if (p.steps < 1 || p.steps > kMaxSteps)
        return Error::invalid_argument(fmt::format("must be between 1 and {}, got {}", kMaxSteps, p.steps), "steps");
    if (m.sampling && m.sampling->prediction() == Prediction::Flow && p.schedule_from != ScheduleFrom::Diffusers) {
        // k-diffusion's ancestral and SDE steps add noise as x0 + sigma * noise; a flow model's x mixes them as
        // (1 - sigma) x0 + sigma noise (ComfyUI runs its *_RF variants there). Deterministic samplers are exact.
        const bool noisy = p.sampler == SamplerKind::DpmPP2MSde || p.sampler == SamplerKind::DpmPPSde;
        if (p.sampler == SamplerKind::Lcm || (noisy && p.sampler_options.eta != 0.0))
            return Error::unsupported(fmt::format("{} on a flow model (SD3): its noise step is made for eps/v models; use "
                                                  "euler, euler_a, heun, dpm2, lms, dpm++2m or ddim (or eta 0)",
                                                  sampler_name(p.sampler)), "sampler");
    }
    if (!std::isfinite(p.cfg_scale) || p.cfg_scale < 0 || p.cfg_scale > 100)
        return Error::invalid_argument(fmt::format("must be between 0 and 100, got {}", p.cfg_scale), "cfg_scale");
    if (p.guidance && !(*p.guidance >= 0 && *p.guidance <= 100))
        return Error::invalid_argument(fmt::format("must be between 0 and 100, got {}", *p.guidance), "guidance");
    if (p.shift && !(m.sampling && m.sampling->flow_shift()))
        return Error::invalid_argument("a flow shift is for flow models (SD3, Flux); this model samples a DDPM schedule",
                                       "shift");
    if (p.shift && !(*p.shift > 0 && *p.shift <= 100))
        return Error::invalid_argument(fmt::format("must be in (0, 100], got {}", *p.shift), "shift");
    if (!p.slg.layers.empty()) {
        if (m.skippable_blocks == 0)
            return Error::invalid_argument("skip-layer guidance leaves out transformer blocks; this model's diffusion model "
                                           "has none it can skip (SD3 and SD3.5 have)", "slg_layers");
        for (int b : p.slg.layers)
            if (b < 0 || b >= m.skippable_blocks)
                return Error::invalid_argument(fmt::format("block {} is not one of this transformer's blocks 0 to {}", b,
                                                           m.skippable_blocks - 1), "slg_layers");
        if (p.cfg_scale == 1.0 || (p.schedule_from == ScheduleFrom::Diffusers && p.cfg_scale <= 1.0))
            return Error::invalid_argument("skip-layer guidance works with classifier-free guidance; cfg_scale turns it off",
                                           "slg_layers");
        if (!(std::isfinite(p.slg.scale) && p.slg.scale >= 0 && p.slg.scale <= 100))
            return Error::invalid_argument(fmt::format("must be between 0 and 100, got {}", p.slg.scale), "slg_scale");
        if (!(p.slg.start >= 0 && p.slg.start <= 1 && p.slg.stop >= 0 && p.slg.stop <= 1 && p.slg.start <= p.slg.stop))
            return Error::invalid_argument(fmt::format("start {} and stop {} must be fractions of the schedule with "
                                                       "0 <= start <= stop <= 1", p.slg.start, p.slg.stop), "slg_start");
    }
    if (p.vae_tile != 0 && (p.vae_tile < 2 * f || p.vae_tile % f != 0 || p.vae_tile > kMaxSide))
        return Error::invalid_argument(fmt::format("must be 0 (off) or a multiple of {} between {} and {}, got {}", f, 2 * f,
                                                   kMaxSide, p.vae_tile), "vae_tile");
    if (p.batch_size < 1 || p.batch_size > kMaxBatch)
        return Error::invalid_argument(fmt::format("must be between 1 and {}, got {}", kMaxBatch, p.batch_size), "batch_size");
    if (p.batch_count < 1 || p.batch_count > 1000)
        return Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", p.batch_count), "batch_count");
    for (auto [name, v] : {std::pair{"original_width", p.size_conditioning.original_width},
                           std::pair{"original_height", p.size_conditioning.original_height},
                           std::pair{"crop_top", p.size_conditioning.crop_top},
                           std::pair{"crop_left", p.size_conditioning.crop_left},
                           std::pair{"target_width", p.size_conditioning.target_width},
                           std::pair{"target_height", p.size_conditioning.target_height}})
        if (v < 0 || v > 4 * kMaxSide)
            return Error::invalid_argument(fmt::format("must be between 0 (the image's own) and {}, got {}", 4 * kMaxSide, v),
                                           name);
    if (p.max_sequence_length < 0 || p.max_sequence_length > 512)
        return Error::invalid_argument(fmt::format("must be between 1 and 512 (0: the model's default), got {}",
                                                   p.max_sequence_length), "max_sequence_length");
    if (p.clip_skip < 1 || p.clip_skip > 12)
        return Error::invalid_argument(fmt::format("must be between 1 and 12, got {}", p.clip_skip), "clip_skip");
    if (p.init_image) {
        if (!(p.denoising_strength >= 0.0 && p.denoising_strength <= 1.0))
            return Error::invalid_argument(fmt::format("must be between 0 and 1, got {}", p.denoising_strength),
                                           "denoising_strength");
        if ((p.init_image->width != p.width || p.init_image->height != p.height) && !(p.mask && p.inpaint_only_masked))
            return Error::invalid_argument(fmt::format("init image is {}x{}, expected {}x{}", p.init_image->width,
                                                       p.init_image->height, p.width, p.height), "init_image");
        if (!m.has_vae_encoder) return Error::invalid_argument("the model was loaded without its VAE encoder", "init_image");
    }
    if (!(p.denoising_end > 0.0 && p.denoising_end <= 1.0))
        return Error::invalid_argument(fmt::format("must be in (0, 1], got {}", p.denoising_end), "denoising_end");
    if (p.init_latent) {
        if (p.init_image)
            return Error::invalid_argument("give an init image or an init latent, not both", "init_latent");
        if (!(p.denoising_start > 0.0 && p.denoising_start < 1.0))
            return Error::invalid_argument(fmt::format("must be in (0, 1) with an init latent, got {}", p.denoising_start),
                                           "denoising_start");
        const Shape want{1, m.latent.channels, p.height / m.latent.downscale, p.width / m.latent.downscale};
        if (p.init_latent->shape() != want || p.init_latent->dtype() != DType::F32)
            return Error::invalid_argument(fmt::format("is {} {}, expected f32 {} for {}x{} on this model",
                                                       dtype_name(p.init_latent->dtype()), p.init_latent->shape().to_string(),
                                                       want.to_string(), p.width, p.height), "init_latent");
    } else if (p.denoising_start != 0.0) {
        return Error::invalid_argument("needs an init latent (the latent a run with denoising_end stopped at)",
                                       "denoising_start");
    }
    if ((p.init_latent || p.denoising_end < 1.0) && p.schedule_from != ScheduleFrom::Diffusers)
        return Error::unsupported("denoising_end / denoising_start (diffusers' base-to-refiner hand-off) in k-diffusion "
                                  "mode; use diffusers mode (--schedule-from diffusers)", "schedule_from");
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
        if (p.init_image && diffusers_img2img_steps(m, p.steps, p.denoising_strength) < 1)
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
    const int fill = int(p.masked_content);
    if (fill < 0 || fill > 3)
        return Error::invalid_argument(fmt::format("must be 0 (fill), 1 (original), 2 (latent noise) or 3 (latent nothing), "
                                                   "got {}", fill), "inpainting_fill");
    if ((p.masked_content != MaskedContent::Original || p.inpaint_only_masked) && !p.mask)
        return Error::invalid_argument(p.inpaint_only_masked ? "'only masked' needs a mask" : "masked content needs a mask",
                                       p.inpaint_only_masked ? "inpaint_full_res" : "inpainting_fill");
    if (p.mask && p.schedule_from == ScheduleFrom::Diffusers) {
        if (p.masked_content != MaskedContent::Original)
            return Error::unsupported(fmt::format("masked content '{}' in diffusers mode (it is AUTOMATIC1111's option; "
                                                  "use k-diffusion mode)", masked_content_name(p.masked_content)),
                                      "inpainting_fill");
        if (p.inpaint_only_masked)
            return Error::unsupported("'only masked' in diffusers mode (it is AUTOMATIC1111's option; use k-diffusion mode)",
                                      "inpaint_full_res");
    }
    if (p.mask && p.inpaint_only_masked) {
        if (p.inpaint_padding < 0 || p.inpaint_padding > 256)
            return Error::invalid_argument(fmt::format("must be between 0 and 256, got {}", p.inpaint_padding),
                                           "inpaint_full_res_padding");
        if (!mask_crop_region(mask_to_gray(*p.mask), 0))
            return Error::invalid_argument("the mask is blank: 'only masked' needs a painted area to cut out", "mask");
        if (!p.control.empty())
            return Error::unsupported("ControlNet with 'only masked' (the control image would need the same cut)",
                                      "inpaint_full_res");
    }
    if (!refiner) refiner = p.refiner;
    if (refiner) {
        const ModelSpec& r = *refiner;
        if (r.spent) return Error::invalid_argument("the refiner's weights were dropped after a one-shot generation", "refiner");
        const LatentFormat& a = m.latent;
        const LatentFormat& b = r.latent;
        if (a.channels != b.channels || a.scaling_factor != b.scaling_factor || a.shift_factor != b.shift_factor ||
            a.downscale != b.downscale)
            return Error::invalid_argument(
                fmt::format("{} ({}) cannot finish images of {} ({}): their latent spaces differ ({} channels, scale {}, "
                            "/{} against {} channels, scale {}, /{}); a refiner must share its base's autoencoder "
                            "(an SDXL refiner finishes an SDXL base)", r.name, model_kind_name(r.info), m.name,
                            model_kind_name(m.info), b.channels, b.scaling_factor, b.downscale, a.channels,
                            a.scaling_factor, a.downscale), "refiner");
        if (r.inpainting) return Error::invalid_argument(fmt::format("{} is an inpainting model, not a refiner", r.name), "refiner");
        if ((p.width / a.downscale) % b.side_multiple != 0 || (p.height / a.downscale) % b.side_multiple != 0)
            return Error::invalid_argument(fmt::format("{}x{} does not suit the refiner: its sides must be multiples of {}",
                                                       p.width, p.height, b.image_multiple()), "refiner");
        if (!(p.refiner_switch_at > 0.0 && p.refiner_switch_at < 1.0))
            return Error::invalid_argument(fmt::format("must be between 0 and 1 (exclusive), got {}", p.refiner_switch_at),
                                           "refiner_switch_at");
        if (p.mask) return Error::unsupported("inpainting with a refiner", "refiner");
        if (p.init_latent || p.denoising_end < 1.0)
            return Error::invalid_argument("give a refiner or denoising_end / init_latent (the hand-off by hand), not both",
                                           "refiner");
        if (p.schedule_from == ScheduleFrom::Diffusers && p.init_image)
            return Error::unsupported("img2img with a refiner in diffusers mode (the ensemble of experts starts from "
                                      "txt2img; k-diffusion mode switches within img2img too)", "refiner");
    }
    if (m.inpainting && !m.has_vae_encoder)
        return Error::invalid_argument("inpainting models need the VAE encoder; the model was loaded without it");
    return ok();
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

InfotextParams infotext_params(const Model& m, const GenerateParams& p, int64_t seed) {
    InfotextParams ip;
    const bool diffusers_mode = p.schedule_from == ScheduleFrom::Diffusers;
    ip.prompt = p.prompt;
    ip.negative_prompt = p.negative_prompt;
    ip.steps = p.steps;
    ip.sampler = diffusers_mode ? sampler_display_name(p.diffusers_scheduler) : sampler_display_name(p.sampler);
    ip.schedule_type = schedule_display_name(p.schedule);
    if (diffusers_mode) ip.extra.emplace_back("Schedule from", "diffusers");
    if (diffusers_mode && p.timestep_spacing) {
        const TimestepSpacing ts = *p.timestep_spacing;
        ip.extra.emplace_back("Timestep spacing", ts == TimestepSpacing::Trailing ? "trailing"
                                                  : ts == TimestepSpacing::Linspace ? "linspace" : "leading");
    }
    ip.cfg_scale = p.cfg_scale;
    // Forge's field for the guidance a guidance-distilled model was given.
    if (m.guidance == GuidanceMode::Distilled)
        ip.extra.emplace_back("Distilled CFG Scale", python_float_str(p.guidance.value_or(m.default_guidance)));
    if (p.shift) ip.extra.emplace_back("Shift", python_float_str(*p.shift));
    // "fast" where it ran the bf16 kernels (on CPUs without a bf16 dot product it runs the f32 ones, which are exact).
    if (m.precision == Precision::BF16) ip.extra.emplace_back("Precision", "bf16");
    if (!p.slg.layers.empty()) {
        ip.extra.emplace_back("SLG layers", fmt::format("{}", fmt::join(p.slg.layers, ",")));
        ip.extra.emplace_back("SLG scale", python_float_str(p.slg.scale));
        ip.extra.emplace_back("SLG start", python_float_str(p.slg.start));
        ip.extra.emplace_back("SLG stop", python_float_str(p.slg.stop));
    }
    ip.seed = seed;
    ip.width = p.width;
    ip.height = p.height;
    ip.model_name = p.infotext_model.empty() ? m.name : p.infotext_model;
    if (p.infotext_model.empty()) ip.model_hash = m.short_hash;  // A1111's "Model hash" (when the model was hashed)
    ip.clip_skip = p.clip_skip;
    ip.rng = p.rng == RngKind::Cpu ? "CPU" : "GPU";
    ip.version = kEaselGenerator;
    return ip;
}

// One image's generator (torch's CPU generator or A1111's Philox), seeded.
class SeededNoise final : public NoiseSource {
public:
    SeededNoise(RngKind rng, int64_t seed) {
        if (rng == RngKind::Cpu) cpu_.emplace(TorchCpuGenerator::seed_from_int64(seed));
        else cuda_.emplace(uint64_t(seed));
    }
    Tensor randn_like(const Tensor& x) override { return cpu_ ? cpu_->randn(x.shape()) : cuda_->randn(x.shape()); }

private:
    std::optional<TorchCpuGenerator> cpu_;
    std::optional<PhiloxGenerator> cuda_;
};

// How many images of a batch one sampling run takes at once. The activations grow with the latent pixels of a
// model call; up to 4 x 64 x 64 of them per half of the guidance pair (four SD 1.5 images at 512x512, one SDXL
// image at 1024x1024) keeps a batched step within about the memory of a single SDXL image's.
constexpr int64_t kLatentPixelsPerCall = 4 * 64 * 64;
int images_per_call(const ModelSpec& m, const GenerateParams& p) {
    const int64_t pixels = int64_t(p.width / m.latent.downscale) * (p.height / m.latent.downscale);
    return int(std::clamp<int64_t>(kLatentPixelsPerCall / std::max<int64_t>(pixels, 1), 1, p.batch_size));
}

// Whether classifier-free guidance runs (ClassifierFreeGuidance's rule: off at 1, and at or below 1 in diffusers
// mode), so that the unconditional half is needed.
bool cfg_used(const GenerateParams& p) {
    return p.cfg_scale != 1.0 && !(p.schedule_from == ScheduleFrom::Diffusers && p.cfg_scale <= 1.0);
}

// Skip-layer guidance's layers, scale and window (GenerateParams::slg), or none. Diffusers mode: the steps i with
// start * steps < i < stop * steps, told apart by their sigma (one model call per step in diffusers' loop for flow
// models; a sigma not in the list is outside). k-diffusion mode: ComfyUI's SkipLayerGuidanceSD3, the calls with
// sigma(stop) <= sigma <= sigma(start), where sigma(percent) is the model sampling's percent_to_sigma.
std::optional<SkipLayers> skip_layers(const GenerateParams& p, const ModelSpec& m, const SigmaPlan& plan) {
    if (p.slg.layers.empty()) return std::nullopt;
    SkipLayers s{.layers = p.slg.layers, .scale = p.slg.scale, .active = {}};
    if (plan.diffusers) {
        const std::vector<float> sig = plan.sigmas;
        const double steps = double(sig.size()) - 1;
        const double start = p.slg.start, stop = p.slg.stop;
        s.active = [sig, steps, start, stop](float sigma) {
            for (size_t i = 0; i + 1 < sig.size(); ++i)
                if (sig[i] == sigma) return double(i) > steps * start && double(i) < steps * stop;
            return false;
        };
    } else {
        const double hi = m.sampling->percent_to_sigma(p.slg.start), lo = m.sampling->percent_to_sigma(p.slg.stop);
        s.active = [hi, lo](float sigma) { return double(sigma) >= lo && double(sigma) <= hi; };
    }
    return s;
}

// generate() and generate_once(): with `release` (the same model, writable), networks are dropped after use.
Result<std::vector<GeneratedImage>> generate_impl(const Model& m, Model* release, const GenerateParams& p,
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

    // 1. The prompts' conditioning.
    EASEL_TRY(emit({.phase = "encode", .step = 0, .total = 1}));
    const bool kdiffusion = p.schedule_from != ScheduleFrom::Diffusers;
    // AUTOMATIC1111's extra-network tags (<lora:name:0.8>) leave the positive prompt before it is encoded (the
    // caller applied the LoRAs they name; pipeline/lora.h); the infotext keeps them, as A1111's does.
    const PromptRequest request{.prompt = strip_extra_networks(p.prompt), .negative = p.negative_prompt,
                                .prompt_2 = strip_extra_networks(p.prompt_2),
                                .negative_2 = p.negative_prompt_2, .clip_skip = p.clip_skip,
                                .max_sequence_length = p.max_sequence_length,
                                .unconditional = cfg_used(p), .width = p.width,
                                .height = p.height, .size = p.size_conditioning,
                                .zero_empty_negative = kdiffusion ? std::optional<bool>(true) : std::nullopt,
                                .embeddings = p.embeddings};
    EASEL_TRY_ASSIGN(ConditioningPair conds, m.conditioner().encode(c, request));
    EASEL_TRY(add_image_prompts(c, p.ip_adapters, conds));
    // AUTOMATIC1111's refiner (k-diffusion mode; diffusers mode's hand-off is generate_with_refiner): the same
    // request through the refiner's conditioner, which A1111 runs at the switch.
    std::optional<ConditioningPair> refiner_conds;
    if (p.refiner) {
        EASEL_TRY_ASSIGN(refiner_conds, p.refiner->conditioner().encode(c, request));
    }
    EASEL_TRY(emit({.phase = "encode", .step = 1, .total = 1}));
    if (release) {
        release->spent = true;  // from here on: the conditioner is gone, the diffusion model goes after the last image
        release->release_conditioner();
    }

    // 2. The sigmas, and what the task (txt2img, img2img, inpainting) adds to each image.
    EASEL_TRY_ASSIGN(const SigmaPlan plan, plan_sigmas(m, p));
    EASEL_TRY_ASSIGN(const std::unique_ptr<ImageTask> task, make_image_task(c, m, p, plan));
    // A guidance-distilled model gets its guidance as an input, on both halves when CFG runs too.
    if (m.guidance == GuidanceMode::Distilled)
        conds.cond.guidance = conds.uncond.guidance = float(p.guidance.value_or(m.default_guidance));
    const ClassifierFreeGuidance guidance(p.cfg_scale, /*sequential=*/release != nullptr,
                                          /*off_at_or_below_one=*/plan.diffusers, skip_layers(p, m, plan));
    EASEL_TRY_ASSIGN(const ControlFn control, make_control_fn(p.control, p.width, p.height, plan.sigmas, p.mask,
                                                                   /*a1111=*/!plan.diffusers));
    const auto image_prompts = image_prompt_windows(p.ip_adapters, plan.sigmas, /*a1111=*/!plan.diffusers);

    // One sampled image finished: decoded (when asked), marked, described. `switched`: the refiner took over.
    auto finish_image = [&](int i, const Tensor& x0, bool switched) -> Result<GeneratedImage> {
        const int64_t seed = p.seed + i;
        GeneratedImage g;
        if (p.decode) {
            EASEL_TRY(emit({.phase = "decode", .image = i, .step = 0, .total = 1}));
            const int tile = p.vae_tile / m.latent.downscale;
            const Model& finisher = switched ? *p.refiner : m;  // A1111 decodes with the model loaded last
            Tensor img = finisher.autoencoder().decode(c, to_autoencoder_units(finisher.latent, x0), tile);
            EASEL_TRY(emit({.phase = "decode", .image = i, .step = 1, .total = 1}));
            // The invisible watermark: SDXL's as diffusers applies it (on the decoder's float output), the others'
            // on the 8-bit image, as the SD scripts do.
            const int64_t ih = img.shape()[2], iw = img.shape()[3];
            const bool mark = p.watermark && ih * iw >= kWatermarkMinPixels;
            std::string marks;
            if (mark && finisher.family == "sdxl" && iw >= 256 && img.dtype() == DType::F32 && img.is_contiguous()) {
                EASEL_TRY(embed_watermark_sdxl(img.data<float>(), int(ih), int(iw)));
                marks = "diffusers SDXL 0xB3EC907BB19E (U)";
            }
            g.image = tensor_to_image(img);
            task->after_decode(g.image);
            if (mark && g.image.channels == 3) {
                const bool sd = finisher.family == "sd";
                EASEL_TRY(embed_watermarks(g.image, sd ? &sd_watermark_bits() : nullptr, &easel_watermark_bits()));
                marks += std::string(marks.empty() ? "" : ", ") + (sd ? "StableDiffusionV1 (U), " : "") + "easel (V)";
            }
            g.watermark = mark ? marks : p.watermark ? "none: smaller than 256x256" : "none: turned off";
        }
        g.seed = seed;
        g.latent = x0;
        InfotextParams ip = infotext_params(m, p, seed);
        task->describe(ip);
        if (switched) {
            ip.extra.emplace_back("Refiner", p.refiner->name);
            ip.extra.emplace_back("Refiner switch at", fmt::format("{}", p.refiner_switch_at));
        }
        for (size_t u = 0; u < p.control.size(); ++u) {
            // As AUTOMATIC1111's ControlNet extension writes its units (no preprocessor: the image is the hint;
            // the infotext quotes the value, which holds commas).
            const ControlUnit& cu = p.control[u];
            ip.extra.emplace_back(fmt::format("ControlNet {}", u),
                                  fmt::format("Module: {}, Model: {}, Weight: {}{}, Guidance Start: {}, Guidance End: {}, "
                                              "Control Mode: {}", preprocessor_name(cu.preprocessor), cu.net->name,
                                              cu.scale, preprocessor_sliders(cu.preprocessor), cu.start, cu.end,
                                              control_mode_name(cu.mode)));
        }
        for (size_t u = 0; u < p.ip_adapters.size(); ++u) {
            // AUTOMATIC1111's ControlNet extension runs IP-Adapters as units too, numbered after the ControlNets,
            // the image encoder named as its preprocessor.
            const IPAdapterUnit& iu = p.ip_adapters[u];
            ip.extra.emplace_back(fmt::format("ControlNet {}", p.control.size() + u),
                                  fmt::format("Module: {}, Model: {}, Weight: {}, Guidance Start: {}, Guidance End: {}",
                                              ip_adapter_module_name(iu), iu.adapter->name, iu.scale, iu.start, iu.end));
        }
        for (const auto& kv : p.infotext_extra) ip.extra.push_back(kv);
        if (!conds.embeddings_used.empty() && p.embeddings) {
            // A1111's "TI hashes": each embedding the prompts used, with its short hash.
            std::string v;
            for (const std::string& n : conds.embeddings_used)
                for (const TextualInversion& e : p.embeddings->items)
                    if (e.name == n) {
                        v += fmt::format("{}{}: {}", v.empty() ? "" : ", ", n, e.hash);
                        break;
                    }
            ip.extra.emplace_back("TI hashes", v);
        }
        g.infotext = format_infotext(ip);
        // The XMP beside it: the label, the generator, the model (with the refiner's when one finished the image,
        // A1111's "Model" stays the base), its hash and licence, the LoRAs.
        Provenance prov{ip.model_name, ip.model_hash, m.license, {}, ip.version.empty() ? kEaselGenerator : ip.version,
                        g.watermark};
        for (const auto& [k, v] : ip.extra)
            if (k == "Lora hashes") prov.lora_hashes = v;
        g.metadata = image_metadata(g.infotext, prov);
        g.provenance = std::move(prov);
        return g;
    };

    // 3. The images, a group at a time (images_per_call: up to batch_size, within the activation budget): each
    // image's own noise and start, one sampling run for the group (every model call takes all of its images), then
    // each image decoded. An image comes out as it would alone with its seed: its generator draws what it would
    // draw alone, in the same order (A1111's ImageRNG, diffusers' generator lists), and each item of a batched
    // call is computed as a batch of one would be.
    SamplerOptions sampler_options = p.sampler_options;
    sampler_options.flow = m.sampling->prediction() == Prediction::Flow;
    const int per_call = images_per_call(m, p);
    std::vector<GeneratedImage> out;
    for (int first = 0; first < images; ) {
        // Groups never straddle two batches: batch_size is what the user allows at once.
        const int in_batch = first % p.batch_size;
        const int group = std::min(per_call, p.batch_size - in_batch);
        std::vector<std::unique_ptr<SeededNoise>> noises;
        std::vector<NoiseSource*> sources;
        std::vector<ImageStart> starts;
        for (int j = 0; j < group; ++j) {
            noises.push_back(std::make_unique<SeededNoise>(p.rng, p.seed + first + j));
            sources.push_back(noises.back().get());
            EASEL_TRY_ASSIGN(ImageStart one, task->start(c, *noises.back()));
            starts.push_back(std::move(one));
        }
        PerSampleNoise stacked_noise(sources);
        NoiseSource& noise = group == 1 ? *noises[0] : static_cast<NoiseSource&>(stacked_noise);
        ImageStart start = stack_starts(c, std::move(starts));
        if (control) start.hooks.control = control;
        if (image_prompts) start.hooks.image_prompts = image_prompts;
        const ConditioningPair group_conds{Conditioning::repeat(c, conds.cond, group),
                                           Conditioning::repeat(c, conds.uncond, group), conds.embeddings_used};
        Denoiser denoise = make_denoiser(c, m, guidance, group_conds, start.hooks);
        const auto switched = std::make_shared<bool>(false);
        if (p.refiner) {
            // A1111's apply_refiner, at the start of every model evaluation: once the sigma's place on the training
            // schedule reaches the switch, the refiner takes every evaluation left; the sampler never notices.
            const ConditioningPair rc{Conditioning::repeat(c, refiner_conds->cond, group),
                                      Conditioning::repeat(c, refiner_conds->uncond, group), {}};
            Denoiser second = make_denoiser(c, *p.refiner, guidance, rc, start.hooks);
            denoise = [base = std::move(denoise), second = std::move(second), switched, &ms = *m.sampling,
                       at = float(p.refiner_switch_at)](const Tensor& x, float sigma) -> Result<Tensor> {
                if (!*switched && ms.schedule_fraction(sigma) >= at) *switched = true;
                return *switched ? second(x, sigma) : base(x, sigma);
            };
        }
        const int total = int(plan.sigmas.size()) - 1;
        EASEL_TRY(emit({.phase = "sampling", .image = first, .batch = group, .step = 0, .total = total}));
        StopRequest stopped = StopRequest::None;
        Tensor partial;  // the x reached when a stop request came
        auto on_step = [&](int step, int tot, const Tensor& xs) -> Status {
            if (start.after_step) start.after_step(step, tot, xs);
            EASEL_TRY(emit({.phase = "sampling", .image = first, .batch = group, .step = step, .total = tot, .latent = &xs}));
            if (stop && step < tot && (stopped = stop()) != StopRequest::None) {
                partial = xs.contiguous().clone();
                return Error::cancelled("stopped");
            }
            return ok();
        };
        Result<Tensor> sampled = plan.diffusers ? sample_diffusers(plan.plan, denoise, start.x, noise, on_step)
                                                : sample(p.sampler, denoise, start.x, plan.sigmas, noise, on_step,
                                                         sampler_options);
        if (!sampled && stopped == StopRequest::None) return sampled.error();
        Tensor x0s = sampled ? std::move(sampled).value() : partial;
        if (start.after_sampling) start.after_sampling(x0s, sampled.has_value());
        if (release && first + group == images) release->release_diffusion_model();  // no image needs it any more
        // The sampler's activations stay cached in the pool for the next group; the decoder's are larger and
        // of other sizes, so give the cache back first (a 512x512 decode then peaks lower by the sampler's share).
        pool.trim();
        for (int j = 0; j < group; ++j) {
            EASEL_TRY_ASSIGN(GeneratedImage g, finish_image(first + j, group == 1 ? x0s : x0s.slice(0, j, j + 1).clone(),
                                                            *switched));
            out.push_back(std::move(g));
        }
        first += group;
        if (stopped == StopRequest::Interrupt) break;
    }
    return out;
}

// diffusers' ensemble of experts: the base to denoising_end = switch, each latent undecoded to the refiner from
// denoising_start = switch. Everything is checked before the base starts.
Result<std::vector<GeneratedImage>> generate_with_refiner(const Model& m, Model* release, const GenerateParams& p,
                                                          const ProgressFn& progress, const StopFn& stop) {
    EASEL_TRY(validate_params(p, m));
    const Model& refiner = *p.refiner;
    GenerateParams base = p;
    base.refiner = nullptr;
    base.denoising_end = p.refiner_switch_at;
    base.decode = false;
    GenerateParams finish = p;
    finish.refiner = nullptr;
    finish.batch_size = finish.batch_count = 1;
    finish.denoising_start = p.refiner_switch_at;
    finish.infotext_model = p.infotext_model.empty() ? m.name : p.infotext_model;
    finish.infotext_extra.insert(finish.infotext_extra.begin(),
                                 {{"Refiner", refiner.name}, {"Refiner switch at", fmt::format("{}", p.refiner_switch_at)}});
    finish.init_latent = Tensor::zeros({1, m.latent.channels, p.height / m.latent.downscale, p.width / m.latent.downscale});
    EASEL_TRY(validate_params(base, m));
    EASEL_TRY(validate_params(finish, refiner));
    EASEL_TRY_ASSIGN(std::vector<GeneratedImage> images, generate_impl(m, release, base, progress, stop));
    for (GeneratedImage& g : images) {
        finish.seed = g.seed;
        finish.init_latent = g.latent;
        EASEL_TRY_ASSIGN(std::vector<GeneratedImage> out, generate_impl(refiner, nullptr, finish, progress, stop));
        g = std::move(out[0]);
    }
    return images;
}

Result<std::vector<GeneratedImage>> dispatch(const Model& m, Model* release, const GenerateParams& p, const ProgressFn& progress,
                                        const StopFn& stop) {
    if (p.refiner && p.schedule_from == ScheduleFrom::Diffusers) return generate_with_refiner(m, release, p, progress, stop);
    return generate_impl(m, release, p, progress, stop);
}

}  // namespace

Result<std::vector<GeneratedImage>> generate(const Model& m, const GenerateParams& p, const ProgressFn& progress,
                                             const StopFn& stop) {
    return dispatch(m, nullptr, p, progress, stop);
}

Result<std::vector<GeneratedImage>> generate_once(Model& m, const GenerateParams& p, const ProgressFn& progress,
                                                  const StopFn& stop) {
    return dispatch(m, &m, p, progress, stop);
}

}  // namespace easel
