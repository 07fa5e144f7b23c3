// easel: the command-line interface. `easel generate`, `easel info`, `easel tokenize`.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>

#include <fmt/format.h>

#include "args.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"
#include "io/image.h"
#include "pipeline/generate.h"
#include "progress.h"

using namespace easel;
namespace fs = std::filesystem;

namespace {

constexpr const char* kVersion = "easel 0.1.0";

int fail(const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.to_string().c_str());
    return e.code() == ErrorCode::Internal ? 3 : 1;
}

// The embedded default model: $EASEL_MODELS_DIR/tiny, next to the binary's tree, or the source tree it was built from.
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
        if (!v) return Error::invalid_argument(fmt::format("expected ref, avx2, avx512 or avx512bf16, got '{}'", isa.s), "--cpu-isa");
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
    auto& seed = a.add_int("--seed", "", -1, "random seed; -1 picks one and prints it");
    auto& steps = a.add_int("--steps", "", 20, "sampling steps");
    auto& cfg = a.add_double("--cfg-scale", "", 7.0, "classifier-free guidance scale");
    auto& width = a.add_int("--width", "-W", 0, "image width, a multiple of 8 (0: the model's native size)");
    auto& height = a.add_int("--height", "-H", 0, "image height, a multiple of 8 (0: the model's native size)");
    auto& sampler = a.add_string("--sampler", "", "euler_a", "euler, euler_a, heun, dpm2, lms, dpm++2m, dpm++2m_sde, dpm++sde, ddim, lcm (diffusers mode: euler, euler_a, heun, lms, dpm++2m, ddim, pndm)");
    auto& scheduler = a.add_string("--scheduler", "", "automatic", "automatic, karras, exponential, sgm_uniform, simple, ddim_uniform, ays");
    auto& rng = a.add_string("--rng", "", "cpu", "cpu (torch CPU generator, as ComfyUI) or cuda (AUTOMATIC1111's GPU Philox)");
    auto& precision = a.add_string("--precision", "", "fp32", "fp32 (exact) or fast (bf16 compute, f32 accumulation)");
    auto& schedule_from = a.add_string("--schedule-from", "", "kdiffusion", "kdiffusion (AUTOMATIC1111, ComfyUI) or diffusers (the model's scheduler_config.json, as StableDiffusionPipeline)");
    auto& prediction = a.add_string("--prediction", "", "", "eps or v, for checkpoints that cannot tell (SD 2.x single files)");
    auto& clip_skip = a.add_int("--clip-skip", "", 1, "stop the text encoder this many layers early (1: last layer)");
    auto& vocab = a.add_string("--vocab", "", "", "CLIP vocabulary (vocab.json folder or bpe_simple_vocab_16e6.txt.gz) for single-file checkpoints");
    auto& init = a.add_string("--init-image", "", "", "img2img: the starting image (PNG, JPEG or WebP, same size as the output)");
    auto& strength = a.add_double("--strength", "", 0.75, "img2img: how much of the image to repaint (0..1)");
    auto& mask = a.add_string("--mask", "", "", "inpainting mask, same size as --init-image (white = repaint; or the alpha channel)");
    auto& mask_blur = a.add_int("--mask-blur", "", 4, "inpainting: blur the mask edge by this many pixels (0..64)");
    auto& batch_count = a.add_int("--batch-count", "", 1, "batches to run (seeds continue: seed, seed+1, ...)");
    auto& batch_size = a.add_int("--batch-size", "", 1, "images per batch");
    auto& threads = a.add_int("--threads", "", num_threads(), "CPU threads");
    auto& isa = a.add_string("--cpu-isa", "", "", "cap the SIMD level: ref, avx2, avx512, avx512bf16");
    auto& output = a.add_string("--output", "-o", "output.png", "output file (.png, .jpg or .webp by extension); several images get -N suffixes");
    if (auto st = a.parse(argc, argv); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s", a.help().c_str());
        return 0;
    }
    if (auto st = apply_common(threads, isa); !st) return fail(st.error());

    GenerateParams p;
    p.prompt = prompt.s;
    p.negative_prompt = negative.s;
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
    if (batch_count.i < 1 || batch_count.i > 1000) return fail(Error::invalid_argument(fmt::format("must be between 1 and 1000, got {}", batch_count.i), "--batch-count"));
    if (batch_size.i < 1 || batch_size.i > 64) return fail(Error::invalid_argument(fmt::format("must be between 1 and 64, got {}", batch_size.i), "--batch-size"));
    p.batch_count = int(batch_count.i);
    p.batch_size = int(batch_size.i);
    if (width.i < 0 || width.i > 4096 || height.i < 0 || height.i > 4096)
        return fail(Error::invalid_argument(fmt::format("size {}x{} is outside 8..4096", width.i, height.i), "-W/-H"));
    if (auto f = image_format_from_path(output.s); !f) return fail(f.error().within("--output"));

    LoadOptions lo;
    if (precision.s == "fp32") lo.precision = Precision::F32;
    else if (precision.s == "fast") lo.precision = Precision::BF16;
    else return fail(Error::invalid_argument(fmt::format("expected fp32 or fast, got '{}'", precision.s), "--precision"));
    if (!prediction.s.empty()) {
        if (prediction.s == "eps" || prediction.s == "epsilon") lo.prediction = Prediction::Epsilon;
        else if (prediction.s == "v" || prediction.s == "v_prediction") lo.prediction = Prediction::V;
        else return fail(Error::invalid_argument(fmt::format("expected eps or v, got '{}'", prediction.s), "--prediction"));
    }
    lo.vocab_path = vocab.s;
    lo.with_vae_encoder = !init.s.empty();

    std::string model_path = model.s;
    if (model_path.empty()) {
        auto d = default_model_path();
        if (!d) return fail(d.error());
        model_path = *d;
    }
    std::fprintf(stderr, "%s (cpu isa %s, %d threads)\n", kVersion, std::string(isa_name(active_isa())).c_str(), num_threads());
    auto m = load_sd_model(model_path, lo);
    if (m && (*m)->info.unet.in_channels == 9 && !lo.with_vae_encoder) {
        lo.with_vae_encoder = true;  // an inpainting model's txt2img encodes a grey picture
        m = load_sd_model(model_path, lo);
    }
    if (!m) return fail(m.error());
    const int native = (*m)->info.unet.sample_size * (*m)->info.vae.downscale();
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
    if (seed.i == -1) {
        std::random_device rd;
        p.seed = int64_t((uint64_t(rd()) << 32 | rd()) % 4294967296ull);
        std::fprintf(stderr, "seed: %lld\n", static_cast<long long>(p.seed));
    } else {
        p.seed = seed.i;
    }
    if (auto st = validate_params(p, **m); !st) return fail(st.error());

    cli::ProgressPrinter printer;
    auto images = generate(**m, p, [&](const ProgressEvent& e) { return printer.on_event(e); });
    printer.finish();
    if (!images) return fail(images.error());
    for (size_t i = 0; i < images->size(); ++i) {
        const GeneratedImage& g = (*images)[i];
        const std::string path = output_path(output.s, int(i), int(images->size()));
        if (auto st = write_image(path, g.image, {{"parameters", g.infotext}}); !st) return fail(st.error());
        std::printf("%s\n", path.c_str());
    }
    return 0;
}

int cmd_info(int argc, char** argv) {
    cli::Args a("info", "Print what a model file or folder holds: family, layout, dtype and each component's config, or why it was refused.");
    auto& model = a.add_string("--model", "-m", "", "model file or folder (also accepted as the first argument)");
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
    std::vector<std::string> notes;
    auto info = inspect_model(path, &notes);
    if (!info) return fail(info.error());
    std::printf("%s\n  family: %s\n  layout: %s\n  weights: %s\n", path.c_str(), std::string(family_name(info->family)).c_str(),
                std::string(layout_name(info->layout)).c_str(), std::string(dtype_name(info->weight_dtype)).c_str());
    if (info->has_text_encoder) std::printf("  text encoder: %s\n", info->text.summary().c_str());
    if (info->has_unet) std::printf("  unet: %s\n  prediction: %s\n", info->unet.summary().c_str(),
                                    std::string(prediction_name(info->unet.prediction)).c_str());
    if (info->has_vae) std::printf("  vae: %s\n", info->vae.summary().c_str());
    for (const auto& n : info->notes) std::printf("  note: %s\n", n.c_str());
    for (const auto& n : notes) std::printf("  note: %s\n", n.c_str());
    return 0;
}

int cmd_tokenize(int argc, char** argv) {
    cli::Args a("tokenize", "Print the CLIP token ids of a prompt (unpadded and untruncated, with BOS and EOS).");
    auto& model = a.add_string("--model", "-m", "", "model whose tokenizer to use");
    auto& vocab = a.add_string("--vocab", "", "", "CLIP vocabulary (vocab.json folder or bpe_simple_vocab_16e6.txt.gz)");
    auto& prompt = a.add_string("--prompt", "-p", "", "text to tokenize", true);
    auto& json = a.add_bool("--json", "", "print {\"ids\": [...]}");
    if (auto st = a.parse(argc, argv); !st) return fail(st.error());
    if (a.help_requested()) {
        std::printf("%s", a.help().c_str());
        return 0;
    }
    std::string path = vocab.s;
    if (path.empty()) {
        std::string mp = model.s;
        if (mp.empty()) {
            auto d = default_model_path();
            if (!d) return fail(Error::invalid_argument("give -m MODEL or --vocab FILE"));
            mp = *d;
        }
        std::error_code ec;
        if (fs::is_directory(fs::path(mp) / "tokenizer", ec)) path = (fs::path(mp) / "tokenizer").string();
        else {
            auto v = clip::find_vocab("", mp);
            if (!v) return fail(v.error());
            path = *v;
        }
    }
    auto tok = clip::CLIPTokenizer::load(path);
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
    auto& cfg = a.add_double("--cfg-scale", "", 7.0, "classifier-free guidance scale");
    auto& sampler = a.add_string("--sampler", "", "euler_a", "sampler (see 'easel generate --help')");
    auto& scale = a.add_int("--scale", "", 4, "enlarge each image this many times (nearest neighbour), 1..16");
    auto& threads = a.add_int("--threads", "", num_threads(), "CPU threads");
    auto& isa = a.add_string("--cpu-isa", "", "", "cap the SIMD level: ref, avx2, avx512, avx512bf16");
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
    auto m = load_sd_model(model_path, LoadOptions{.with_vae_encoder = false});
    if (!m) return fail(m.error());
    const int native = (*m)->info.unet.sample_size * (*m)->info.vae.downscale();
    std::vector<Image> tiles;
    std::string listing;
    std::string first_infotext;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < std::size(kDemoPrompts); ++i) {
        GenerateParams p;
        p.prompt = kDemoPrompts[i];
        p.width = p.height = native;
        p.steps = int(steps.i);
        p.cfg_scale = cfg.d;
        p.sampler = *sk;
        p.seed = seed.i + int64_t(i);
        auto r = generate(**m, p);
        if (!r) return fail(r.error().within(fmt::format("prompt {} '{}'", i + 1, kDemoPrompts[i])));
        tiles.push_back((*r)[0].image);
        if (i == 0) first_infotext = (*r)[0].infotext;
        listing += fmt::format("  {} (row {}, column {}): {}  [seed {}]\n", i + 1, i / 4 + 1, i % 4 + 1, kDemoPrompts[i], p.seed);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const Image grid = make_grid(tiles, 4, int(scale.i), 4);
    std::error_code ec;
    const fs::path parent = fs::path(output.s).parent_path();
    if (!parent.empty()) fs::create_directories(parent, ec);
    if (auto st = write_image(output.s, grid, {{"parameters", first_infotext}, {"Description", "easel demo grid:\n" + listing}}); !st)
        return fail(st.error());
    std::fprintf(stderr, "%s: %zu images of %dx%d, %lld steps each, in %.2f s\n%s", (*m)->name.c_str(), tiles.size(), native,
                 native, static_cast<long long>(steps.i), secs, listing.c_str());
    std::printf("%s\n", output.s.c_str());
    return 0;
}

void print_help() {
    std::printf(
        "usage: easel <command> [options]\n"
        "\n"
        "commands:\n"
        "  generate     make images from a prompt (txt2img, img2img)\n"
        "  info         show what a model file or folder holds\n"
        "  tokenize     print the CLIP token ids of a prompt\n"
        "  demo         draw a grid of example prompts with the embedded model\n"
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
    if (cmd == "demo") return cmd_demo(argc - 2, argv + 2);
    std::fprintf(stderr, "error: unknown command '%s'; see 'easel --help'\n", cmd.c_str());
    return 2;
}
