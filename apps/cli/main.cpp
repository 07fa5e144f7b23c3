// easel: the command-line interface. `easel generate`, `easel info`, `easel tokenize`.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <iterator>
#include <fstream>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>

#include <fmt/format.h>

#include "args.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "pipeline/families/sd.h"  // easel info / tokenize: CLIP tokenizer and SD detection details
#include "pipeline/embeddings.h"
#include "pipeline/generate.h"
#include "pipeline/controlnet.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/lora.h"
#include "pipeline/quantize.h"
#include "runtime/pack_cache.h"
#include "progress.h"
#include "io/xmp.h"
#include "pipeline/preview.h"
#include "pipeline/provenance.h"
#include "pipeline/verify_image.h"
#include "pipeline/watermark.h"
#include "server/cluster_worker.h"
#include "server/server.h"
#include "server/worker.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

constexpr const char* kVersion = "easel 0.1.0";

// `text` cut at each `sep` (empty pieces kept, so "a,,b" names an empty file and fails to read).
std::vector<std::string> split(const std::string& text, char sep) {
    std::vector<std::string> out;
    size_t at = 0;
    for (size_t next; (next = text.find(sep, at)) != std::string::npos; at = next + 1) out.push_back(text.substr(at, next - at));
    out.push_back(text.substr(at));
    return out;
}

int fail(const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.to_string().c_str());
    return e.code() == ErrorCode::Internal ? 3 : 1;
}

// The embedded default model: $EASEL_MODELS_DIR/tiny, next to the binary's tree, or the source tree it was built from.
// --precision: auto (pipeline/model.h auto_precision), fp32, or fast (the bf16 kernels only where this CPU's
// measurement favours them: kernels/matmul.h fast_precision). Sets `out` and says what runs.
std::string resolve_precision(const std::string& mode, const std::string& model_path, Precision& out) {
    std::string why;
    if (mode == "fp32") {
        out = Precision::F32;
        return "fp32 (exact)";
    }
    if (mode == "auto") {
        out = auto_precision(model_path, &why);
        return why;
    }
    out = fast_precision(&why);
    return "fast: " + why;
}

Result<std::string> default_model_path() {
    std::vector<fs::path> candidates;
    if (const char* e = std::getenv("EASEL_MODELS_DIR")) candidates.emplace_back(fs::path(e) / "tiny");
    std::error_code ec;
    const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) {
        candidates.push_back(exe.parent_path() / "../share/easel/models/tiny");
        candidates.push_back(exe.parent_path() / "../../../models/tiny");  // build/<preset>/apps/easel
    }
#ifdef EASEL_SOURCE_MODELS_DIR
    candidates.emplace_back(fs::path(EASEL_SOURCE_MODELS_DIR) / "tiny");
#endif
    std::string looked;
    for (const fs::path& p : candidates) {
        if (fs::is_regular_file(p / "model_index.json", ec)) return fs::weakly_canonical(p, ec).string();
        looked += "\n  " + p.lexically_normal().string();
    }
    return Error::not_found("no model given (-m) and the embedded model was not found; looked in:" + looked);
}

Status apply_common(const cli::Flag& threads, const cli::Flag& isa) {
    if (threads.seen) {
        if (threads.i < 1 || threads.i > 1024)
            return Error::invalid_argument(fmt::format("must be between 1 and 1024, got {}", threads.i), "--threads");
        set_num_threads(int(threads.i));
    }
    if (isa.seen) {
        auto v = isa_from_name(isa.s);
        if (!v) return Error::invalid_argument(fmt::format("expected ref, avx2, avx512, avx512bf16 or amx, got '{}'", isa.s), "--cpu-isa");
        set_isa_cap(*v);
    }
    return ok();
}

std::string output_path(const std::string& base, int index, int count) {
    if (count == 1) return base;
    fs::path p(base);
    return (p.parent_path() / fmt::format("{}-{}{}", p.stem().string(), index, p.extension().string())).string();
}

int cmd_generate(int argc, char** argv) {
    cli::Args a("generate", "Generate images from a prompt with a Stable Diffusion 1.x/2.x model (or the embedded one).");
    auto& model = a.add_string("--model", "-m", "", "model file (.safetensors, .ckpt, .gguf) or diffusers folder (default: the embedded model)");
    auto& prompt = a.add_string("--prompt", "-p", "", "what to draw (AUTOMATIC1111 syntax: (word:1.3), [word], BREAK)", true);
    auto& negative = a.add_string("--negative-prompt", "-n", "", "what to avoid");
    auto& prompt_2 = a.add_string("--prompt-2", "", "", "SDXL: the prompt for the second text encoder (OpenCLIP bigG; diffusers prompt_2); default: --prompt");
    auto& negative_2 = a.add_string("--negative-prompt-2", "", "", "SDXL: the negative prompt for the second text encoder; default: --negative-prompt");
    auto& original_size = a.add_string("--original-size", "", "", "SDXL size conditioning: WxH the model is told the source picture had (default: the output size)");
    auto& crop = a.add_string("--crop", "", "", "SDXL size conditioning: LEFTxTOP crop offset (default: 0x0)");
    auto& target_size = a.add_string("--target-size", "", "", "SDXL size conditioning: WxH target size (default: the output size)");
    auto& refiner = a.add_string("--refiner", "", "", "SDXL: a refiner model that finishes each image (AUTOMATIC1111's Refiner: the sampler switches models at --refiner-switch; with --schedule-from diffusers, diffusers' ensemble of experts: the base runs the steps above --refiner-switch, the refiner the rest from the base's latent)");
    auto& refiner_switch = a.add_double("--refiner-switch", "", 0.8, "with --refiner: the fraction of the training schedule the base runs (A1111's \"Switch at\"; diffusers denoising_end / denoising_start)");
    auto& lora = a.add_string("--lora", "", "", "apply a LoRA / LyCORIS file: NAME[:MULTIPLIER] or NAME:TE:UNET, a file in --lora-dir or a path; repeat for several (the same as <lora:NAME:MULTIPLIER> in the prompt, which is added to the image's infotext)");
    auto& lora_dir = a.add_string("--lora-dir", "", "", "folder of LoRA files that <lora:NAME> and --lora NAME look in, recursively (default: a Lora folder beside the model or beside its folder, as AUTOMATIC1111's models/Lora)");
    auto& embeddings_dir = a.add_string("--embeddings-dir", "", "", "folder of textual-inversion embeddings a prompt names by file name (default: an embeddings folder beside the model, its folder or the one above, as AUTOMATIC1111's); files there that are not embeddings are skipped with a warning");
    auto& controlnet = a.add_string("--controlnet", "", "", "a ControlNet (diffusers folder, or a .safetensors/.pth file in diffusers' or the original control_v11p_sd15_* layout) steering the image by --control-image; repeat for several");
    auto& control_image = a.add_string("--control-image", "", "", "the control image (edges, pose, depth... already made, or made by --control-preprocessor), fitted to the output size as AUTOMATIC1111's ControlNet extension fits it (OpenCV; edge maps kept one pixel wide), or with --schedule-from diffusers with Pillow's LANCZOS as diffusers does; one per --controlnet in order, or one for all");
    auto& control_scale = a.add_string("--control-scale", "", "1", "ControlNet strength (diffusers controlnet_conditioning_scale, A1111's Weight), one per --controlnet or one for all");
    auto& control_start = a.add_string("--control-start", "", "0", "fraction of the steps before a ControlNet starts acting (control_guidance_start), one per --controlnet or one for all");
    auto& control_pre = a.add_string("--control-preprocessor", "", "none", "what makes the control map from --control-image, as AUTOMATIC1111's ControlNet extension names it: none (the image is the map), canny[:LOW:HIGH] (OpenCV's Canny, thresholds 1..255, default 100:200), invert, threshold[:T] (white where R, G and B are all above T, default 127), tile_resample[:RATE] (OpenCV INTER_AREA down by RATE, 1..8), scribble_xdog[:T] (difference of Gaussians, default 32), inpaint (the image with the mask at -1, for an inpainting ControlNet); one per --controlnet or one for all");
    auto& control_res = a.add_string("--control-resolution", "", "0", "the preprocessor's resolution (AUTOMATIC1111's processor_res, 512 there): canny, threshold and scribble_xdog run on the image resized so its shorter side is this long, as the extension runs them; 0: at the image's own size, as diffusers' examples do; one per --controlnet or one for all");
    auto& control_end = a.add_string("--control-end", "", "1", "fraction of the steps after which a ControlNet stops (control_guidance_end), one per --controlnet or one for all");
    auto& ip_adapter = a.add_string("--ip-adapter", "", "", "an IP-Adapter (ip-adapter_sd15, ip-adapter-plus_sd15, ip-adapter_sdxl[_vit-h], ip-adapter-plus_sdxl_vit-h: .safetensors or .bin) prompting with the images of --ip-adapter-image; repeat for several");
    auto& ip_image = a.add_string("--ip-adapter-image", "--ip-image", "", "reference image(s) for an IP-Adapter, several of one adapter separated by ','; one per --ip-adapter in order, or one for all");
    auto& ip_scale = a.add_string("--ip-adapter-scale", "--ip-scale", "1", "IP-Adapter strength (diffusers set_ip_adapter_scale, A1111's Weight), one per --ip-adapter or one for all");
    auto& ip_start = a.add_string("--ip-adapter-start", "--ip-start", "0", "fraction of the steps before an IP-Adapter starts acting (A1111's Guidance Start for an IP-Adapter unit; in diffusers mode decided per step as diffusers' control_guidance_start), one per --ip-adapter or one for all");
    auto& ip_end = a.add_string("--ip-adapter-end", "--ip-end", "1", "fraction of the steps after which an IP-Adapter stops (A1111's Guidance End), one per --ip-adapter or one for all");
    auto& image_encoder = a.add_string("--image-encoder", "", "", "the CLIP image encoder an IP-Adapter reads (transformers CLIPVisionModelWithProjection folder or file), one per --ip-adapter or one for all (default: an image_encoder folder beside the adapter or one level up, as h94/IP-Adapter ships it, or a fitting one in a clip_vision folder beside the adapter's, as ComfyUI keeps them)");
    auto& control_mode = a.add_string("--control-mode", "", "balanced", "A1111's control mode: balanced, prompt (\"My prompt is more important\": residuals weighted 0.825^(12 - i)) or controlnet (\"ControlNet is more important\": the same on the prompt's half of CFG only; with --schedule-from diffusers, diffusers' guess mode); one per --controlnet or one for all");
    auto& guess_mode = a.add_bool("--guess-mode", "", "the same as --control-mode controlnet for every ControlNet (diffusers' guess_mode)");
    auto& seed = a.add_int("--seed", "", -1, "random seed; -1 picks one and prints it");
    auto& steps = a.add_int("--steps", "", 20, "sampling steps");
    auto& cfg = a.add_double("--cfg-scale", "", kSdDefaultCfgScale, "classifier-free guidance scale");
    cfg.default_text = "default: the model's recommended scale (easel-tiny: easel_defaults.json), else 7";
    auto& width = a.add_int("--width", "-W", 0, "image width, a multiple of 8 (0: the model's native size)");
    auto& height = a.add_int("--height", "-H", 0, "image height, a multiple of 8 (0: the model's native size)");
    auto& sampler = a.add_string("--sampler", "", "euler_a", "euler, euler_a, heun, dpm2, lms, dpm++2m, dpm++2m_sde, dpm++sde, ddim, lcm (diffusers mode: euler, euler_a, heun, lms, dpm++2m, ddim, pndm, unipc, lcm)");
    auto& scheduler = a.add_string("--scheduler", "", "automatic", "automatic, karras, exponential, sgm_uniform, simple, ddim_uniform, ays");
    auto& rng = a.add_string("--rng", "", "cpu", "cpu (torch CPU generator, as ComfyUI) or cuda (AUTOMATIC1111's GPU Philox)");
    auto& precision = a.add_string("--precision", "", "auto",
        "auto (fast for models of 64 MiB or more, else fp32), fp32 (exact) or fast (bf16 compute with f32 accumulation "
        "where this CPU's bf16 kernels are the faster, measured at start; else the f32 kernels)");
    auto& weights_layout = a.add_string("--weights", "", "auto",
        "what loading does with f16/bf16 Linear and conv weights where the kernels multiply in f32: stored (kept as the file "
        "has them, widened per call: half the memory), packed (widened once at load) or auto (stored; packed in a "
        "server that applies LoRAs per request)");
    auto& schedule_from = a.add_string("--schedule-from", "", "kdiffusion", "kdiffusion (AUTOMATIC1111, ComfyUI) or diffusers (the model's scheduler_config.json, as StableDiffusionPipeline)");
    auto& spacing = a.add_string("--timestep-spacing", "", "", "diffusers mode: leading, linspace or trailing instead of the model's scheduler config (SDXL-Lightning / Hyper-SD LoRAs: trailing)");
    auto& prediction = a.add_string("--prediction", "", "",
                                    "eps or v, for checkpoints that cannot tell (SD 2.x single files: 512-base eps, "
                                    "768-v v; SD 2 inpainting is known to be eps)");
    auto& clip_skip = a.add_int("--clip-skip", "", 1, "stop the text encoder this many layers early (1: last layer)");
    auto& guidance = a.add_double("--guidance", "", 0.0, "the guidance a guidance-distilled model takes as an input (Flux dev; default the model's, 3.5); --cfg-scale stays classifier-free guidance");
    auto& shift = a.add_double("--shift", "", 0.0, "the flow shift of SD3 / Flux sampling instead of the model's (SD3: 3; Flux: by image size)");
    auto& slg_layers = a.add_string("--slg-layers", "", "",
        "skip-layer guidance (SD3, SD3.5; SD3.5 medium's card: 7,8,9): transformer blocks left out of an extra prediction that "
        "the image moves away from (diffusers' skip_guidance_layers, ComfyUI's SkipLayerGuidanceSD3)");
    auto& slg_scale = a.add_double("--slg-scale", "", 2.8, "with --slg-layers: how far (diffusers' 2.8; ComfyUI's node: 3)");
    auto& slg_start = a.add_double("--slg-start", "", 0.01, "with --slg-layers: where in the schedule it starts (0..1)");
    auto& slg_stop = a.add_double("--slg-stop", "", 0.2, "with --slg-layers: where it stops (0..1; diffusers' 0.2, ComfyUI's node: 0.15)");
    auto& no_t5 = a.add_bool("--no-t5", "", "SD3 without its T5 encoder (zeros in its place, as diffusers' text_encoder_3=None): less memory and time");
    auto& t5_file = a.add_string("--t5", "", "", "a T5 encoder file for a single-file SD3 / Flux checkpoint (ComfyUI's t5xxl_fp16.safetensors)");
    auto& clip_l_file = a.add_string("--clip-l", "", "", "a CLIP-L text encoder file for a single-file SD3 / Flux checkpoint (ComfyUI's clip_l.safetensors)");
    auto& clip_g_file = a.add_string("--clip-g", "", "", "a CLIP-G text encoder file for a single-file SD3 checkpoint (ComfyUI's clip_g.safetensors)");
    auto& text_encoder_file = a.add_string("--text-encoder", "", "",
        "a text encoder file a single-file SD3 or Flux checkpoint does not carry (ComfyUI's clip_l, clip_g, t5xxl .safetensors); repeat for several");
    auto& vae_file = a.add_string("--vae", "", "", "the autoencoder of a single-file SD3 or Flux checkpoint that has none (BFL's ae.safetensors, or a diffusers vae/ folder)");
    auto& no_watermark = a.add_bool("--no-watermark", "", "leave out the invisible watermark (on by default for images of at least 256x256: Stable Diffusion's or SDXL's mark, as their reference tools apply it, and easel's own; recorded in the XMP)");
    auto& gen_license = a.add_string("--license", "", "", "the model's licence, written into every image's XMP (default: what the model names: safetensors modelspec.license, GGUF general.license, or its model card's license:)");
    auto& sign_key = a.add_string("--sign-key", "", "", "sign every image with a C2PA content credential (PNG, JPEG): the PEM private key (EC P-256/384/521 or RSA); with --sign-cert. `easel keys signer` makes a test pair");
    auto& sign_cert = a.add_string("--sign-cert", "", "", "the PEM certificate chain of --sign-key, the signer's certificate first");
    auto& t5_tokenizer = a.add_string("--t5-tokenizer", "", "",
        "T5's spiece.model (or a folder with it) instead of the model's own or the built-in T5 v1.1 vocabulary (also $EASEL_T5_TOKENIZER)");
    auto& max_seq = a.add_int("--max-sequence-length", "", 0,
                              "T5 tokens for SD3 and Flux (diffusers' max_sequence_length; 0: the model's, 256 SD3, 512 Flux)");
    auto& vocab = a.add_string("--vocab", "", "", "CLIP vocabulary (vocab.json folder or bpe_simple_vocab_16e6.txt.gz) instead of the built-in one (a diffusers folder's own tokenizer/ is used unless this is given)");
    auto& init = a.add_string("--init-image", "", "", "img2img: the starting image (PNG, JPEG or WebP, same size as the output)");
    auto& strength = a.add_double("--strength", "", 0.75, "img2img: how much of the image to repaint (0..1)");
    auto& mask = a.add_string("--mask", "", "", "inpainting mask, same size as --init-image (white = repaint; or the alpha channel, except in diffusers mode, which reads grey and binarises at 0.5)");
    auto& mask_blur = a.add_int("--mask-blur", "", 4, "inpainting: blur the mask edge by this many pixels (0..64; k-diffusion mode only, diffusers does not blur)");
    auto& masked_content = a.add_string("--masked-content", "", "original",
        "inpainting (k-diffusion mode): what the repainted part starts from, as AUTOMATIC1111's \"Masked content\": "
        "original, fill (colours from around the mask), latent-noise or latent-nothing");
    auto& inpaint_area = a.add_string("--inpaint-area", "", "whole",
        "inpainting (k-diffusion mode): whole (the picture) or masked (AUTOMATIC1111's \"Only masked\": the box around "
        "the mask is inpainted at --width x --height and pasted back; the output has the init image's size)");
    auto& inpaint_padding = a.add_int("--inpaint-padding", "", 32, "--inpaint-area masked: pixels added around the mask's box (0..256)");
    auto& preview = a.add_string("--preview", "", "",
        "write a preview of the image being sampled to this PNG every --preview-every steps (replaced atomically, so a "
        "viewer can reload it)");
    auto& preview_every = a.add_int("--preview-every", "", 5, "steps between --preview images (1..1000; the last step too)");
    auto& taesd = a.add_string("--taesd", "", "",
        "a tiny autoencoder for --preview: madebyollin's taesd_decoder (SD 1.x/2.x), taesdxl_decoder (SDXL), "
        "taesd3_decoder, taef1_decoder, or a diffusers AutoencoderTiny; without it the preview is AUTOMATIC1111's "
        "linear approximation at the latent's size (4-channel latents)");
    auto& vae_tile = a.add_int("--vae-tile", "", 0, "VAE decode and encode in tiles of this many pixels (diffusers' enable_tiling; 512 for SD 1.5), for large images in little memory; 0: whole");
    auto& batch_count = a.add_int("--batch-count", "", 1, "batches to run (seeds continue: seed, seed+1, ...)");
    auto& batch_size = a.add_int("--batch-size", "", 1, "images per batch, sampled together (each the image its seed gives alone)");
    auto& threads = a.add_int("--threads", "", num_threads(), "CPU threads");
    auto& isa = a.add_string("--cpu-isa", "", "", "cap the SIMD level: ref, avx2, avx512, avx512bf16, amx");
    auto& output = a.add_string("--output", "-o", "output.png", "output file (.png, .jpg or .webp by extension); several images get -N suffixes");
    auto& weight_cache = a.add_string("--weight-cache", "", "", "folder of packed weights: a big model's first load writes them, later loads map them (SD 1.5: ~1 s instead of ~4.5 s); off: none (default: $EASEL_WEIGHT_CACHE, else ~/.cache/easel/weights; at most $EASEL_WEIGHT_CACHE_MAX_GB = 8 GB, least recently used first)");
    if (auto st = a.parse(argc, argv); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s", a.help().c_str());
        return 0;
    }
    if (auto st = apply_common(threads, isa); !st) return fail(st.error());

    GenerateParams p;
    p.prompt = prompt.s;
    p.negative_prompt = negative.s;
    p.prompt_2 = prompt_2.s;
    p.negative_prompt_2 = negative_2.s;
    // "WxH" -> (w, h), each 0..100000; empty keeps the defaults.
    auto pair_flag = [](const std::string& v, const char* flag, int& a_out, int& b_out) -> Status {
        if (v.empty()) return ok();
        const auto bad = [&] {
            return Error::invalid_argument(fmt::format("expected two numbers as AxB (e.g. 1024x1024), got '{}'", v), flag);
        };
        const size_t x = v.find_first_of("xX");
        if (x == std::string::npos) return bad();
        auto number = [](std::string_view t, int& out) {
            const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), out);
            return ec == std::errc() && end == t.data() + t.size() && !t.empty() && out >= 0 && out <= 100000;
        };
        const std::string_view sv(v);
        if (!number(sv.substr(0, x), a_out) || !number(sv.substr(x + 1), b_out)) return bad();
        return ok();
    };
    if (auto st = pair_flag(original_size.s, "--original-size", p.size_conditioning.original_width,
                            p.size_conditioning.original_height); !st) return fail(st.error());
    if (auto st = pair_flag(crop.s, "--crop", p.size_conditioning.crop_left, p.size_conditioning.crop_top); !st)
        return fail(st.error());
    if (auto st = pair_flag(target_size.s, "--target-size", p.size_conditioning.target_width,
                            p.size_conditioning.target_height); !st) return fail(st.error());
    if (schedule_from.s == "diffusers") {
        p.schedule_from = ScheduleFrom::Diffusers;
        auto dk = parse_diffusers_scheduler(sampler.s);
        if (!dk) return fail(dk.error().within("--sampler"));
        p.diffusers_scheduler = *dk;
    } else if (schedule_from.s == "kdiffusion" || schedule_from.s == "k-diffusion") {
        auto sk = parse_sampler_name(sampler.s);
        if (!sk) return fail(sk.error().within("--sampler"));
        p.sampler = *sk;
    } else {
        return fail(Error::invalid_argument(fmt::format("expected kdiffusion or diffusers, got '{}'", schedule_from.s), "--schedule-from"));
    }
    if (spacing.seen) {
        if (p.schedule_from != ScheduleFrom::Diffusers)
            return fail(Error::invalid_argument("applies to --schedule-from diffusers (k-diffusion mode: --scheduler sgm_uniform is the trailing schedule)", "--timestep-spacing"));
        if (spacing.s == "leading") p.timestep_spacing = TimestepSpacing::Leading;
        else if (spacing.s == "linspace") p.timestep_spacing = TimestepSpacing::Linspace;
        else if (spacing.s == "trailing") p.timestep_spacing = TimestepSpacing::Trailing;
        else return fail(Error::invalid_argument(fmt::format("expected leading, linspace or trailing, got '{}'", spacing.s), "--timestep-spacing"));
    }
    auto sc = parse_schedule_name(scheduler.s);
    if (!sc) return fail(sc.error().within("--scheduler"));
    p.schedule = *sc;
    if (rng.s == "cpu") p.rng = RngKind::Cpu;
    else if (rng.s == "cuda" || rng.s == "gpu") p.rng = RngKind::Cuda;
    else return fail(Error::invalid_argument(fmt::format("expected cpu or cuda, got '{}'", rng.s), "--rng"));
    if (steps.i < 1 || steps.i > 1000) return fail(Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", steps.i), "--steps"));
    p.steps = int(steps.i);
    p.cfg_scale = cfg.d;
    if (clip_skip.i < 1 || clip_skip.i > 12) return fail(Error::invalid_argument(fmt::format("must be between 1 and 12, got {}", clip_skip.i), "--clip-skip"));
    p.clip_skip = int(clip_skip.i);
    if (max_seq.i < 0 || max_seq.i > 512)
        return fail(Error::invalid_argument(fmt::format("must be between 1 and 512 (0: the model's), got {}", max_seq.i),
                                            "--max-sequence-length"));
    p.max_sequence_length = int(max_seq.i);
    if (guidance.seen) p.guidance = guidance.d;
    if (shift.seen) p.shift = shift.d;
    if (!slg_layers.s.empty()) {
        auto layers = parse_slg_layers(slg_layers.s);
        if (!layers) return fail(Error::invalid_argument(layers.error().message(), "--slg-layers"));
        p.slg.layers = std::move(layers).value();
    } else if (slg_scale.seen || slg_start.seen || slg_stop.seen) {
        return fail(Error::invalid_argument("--slg-scale, --slg-start and --slg-stop go with --slg-layers", "--slg-layers"));
    }
    p.slg.scale = slg_scale.d;
    p.slg.start = slg_start.d;
    p.slg.stop = slg_stop.d;
    if (batch_count.i < 1 || batch_count.i > 1000) return fail(Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", batch_count.i), "--batch-count"));
    if (batch_size.i < 1 || batch_size.i > 64) return fail(Error::invalid_argument(fmt::format("must be between 1 and 64, got {}", batch_size.i), "--batch-size"));
    p.batch_count = int(batch_count.i);
    p.batch_size = int(batch_size.i);
    if (vae_tile.i < 0 || vae_tile.i > 4096) return fail(Error::invalid_argument(fmt::format("must be between 0 and 4096, got {}", vae_tile.i), "--vae-tile"));
    p.vae_tile = int(vae_tile.i);
    p.watermark = !no_watermark.b;
    if (width.i < 0 || width.i > 4096 || height.i < 0 || height.i > 4096)
        return fail(Error::invalid_argument(fmt::format("size {}x{} is outside 8..4096", width.i, height.i), "-W/-H"));
    if (auto f = image_format_from_path(output.s); !f) return fail(f.error().within("--output"));
    std::optional<C2paSigner> signer;
    if (!sign_key.s.empty() || !sign_cert.s.empty()) {
        if (sign_key.s.empty() || sign_cert.s.empty())
            return fail(Error::invalid_argument("give both --sign-key and --sign-cert (a key and its certificate chain)", sign_key.s.empty() ? "--sign-cert" : "--sign-key"));
        auto s = load_c2pa_signer(sign_key.s, sign_cert.s);
        if (!s) return fail(s.error());
        if (*image_format_from_path(output.s) == ImageFormat::Webp)
            return fail(Error::unsupported("C2PA content credentials go into PNG and JPEG files; write PNG or JPEG, or leave out --sign-key", "--output"));
        signer = std::move(*s);
    }

    // Live previews: checked and loaded before any work.
    std::shared_ptr<const TinyAutoencoder> preview_decoder;
    if (!taesd.s.empty()) {
        if (preview.s.empty()) return fail(Error::invalid_argument("needs --preview FILE (where the previews go)", "--taesd"));
        auto t = load_preview_decoder(taesd.s);
        if (!t) return fail(t.error().within("--taesd"));
        preview_decoder = std::move(t).value();
    }
    if (!preview.s.empty()) {
        if (auto f = image_format_from_path(preview.s); !f || *f != ImageFormat::Png)
            return fail(Error::invalid_argument(fmt::format("'{}' should be a .png file", preview.s), "--preview"));
        if (preview_every.i < 1 || preview_every.i > 1000)
            return fail(Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", preview_every.i),
                                                "--preview-every"));
    }

    LoadOptions lo;
    if (precision.s != "auto" && precision.s != "fp32" && precision.s != "fast")
        return fail(Error::invalid_argument(fmt::format("expected auto, fp32 or fast, got '{}'", precision.s), "--precision"));
    if (!prediction.s.empty()) {
        if (prediction.s == "eps" || prediction.s == "epsilon") lo.prediction = Prediction::Epsilon;
        else if (prediction.s == "v" || prediction.s == "v_prediction") lo.prediction = Prediction::V;
        else return fail(Error::invalid_argument(fmt::format("expected eps or v, got '{}'", prediction.s), "--prediction"));
    }
    if (auto w = weight_layout_from_name(weights_layout.s)) lo.weights = *w;
    else return fail(Error::invalid_argument(fmt::format("expected auto, packed or stored, got '{}'", weights_layout.s), "--weights"));
    lo.vocab_path = vocab.s;
    lo.component_files = text_encoder_file.all;
    for (const cli::Flag* f : {&t5_file, &clip_l_file, &clip_g_file})
        lo.component_files.insert(lo.component_files.end(), f->all.begin(), f->all.end());
    if (vae_file.seen) lo.component_files.push_back(vae_file.s);
    lo.skip_t5 = no_t5.b;
    lo.t5_tokenizer = t5_tokenizer.s;
    lo.with_vae_encoder = !init.s.empty();
    lo.weight_cache_dir = weight_cache.seen ? (weight_cache.s == "off" ? std::string() : weight_cache.s) : default_weight_cache_dir();
    lo.license = gen_license.s;
    lo.model_hash = true;  // A1111's "Model hash" in the infotext and the XMP (remembered after the first time)
    lo.hash_cache_file = default_hash_cache_file();
    lo.weight_cache_max_bytes = default_weight_cache_max_bytes();
    lo.weight_cache_write_in_background = true;  // overlaps the first generation; printed when done

    std::string model_path = model.s;
    if (model_path.empty()) {
        auto d = default_model_path();
        if (!d) return fail(d.error());
        model_path = *d;
    }
    {
        const std::string how = resolve_precision(precision.s, model_path, lo.precision);
        std::fprintf(stderr, "precision: %s\n", how.c_str());
    }
    // LoRAs: --lora flags become prompt tags (so the infotext carries them, as A1111's does), then every tag
    // is resolved and read against the model's spec before any weight is loaded.
    for (const std::string& l : lora.all) {
        std::error_code fec;
        p.prompt += fs::is_regular_file(l, fec) ? fmt::format(" <lora:{}:1>", l) : fmt::format(" <lora:{}>", l);
    }
    auto networks = parse_extra_networks(p.prompt);
    if (!networks) return fail(networks.error());
    for (const std::string& t : networks->other) std::fprintf(stderr, "warning: %s in the prompt: easel knows only <lora:...>; removed\n", t.c_str());
    LoadOptions base_lo = lo;  // the refiner gets no LoRAs
    if (!networks->loras.empty()) {
        auto spec = load_model_spec(model_path, lo);
        if (!spec) return fail(spec.error());
        const std::string dir = lora_dir.seen ? lora_dir.s : default_lora_dir(model_path);
        std::vector<std::string> hashes;
        for (const LoraTag& t : networks->loras) {
            auto path = find_lora_file(dir, t.name);
            if (!path) return fail(path.error().within(fmt::format("<lora:{}>", t.name)));
            auto file = read_lora(*path, spec->info);
            if (!file) return fail(file.error());
            base_lo.adapters.push_back(lora_adapter(*file, t.unet, t.te));
            std::fprintf(stderr, "LoRA %s: %zu modules, te %g, unet %g\n", (*file)->name.c_str(), (*file)->modules.size(), t.te, t.unet);
            // A1111's "Lora hashes": the name as the prompt mentions it (':' and ',' removed), the short hash.
            std::string alias = t.name;
            std::erase_if(alias, [](char c) { return c == ':' || c == ','; });
            const std::string entry = fmt::format("{}: {}", alias, (*file)->short_hash());
            if (std::find(hashes.begin(), hashes.end(), entry) == hashes.end()) hashes.push_back(entry);
        }
        std::string joined;
        for (const std::string& h : hashes) joined += (joined.empty() ? "" : ", ") + h;
        p.infotext_extra.emplace_back("Lora hashes", joined);
    }
    // Textual-inversion embeddings: the folder scanned as A1111 scans it. A skipped file is only an error when the
    // prompt names it.
    {
        const std::string dir = embeddings_dir.seen ? embeddings_dir.s : default_embeddings_dir(model_path);
        if (embeddings_dir.seen && !fs::is_directory(dir))
            return fail(Error::not_found(fmt::format("no such folder: {}", dir), "--embeddings-dir"));
        EmbeddingScan scan = load_embeddings_dir(dir);
        for (const std::string& why : scan.skipped) {
            const std::string stem = fs::path(why.substr(0, why.find(": "))).stem().string();
            auto names = [&](const std::string& text) {
                for (size_t at = text.find(stem); at != std::string::npos; at = text.find(stem, at + 1)) {
                    const bool left = at == 0 || !std::isalnum(static_cast<unsigned char>(text[at - 1]));
                    const size_t end = at + stem.size();
                    const bool right = end == text.size() || !std::isalnum(static_cast<unsigned char>(text[end]));
                    if (left && right) return true;
                }
                return false;
            };
            if (!stem.empty() && (names(p.prompt) || names(p.negative_prompt)))
                return fail(Error::bad_file(why.substr(0, why.find(": ")), fmt::format("the prompt names the embedding '{}', "
                                            "which cannot be used: {}", stem, why.substr(why.find(": ") + 2))));
            std::fprintf(stderr, "warning: embeddings: skipped %s\n", why.c_str());
        }
        if (!scan.set->items.empty()) {
            std::fprintf(stderr, "embeddings: %zu from %s\n", scan.set->items.size(), dir.c_str());
            p.embeddings = scan.set;
        }
    }
    // ControlNets: every flag checked and each network read and matched to the model's spec before the model loads.
    // A flag given once (for every unit) or once per unit of `unit_flag`.
    auto per_unit_of = [](const cli::Flag& f, size_t n, const char* name, const char* unit_flag) -> Result<std::vector<std::string>> {
        std::vector<std::string> v = f.seen ? f.all : std::vector<std::string>{f.s};
        if (v.size() == 1) v.assign(n, v[0]);
        if (v.size() != n)
            return Error::invalid_argument(fmt::format("given {} times for {} {}; give it once or once per {}", v.size(), n,
                                                       unit_flag, unit_flag), name);
        return v;
    };
    auto number = [](const std::string& text, const char* name) -> Result<double> {
        size_t used = 0;
        double v = 0;
        try {
            v = std::stod(text, &used);
        } catch (...) {
            used = 0;
        }
        if (used != text.size() || text.empty() || !std::isfinite(v))
            return Error::invalid_argument(fmt::format("expected a number, got '{}'", text), name);
        return v;
    };
    std::optional<ModelSpec> unit_spec;  // the model's spec, read once for the add-ons that must fit it
    auto model_spec = [&]() -> Result<const ModelSpec*> {
        if (!unit_spec) {
            auto spec = load_model_spec(model_path, lo);
            if (!spec) return spec.error();
            unit_spec = std::move(spec).value();
        }
        return &*unit_spec;
    };
    if (!controlnet.all.empty() || control_image.seen) {
        const size_t n = controlnet.all.size();
        if (n == 0) return fail(Error::invalid_argument("needs --controlnet (the network the image steers)", "--control-image"));
        auto per_unit = [&](const cli::Flag& f, const char* name) { return per_unit_of(f, n, name, "--controlnet"); };
        if (!control_image.seen) return fail(Error::invalid_argument("needs --control-image", "--controlnet"));
        auto images = per_unit(control_image, "--control-image");
        auto scales = per_unit(control_scale, "--control-scale");
        auto starts = per_unit(control_start, "--control-start");
        auto ends = per_unit(control_end, "--control-end");
        auto pres = per_unit(control_pre, "--control-preprocessor");
        auto resolutions = per_unit(control_res, "--control-resolution");
        auto modes = per_unit(control_mode, "--control-mode");
        for (const auto* r : {&images, &scales, &starts, &ends, &pres, &resolutions, &modes})
            if (!*r) return fail(r->error());
        auto spec = model_spec();
        if (!spec) return fail(spec.error());
        for (size_t u = 0; u < n; ++u) {
            ControlUnit cu;
            const std::string& mode = (*modes)[u];
            if (guess_mode.b || mode == "controlnet") cu.mode = ControlMode::ControlNetMoreImportant;
            else if (mode == "prompt") cu.mode = ControlMode::PromptMoreImportant;
            else if (mode != "balanced")
                return fail(Error::invalid_argument(fmt::format("expected balanced, prompt or controlnet, got '{}'", mode),
                                                    "--control-mode"));
            auto weight = number((*scales)[u], "--control-scale");
            auto begin = number((*starts)[u], "--control-start");
            auto finish = number((*ends)[u], "--control-end");
            for (const auto* r : {&weight, &begin, &finish})
                if (!*r) return fail(r->error());
            cu.scale = *weight;
            cu.start = *begin;
            cu.end = *finish;
            const std::vector<std::string> pre = split((*pres)[u], ':');
            if (pre.size() > 3)
                return fail(Error::invalid_argument(fmt::format("expected NAME, NAME:A or NAME:A:B (canny:100:200), got '{}'",
                                                                (*pres)[u]), "--control-preprocessor"));
            cu.preprocessor.module = pre[0];
            for (size_t k = 1; k < pre.size(); ++k) {
                auto t = number(pre[k], "--control-preprocessor");
                if (!t) return fail(t.error());
                (k == 1 ? cu.preprocessor.threshold_a : cu.preprocessor.threshold_b) = *t;
            }
            auto res = number((*resolutions)[u], "--control-resolution");
            if (!res) return fail(res.error());
            if (!(*res >= 0 && *res <= kMaxPreprocessorResolution && *res == std::floor(*res)))
                return fail(Error::invalid_argument(fmt::format("expected a whole number of pixels from 0 to {}, got '{}'",
                                                                kMaxPreprocessorResolution, (*resolutions)[u]),
                                                    "--control-resolution"));
            cu.preprocessor.resolution = int(*res);
            if (Status st = validate_preprocessor(cu.preprocessor); !st) return fail(st.error().within("--control-preprocessor"));
            auto img = read_image((*images)[u]);
            if (!img) return fail(img.error().within("--control-image"));
            cu.image = std::move(img).value();
            std::fprintf(stderr, "ControlNet %s: loading\n", controlnet.all[u].c_str());
            auto net = load_controlnet(controlnet.all[u], (*spec)->info, lo.precision);
            if (!net) return fail(net.error().within("--controlnet"));
            cu.net = *net;
            p.control.push_back(std::move(cu));
        }
        if (Status st = validate_control(p.control); !st) return fail(st.error());
    }
    // IP-Adapters: the same, and each one's image encoder (given or found beside it) read and matched to it.
    if (!ip_adapter.all.empty() || ip_image.seen || image_encoder.seen || ip_start.seen || ip_end.seen) {
        const size_t n = ip_adapter.all.size();
        if (n == 0)
            return fail(Error::invalid_argument("needs --ip-adapter (the adapter that reads the image)",
                                                ip_image.seen ? "--ip-adapter-image" : image_encoder.seen ? "--image-encoder"
                                                : ip_start.seen ? "--ip-adapter-start" : "--ip-adapter-end"));
        if (!ip_image.seen) return fail(Error::invalid_argument("needs --ip-adapter-image", "--ip-adapter"));
        auto images = per_unit_of(ip_image, n, "--ip-adapter-image", "--ip-adapter");
        auto scales = per_unit_of(ip_scale, n, "--ip-adapter-scale", "--ip-adapter");
        auto encoders = per_unit_of(image_encoder, n, "--image-encoder", "--ip-adapter");
        auto starts = per_unit_of(ip_start, n, "--ip-adapter-start", "--ip-adapter");
        auto ends = per_unit_of(ip_end, n, "--ip-adapter-end", "--ip-adapter");
        for (const auto* r : {&images, &scales, &encoders, &starts, &ends})
            if (!*r) return fail(r->error());
        auto spec = model_spec();
        if (!spec) return fail(spec.error());
        std::map<std::string, std::shared_ptr<const ImageEncoderFile>> loaded_encoders;
        for (size_t u = 0; u < n; ++u) {
            IPAdapterUnit iu;
            auto weight = number((*scales)[u], "--ip-adapter-scale");
            if (!weight) return fail(weight.error());
            iu.scale = *weight;
            auto begin = number((*starts)[u], "--ip-adapter-start");
            auto finish = number((*ends)[u], "--ip-adapter-end");
            for (const auto* r : {&begin, &finish})
                if (!*r) return fail(r->error());
            iu.start = *begin;
            iu.end = *finish;
            if (!(iu.start >= 0 && iu.start < iu.end && iu.end <= 1))
                return fail(Error::invalid_argument(fmt::format("start {} and end {}: expected 0 <= start < end <= 1",
                                                                iu.start, iu.end), "--ip-adapter-start"));
            for (const std::string& file : split((*images)[u], ',')) {
                auto img = read_image(file);
                if (!img) return fail(img.error().within("--ip-adapter-image"));
                iu.images.push_back(std::move(img).value());
            }
            std::fprintf(stderr, "IP-Adapter %s: loading\n", ip_adapter.all[u].c_str());
            auto adapter = load_ip_adapter(ip_adapter.all[u], (*spec)->info, lo.precision);
            if (!adapter) return fail(adapter.error().within("--ip-adapter"));
            iu.adapter = *adapter;
            std::string enc_path = (*encoders)[u];
            if (enc_path.empty()) {
                enc_path = find_image_encoder(ip_adapter.all[u], iu.adapter->config);
                if (enc_path.empty())
                    return fail(Error::not_found(
                        fmt::format("no image encoder for {} found beside it (an image_encoder folder, or a clip_vision "
                                    "folder); give one with --image-encoder", iu.adapter->name),
                        "--ip-adapter"));
            }
            auto& enc = loaded_encoders[enc_path];
            if (!enc) {
                std::fprintf(stderr, "image encoder %s: loading\n", enc_path.c_str());
                auto e = load_image_encoder(enc_path, lo.precision);
                if (!e) return fail(e.error().within("--image-encoder"));
                enc = *e;
            }
            iu.encoder = enc;
            p.ip_adapters.push_back(std::move(iu));
        }
        if (Status st = validate_ip_adapters(p.ip_adapters); !st) return fail(st.error());
    }
    std::fprintf(stderr, "%s (cpu isa %s, %d threads)\n", kVersion, std::string(isa_name(active_isa())).c_str(), num_threads());
    auto m = load_model(model_path, base_lo);
    if (!m) return fail(m.error());
    if (!(*m)->weight_cache_note.empty()) std::fprintf(stderr, "%s\n", (*m)->weight_cache_note.c_str());
    if (!cfg.seen && (*m)->defaults.cfg_scale) {
        p.cfg_scale = *(*m)->defaults.cfg_scale;
        std::fprintf(stderr, "CFG scale %g: the model's recommended scale (--cfg-scale to change)\n", p.cfg_scale);
    }
    const int native = (*m)->native_image_side();
    p.width = width.i ? int(width.i) : native;
    p.height = height.i ? int(height.i) : native;
    if (!init.s.empty()) {
        auto img = read_image(init.s);
        if (!img) return fail(img.error().within("--init-image"));
        p.init_image = std::move(img).value();
        p.denoising_strength = strength.d;
    }
    if (!mask.s.empty()) {
        if (init.s.empty()) return fail(Error::invalid_argument("needs --init-image (the picture to inpaint)", "--mask"));
        auto mi = read_image(mask.s);
        if (!mi) return fail(mi.error().within("--mask"));
        p.mask = std::move(mi).value();
        p.mask_blur = int(mask_blur.i);
    }
    {
        static const std::pair<const char*, MaskedContent> kContents[] = {
            {"original", MaskedContent::Original}, {"fill", MaskedContent::Fill},
            {"latent-noise", MaskedContent::LatentNoise}, {"latent-nothing", MaskedContent::LatentNothing}};
        const auto* hit = std::find_if(std::begin(kContents), std::end(kContents),
                                       [&](const auto& e) { return masked_content.s == e.first; });
        if (hit == std::end(kContents))
            return fail(Error::invalid_argument(fmt::format("expected original, fill, latent-noise or latent-nothing, "
                                                            "got '{}'", masked_content.s), "--masked-content"));
        if (inpaint_area.s != "whole" && inpaint_area.s != "masked")
            return fail(Error::invalid_argument(fmt::format("expected whole or masked, got '{}'", inpaint_area.s),
                                                "--inpaint-area"));
        if (mask.s.empty() && (hit->second != MaskedContent::Original || inpaint_area.s != "whole"))
            return fail(Error::invalid_argument("needs --mask (the part to repaint)",
                                                inpaint_area.s != "whole" ? "--inpaint-area" : "--masked-content"));
        p.masked_content = hit->second;
        p.inpaint_only_masked = inpaint_area.s == "masked";
        p.inpaint_padding = int(inpaint_padding.i);
    }
    if (seed.i == -1) {
        std::random_device rd;
        p.seed = int64_t((uint64_t(rd()) << 32 | rd()) % 4294967296ull);
        std::fprintf(stderr, "seed: %lld\n", static_cast<long long>(p.seed));
    } else {
        p.seed = seed.i;
    }
    // The refiner is checked before any work: its spec (no weights) must be an SDXL refiner, the base an SDXL base.
    std::optional<ModelSpec> refiner_spec;
    std::unique_ptr<Model> switch_refiner;  // k-diffusion mode: the sampler switches to it (both stay loaded)
    if (!refiner.s.empty()) {
        if (!(refiner_switch.d > 0.0 && refiner_switch.d < 1.0))
            return fail(Error::invalid_argument(fmt::format("must be between 0 and 1 (exclusive), got {}", refiner_switch.d),
                                                "--refiner-switch"));
        if ((*m)->family != "sdxl" || !(*m)->info.has_text_encoder)
            return fail(Error::invalid_argument(fmt::format("the base model {} is not an SDXL base ({})", model_path,
                                                            model_kind_name((*m)->info)), "--refiner"));
        LoadOptions ro = lo;
        ro.with_vae_encoder = false;
        auto spec = load_model_spec(refiner.s, ro);
        if (!spec) return fail(spec.error().within("--refiner"));
        if (spec->family != "sdxl" || spec->info.has_text_encoder || spec->latent.channels != (*m)->latent.channels)
            return fail(Error::invalid_argument(fmt::format("{} is not an SDXL refiner ({})", refiner.s,
                                                            model_kind_name(spec->info)), "--refiner"));
        if (p.schedule_from != ScheduleFrom::Diffusers) {
            p.refiner_switch_at = refiner_switch.d;
            if (p.mask) return fail(Error::unsupported("with --mask (inpainting with a refiner)", "--refiner"));
            std::fprintf(stderr, "refiner: %s\n", refiner.s.c_str());
            auto r = load_model(refiner.s, ro);
            if (!r) return fail(r.error().within("--refiner"));
            switch_refiner = std::move(r).value();
            p.refiner = switch_refiner.get();
        } else {
            if (p.init_image || p.mask)
                return fail(Error::unsupported("with --init-image / --mask in diffusers mode (the hand-off starts from "
                                               "txt2img)", "--refiner"));
            p.denoising_end = refiner_switch.d;
            p.decode = false;
            refiner_spec = std::move(spec).value();
        }
    }
    if (auto st = validate_params(p, **m); !st) return fail(st.error());

    cli::ProgressPrinter printer;
    // Previews: every preview_every-th sampling step and the last, timed against the sampling they sit in.
    PreviewWriter previews(preview.s, int(preview_every.i), preview_decoder.get());
    auto on_event = [&](const ProgressEvent& e) -> Status {
        EASEL_TRY(previews.on_event(e));
        return printer.on_event(e);
    };
    // One generation per run: each network's weights go as soon as they are no longer needed (peak memory).
    auto images = generate_once(**m, p, on_event);
    printer.finish();
    if (!preview.s.empty()) std::fprintf(stderr, "%s\n", previews.summary().c_str());
    if (!images) return fail(images.error());
    if (refiner_spec) {
        // Each base latent goes to the refiner, which finishes and decodes it.
        if (const std::string note = (*m)->wait_for_weight_cache(); !note.empty()) std::fprintf(stderr, "%s\n", note.c_str());
        const std::string base_name = (*m)->name;
        m->reset();
        std::fprintf(stderr, "refiner: %s\n", refiner.s.c_str());
        auto r = load_model(refiner.s, lo);
        if (!r) return fail(r.error().within("--refiner"));
        for (GeneratedImage& g : *images) {
            GenerateParams rp = p;
            rp.batch_size = rp.batch_count = 1;
            rp.seed = g.seed;
            rp.denoising_end = 1.0;
            rp.decode = true;
            rp.init_latent = g.latent;
            rp.denoising_start = refiner_switch.d;
            rp.infotext_model = base_name;
            rp.infotext_extra.emplace_back("Refiner", refiner_spec->name);
            rp.infotext_extra.emplace_back("Refiner switch at", fmt::format("{}", refiner_switch.d));
            auto out = generate(**r, rp, on_event);
            printer.finish();
            if (!out) return fail(out.error());
            g = std::move((*out)[0]);
        }
        m = std::move(r);
    }
    for (size_t i = 0; i < images->size(); ++i) {
        const GeneratedImage& g = (*images)[i];
        const std::string path = output_path(output.s, int(i), int(images->size()));
        if (auto st = write_provenance_image(path, g.image, g.metadata, g.provenance, g.infotext, signer ? &*signer : nullptr); !st)
            return fail(st.error());
        std::printf("%s\n", path.c_str());
    }
    if (const std::string note = (*m)->wait_for_weight_cache(); !note.empty()) std::fprintf(stderr, "%s\n", note.c_str());
    return 0;
}

// What `--precision auto` (the default of generate and serve) runs this model in on this CPU, and why.
void print_auto_precision(const std::string& path) {
    std::string why;
    const Precision p = auto_precision(path, &why);
    std::printf("  precision (--precision auto on this CPU): %s: %s\n", p == Precision::BF16 ? "bf16" : "fp32", why.c_str());
}

int cmd_info(int argc, char** argv) {
    cli::Args a("info", "Print what a model file or folder holds: family, layout, dtype and each component's config, or why it was refused.");
    auto& model = a.add_string("--model", "-m", "", "model file or folder (also accepted as the first argument)");
    auto& vocab = a.add_string("--vocab", "", "", "CLIP vocabulary to report instead of the model's or the built-in one");
    std::vector<char*> rest;
    std::string positional;
    for (int i = 0; i < argc; ++i) {
        if (i == 0 && argv[i][0] != '-') positional = argv[i];
        else rest.push_back(argv[i]);
    }
    if (auto st = a.parse(int(rest.size()), rest.data()); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s", a.help().c_str());
        return 0;
    }
    std::string path = !positional.empty() ? positional : model.s;
    if (path.empty()) {
        auto d = default_model_path();
        if (!d) return fail(d.error());
        path = *d;
    }
    auto inspected = inspect_model(path, vocab.s);
    if (!inspected) {
        // A family whose files SD's reader does not take (SD3's transformer folders): what its loader checks,
        // every weight left unread.
        LoadOptions o;
        o.vocab_path = vocab.s;
        auto spec = load_model_spec(path, o);
        if (!spec) return fail(spec.error());
        std::printf("%s\n  family: %s\n  layout: %s\n  weights: %s\n  licence: %s\n", path.c_str(), spec->family.c_str(),
                    std::string(layout_name(spec->info.layout)).c_str(), std::string(dtype_name(spec->info.weight_dtype)).c_str(),
                    spec->license.empty() ? "unknown (the model names none; --license sets one)" : spec->license.c_str());
        if (spec->info.has_text_encoder) std::printf("  text encoder: %s\n", spec->info.text.summary().c_str());
        if (spec->info.has_text_encoder_2) std::printf("  text encoder 2: %s\n", spec->info.text_2.summary().c_str());
        if (spec->info.has_vae) std::printf("  vae: %s\n", spec->info.vae.summary().c_str());
        std::printf("  latent: %d channels, scaling %g, shift %g, native size %d\n", spec->latent.channels,
                    double(spec->latent.scaling_factor), double(spec->latent.shift_factor), spec->native_image_side());
        for (const auto& n : spec->notes) std::printf("  note: %s\n", n.c_str());
        print_auto_precision(path);
        return 0;
    }
    const ModelInfo* info = &inspected->info;
    const std::string license = detect_model_license(path);
    std::printf("%s\n  family: %s\n  layout: %s\n  weights: %s\n  licence: %s\n", path.c_str(), model_kind_name(*info).c_str(),
                std::string(layout_name(info->layout)).c_str(), std::string(dtype_name(info->weight_dtype)).c_str(),
                license.empty() ? "unknown (the model names none; --license sets one)" : license.c_str());
    if (info->has_text_encoder) std::printf("  text encoder: %s\n  tokenizer: %s\n", info->text.summary().c_str(),
                                            inspected->tokenizer.c_str());
    if (info->has_text_encoder_2) std::printf("  text encoder 2: %s\n", info->text_2.summary().c_str());
    if (info->has_unet) std::printf("  unet: %s\n  prediction: %s\n", info->unet.summary().c_str(),
                                    std::string(prediction_name(info->unet.prediction)).c_str());
    if (info->has_vae) std::printf("  vae: %s\n", info->vae.summary().c_str());
    for (const auto& n : info->notes) std::printf("  note: %s\n", n.c_str());
    for (const auto& n : inspected->notes) std::printf("  note: %s\n", n.c_str());
    print_auto_precision(path);
    return 0;
}

int cmd_quantize(int argc, char** argv) {
    cli::Args a("quantize", "Rewrite a model file as GGUF with its Linear weights quantized (loaded like any single file, "
                            "multiplied as stored). Usage: easel quantize IN OUT --type TYPE");
    auto& type = a.add_string("--type", "-t", "q8_0", fmt::format("quantized type: {}", quantizable_names()));
    auto& quiet = a.add_bool("--quiet", "-q", "no progress lines");
    std::vector<char*> rest;
    std::vector<std::string> positional;
    for (int i = 0; i < argc; ++i) {
        if (argv[i][0] != '-' && (i == 0 || std::strcmp(argv[i - 1], "--type") != 0) &&
            (i == 0 || std::strcmp(argv[i - 1], "-t") != 0))
            positional.push_back(argv[i]);
        else
            rest.push_back(argv[i]);
    }
    if (auto st = a.parse(int(rest.size()), rest.data()); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s", a.help().c_str());
        return 0;
    }
    if (positional.size() != 2)
        return fail(Error::invalid_argument(fmt::format("expected an input and an output file, got {} path(s); usage: "
                                                        "easel quantize IN OUT --type {}", positional.size(), type.s)));
    const auto t = quant_from_name(type.s);
    if (!t) return fail(Error::invalid_argument(fmt::format("unknown type '{}'; expected one of {}", type.s, quantizable_names()), "--type"));
    QuantizeOptions o;
    o.type = *t;
    const bool tty = ::isatty(2);
    if (!quiet.b)
        o.progress = [&](size_t i, size_t n, const std::string& name, const std::string& as) {
            std::fprintf(stderr, tty ? "\r\033[K[%zu/%zu] %s -> %s" : "[%zu/%zu] %s -> %s\n", i + 1, n, name.c_str(), as.c_str());
        };
    auto r = quantize_model_file(positional[0], positional[1], o);
    if (!quiet.b && tty) std::fprintf(stderr, "\n");
    if (!r) return fail(r.error());
    std::printf("%s: %zu tensors %s, %zu in a fallback type, %zu kept; %.1f MB of tensors -> %.1f MB%s%s\n",
                positional[1].c_str(), r->quantized, std::string(quant_info(*t).name).c_str(), r->fell_back, r->kept,
                double(r->bytes_in) / 1e6, double(r->bytes_out) / 1e6, r->architecture.empty() ? "" : "; architecture ",
                r->architecture.c_str());
    return 0;
}

int cmd_tokenize(int argc, char** argv) {
    cli::Args a("tokenize", "Print the CLIP token ids of a prompt (unpadded and untruncated, with BOS and EOS).");
    auto& model = a.add_string("--model", "-m", "", "model whose tokenizer to use");
    auto& vocab = a.add_string("--vocab", "", "", "CLIP vocabulary (vocab.json folder or bpe_simple_vocab_16e6.txt.gz) instead of the model's or the built-in one");
    auto& prompt = a.add_string("--prompt", "-p", "", "text to tokenize", true);
    auto& json = a.add_bool("--json", "", "print {\"ids\": [...]}");
    if (auto st = a.parse(argc, argv); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s", a.help().c_str());
        return 0;
    }
    // With -m, the tokenizer that model gets (its own, else --vocab/EASEL_VOCAB/built-in); with --vocab alone,
    // that vocabulary; with neither, the default model's.
    std::string mp = model.s;
    if (mp.empty() && vocab.s.empty()) {
        auto d = default_model_path();
        if (!d) return fail(d.error());
        mp = *d;
    }
    Result<clip::CLIPTokenizer> tok = Error::internal("unset");
    if (mp.empty()) {
        auto v = clip::find_vocab(vocab.s);
        if (!v) return fail(v.error());
        tok = v->load();
    } else {
        tok = load_model_tokenizer(mp, vocab.s);
    }
    if (!tok) return fail(tok.error());
    auto ids = tok->encode_with_specials(prompt.s);
    if (!ids) return fail(ids.error());
    std::string out;
    for (size_t i = 0; i < ids->size(); ++i) out += (i ? "," : "") + std::to_string((*ids)[i]);
    if (json.b) std::printf("{\"ids\":[%s]}\n", out.c_str());
    else std::printf("%s\n", out.c_str());
    return 0;
}

// The demo grid: what `make demo` shows a new user. Eight prompts from the embedded model's vocabulary, one
// seed each, drawn at the model's native size and enlarged (nearest neighbour, so nothing is invented) into a
// 4 x 2 grid.
constexpr const char* kDemoPrompts[] = {
    "a red circle on a blue background",
    "a small green triangle at the top, white background",
    "blue background with a large yellow square on the left",
    "a large purple circle at the bottom on an orange background",
    "a white square on the right, black background",
    "an orange triangle in the centre on a green background",
    "a small black circle at the top on a yellow background",
    "red background with a large blue triangle at the bottom",
};

Image make_grid(const std::vector<Image>& tiles, int cols, int scale, int gap) {
    const int rows = int((tiles.size() + size_t(cols) - 1) / size_t(cols));
    const int tw = tiles[0].width * scale, th = tiles[0].height * scale;
    Image g;
    g.width = cols * tw + (cols + 1) * gap;
    g.height = rows * th + (rows + 1) * gap;
    g.channels = 3;
    g.pixels.assign(size_t(g.width) * size_t(g.height) * 3, 40);
    for (size_t t = 0; t < tiles.size(); ++t) {
        const Image& im = tiles[t];
        const int ox = gap + int(t % size_t(cols)) * (tw + gap), oy = gap + int(t / size_t(cols)) * (th + gap);
        for (int y = 0; y < th; ++y)
            for (int x = 0; x < tw; ++x)
                for (int c = 0; c < 3; ++c)
                    g.pixels[(size_t(oy + y) * size_t(g.width) + size_t(ox + x)) * 3 + size_t(c)] =
                        im.pixels[(size_t(y / scale) * size_t(im.width) + size_t(x / scale)) * size_t(im.channels) +
                                  size_t(im.channels == 1 ? 0 : c)];
    }
    return g;
}

int cmd_demo(int argc, char** argv) {
    cli::Args a("demo", "Draw a grid of example prompts with the embedded model (or another) and print the PNG's path.");
    auto& model = a.add_string("--model", "-m", "", "model (default: the embedded model)");
    auto& seed = a.add_int("--seed", "", 1, "seed of the first prompt; prompt i uses seed + i");
    auto& steps = a.add_int("--steps", "", 20, "sampling steps");
    auto& cfg = a.add_double("--cfg-scale", "", kSdDefaultCfgScale, "classifier-free guidance scale");
    cfg.default_text = "default: the model's recommended scale, else 7";
    auto& sampler = a.add_string("--sampler", "", "euler_a", "sampler (see 'easel generate --help')");
    auto& scale = a.add_int("--scale", "", 4, "enlarge each image this many times (nearest neighbour), 1..16");
    auto& threads = a.add_int("--threads", "", num_threads(), "CPU threads");
    auto& isa = a.add_string("--cpu-isa", "", "", "cap the SIMD level: ref, avx2, avx512, avx512bf16, amx");
    auto& output = a.add_string("--output", "-o", "out/demo.png", "the grid (.png, .jpg or .webp)");
    if (auto st = a.parse(argc, argv); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s", a.help().c_str());
        return 0;
    }
    if (auto st = apply_common(threads, isa); !st) return fail(st.error());
    if (scale.i < 1 || scale.i > 16) return fail(Error::invalid_argument(fmt::format("must be between 1 and 16, got {}", scale.i), "--scale"));
    if (steps.i < 1 || steps.i > 1000) return fail(Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", steps.i), "--steps"));
    auto sk = parse_sampler_name(sampler.s);
    if (!sk) return fail(sk.error().within("--sampler"));
    if (auto f = image_format_from_path(output.s); !f) return fail(f.error().within("--output"));
    std::string model_path = model.s;
    if (model_path.empty()) {
        auto d = default_model_path();
        if (!d) return fail(d.error());
        model_path = *d;
    }
    auto m = load_model(model_path, LoadOptions{.with_vae_encoder = false});
    if (!m) return fail(m.error());
    if (!(*m)->weight_cache_note.empty()) std::fprintf(stderr, "%s\n", (*m)->weight_cache_note.c_str());
    const int native = (*m)->native_image_side();
    std::vector<Image> tiles;
    std::string listing;
    std::string first_infotext;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < std::size(kDemoPrompts); ++i) {
        GenerateParams p;
        p.prompt = kDemoPrompts[i];
        p.width = p.height = native;
        p.steps = int(steps.i);
        p.cfg_scale = cfg.seen ? cfg.d : (*m)->default_cfg_scale();
        p.sampler = *sk;
        p.seed = seed.i + int64_t(i);
        auto r = generate(**m, p);
        if (!r) return fail(r.error().within(fmt::format("prompt {} '{}'", i + 1, kDemoPrompts[i])));
        tiles.push_back((*r)[0].image);
        if (i == 0) first_infotext = (*r)[0].infotext;
        listing += fmt::format("  {} (row {}, column {}): {}  [seed {}]\n", i + 1, i / 4 + 1, i % 4 + 1, kDemoPrompts[i], p.seed);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Image grid = make_grid(tiles, 4, int(scale.i), 4);
    // The grid is an image easel made: its own XMP and, at its size, the watermark (the tiles are too small).
    Provenance prov{(*m)->name, (*m)->short_hash, (*m)->license, {}, kEaselGenerator, "none: smaller than 256x256"};
    if (int64_t(grid.width) * grid.height >= kWatermarkMinPixels && grid.channels == 3) {
        if (auto st = embed_watermarks(grid, (*m)->family == "sd" ? &sd_watermark_bits() : nullptr, &easel_watermark_bits()); !st)
            return fail(st.error());
        prov.watermark = (*m)->family == "sd" ? "StableDiffusionV1 (U), easel (V)" : "easel (V)";
    }
    std::error_code ec;
    const fs::path parent = fs::path(output.s).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    TextChunks grid_text = image_metadata(first_infotext, prov);
    grid_text["Description"] = "easel demo grid:\n" + listing;
    if (auto st = write_image(output.s, grid, grid_text); !st)
        return fail(st.error());
    std::fprintf(stderr, "%s: %zu images of %dx%d, %lld steps each, in %.2f s\n%s", (*m)->name.c_str(), tiles.size(), native,
                 native, static_cast<long long>(steps.i), secs, listing.c_str());
    std::printf("%s\n", output.s.c_str());
    return 0;
}

// `easel verify IMAGE...`: what an image says about where it came from (pipeline/verify_image.h): the XMP label,
// the watermarks, the C2PA content credential, and a verdict with its exit status.
int cmd_verify(int argc, char** argv) {
    const char* usage =
        "usage: easel verify [--json] [--trust-anchor ROOT.pem]... IMAGE...\n\n"
        "Checks where each PNG, JPEG or WebP image says it came from:\n"
        "  - its XMP: IPTC's digital source type (the AI-generated label), the generator, the model, its hash and licence;\n"
        "  - the invisible watermarks in it (Stable Diffusion's, SDXL's, easel's: bits read against each message; found at\n"
        "    85%% of the bits or more);\n"
        "  - its C2PA content credential: the manifest's structure, the assertions' hashes, the hard binding to the\n"
        "    image's bytes, the signature, the certificate chain (trusted when it ends at a --trust-anchor) and the\n"
        "    signer certificate's profile.\n"
        "Verdicts and exit status: signed, labelled, watermark-only: 0; none (no mark at all): 1; a file that cannot be\n"
        "read: 2; tampered (a credential whose checks fail): 3. With several images, the highest status.\n"
        "  --json               one JSON object per image, one per line\n"
        "  --trust-anchor FILE  PEM certificates whose chains count as trusted (repeatable)\n";
    std::vector<std::string> paths;
    std::vector<DerCertificate> anchors;
    bool as_json = false;
    for (int i = 0; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--help" || arg == "-h") {
            std::printf("%s", usage);
            return 0;
        } else if (arg == "--json") {
            as_json = true;
        } else if (arg == "--trust-anchor") {
            if (i + 1 >= argc) return fail(Error::invalid_argument("give a PEM file after --trust-anchor", "--trust-anchor"));
            auto certs = load_pem_certificates(argv[++i]);
            if (!certs) return fail(certs.error().within("--trust-anchor"));
            anchors.insert(anchors.end(), certs->begin(), certs->end());
        } else if (arg.rfind("--", 0) == 0) {
            std::fprintf(stderr, "error: unknown option '%s'\n%s", arg.c_str(), usage);
            return 2;
        } else {
            paths.push_back(arg);
        }
    }
    if (paths.empty()) {
        std::fprintf(stderr, "%s", usage);
        return 2;
    }
    int status = 0;
    for (const std::string& path : paths) {
        auto bytes = read_image_file(path);
        if (!bytes) {
            std::fprintf(stderr, "error: %s\n", bytes.error().to_string().c_str());
            status = std::max(status, 2);
            continue;
        }
        auto p = inspect_image_provenance(bytes->data(), bytes->size(), anchors, path);
        if (!p) {
            std::fprintf(stderr, "error: %s\n", p.error().to_string().c_str());
            status = std::max(status, 2);
            continue;
        }
        if (as_json) {
            nlohmann::json j = provenance_report_json(*p);
            j["file"] = path;
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%s\n%s", path.c_str(), provenance_report_text(*p).c_str());
        }
        status = std::max(status, p->exit_status());
    }
    return status;
}

// `easel serve`, and `easel worker` (worker: the jobs of a PostgreSQL store, without the HTTP side's flags).
int cmd_serve(int argc, char** argv, bool worker = false) {
    cli::Args a(worker ? "worker" : "serve",
                worker ? "Run the jobs of a PostgreSQL store (easel serve --store) on this machine, beside any number of other workers."
                       : "Serve the AUTOMATIC1111-compatible API (/sdapi/v1), the job API (/v1) and the web page.");
    std::deque<cli::Flag> unused;  // a worker's stand-ins for the HTTP side's flags
    auto serve_string = [&](const std::string& name, const std::string& def, const std::string& help) -> cli::Flag& {
        if (!worker) return a.add_string(name, "", def, help);
        unused.emplace_back();
        unused.back().s = def;
        return unused.back();
    };
    auto serve_int = [&](const std::string& name, int64_t def, const std::string& help) -> cli::Flag& {
        if (!worker) return a.add_int(name, "", def, help);
        unused.emplace_back();
        unused.back().i = def;
        unused.back().name = name;
        return unused.back();
    };
    auto& host = serve_string("--host", "127.0.0.1", "address to listen on (another than loopback needs API keys or --api-auth)");
    auto& port = serve_int("--port", 7860, "port (0: any free port, printed)");
    auto& data = serve_string("--data", "", "folder for the job database and images (default: " + server::default_data_dir() + ")");
    auto& store = a.add_string("--store", "", "", worker ? "postgresql://USER@HOST/DB: the store whose jobs to run (required)"
                                                         : "postgresql://USER@HOST/DB: be one of many front ends of a shared store; `easel worker` processes run the jobs (default: the data folder's SQLite, with workers here)");
    auto& lease = a.add_int("--lease", "", 30, worker ? "seconds a claimed job stays this worker's without a heartbeat; after that another worker takes it"
                                                      : "with --store: seconds after its last heartbeat that a worker no longer counts as alive (/readyz, /metrics)");
    cli::Flag migrate_off;
    auto& migrate = worker ? migrate_off : a.add_bool("--migrate", "", "bring the store's schema up to date, then exit (it is also migrated at start, with a log line)");
    a.add_string("--model", "-m", "", worker ? "model file or folder whose jobs to run; repeat -m (or separate with commas) for several; its name (the file name without extension) is what jobs name"
                                             : "model file or folder to serve; repeat -m (or separate with commas) for several; the first is the default");
    auto& models_dir = a.add_string("--models-dir", "", "", "folder of more models, loaded when first asked for");
    auto& serve_embeddings_dir = a.add_string("--embeddings-dir", "", "", "folder of textual-inversion embeddings prompts may name (default: an embeddings folder beside the first model, its folder or the one above)");
    auto& serve_controlnet_dir = a.add_string("--controlnet-dir", "", "", "folder of ControlNets (and IP-Adapters) that the ControlNet API's units name (default: a ControlNet folder beside the first model or --models-dir, as AUTOMATIC1111's models/ControlNet)");
    auto& serve_image_encoder_dir = a.add_string("--image-encoder-dir", "", "", "folder of CLIP image encoders for IP-Adapter units (as ComfyUI's models/clip_vision), looked in before an image_encoder or clip_vision folder beside each adapter; the first that fits the adapter and the unit's preprocessor (ip-adapter_clip_h: ViT-H/14, ip-adapter_clip_g: ViT-bigG/14) is used");
    auto& serve_lora_dir = a.add_string("--lora-dir", "", "", "folder of LoRA files that <lora:NAME> in a prompt names (default: a Lora folder beside the first model or --models-dir, as AUTOMATIC1111's models/Lora)");
    auto& api_auth = serve_string("--api-auth", "", "user:password[,user2:password2] for HTTP Basic, as A1111's --api-auth");
    cli::Flag insecure_off;
    auto& insecure = worker ? insecure_off : a.add_bool("--insecure-no-auth", "", "allow a non-loopback --host without keys or --api-auth");
    auto& precision = a.add_string("--precision", "", "auto",
        "auto (fast for models of 64 MiB or more, else fp32), fp32 (exact) or fast (bf16 compute with f32 accumulation "
        "where this CPU's bf16 kernels are the faster, measured at start; else the f32 kernels)");
    auto& serve_weights = a.add_string("--weights", "", "auto",
        "what loading does with f16/bf16 Linear and conv weights where the kernels multiply in f32: stored (kept as the file "
        "has them, widened per call: half the memory), packed (widened once at load) or auto (stored; packed in a "
        "server that applies LoRAs per request)");
    auto& vocab = a.add_string("--vocab", "", "", "CLIP vocabulary instead of the built-in one, for single-file checkpoints");
    auto& serve_no_watermark = a.add_bool("--no-watermark", "", "leave out the invisible watermark on the images (on by default for images of at least 256x256; recorded in the XMP)");
    auto& serve_taesd = a.add_string("--taesd", "", "",
        "a tiny autoencoder for live previews: [FAMILY=]FILE, FAMILY one of sd (the default), sdxl, sd3, flux (madebyollin's "
        "taesd/taesdxl/taesd3/taef1 decoder, or a diffusers AutoencoderTiny); repeat for several families");
    auto& serve_preview_every = a.add_int("--preview-every", "", 5, "with --taesd: steps between its previews (1..1000)");
    auto& serve_sign_key = a.add_string("--sign-key", "", "", "sign every image with a C2PA content credential: the PEM private key (with --sign-cert; `easel keys signer` makes a test pair)");
    auto& serve_sign_cert = a.add_string("--sign-cert", "", "", "the PEM certificate chain of --sign-key, the signer's certificate first");
    auto& serve_anchor = serve_string("--trust-anchor", "", "PEM certificates (one file) whose chains /v1/verify reports as trusted");
    auto& serve_license = a.add_string("--license", "", "", "the licence of the models, over what each names (written into every image's XMP, shown by /v1/models)");
    auto& weight_cache = a.add_string("--weight-cache", "", "", "folder of packed weights: a big model's first load writes them, later loads map them (SD 1.5: ~1 s instead of ~4.5 s); off: none (default: $EASEL_WEIGHT_CACHE, else ~/.cache/easel/weights; at most $EASEL_WEIGHT_CACHE_MAX_GB = 8 GB, least recently used first)");
    auto& max_size = a.add_int("--max-size", "", 2048, "largest width or height a request may ask for");
    auto& max_steps = a.add_int("--max-steps", "", 150, "most sampling steps a request may ask for");
    auto& max_images = a.add_int("--max-images", "", 16, "most images (batch_size x n_iter) per request");
    auto& max_body = serve_int("--max-body-mb", 32, "largest request body in MiB");
    auto& queue = serve_int("--queue-size", 32, "most queued jobs (over every front end of a --store); beyond it requests get 429");
    auto& keep = a.add_int("--keep-jobs", "", 1000, "finished jobs (and images) kept; older ones are deleted");
    auto& read_timeout = serve_int("--read-timeout", 30, "seconds a client may stay silent mid-request before it is cut off");
    auto& job_timeout = a.add_int("--job-timeout", "", 3600, "seconds a job may run; past it the job fails and its worker process is restarted");
    auto& web_dir = serve_string("--web-dir", "", "serve the web page from this folder instead of the built-in copy");
    auto& threads = a.add_int("--threads", "", num_threads(), "CPU threads");
    auto& isa = a.add_string("--cpu-isa", "", "", "cap the SIMD level: ref, avx2, avx512, avx512bf16, amx");
    // -m may be given several times (and each may list several, comma-separated): collect them all here, since
    // the flag parser keeps only the last value of a flag.
    std::vector<std::string> model_args;
    std::vector<char*> rest;
    for (int i = 0; i < argc; ++i) {
        const std::string arg = argv[i];
        if ((arg == "-m" || arg == "--model") && i + 1 < argc) {
            model_args.emplace_back(argv[++i]);
        } else if (arg.rfind("--model=", 0) == 0) {
            model_args.push_back(arg.substr(8));
        } else {
            rest.push_back(argv[i]);
        }
    }
    if (auto st = a.parse(int(rest.size()), rest.data()); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s", a.help().c_str());
        return 0;
    }
    if (auto st = apply_common(threads, isa); !st) return fail(st.error());
    auto bounded = [](const cli::Flag& f, int64_t lo, int64_t hi) -> Status {
        if (f.i < lo || f.i > hi) return Error::invalid_argument(fmt::format("must be between {} and {}, got {}", lo, hi, f.i), f.name);
        return ok();
    };
    for (auto [f, lo, hi] : {std::tuple{&port, 0, 65535}, {&max_size, 64, 16384}, {&max_steps, 1, 10000}, {&max_images, 1, 1000},
                             {&max_body, 1, 4096}, {&queue, 1, 100000}, {&keep, 1, 100000000},
                             {&read_timeout, 1, 3600}, {&job_timeout, 1, 7 * 24 * 3600}, {&lease, 2, 3600}})
        if (auto st = bounded(*f, lo, hi); !st) return fail(st.error());
    server::ServeOptions o;
    o.host = host.s;
    o.port = int(port.i);
    o.data_dir = data.s;
    o.store = store.s;
    o.migrate_only = migrate.b;
    o.worker_max_age_s = int(lease.i);
    if (worker && o.store.empty()) return fail(Error::invalid_argument("is required: the postgresql://... store whose jobs to run", "--store"));
    for (const std::string& list : model_args)
        for (size_t start = 0; !list.empty() && start <= list.size();) {
            const size_t comma = list.find(',', start);
            o.models.push_back(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    o.models_dir = models_dir.s;
    o.lora_dir = serve_lora_dir.s;
    o.controlnet_dir = serve_controlnet_dir.s;
    o.image_encoder_dir = serve_image_encoder_dir.s;
    o.embeddings_dir = serve_embeddings_dir.s;
    if (o.models.empty() && o.models_dir.empty()) {
        auto d = default_model_path();
        if (!d) return fail(d.error());
        o.embedded_model = *d;
    }
    o.api_auth = api_auth.s;
    o.insecure_no_auth = insecure.b;
    o.web_dir = web_dir.s;
    if (precision.s != "auto" && precision.s != "fp32" && precision.s != "fast")
        return fail(Error::invalid_argument(fmt::format("expected auto, fp32 or fast, got '{}'", precision.s), "--precision"));
    o.load.precision = precision.s == "fast" ? fast_precision() : Precision::F32;
    o.load.precision_auto = precision.s == "auto";
    if (auto w = weight_layout_from_name(serve_weights.s)) o.load.weights = *w;
    else return fail(Error::invalid_argument(fmt::format("expected auto, packed or stored, got '{}'", serve_weights.s), "--weights"));
    o.load.vocab_path = vocab.s;
    o.load.weight_cache_dir = weight_cache.seen ? (weight_cache.s == "off" ? std::string() : weight_cache.s) : default_weight_cache_dir();
    o.load.license = serve_license.s;
    o.load.model_hash = true;
    o.load.hash_cache_file = default_hash_cache_file();
    o.load.weight_cache_max_bytes = default_weight_cache_max_bytes();
    o.load.weight_cache_write_in_background = true;
    o.limits.max_width = o.limits.max_height = int(max_size.i);
    o.limits.max_steps = int(max_steps.i);
    o.limits.max_images = int(max_images.i);
    o.limits.max_body_bytes = size_t(max_body.i) << 20;
    o.limits.queue_size = int(queue.i);
    o.limits.keep_jobs = int(keep.i);
    o.limits.read_timeout_s = int(read_timeout.i);
    o.limits.job_timeout_s = int(job_timeout.i);
    o.limits.watermark = !serve_no_watermark.b;
    for (const std::string& t : serve_taesd.all) {
        const size_t eq = t.find('=');
        const std::string family = eq == std::string::npos ? "sd" : t.substr(0, eq);
        const std::string file = eq == std::string::npos ? t : t.substr(eq + 1);
        if (family != "sd" && family != "sdxl" && family != "sd3" && family != "flux")
            return fail(Error::invalid_argument(fmt::format("unknown family '{}' in '{}': expected sd, sdxl, sd3 or flux", family, t),
                                                "--taesd"));
        if (o.limits.taesd.count(family))
            return fail(Error::invalid_argument(fmt::format("two files for the family '{}'", family), "--taesd"));
        auto d = load_preview_decoder(file);  // checked now, loaded again by each worker of that family
        if (!d) return fail(d.error().within("--taesd"));
        std::error_code ec;
        o.limits.taesd[family] = std::filesystem::absolute(file, ec).string();
    }
    if (serve_preview_every.i < 1 || serve_preview_every.i > 1000)
        return fail(Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", serve_preview_every.i), "--preview-every"));
    o.limits.preview_every = int(serve_preview_every.i);
    if (!serve_anchor.s.empty()) {
        auto certs = load_pem_certificates(serve_anchor.s);
        if (!certs) return fail(certs.error().within("--trust-anchor"));
        o.trust_anchors = std::move(*certs);
    }
    if (!serve_sign_key.s.empty() || !serve_sign_cert.s.empty()) {
        if (serve_sign_key.s.empty() || serve_sign_cert.s.empty())
            return fail(Error::invalid_argument("give both --sign-key and --sign-cert (a key and its certificate chain)", serve_sign_key.s.empty() ? "--sign-cert" : "--sign-key"));
        if (auto s = load_c2pa_signer(serve_sign_key.s, serve_sign_cert.s); !s) return fail(s.error());
        std::error_code ec;
        o.limits.sign_key = std::filesystem::absolute(serve_sign_key.s, ec).string();
        o.limits.sign_cert = std::filesystem::absolute(serve_sign_cert.s, ec).string();
    }
    const std::string shown_host = o.host.find(':') != std::string::npos ? "[" + o.host + "]" : o.host;
    o.on_listening = [&](int p) {
        std::printf("easel serve: listening on http://%s:%d\n", shown_host.c_str(), p);
        std::fflush(stdout);
    };
    std::fprintf(stderr, "%s (cpu isa %s, %d threads)\n", kVersion, std::string(isa_name(active_isa())).c_str(), num_threads());
    if (worker) {
        server::ClusterWorkerOptions w;
        w.lease_s = int(lease.i);
        w.on_ready = [](const std::string& id) {
            std::printf("easel worker: ready as %s\n", id.c_str());
            std::fflush(stdout);
        };
        if (auto st = server::run_cluster_worker(o, w); !st) return fail(st.error());
        return 0;
    }
    if (auto st = server::run_server(o); !st) return fail(st.error());
    if (o.migrate_only) std::fprintf(stderr, "the store's schema is up to date\n");
    return 0;
}

int cmd_keys(int argc, char** argv) {
    const std::string usage =
        "usage: easel keys create --name NAME [--quota IMAGES_PER_DAY] [--rate REQUESTS_PER_MIN] [--admin] [--data DIR | --store URL]\n"
        "       easel keys list [--data DIR | --store URL]\n"
        "       easel keys revoke ID_OR_NAME [--data DIR | --store URL]\n"
        "       easel keys signer --out PREFIX [--org NAME] [--days N]   (a C2PA signing key and test certificates; --alg es256|es384|es512|ps256|ed25519)\n";
    if (argc < 1 || !std::strcmp(argv[0], "--help") || !std::strcmp(argv[0], "-h")) {
        std::printf("%s", usage.c_str());
        return argc < 1 ? 2 : 0;
    }
    const std::string sub = argv[0];
    if (sub == "signer") {
        cli::Args s("keys signer", "Make a key and test certificates for signing images' C2PA content credentials (--sign-key, --sign-cert): "
                                   "PREFIX.key (the signer's EC P-256 key, mode 0600), PREFIX.pem (its certificate and the root's: the chain "
                                   "for --sign-cert) and PREFIX-root.pem (a new root, for easel verify --trust-anchor). For testing: a "
                                   "credential that others trust needs a certificate from a CA on their trust list.");
        auto& out = s.add_string("--out", "", "", "path prefix of the three files", true);
        auto& org = s.add_string("--org", "", "easel", "organisation named in the certificates");
        auto& days = s.add_int("--days", "", 365, "days the certificates are valid (1 to 3650)");
        auto& alg = s.add_string("--alg", "", "es256", "the signer's algorithm: es256, es384, es512 (EC P-256/384/521), ps256 (RSA 2048) or ed25519");
        if (auto st = s.parse(argc - 1, argv + 1); !st) return fail(st.error());
        if (s.help_requested()) {
            std::printf("%s", s.help().c_str());
            return 0;
        }
        if (auto st = make_c2pa_test_credentials(out.s + ".key", out.s + ".pem", out.s + "-root.pem", org.s, int(days.i), alg.s); !st)
            return fail(st.error());
        std::printf("%s.key\n%s.pem\n%s-root.pem\n", out.s.c_str(), out.s.c_str(), out.s.c_str());
        return 0;
    }
    std::string positional;
    int rest_start = 1;
    if (sub == "revoke" && argc >= 2 && argv[1][0] != '-') {
        positional = argv[1];
        rest_start = 2;
    }
    cli::Args a("keys " + sub, "Manage the API keys of 'easel serve'.");
    auto& data = a.add_string("--data", "", "", "the server's data folder (default: " + server::default_data_dir() + ")");
    auto& key_store = a.add_string("--store", "", "", "postgresql://...: the keys of a shared store (easel serve --store) instead of a data folder's");
    auto& name = a.add_string("--name", "", "", "create: the key's name (unique)");
    auto& quota = a.add_int("--quota", "", 0, "create: images per UTC day (0: unlimited)");
    auto& rate = a.add_int("--rate", "", 0, "create: requests per minute (0: unlimited)");
    auto& admin = a.add_bool("--admin", "", "create: the key sees and may cancel every key's jobs (an operator's key)");
    if (auto st = a.parse(argc - rest_start, argv + rest_start); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s%s", usage.c_str(), a.help().c_str());
        return 0;
    }
    const std::string dir = !key_store.s.empty() ? key_store.s : data.s.empty() ? server::default_data_dir() : data.s;
    if (!key_store.s.empty() && !server::is_store_url(key_store.s))
        return fail(Error::invalid_argument(fmt::format("expected a postgresql://... URL, got '{}'", key_store.s), "--store"));
    if (sub == "create") {
        if (!name.seen) return fail(Error::invalid_argument("is required", "--name"));
        auto k = server::create_key(dir, name.s, quota.i, rate.i, admin.b);
        if (!k) return fail(k.error());
        std::fprintf(stderr, "created %skey %s '%s' (quota %lld images/day, rate %lld requests/min; 0 = unlimited).\n"
                             "It is shown only now; the server keeps its SHA-256 hash. Send it as 'Authorization: Bearer <key>'.\n",
                     admin.b ? "admin " : "", k->second.id.c_str(), k->second.name.c_str(), static_cast<long long>(k->second.quota_per_day),
                     static_cast<long long>(k->second.rate_per_min));
        std::printf("%s\n", k->first.c_str());
        return 0;
    }
    if (sub == "list") {
        auto keys = server::list_keys(dir);
        if (!keys) return fail(keys.error());
        std::printf("%-14s %-24s %12s %12s %12s  %s\n", "id", "name", "quota/day", "rate/min", "used today", "state");
        for (const auto& k : *keys)
            std::printf("%-14s %-24s %12lld %12lld %12lld  %s\n", k.id.c_str(), k.name.c_str(), static_cast<long long>(k.quota_per_day),
                        static_cast<long long>(k.rate_per_min), static_cast<long long>(k.used_today),
                        k.revoked ? "revoked" : (k.admin ? "active, admin" : "active"));
        return 0;
    }
    if (sub == "revoke") {
        if (positional.empty()) return fail(Error::invalid_argument("give the id or name of the key to revoke", "keys revoke"));
        if (auto st = server::revoke_key(dir, positional); !st) return fail(st.error());
        std::fprintf(stderr, "revoked %s\n", positional.c_str());
        return 0;
    }
    std::fprintf(stderr, "error: unknown keys command '%s'\n%s", sub.c_str(), usage.c_str());
    return 2;
}

void print_help() {
    std::printf(
        "usage: easel <command> [options]\n"
        "\n"
        "commands:\n"
        "  generate     make images from a prompt (txt2img, img2img)\n"
        "  info         show what a model file or folder holds\n"
        "  tokenize     print the CLIP token ids of a prompt\n"
        "  quantize     rewrite a model file as GGUF with quantized weights (q8_0, q4_K, ...)\n"
        "  demo         draw a grid of example prompts with the embedded model\n"
        "  serve        HTTP server: A1111-compatible API, job queue with API keys, web page\n"
        "  keys         create, list and revoke the server's API keys\n"
        "  worker       run the jobs of a PostgreSQL store (easel serve --store) on this machine\n"
        "  verify       check an image's AI label, model, licence, watermarks and C2PA content credential\n"
        "  --version    print the version, the CPU ISA in use and the thread count\n"
        "  --help       this text\n"
        "\n"
        "'easel <command> --help' lists each command's options and defaults.\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
        print_help();
        return argc < 2 ? 2 : 0;
    }
    const std::string cmd = argv[1];
    if (cmd == "--version") {
        std::printf("%s (cpu isa %s, %d threads)\n", kVersion, std::string(isa_name(active_isa())).c_str(), num_threads());
        return 0;
    }
    if (cmd == "generate") return cmd_generate(argc - 2, argv + 2);
    if (cmd == "info") return cmd_info(argc - 2, argv + 2);
    if (cmd == "tokenize") return cmd_tokenize(argc - 2, argv + 2);
    if (cmd == "quantize") return cmd_quantize(argc - 2, argv + 2);
    if (cmd == "demo") return cmd_demo(argc - 2, argv + 2);
    if (cmd == "serve") return cmd_serve(argc - 2, argv + 2);
    if (cmd == "__worker") return server::run_worker_main();  // started by `easel serve` only (apps/server/worker.h)
    if (cmd == "keys") return cmd_keys(argc - 2, argv + 2);
    if (cmd == "verify") return cmd_verify(argc - 2, argv + 2);
    if (cmd == "worker") return cmd_serve(argc - 2, argv + 2, /*worker=*/true);
    std::fprintf(stderr, "error: unknown command '%s'; see 'easel --help'\n", cmd.c_str());
    return 2;
}
