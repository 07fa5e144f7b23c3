#include "pipeline/families/sd.h"
#include "pipeline/families/checkpoint.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <chrono>
#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "io/diffusers_folder.h"
#include "io/keymap_config_doc.h"
#include "io/keymap_ldm.h"
#include "io/model_file.h"
#include "runtime/pack_cache.h"

namespace easel {
namespace fs = std::filesystem;

namespace {

}  // namespace

namespace {
// Which CLIP vocabulary a model gets: --vocab; else the model's own (a diffusers tokenizer/ folder, or the
// vocabulary easel's own single files carry in their metadata); else $EASEL_VOCAB; else the built-in one.
struct TokenizerChoice {
    std::optional<clip::VocabSource> vocab;  // unset: the easel.tokenizer.* metadata of the file
    std::string describe;                    // for `easel info` and the model's notes
};

Result<TokenizerChoice> choose_tokenizer(const Checkpoint& g, const std::string& path, const std::string& vocab_flag) {
    if (vocab_flag.empty() && !g.tokenizer_dir.empty()) {
        clip::VocabSource own{g.tokenizer_dir, "the model's tokenizer/ folder"};
        return TokenizerChoice{own, own.describe()};
    }
    if (vocab_flag.empty() && g.weights.metadata.count("easel.tokenizer.vocab_json") &&
        g.weights.metadata.count("easel.tokenizer.merges_txt"))
        return TokenizerChoice{std::nullopt, fmt::format("the vocabulary in {}'s metadata (easel.tokenizer.*)", path)};
    EASEL_TRY_ASSIGN(clip::VocabSource v, clip::find_vocab(vocab_flag));
    return TokenizerChoice{v, v.describe()};
}

Result<clip::CLIPTokenizer> load_tokenizer(const TokenizerChoice& c, const Checkpoint& g, const std::string& path) {
    if (c.vocab) return c.vocab->load();
    return clip::CLIPTokenizer::from_vocab_json_text(g.weights.metadata.at("easel.tokenizer.vocab_json"),
                                                     g.weights.metadata.at("easel.tokenizer.merges_txt"),
                                                     path + " metadata");
}
}  // namespace

Result<ModelInspection> inspect_model(const std::string& path, const std::string& vocab_flag) {
    EASEL_TRY_ASSIGN(Checkpoint g, read_checkpoint(path));
    ModelInspection r;
    r.info = g.info;
    r.notes = g.notes;
    if (g.info.has_text_encoder) {
        EASEL_TRY_ASSIGN(TokenizerChoice t, choose_tokenizer(g, path, vocab_flag));
        r.tokenizer = t.describe;
    }
    return r;
}

Result<clip::CLIPTokenizer> load_model_tokenizer(const std::string& path, const std::string& vocab_flag) {
    EASEL_TRY_ASSIGN(Checkpoint g, read_checkpoint(path));
    EASEL_TRY_ASSIGN(TokenizerChoice t, choose_tokenizer(g, path, vocab_flag));
    return load_tokenizer(t, g, path);
}

namespace {
// What load_sd_model and load_sd_model_spec share: detection, the checks, the tokenizer, the configs (no weights).
// The tokenizer goes to `tokenizer` (a spec only checks it).
Status fill_spec(ModelSpec& m, clip::CLIPTokenizer& tokenizer, int32_t& pad_id, const Checkpoint& g,
                 const std::string& path, const LoadOptions& options) {
    ModelInfo info = g.info;
    if (!options.component_files.empty())
        return Error::unsupported("--text-encoder / --vae files: easel reads them for single-file SD3 and Flux checkpoints", path);
    if (info.family != ModelFamily::SD1 && info.family != ModelFamily::SD2)
        return Error::unsupported(fmt::format("{} models are not supported yet", family_name(info.family)), path);
    if (!info.has_unet || !info.has_vae || !info.has_text_encoder)
        return Error::bad_file(path, fmt::format("the checkpoint lacks a component (unet: {}, vae: {}, text encoder: {})",
                                                 info.has_unet ? "yes" : "no", info.has_vae ? "yes" : "no",
                                                 info.has_text_encoder ? "yes" : "no"));
    if (options.prediction) info.unet.prediction = *options.prediction;
    if (info.unet.prediction == Prediction::Unknown)
        return Error::invalid_argument(
            "this SD 2.x checkpoint does not say whether it predicts noise (512-base) or velocity (768-v); "
            "pass --prediction eps or --prediction v, or put the model's yaml beside it",
            path);
    EASEL_TRY(fill_unet_vae_spec(m, info, options, path));

    m.path = path;
    m.name = fs::path(path).filename().replace_extension("").string();
    m.family = "sd";
    m.notes = g.notes;
    m.defaults = g.defaults;
    if (g.sources.scheduler_json) {
        EASEL_TRY_ASSIGN(m.scheduler_config, parse_scheduler_config(*g.sources.scheduler_json,
                                                                    (fs::path(path) / "scheduler" / "scheduler_config.json").string()));
    }

    EASEL_TRY_ASSIGN(TokenizerChoice choice, choose_tokenizer(g, path, options.vocab_path));
    EASEL_TRY_ASSIGN(tokenizer, load_tokenizer(choice, g, path));
    m.notes.push_back("tokenizer: " + choice.describe);
    if (int64_t(tokenizer.id_limit()) > info.text.vocab_size)
        return Error::invalid_argument(
            fmt::format("the tokenizer ({}) gives ids up to {}, but the text encoder's token embedding has {} rows: this "
                        "model needs its own vocabulary (--vocab PATH, e.g. its diffusers tokenizer/ folder)",
                        choice.describe, tokenizer.id_limit() - 1, info.text.vocab_size), path);
    pad_id = info.family == ModelFamily::SD2 ? 0 : tokenizer.eos_id();
    m.info = std::move(info);
    return ok();
}
}  // namespace

Result<ModelSpec> load_sd_model_spec(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Checkpoint g, read_checkpoint(path));
    ModelSpec m;
    clip::CLIPTokenizer tokenizer;
    int32_t pad_id = 0;
    EASEL_TRY(fill_spec(m, tokenizer, pad_id, g, path, options));
    return m;
}

Result<std::unique_ptr<SDModel>> load_sd_model(const std::string& path, const LoadOptions& options) {
    EASEL_TRY_ASSIGN(Checkpoint g, read_checkpoint(path));
    auto m = std::make_unique<SDModel>();
    EASEL_TRY(fill_spec(*m, m->tokenizer, m->pad_id, g, path, options));
    SDModel& s = *m;
    EASEL_TRY(load_networks(g.weights, path, options, s, [&s](ParamLoader& loader) {
        s.text_encoder = CLIPTextEncoder::declare(ParamScope(loader, "text_encoder"), s.info.text);
        s.unet = UNet::declare(ParamScope(loader, "unet"), s.info.unet);
        s.vae = VAE::declare(ParamScope(loader, "vae"), s.info.vae, s.has_vae_encoder);
    }));
    return m;
}

Family sd_family() {
    return checkpoint_family<SDModel>(
        "sd", [](const ModelInfo& i) { return i.family == ModelFamily::SD1 || i.family == ModelFamily::SD2; },
        load_sd_model, load_sd_model_spec);
}

}  // namespace easel
