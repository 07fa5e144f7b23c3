// Textual-inversion embeddings: the files AUTOMATIC1111, diffusers and kohya-ss write, read into the
// TextualInversions a PromptRequest carries (pipeline/interfaces.h). A prompt uses one by writing its file name;
// the conditioner puts its vectors where the name's tokens are (models/clip/prompt_parser.h).
//
//   EmbeddingScan scan = load_embeddings_dir("embeddings");   // every embedding there; the rest skipped, said why
//   for (const std::string& w : scan.skipped) fmt::print(stderr, "warning: {}\n", w);
//   params.embeddings = scan.set;                             // "a photo, (my_style:1.1)" / negative "bad_hands"
//
// Formats (by their tensor names; the safe readers of io/model_file.h, so a .pt pickle never runs code):
//   A1111 .pt            string_to_param.* [n, D] (plus string_to_token, name, step: ignored)
//   A1111 .safetensors   emb_params [n, D]
//   diffusers .bin       one tensor {token: [D] or [n, D]}
//   SDXL (.safetensors)  clip_l [n, 768] and clip_g [n, 1280]
// The embedding's name is its file name without extension, as in A1111 (the name stored inside is ignored).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/weights.h"
#include "pipeline/interfaces.h"

namespace easel {

// Reads one file. Errors name the file: not an embedding (with what it looks like instead, e.g. a LoRA), no
// vectors, vectors that are not [n, D] floats, NaN or infinite values.
Result<TextualInversion> read_embedding(const std::string& path);
// The same from tensors already read (`path` for the name and messages; `sha256` of the file).
Result<TextualInversion> embedding_from_weights(const WeightSet& w, const std::string& path, const std::string& sha256);

struct EmbeddingScan {
    std::shared_ptr<TextualInversions> set = std::make_shared<TextualInversions>();
    std::vector<std::string> skipped;  // "file: why", for a warning (a LoRA kept among the embeddings, ...)
};
// Every .pt, .bin and .safetensors file under `dir`, recursively, in name order, as A1111 scans its embeddings
// folder: a file that is not an embedding is skipped, not an error; so is a second file of the same name. A
// missing folder is an empty set.
EmbeddingScan load_embeddings_dir(const std::string& dir);

// A1111 keeps embeddings/ at the top of its folder, beside models/: an "embeddings" folder beside the model, else
// beside its folder, else one level further up; "" when none exists.
std::string default_embeddings_dir(const std::string& model_path);

}  // namespace easel
