// LoRA and its kin (kohya-ss LoRA and LoCon, LyCORIS LoHa and LoKr, full-weight `diff` files, diffusers/PEFT
// LoRA): files read, every module matched to a parameter of the model it is for, and applied as a weight
// change before packing (runtime/param.h WeightAdapter: W' = W + multiplier x delta).
//
//   EASEL_TRY_ASSIGN(ModelSpec spec, load_model_spec(model_path, options));
//   EASEL_TRY_ASSIGN(auto lora, read_lora("Lora/detail.safetensors", spec.info));  // every key matched
//   options.adapters.push_back(lora_adapter(lora, /*unet=*/0.8, /*te=*/0.8));
//   EASEL_TRY_ASSIGN(auto model, load_model(model_path, options));
//
// AUTOMATIC1111's prompt syntax names them: `<lora:detail:0.8>` or `<lora:detail:te=0.5:unet=1>`; the tags are
// taken out of the text before it is encoded (strip_extra_networks, as A1111's extra_networks.parse_prompt):
//
//   EASEL_TRY_ASSIGN(ExtraNetworks x, parse_extra_networks("a cat <lora:detail:0.8>"));
//   // x.loras = {{"detail", te 0.8, unet 0.8}}; x.prompt = "a cat "
//
// Semantics, as the reference tools define them (AUTOMATIC1111's Lora extension and diffusers' PEFT backend
// agree on them):
//   LoRA / LoCon   delta = (alpha / rank) x up . down, up [out, r(, 1, 1)], down [r, in(, kh, kw)]; with
//                  `lora_mid` [r, r, kh, kw] (CP): delta[i,j,k,l] = sum_nm mid[n,m,k,l] up[i,n] down[m,j]
//   LoHa           delta = (alpha / rank) x (w1_a . w1_b) * (w2_a . w2_b) (elementwise); with hada_t1/t2
//                  each factor is rebuilt from its CP core
//   LoKr           delta = (alpha / rank) x kron(w1, w2), w1 = lokr_w1 or w1_a . w1_b, w2 likewise (or from
//                  lokr_t2); rank is w2_b's (else w1_b's) first dimension, as A1111 takes it; without either,
//                  scale 1
//   diff           delta = diff (and diff_b on the bias)
//   DoRA           a LoRA with dora_scale [1, in(, 1, 1)]: merged = W + (alpha / rank) up . down, then
//                  W' = W + multiplier x (merged x dora_scale / |merged's input column| - W) (A1111 v1.10)
// rank is down's (hada_w1_b's) first dimension; without an alpha, alpha = rank. The result is reshaped to the
// parameter's shape when the element counts agree (a linear-shaped LoRA on SD 1.x's 1x1-conv proj_in). Several
// files apply in order, each to the weight the ones before it left (which only DoRA can tell apart).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "models/detect.h"
#include "pipeline/model.h"
#include "runtime/param.h"

namespace easel {

// One `<lora:...>` tag of a prompt.
struct LoraTag {
    std::string name;
    double te = 1.0;    // text-encoder multiplier
    double unet = 1.0;  // UNet multiplier (A1111: the te value unless given)
};

struct ExtraNetworks {
    std::string prompt;          // the text with every `<type:...>` tag removed
    std::vector<LoraTag> loras;  // in the order written
    std::vector<std::string> other;  // other tags (hypernet, ...), as written, for a warning
};

// A1111's `<(\w+):([^>]+)>` tags. `<lora:NAME>`, `<lora:NAME:TE>`, `<lora:NAME:TE:UNET>`, and named
// `te=`, `unet=` (A1111 also takes `dyn=`, which only its dynamic-rank LoRAs use, and ignores it here too).
// Errors: a multiplier that is not a number, an empty name.
Result<ExtraNetworks> parse_extra_networks(std::string_view prompt);
// The text without its tags (what gets encoded).
std::string strip_extra_networks(std::string_view prompt);

// One module of a file, matched to the parameter it changes.
struct LoraModule {
    enum class Kind { LoRA, LoHa, LoKr, Full };
    Kind kind = Kind::LoRA;
    std::string key;     // the module's name in the file ("lora_unet_down_blocks_0_..." or "unet.down_blocks.0...")
    std::string target;  // the model parameter: "unet.down_blocks.0.attentions.0.proj_in.weight"
    bool text_encoder = false;   // scaled by the text-encoder multiplier, else by the UNet's
    std::map<std::string, Tensor> parts;  // "up", "down", "mid", "w1_a", "w1", "t1", "diff", "diff_b", ... as stored
    std::optional<double> alpha;
    int64_t rank() const;
    double scale() const;  // alpha / rank, or 1
};

struct LoraFile {
    std::string path;
    std::string name;   // the file name without its extension: what `<lora:NAME>` and infotext use
    std::string alias;  // kohya-ss's ss_output_name metadata, when present (A1111 finds the file by it too)
    std::string sha256; // addnet hash (io/file_hash.h); infotext's "Lora hashes" show its first 12 digits
    std::vector<LoraModule> modules;
    bool touches_unet = false, touches_text_encoder = false;
    std::string short_hash() const { return sha256.substr(0, 12); }
};

// Reads a LoRA-family file (.safetensors, or .pt/.ckpt through the safe pickle reader) and matches each of its
// modules to a parameter of a model described by `info` (its UNet layout and text encoders). Errors name the
// key: a part that belongs to no known format, a module whose name matches no layer (a LoRA for another
// architecture), a text-encoder module for an encoder the model lacks, a rank of 0, NaN or infinite values,
// inconsistent ranks between parts. Shapes against the parameter are checked when applied (the loader then
// names the layer and both shapes).
Result<std::shared_ptr<const LoraFile>> read_lora(const std::string& path, const ModelInfo& info);
Result<std::shared_ptr<const LoraFile>> read_lora(const WeightSet& weights, const ModelInfo& info,
                                                  const std::string& path, const std::string& sha256);

// The adapter that applies `file` with these multipliers (0 leaves that part out).
std::shared_ptr<const WeightAdapter> lora_adapter(std::shared_ptr<const LoraFile> file, double unet, double te);

// The delta of one module for a parameter of `shape` (f32, contiguous, without multiplier but with alpha/rank).
// Errors: the module's parts do not fit `shape` (the message gives both shapes).
Result<Tensor> lora_delta(const LoraModule& m, const Shape& shape);

// Adapters applied to a loaded model in place, for as long as this object lives (what `easel serve`'s workers do
// per request, instead of loading the model again). Each parameter an adapter touches is rebuilt from the file's
// tensor with every adapter applied in order (the same f32 merge as LoadOptions::adapters) and packed again into
// the very bytes the model uses; their original bytes are written back by the destructor (from the weight cache
// file where the model's weights were copied from it, else from a copy kept in a reused arena), so the model is
// then its base again bit for bit. Needs a model loaded with LoadOptions::keep_param_registry, no generation
// running while it is made or destroyed, and no weight-cache write in progress (Model::wait_for_weight_cache).
//
//   { EASEL_TRY_ASSIGN(auto patch, LivePatch::apply(model, {lora_adapter(file, 0.8, 0.8)}));
//     generate(model, params); }          // the LoRA's image; after the block, the base model's
class LivePatch {
public:
    // Errors (the model is left as it was): no registry, a target the model lacks or whose weight cannot be
    // rebuilt (changed by an adapter at load, or not read from a file: a GGUF weight), an adapter's error.
    static Result<std::unique_ptr<LivePatch>> apply(Model& m, const std::vector<std::shared_ptr<const WeightAdapter>>& adapters);
    // Sets up, ahead of the first apply(), the memory a weight is merged in (one f32 copy of the model's
    // largest patchable weight: 118 MB for SD 1.5), so that the first request with a LoRA does not wait for
    // fresh pages. What a server's worker calls once its model is loaded. Errors: no registry, out of memory.
    static Status reserve(Model& m);
    ~LivePatch();
    LivePatch(const LivePatch&) = delete;
    LivePatch& operator=(const LivePatch&) = delete;

    size_t params() const { return saved_.size(); }
    size_t bytes() const { return bytes_; }  // of packed weights rewritten (and kept)

private:
    LivePatch() = default;
    void restore();
    struct Saved {
        void* dst = nullptr;
        size_t offset = 0, bytes = 0;          // in the registry's arena
        std::shared_ptr<const void> original;  // or: the weight cache file's bytes of it
    };
    std::shared_ptr<ParamRegistry> registry_;
    std::vector<Saved> saved_;
    size_t bytes_ = 0;
};

// The LoRA files of a folder, searched recursively as A1111 lists its Lora folder: .safetensors, .pt, .ckpt.
// Returns (name, path) pairs sorted by name. A missing folder is an empty list.
std::vector<std::pair<std::string, std::string>> list_lora_files(const std::string& dir);
// AUTOMATIC1111 keeps models/Stable-diffusion/*.safetensors beside models/Lora: a Lora folder beside the model
// (in a file's folder, or inside a diffusers folder), else beside that folder; "" when neither exists.
std::string default_lora_dir(const std::string& model_path);
// The file `name` names: `name` itself if it is a path to a file (and `allow_path`), else NAME.safetensors/.pt/.ckpt found by
// list_lora_files in `dir`, else a file whose ss_output_name alias is `name`. Errors: not found (naming the
// folder), or two files with that name.
// `allow_path` false (a server's requests): only files in `dir`, never a path the name happens to be.
Result<std::string> find_lora_file(const std::string& dir, const std::string& name, bool allow_path = true);

}  // namespace easel
