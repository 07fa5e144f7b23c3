#include "pipeline/embeddings.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "io/file_hash.h"
#include "io/model_file.h"

namespace easel {

namespace fs = std::filesystem;

namespace {

Result<Tensor> as_vectors(const Tensor& t, const std::string& path, const std::string& key) {
    if (!dtype_is_float(t.dtype()))
        return Error::bad_file(path, fmt::format("{} has dtype {}, expected float vectors", key, dtype_name(t.dtype())));
    Tensor v = t.to(DType::F32).contiguous();
    if (v.rank() == 1) v = v.reshape(Shape{1, v.size(0)});
    if (v.rank() != 2 || v.size(0) < 1 || v.size(1) < 1 || v.size(0) > 1000 || v.size(1) > 16384)
        return Error::bad_file(path, fmt::format("{} is {}, expected [vectors, width] (at most 1000 vectors)", key,
                                                 t.shape().to_string()));
    const float* p = v.data<float>();
    for (int64_t i = 0; i < v.numel(); ++i)
        if (!std::isfinite(p[i])) return Error::bad_file(path, fmt::format("{} holds {} at element {}", key, p[i], i));
    return v.clone();
}

}  // namespace

Result<TextualInversion> embedding_from_weights(const WeightSet& w, const std::string& path, const std::string& sha256) {
    TextualInversion e;
    e.name = fs::path(path).stem().string();
    e.hash = sha256.substr(0, 12);
    std::vector<std::string> params;
    for (const std::string& n : w.names())
        if (n.rfind("string_to_param.", 0) == 0) params.push_back(n);
    if (const Tensor* t = w.find("emb_params")) {
        EASEL_TRY_ASSIGN(e.vectors[""], as_vectors(*t, path, "emb_params"));
    } else if (!params.empty()) {
        if (params.size() != 1)
            return Error::bad_file(path, fmt::format("{} string_to_param entries; an A1111 embedding has one", params.size()));
        EASEL_TRY_ASSIGN(e.vectors[""], as_vectors(*w.find(params[0]), path, params[0]));
    } else if (w.contains("clip_l") || w.contains("clip_g")) {
        if (!w.contains("clip_l") || !w.contains("clip_g"))
            return Error::bad_file(path, "an SDXL embedding needs both clip_l and clip_g");
        EASEL_TRY_ASSIGN(e.vectors["clip_l"], as_vectors(*w.find("clip_l"), path, "clip_l"));
        EASEL_TRY_ASSIGN(e.vectors["clip_g"], as_vectors(*w.find("clip_g"), path, "clip_g"));
        if (e.vectors["clip_l"].size(0) != e.vectors["clip_g"].size(0))
            return Error::bad_file(path, fmt::format("clip_l has {} vectors, clip_g {}", e.vectors["clip_l"].size(0),
                                                     e.vectors["clip_g"].size(0)));
    } else if (w.size() == 1) {
        // diffusers' {token: vector}; a LoRA or model never has just one tensor named like a prompt word.
        const std::string& key = w.names()[0];
        if (key.find("lora") != std::string::npos || key.find(".weight") != std::string::npos)
            return Error::bad_file(path, fmt::format("not a textual-inversion embedding (its one tensor is {})", key));
        EASEL_TRY_ASSIGN(e.vectors[""], as_vectors(*w.find(key), path, key));
    } else {
        std::string first;
        for (size_t i = 0; i < w.size() && i < 3; ++i) first += (i ? ", " : "") + w.names()[i];
        const bool lora = std::any_of(w.names().begin(), w.names().end(), [](const std::string& n) {
            return n.find("lora_") != std::string::npos || n.find("hada_") != std::string::npos || n.find("lokr_") != std::string::npos;
        });
        return Error::bad_file(path, fmt::format("not a textual-inversion embedding{} ({} tensors: {}, ...); expected "
                                                 "emb_params, string_to_param, clip_l/clip_g or one {{token: vector}}",
                                                 lora ? " but a LoRA" : "", w.size(), first));
    }
    return e;
}

Result<TextualInversion> read_embedding(const std::string& path) {
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(path));
    EASEL_TRY_ASSIGN(std::string hash, sha256_file(path));
    return embedding_from_weights(w, path, hash);
}

EmbeddingScan load_embeddings_dir(const std::string& dir) {
    EmbeddingScan scan;
    std::error_code ec;
    if (dir.empty() || !fs::is_directory(dir, ec)) return scan;
    std::vector<fs::path> files;
    auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        std::string ext = it->path().extension().string();
        std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
        if (ext == ".pt" || ext == ".bin" || ext == ".safetensors") files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
        auto e = read_embedding(f.string());
        if (!e) {
            scan.skipped.push_back(fmt::format("{}: {}", f.string(), e.error().message()));
            continue;
        }
        const bool dup = std::any_of(scan.set->items.begin(), scan.set->items.end(),
                                     [&](const TextualInversion& x) { return x.name == e->name; });
        if (dup) {
            scan.skipped.push_back(fmt::format("{}: a second embedding named '{}'", f.string(), e->name));
            continue;
        }
        scan.set->items.push_back(std::move(e).value());
    }
    return scan;
}

std::string default_embeddings_dir(const std::string& model_path) {
    std::error_code ec;
    const fs::path m = fs::absolute(model_path, ec);
    const fs::path here = fs::is_directory(m, ec) ? m : m.parent_path();
    for (const fs::path& d : {here / "embeddings", here.parent_path() / "embeddings", here.parent_path().parent_path() / "embeddings"})
        if (fs::is_directory(d, ec)) return d.string();
    return {};
}

}  // namespace easel
