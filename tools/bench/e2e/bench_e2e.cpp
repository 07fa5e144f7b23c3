// easel_bench_e2e: the end-to-end numbers of issue 5, one generation per process (so peak RSS is that run's).
//
//   easel_bench_e2e make-checkpoint --variant sd15 --out ~/.cache/easel-bench/sd15-random-fp16.safetensors
//   easel_bench_e2e run --model CKPT --steps 3 --precision fast            (--vocab PATH: not the built-in one)
//
// `run` prints one JSON line: load, text encoding (prompt and negative prompt), every sampler step (euler, one UNet
// call on the CFG batch of 2 each), VAE decode, total, and the process's peak RSS (VmHWM). scripts/bench-e2e runs it
// several times, interleaved with the peer, and prints medians and ratios.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "common/random_checkpoint.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "pipeline/families/sd.h"
#include "pipeline/generate.h"
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

int run(const std::map<std::string, std::string>& f) {
    if (f.count("threads")) set_num_threads(std::stoi(f.at("threads")));
    LoadOptions lo;
    lo.vocab_path = get(f, "vocab", "");
    lo.with_vae_encoder = false;
    // What `easel generate` does: --weight-cache DIR|off, else $EASEL_WEIGHT_CACHE (unset: off).
    const std::string wc = get(f, "weight-cache", default_weight_cache_dir());
    lo.weight_cache_dir = wc == "off" ? std::string() : wc;
    lo.weight_cache_max_bytes = default_weight_cache_max_bytes();
    lo.weight_cache_write_in_background = true;  // as `easel generate`: the write overlaps the generation
    const std::string precision = get(f, "precision", "fp32");
    if (precision == "fast") lo.precision = Precision::BF16;
    else if (precision != "fp32") {
        std::fprintf(stderr, "error: --precision: expected fp32 or fast\n");
        return 2;
    }
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
    std::map<std::string, double> mark;
    std::vector<double> step_times;
    Clock::time_point last_step;
    const auto t_gen = Clock::now();
    // As `easel generate` runs it: one-shot, each network's weights dropped once no longer needed.
    auto r = generate_once(**m, p, [&](const ProgressEvent& e) -> Status {
        const auto now = Clock::now();
        if (e.phase == "sampling") {
            if (e.step > 0) step_times.push_back(std::chrono::duration<double>(now - last_step).count());
            last_step = now;
            std::fprintf(stderr, "\rstep %d/%d", e.step, e.total);
        } else {
            mark[fmt::format("{}{}", e.phase, e.step)] = since(t_gen);
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
    std::string steps;
    for (size_t i = 0; i < step_times.size(); ++i) steps += fmt::format("{}{:.3f}", i ? ", " : "", step_times[i]);
    std::printf("{\"engine\": \"easel\", \"model\": \"%s\", \"cfg\": %g, \"precision\": \"%s\", \"threads\": %d, \"isa\": \"%s\", \"width\": %d, \"height\": %d, "
                "\"load_s\": %.3f, \"text_s\": %.3f, \"steps_s\": [%s], \"decode_s\": %.3f, \"generate_s\": %.3f, "
                "\"peak_rss_mb\": %.1f, \"weight_cache\": \"%s\", \"cache_wait_s\": %.3f}\n",
                (*m)->family.c_str(), p.cfg_scale, precision.c_str(), num_threads(), std::string(isa_name(active_isa())).c_str(), p.width, p.height, load_s,
                mark["encode1"] - mark["encode0"], steps.c_str(), mark["decode1"] - mark["decode0"], total_s,
                double(peak_rss_kb()) / 1024.0, cache_state(), cache_wait_s);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: easel_bench_e2e make-checkpoint --out PATH [--variant sd15|sd21|sdxl_base|...: a tests/data/keys list]\n"
                             "       easel_bench_e2e run --model CKPT [--vocab VOCAB] [--steps 3] [--precision fp32|fast] "
                             "[--threads N] [--width 512 --height 512] [--cfg 7] [--seed 42] [--vae-tile 0] [--weight-cache DIR|off]\n");
        return 2;
    }
    const auto flags = parse_flags(argc, argv, 2);
    if (!std::strcmp(argv[1], "make-checkpoint")) return make_checkpoint(flags);
    if (!std::strcmp(argv[1], "run")) return run(flags);
    std::fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
    return 2;
}
