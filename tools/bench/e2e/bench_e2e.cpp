// easel_bench_e2e: the end-to-end numbers of issue 5, one generation per process (so peak RSS is that run's).
//
//   easel_bench_e2e make-checkpoint --variant sd15 --out ~/.cache/easel-bench/sd15-random-fp16.safetensors
//   easel_bench_e2e run --model CKPT --steps 3 --precision fast            (--vocab PATH: not the built-in one)
//   easel_bench_e2e lora --model CKPT --rank 32 --precision fast --steps 3 --runs 3
//   easel_bench_e2e addons --model CKPT --precision fast --steps 3 --gen-runs 2
//   easel_bench_e2e make-gguf --variant flux1_dev_original --type q4_K --out flux1-dev-random-q4_K.gguf
//   easel_bench_e2e make-flux-parts --dir DIR         (clip_l.safetensors, ae.safetensors: random, fp16)
//
// `make-gguf` writes a key list's random model (the make-checkpoint rule) straight to GGUF one tensor at a time,
// quantized as `easel quantize` would quantize it (pipeline/quantize.h), so that a model larger than memory (Flux
// dev: 12 B parameters) is made without ever holding it. `make-flux-parts` makes the two small files a Flux
// single file needs beside it: CLIP-L in ComfyUI's clip_l layout (SD 1.5's text encoder names without
// cond_stage_model.transformer.) and BFL's ae (SD 1.5's autoencoder names with 16 latent channels and no
// quant convs).
//
// `addons` times sampler steps without add-ons, with one ControlNet (control_v11p_sd15_* layout) and with one
// IP-Adapter (ip-adapter_sd15 + ViT-H/14), interleaved, each a random file of its key list made once beside the
// model; and the IP-Adapter's one-off image encoding.
//
// `run` prints one JSON line: load, text encoding (prompt and negative prompt), every sampler step (euler: the UNet
// on both CFG halves, one after the other as `easel generate` runs them; with --batch-size N each half takes the N
// images at once), VAE decode (per image), total, and the process's peak RSS (VmHWM). scripts/bench-e2e runs it
// several times, interleaved with the peer, and prints medians and ratios.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/random_checkpoint.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/keymap_key_list.h"
#include "io/safetensors.h"
#include "pipeline/families/sd.h"
#include "pipeline/generate.h"
#include "pipeline/preview.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/lora.h"
#include "pipeline/quantize.h"
#include "runtime/pack_cache.h"

using namespace easel;

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

long peak_rss_kb() {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line))
        if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

std::map<std::string, std::string> parse_flags(int argc, char** argv, int start) {
    std::map<std::string, std::string> f;
    for (int i = start; i < argc; ++i) {
        std::string k = argv[i];
        if (k.rfind("--", 0) != 0 || i + 1 >= argc) {
            std::fprintf(stderr, "error: expected --flag value, got '%s'\n", k.c_str());
            std::exit(2);
        }
        f[k.substr(2)] = argv[++i];
    }
    return f;
}

std::string get(const std::map<std::string, std::string>& f, const std::string& k, const std::string& def) {
    auto it = f.find(k);
    return it == f.end() ? def : it->second;
}

// The flags every generating subcommand reads: --threads, --vocab, and --weight-cache DIR|off, else
// $EASEL_WEIGHT_CACHE (unset: off), as `easel generate` reads it; no VAE encoder.
LoadOptions load_options(const std::map<std::string, std::string>& f) {
    if (f.count("threads")) set_num_threads(std::stoi(f.at("threads")));
    LoadOptions lo;
    lo.vocab_path = get(f, "vocab", "");
    lo.t5_tokenizer = get(f, "t5-tokenizer", "");
    // --components a,b,c: component files beside a single file (a Flux file's T5, CLIP-L and VAE).
    for (std::string rest = get(f, "components", ""); !rest.empty();) {
        const size_t comma = rest.find(',');
        lo.component_files.push_back(rest.substr(0, comma));
        rest = comma == std::string::npos ? "" : rest.substr(comma + 1);
    }
    lo.with_vae_encoder = false;
    // --weights auto|packed|stored, as `easel generate --weights`.
    if (auto w = weight_layout_from_name(get(f, "weights", "auto"))) lo.weights = *w;
    else std::fprintf(stderr, "warning: --weights: expected auto, packed or stored; using auto\n");
    const std::string wc = get(f, "weight-cache", default_weight_cache_dir());
    lo.weight_cache_dir = wc == "off" ? std::string() : wc;
    lo.weight_cache_max_bytes = default_weight_cache_max_bytes();
    return lo;
}

// --precision: fp32, fast (what `easel generate --precision fast` runs: the bf16 kernels only where this CPU's
// measurement favours them, kernels/matmul.h fast_precision), or bf16 (the bf16 kernels whatever they cost; on a
// CPU without a bf16 dot product they round the operands and multiply in f32). Unknown: nothing.
std::optional<Precision> precision_from_flag(const std::string& v) {
    if (v == "fp32") return Precision::F32;
    if (v == "fast") return fast_precision();
    if (v == "bf16") return Precision::BF16;
    std::fprintf(stderr, "error: --precision: expected fp32, fast or bf16, got '%s'\n", v.c_str());
    return std::nullopt;
}

// Seconds as a JSON list's body: "1.234, 5.678".
std::string list(const std::vector<double>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += fmt::format("{}{:.3f}", i ? ", " : "", v[i]);
    return s;
}

int make_checkpoint(const std::map<std::string, std::string>& f) {
    const std::string variant = get(f, "variant", "sd15");
    const std::string keys = get(f, "keys", std::string(EASEL_SOURCE_DIR) + "/tests/data/keys/" + variant + ".ldm.json.gz");
    const std::string out = get(f, "out", "");
    if (out.empty()) {
        std::fprintf(stderr, "error: --out PATH is required\n");
        return 2;
    }
    const auto t0 = Clock::now();
    auto w = testing::random_checkpoint(keys);
    if (!w) {
        std::fprintf(stderr, "error: %s\n", w.error().to_string().c_str());
        return 1;
    }
    if (auto st = write_safetensors(out, *w); !st) {
        std::fprintf(stderr, "error: %s\n", st.error().to_string().c_str());
        return 1;
    }
    std::fprintf(stderr, "wrote %s (%zu tensors, random weights as tools/reference/make_fullsize_goldens.py) in %.1f s\n",
                 out.c_str(), w->size(), since(t0));
    return 0;
}

int make_gguf(const std::map<std::string, std::string>& f) {
    const std::string variant = get(f, "variant", "flux1_dev_original");
    const std::string keys = get(f, "keys", std::string(EASEL_SOURCE_DIR) + "/tests/data/keys/" + variant + ".json.gz");
    const std::string out = get(f, "out", "");
    const auto type = quant_from_name(get(f, "type", "q8_0"));
    if (out.empty() || !type) {
        std::fprintf(stderr, "error: --out PATH and --type (%s) are required\n", std::string(quantizable_names()).c_str());
        return 2;
    }
    const auto t0 = Clock::now();
    auto list = read_key_list_file(keys);
    if (!list) {
        std::fprintf(stderr, "error: %s\n", list.error().to_string().c_str());
        return 1;
    }
    std::vector<GgufTensorPlan> plan;
    for (const std::string& n : list->names()) {
        const Tensor& t = *list->find(n);
        GgufTensorPlan p{n, t.rank() == 0 ? Shape{1} : t.shape(), quantize_choice(n, t, *type), DType::F16};  // GGUF: rank >= 1
        if (!dtype_is_float(t.dtype())) p.dtype = t.dtype();
        plan.push_back(p);
    }
    size_t quantized = 0;
    for (const auto& p : plan) quantized += p.quant != QuantType::None;
    std::map<std::string, std::string> meta{{"easel.source", fmt::format("random weights for {} ({})", variant, keys)}};
    if (variant.rfind("flux", 0) == 0) meta["general.architecture"] = "flux";
    if (variant.rfind("sd3", 0) == 0) meta["general.architecture"] = "sd3";
    auto st = write_gguf(out, meta, plan, [&](size_t i) -> Result<Tensor> {
        const GgufTensorPlan& p = plan[i];
        std::fprintf(stderr, "\r[%zu/%zu] %s", i + 1, plan.size(), p.name.c_str());
        Tensor w = testing::random_checkpoint_weight(i, p.name, p.shape);  // a rank-0 tensor's one value as [1]
        if (p.quant == QuantType::None) return p.dtype == w.dtype() ? w : w.to(p.dtype);
        return quantize_tensor(w, p.quant);
    });
    std::fprintf(stderr, "\n");
    if (!st) {
        std::fprintf(stderr, "error: %s\n", st.error().to_string().c_str());
        return 1;
    }
    std::fprintf(stderr, "wrote %s (%zu tensors, %zu quantized as %s or a fallback) in %.1f s\n", out.c_str(), plan.size(),
                 quantized, std::string(quant_info(*type).name).c_str(), since(t0));
    return 0;
}

int make_flux_parts(const std::map<std::string, std::string>& f) {
    const std::string dir = get(f, "dir", "");
    if (dir.empty()) {
        std::fprintf(stderr, "error: --dir DIR is required\n");
        return 2;
    }
    auto sd15 = read_key_list_file(std::string(EASEL_SOURCE_DIR) + "/tests/data/keys/sd15.ldm.json.gz");
    if (!sd15) {
        std::fprintf(stderr, "error: %s\n", sd15.error().to_string().c_str());
        return 1;
    }
    WeightSet clip, ae;
    size_t i = 0;
    for (const std::string& n : sd15->names()) {
        Shape s = sd15->find(n)->shape();
        const std::string te = "cond_stage_model.transformer.", vae = "first_stage_model.";
        if (n.rfind(te, 0) == 0) {
            const std::string name = n.substr(te.size());
            (void)clip.add(name, testing::random_checkpoint_weight(i++, name, s));
        } else if (n.rfind(vae, 0) == 0) {
            const std::string name = n.substr(vae.size());
            if (name.find("quant_conv") != std::string::npos) continue;  // BFL's ae has none
            if (name == "encoder.conv_out.weight" || name == "encoder.conv_out.bias") s[0] = 32;  // 2 x 16 channels
            if (name == "decoder.conv_in.weight") s[1] = 16;
            (void)ae.add(name, testing::random_checkpoint_weight(i++, name, s));
        }
    }
    std::filesystem::create_directories(dir);
    for (auto [w, name] : {std::pair<WeightSet*, const char*>{&clip, "clip_l.safetensors"}, {&ae, "ae.safetensors"}})
        if (auto st = write_safetensors(dir + "/" + name, *w); !st) {
            std::fprintf(stderr, "error: %s\n", st.error().to_string().c_str());
            return 1;
        }
    std::fprintf(stderr, "wrote %s/clip_l.safetensors (%zu tensors) and %s/ae.safetensors (%zu)\n", dir.c_str(), clip.size(),
                 dir.c_str(), ae.size());
    return 0;
}

int run(const std::map<std::string, std::string>& f) {
    LoadOptions lo = load_options(f);
    lo.weight_cache_write_in_background = true;  // as `easel generate`: the write overlaps the generation
    const std::string precision = get(f, "precision", "fp32");
    const std::optional<Precision> pr = precision_from_flag(precision);
    if (!pr) return 2;
    lo.precision = *pr;
    const auto t_load = Clock::now();
    auto m = load_model(get(f, "model", ""), lo);
    if (!m) {
        std::fprintf(stderr, "error: %s\n", m.error().to_string().c_str());
        return 1;
    }
    const double load_s = since(t_load);
    auto cache_state = [&] {
        switch ((*m)->weight_cache) {
            case WeightCacheUse::Off: return lo.weight_cache_dir.empty() ? "off" : "unused";
            case WeightCacheUse::Mapped: return "mapped";
            case WeightCacheUse::Copied: return "copied";
            case WeightCacheUse::Writing: return "writing";
            case WeightCacheUse::Written: return "written";
            case WeightCacheUse::Failed: return "write failed";
        }
        return "?";
    };
    GenerateParams p;
    p.prompt = get(f, "prompt", "a photograph of an astronaut riding a horse");
    p.negative_prompt = get(f, "negative", "");
    p.width = std::stoi(get(f, "width", "512"));
    p.height = std::stoi(get(f, "height", "512"));
    p.steps = std::stoi(get(f, "steps", "3"));
    p.cfg_scale = std::stod(get(f, "cfg", "7"));
    p.seed = std::stoll(get(f, "seed", "42"));
    p.sampler = SamplerKind::Euler;
    p.vae_tile = std::stoi(get(f, "vae-tile", "0"));
    // --batch-size N: N images sampled together (each step's time covers all of them; decode_s is per image).
    p.batch_size = std::stoi(get(f, "batch-size", "1"));
    p.decode = get(f, "decode", "1") != "0";  // --decode 0: sampling alone (profiles of the UNet)
    if (f.count("guidance")) p.guidance = std::stod(f.at("guidance"));
    // --taesd FILE [--preview-every N]: a live preview every N steps (and the last), timed apart from the steps
    // (what `easel generate --preview` costs).
    std::shared_ptr<const TinyAutoencoder> taesd;
    if (f.count("taesd")) {
        auto t = load_preview_decoder(f.at("taesd"));
        if (!t) {
            std::fprintf(stderr, "error: --taesd: %s\n", t.error().to_string().c_str());
            return 1;
        }
        taesd = *t;
    }
    const int preview_every = f.count("preview-every") ? std::stoi(f.at("preview-every")) : 0;
    std::vector<double> preview_times;
    BufferPool preview_pool;
    std::map<std::string, double> mark;
    std::vector<double> step_times, decode_times;
    Clock::time_point last_step;
    const auto t_gen = Clock::now();
    // As `easel generate` runs it: one-shot, each network's weights dropped once no longer needed.
    auto r = generate_once(**m, p, [&](const ProgressEvent& e) -> Status {
        const auto now = Clock::now();
        if (e.phase == "sampling") {
            if (e.step > 0) step_times.push_back(std::chrono::duration<double>(now - last_step).count());
            last_step = now;
            if (preview_every > 0 && e.step > 0 && e.latent && (e.step % preview_every == 0 || e.step == e.total)) {
                Ctx c{&preview_pool};
                const Image img = preview_image(c, taesd.get(), *e.latent);
                preview_pool.trim();
                last_step = Clock::now();
                if (!img.pixels.empty()) preview_times.push_back(std::chrono::duration<double>(last_step - now).count());
            }
            std::fprintf(stderr, "\rstep %d/%d", e.step, e.total);
        } else {
            mark[fmt::format("{}{}", e.phase, e.step)] = since(t_gen);
            if (e.phase == "decode" && e.step == 1) decode_times.push_back(mark["decode1"] - mark["decode0"]);
        }
        return ok();
    });
    const double total_s = since(t_gen);
    std::fprintf(stderr, "\n");
    // A first load writes the cache in the background; what is left of that write after the generation.
    const auto t_wait = Clock::now();
    (*m)->wait_for_weight_cache();
    const double cache_wait_s = since(t_wait);
    if (!r) {
        std::fprintf(stderr, "error: %s\n", r.error().to_string().c_str());
        return 1;
    }
    std::string steps, previews;
    for (size_t i = 0; i < step_times.size(); ++i) steps += fmt::format("{}{:.3f}", i ? ", " : "", step_times[i]);
    for (size_t i = 0; i < preview_times.size(); ++i) previews += fmt::format("{}{:.4f}", i ? ", " : "", preview_times[i]);
    std::printf("{\"engine\": \"easel\", \"model\": \"%s\", \"cfg\": %g, \"precision\": \"%s\", \"kernels\": \"%s\", \"threads\": %d, \"isa\": \"%s\", \"width\": %d, \"height\": %d, "
                "\"batch_size\": %d, \"load_s\": %.3f, \"text_s\": %.3f, \"steps_s\": [%s], \"decode_s\": %.3f, \"generate_s\": %.3f, "
                "\"peak_rss_mb\": %.1f, \"weight_cache\": \"%s\", \"cache_wait_s\": %.3f, \"preview\": \"%s\", \"previews_s\": [%s]}\n",
                (*m)->family.c_str(), p.cfg_scale, precision.c_str(),
                lo.precision == Precision::BF16 ? "bf16" : "f32", num_threads(), std::string(isa_name(active_isa())).c_str(), p.width, p.height, p.batch_size, load_s,
                mark["encode1"] - mark["encode0"], steps.c_str(),
                decode_times.empty() ? 0.0 : std::accumulate(decode_times.begin(), decode_times.end(), 0.0) / double(decode_times.size()),
                total_s,
                double(peak_rss_kb()) / 1024.0, cache_state(), cache_wait_s,
                preview_every <= 0 ? "none" : taesd ? "taesd" : "approx", previews.c_str());
    return 0;
}

// Issue 21's warm-server cost of a LoRA: a rank-R kohya-ss LoRA on every Linear and Conv2d of the UNet (made once
// next to the checkpoint, random fp16), applied to the loaded model in place and taken off again (LivePatch, what
// `easel serve`'s workers do per request), RUNS times; then STEPS-step generations without and with it,
// interleaved, to show a patched model steps as fast as the base. One JSON line.
// A key list's random checkpoint at `path`, written once (fp16, as make-checkpoint writes).
Status ensure_random(const std::string& list, const std::string& path) {
    if (FILE* probe = std::fopen(path.c_str(), "rb")) {
        std::fclose(probe);
        return ok();
    }
    std::fprintf(stderr, "making %s (once)\n", path.c_str());
    EASEL_TRY_ASSIGN(WeightSet w, testing::random_checkpoint(std::string(EASEL_SOURCE_DIR) + "/tests/data/keys/" + list));
    return write_safetensors(path, w);
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

int addons(const std::map<std::string, std::string>& f) {
    LoadOptions lo = load_options(f);
    const std::string precision = get(f, "precision", "fast");
    const std::optional<Precision> pr = precision_from_flag(precision);
    if (!pr) return 2;
    lo.precision = *pr;
    const std::string model_path = get(f, "model", "");
    auto fail = [](const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.to_string().c_str());
        return 1;
    };
    const std::string cn_path = model_path + ".controlnet.safetensors", ip_path = model_path + ".ip-adapter.safetensors";
    const std::string enc_dir = model_path + ".image_encoder";
    for (const auto& [list, path] : {std::pair{"controlnet_sd15.ldm.json.gz", cn_path}, std::pair{"ip_adapter_sd15.json.gz", ip_path}})
        if (Status st = ensure_random(list, path); !st) return fail(st.error());
    std::filesystem::create_directories(enc_dir);
    {
        std::ofstream cfg(enc_dir + "/config.json");
        cfg << R"({"architectures": ["CLIPVisionModelWithProjection"], "hidden_act": "gelu", "hidden_size": 1280,
  "image_size": 224, "intermediate_size": 5120, "layer_norm_eps": 1e-05, "model_type": "clip_vision_model",
  "num_attention_heads": 16, "num_channels": 3, "num_hidden_layers": 32, "patch_size": 14, "projection_dim": 1024})";
    }
    if (Status st = ensure_random("clip_vit_h14_vision.json.gz", enc_dir + "/model.safetensors"); !st) return fail(st.error());
    auto m = load_model(model_path, lo);
    if (!m) return fail(m.error());
    (*m)->wait_for_weight_cache();
    auto net = load_controlnet(cn_path, (*m)->info, lo.precision);
    if (!net) return fail(net.error());
    auto adapter = load_ip_adapter(ip_path, (*m)->info, lo.precision);
    if (!adapter) return fail(adapter.error());
    auto encoder = load_image_encoder(enc_dir, lo.precision);
    if (!encoder) return fail(encoder.error());
    Image picture;  // a 512x512 gradient: the control map and the reference image
    picture.width = picture.height = 512;
    picture.channels = 3;
    picture.pixels.resize(size_t(512) * 512 * 3);
    for (size_t i = 0; i < picture.pixels.size(); ++i) picture.pixels[i] = uint8_t((i * 7) % 251);
    GenerateParams p;
    p.prompt = "a photograph of an astronaut riding a horse";
    p.width = p.height = std::stoi(get(f, "size", "512"));
    p.steps = std::stoi(get(f, "steps", "3"));
    p.sampler = SamplerKind::Euler;
    p.decode = false;
    std::map<std::string, std::vector<double>> steps, encode;
    for (int r = 0; r < std::stoi(get(f, "gen-runs", "2")); ++r)
        for (const char* what : {"base", "controlnet", "ip_adapter"}) {
            GenerateParams q = p;
            if (std::string(what) == "controlnet") q.control.push_back({.net = *net, .image = picture});
            if (std::string(what) == "ip_adapter") q.ip_adapters.push_back({.adapter = *adapter, .encoder = *encoder, .images = {picture}});
            Clock::time_point last = Clock::now(), t0 = last;
            auto g = generate(**m, q, [&](const ProgressEvent& e) -> Status {
                if (e.phase == "sampling") {
                    if (e.step == 0) encode[what].push_back(since(t0));
                    else steps[what].push_back(since(last));
                    last = Clock::now();
                }
                return ok();
            });
            if (!g) return fail(g.error());
            std::fprintf(stderr, "%s: step median %.3f s\n", what, median(steps[what]));
        }
    std::printf("{\"bench\": \"addons\", \"precision\": \"%s\", \"threads\": %d, \"size\": %d, \"base_steps_s\": [%s], "
                "\"controlnet_steps_s\": [%s], \"ip_adapter_steps_s\": [%s], \"base_encode_s\": [%s], \"ip_adapter_encode_s\": [%s], "
                "\"controlnet_step_ratio\": %.3f, \"ip_adapter_step_ratio\": %.3f, \"peak_rss_mb\": %.1f}\n",
                precision.c_str(), num_threads(), p.width, list(steps["base"]).c_str(), list(steps["controlnet"]).c_str(),
                list(steps["ip_adapter"]).c_str(), list(encode["base"]).c_str(), list(encode["ip_adapter"]).c_str(),
                median(steps["controlnet"]) / median(steps["base"]), median(steps["ip_adapter"]) / median(steps["base"]),
                double(peak_rss_kb()) / 1024.0);
    return 0;
}

int lora(const std::map<std::string, std::string>& f) {
    LoadOptions lo = load_options(f);
    lo.keep_param_registry = true;
    const std::string precision = get(f, "precision", "fast");
    const std::optional<Precision> pr = precision_from_flag(precision);
    if (!pr) return 2;
    lo.precision = *pr;
    const std::string model_path = get(f, "model", "");
    const int rank = std::stoi(get(f, "rank", "32"));
    const int runs = std::stoi(get(f, "runs", "3"));
    const auto t_load = Clock::now();
    auto m = load_model(model_path, lo);
    if (!m) {
        std::fprintf(stderr, "error: %s\n", m.error().to_string().c_str());
        return 1;
    }
    (*m)->wait_for_weight_cache();
    const double load_s = since(t_load);
    const auto t_reserve = Clock::now();
    if (get(f, "reserve", "1") == "1")  // as a server's worker does once its model is loaded
        if (Status st = LivePatch::reserve(**m); !st) {
            std::fprintf(stderr, "error: %s\n", st.error().to_string().c_str());
            return 1;
        }
    const double reserve_s = since(t_reserve);
    const std::string lora_path = get(f, "lora", fmt::format("{}.lora-r{}.safetensors", model_path, rank));
    size_t layers = 0;
    if (FILE* probe = std::fopen(lora_path.c_str(), "rb")) {
        std::fclose(probe);
    } else {
        std::fprintf(stderr, "making %s (once)\n", lora_path.c_str());
        WeightSet w;
        uint64_t seed = 1;
        auto rnd = [&](const Shape& s, float scale) {
            Tensor t = Tensor::empty(s);
            float* p = t.data<float>();
            for (int64_t i = 0; i < t.numel(); ++i) {  // a cheap deterministic spread in [-scale, scale)
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                p[i] = scale * (float(seed >> 40) / float(1ull << 24) * 2.0f - 1.0f);
            }
            return t.to(DType::F16);
        };
        for (const auto& [name, pp] : (*m)->packed_params->params) {
            if (name.rfind("unet.", 0) != 0 || pp.kind == PackedParam::Kind::Bias || !pp.source.storage()) continue;
            std::string key = "lora_unet_" + name.substr(5, name.size() - 5 - 7);
            std::replace(key.begin(), key.end(), '.', '_');
            const Shape& ws = pp.source.shape();
            Shape down{rank, ws[1]}, up{ws[0], rank};
            if (ws.rank() == 4) {
                down = Shape{rank, ws[1], ws[2], ws[3]};
                up = Shape{ws[0], rank, 1, 1};
            }
            (void)w.add(key + ".lora_down.weight", rnd(down, 0.05f));
            (void)w.add(key + ".lora_up.weight", rnd(up, 0.05f));
            (void)w.add(key + ".alpha", Tensor::full(Shape{}, float(rank) / 2).to(DType::F16));
            ++layers;
        }
        if (auto st = write_safetensors(lora_path, w); !st) {
            std::fprintf(stderr, "error: %s\n", st.error().to_string().c_str());
            return 1;
        }
    }
    const auto t_read = Clock::now();
    auto file = read_lora(lora_path, (*m)->info);
    if (!file) {
        std::fprintf(stderr, "error: %s\n", file.error().to_string().c_str());
        return 1;
    }
    const double read_s = since(t_read);
    layers = (*file)->modules.size();
    const std::vector<std::shared_ptr<const WeightAdapter>> adapters = {lora_adapter(*file, 1.0, 1.0)};
    std::vector<double> patch_s, restore_s;
    size_t bytes = 0;
    for (int r = 0; r < runs; ++r) {
        const auto t0 = Clock::now();
        auto patch = LivePatch::apply(**m, adapters);
        if (!patch) {
            std::fprintf(stderr, "error: %s\n", patch.error().to_string().c_str());
            return 1;
        }
        patch_s.push_back(since(t0));
        bytes = (*patch)->bytes();
        const auto t1 = Clock::now();
        patch->reset();
        restore_s.push_back(since(t1));
        std::fprintf(stderr, "run %d: patch %.3f s, restore %.3f s\n", r + 1, patch_s.back(), restore_s.back());
    }
    // Steps with and without, interleaved.
    GenerateParams p;
    p.prompt = "a photograph of an astronaut riding a horse";
    p.width = p.height = std::stoi(get(f, "size", "512"));
    p.steps = std::stoi(get(f, "steps", "3"));
    p.sampler = SamplerKind::Euler;
    p.decode = false;
    std::vector<double> base_step, lora_step;
    for (int r = 0; r < std::stoi(get(f, "gen-runs", "1")); ++r)
        for (const bool with : {false, true}) {
            std::unique_ptr<LivePatch> patch;
            if (with) patch = std::move(LivePatch::apply(**m, adapters)).value();
            std::vector<double>& out = with ? lora_step : base_step;
            Clock::time_point last;
            auto g = generate(**m, p, [&](const ProgressEvent& e) -> Status {
                if (e.phase == "sampling") {
                    if (e.step > 0) out.push_back(since(last));
                    last = Clock::now();
                }
                return ok();
            });
            if (!g) {
                std::fprintf(stderr, "error: %s\n", g.error().to_string().c_str());
                return 1;
            }
            std::fprintf(stderr, "%s: %zu steps\n", with ? "with the LoRA" : "base", out.size());
        }
    std::printf("{\"bench\": \"lora\", \"precision\": \"%s\", \"threads\": %d, \"rank\": %d, \"layers\": %zu, "
                "\"patched_mb\": %.1f, \"load_s\": %.3f, \"reserve_s\": %.3f, \"read_lora_s\": %.3f, \"patch_s\": [%s], \"restore_s\": [%s], "
                "\"base_steps_s\": [%s], \"lora_steps_s\": [%s], \"peak_rss_mb\": %.1f}\n",
                precision.c_str(), num_threads(), rank, layers, double(bytes) / 1048576.0, load_s, reserve_s, read_s,
                list(patch_s).c_str(), list(restore_s).c_str(), list(base_step).c_str(), list(lora_step).c_str(),
                double(peak_rss_kb()) / 1024.0);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: easel_bench_e2e make-checkpoint --out PATH [--variant sd15|sd21|sdxl_base|...: a tests/data/keys list]\n"
                             "       easel_bench_e2e run --model CKPT [--vocab VOCAB] [--steps 3] [--precision fp32|fast|bf16] "
                             "[--threads N] [--width 512 --height 512] [--cfg 7] [--seed 42] [--vae-tile 0] [--batch-size 1] [--decode 1] [--weight-cache DIR|off] [--weights auto|packed|stored]\n"
                             "       easel_bench_e2e lora --model CKPT [--rank 32] [--precision fast] [--runs 3] [--gen-runs 1]\n"
                             "       easel_bench_e2e addons --model CKPT [--precision fast] [--steps 3] [--gen-runs 2]\n"
                             "       easel_bench_e2e make-gguf --variant KEYS --type q4_K|q8_0|... --out PATH\n"
                             "       easel_bench_e2e make-flux-parts --dir DIR\n"
                             "       (run also takes --components A,B,C --t5-tokenizer PATH --guidance G)\n");
        return 2;
    }
    const auto flags = parse_flags(argc, argv, 2);
    if (!std::strcmp(argv[1], "make-checkpoint")) return make_checkpoint(flags);
    if (!std::strcmp(argv[1], "run")) return run(flags);
    if (!std::strcmp(argv[1], "make-gguf")) return make_gguf(flags);
    if (!std::strcmp(argv[1], "make-flux-parts")) return make_flux_parts(flags);
    if (!std::strcmp(argv[1], "lora")) return lora(flags);
    if (!std::strcmp(argv[1], "addons")) return addons(flags);
    std::fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
    return 2;
}
