#include "io/diffusers_folder.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "io/mapped_file.h"
#include "io/model_file.h"
#include "io/safetensors.h"

namespace easel {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

// Config and index files are small; anything bigger is not what it claims to be.
constexpr size_t kMaxJsonFileBytes = 64u << 20;

// A name from JSON that becomes part of a path: a single plain component, never "..", never absolute.
bool is_plain_name(std::string_view s) {
    if (s.empty() || s == "." || s == "..") return false;
    return s.find('/') == std::string_view::npos && s.find('\\') == std::string_view::npos &&
           s.find('\0') == std::string_view::npos;
}

Result<std::string> read_text_file(const std::string& path) {
    EASEL_TRY_ASSIGN(std::shared_ptr<const MappedFile> f, MappedFile::open(path));
    if (f->size() > kMaxJsonFileBytes)
        return Error::bad_file(path, fmt::format("is {} bytes; a JSON config or index is expected to be under {} bytes",
                                                 f->size(), kMaxJsonFileBytes));
    return std::string(reinterpret_cast<const char*>(f->data()), f->size());
}

Result<Json> parse_object(std::string_view text, const std::string& where) {
    Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Error::bad_file(where, "is not valid JSON");
    if (!j.is_object()) return Error::bad_file(where, fmt::format("is a JSON {}, expected an object", j.type_name()));
    return j;
}

// JSON text of a value, for messages and options. dump() recurses once per nesting level and a hostile file
// can nest millions deep, so structured values are dumped only when shallow.
bool shallower_than(const Json& j, int levels) {
    if (!j.is_structured()) return true;
    if (levels <= 1) return false;
    for (const Json& x : j)
        if (!shallower_than(x, levels - 1)) return false;
    return true;
}

std::string dump(const Json& j) {
    if (!shallower_than(j, 16)) return j.is_array() ? "[... nested too deep ...]" : "{... nested too deep ...}";
    return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool is_file(const fs::path& p) {
    std::error_code ec;
    return fs::is_regular_file(p, ec);
}

Result<const DiffusersComponent*> find_component(const DiffusersFolder& folder, std::string_view name) {
    if (!is_plain_name(name))
        return Error::invalid_argument(fmt::format("component name '{}' is not a plain folder name", name), folder.path);
    const DiffusersComponent* c = folder.component(name);
    if (c == nullptr) {
        std::string known;
        for (const auto& k : folder.components) known += (known.empty() ? "" : ", ") + k.name;
        return Error::not_found(fmt::format("no component '{}' in model_index.json (it lists: {})", name, known),
                                folder.path);
    }
    if (!c->on_disk)
        return Error::not_found(fmt::format("component '{}' is listed in model_index.json but its folder is missing",
                                            name), c->path);
    return c;
}

}  // namespace

const DiffusersComponent* DiffusersFolder::component(std::string_view name) const {
    for (const auto& c : components)
        if (c.name == name) return &c;
    return nullptr;
}

Result<DiffusersFolder> parse_model_index(std::string_view text, const std::string& folder) {
    const std::string where = (fs::path(folder) / "model_index.json").string();
    EASEL_TRY_ASSIGN(Json j, parse_object(text, where));
    DiffusersFolder f;
    f.path = folder;
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& key = it.key();
        const Json& v = *it;
        if (key == "_class_name" || key == "_diffusers_version") {
            if (!v.is_string())
                return Error::bad_file(where, fmt::format("\"{}\" is {}, expected a string", key, dump(v).substr(0, 60)));
            (key == "_class_name" ? f.pipeline_class : f.diffusers_version) = v.get<std::string>();
            continue;
        }
        // A component is [library, class]: both strings, or both null when the pipeline was saved without it.
        if (key.empty() || key[0] == '_' || !v.is_array()) {
            f.options[key] = dump(v);
            continue;
        }
        if (v.size() != 2 || !((v[0].is_string() && v[1].is_string()) || (v[0].is_null() && v[1].is_null())))
            return Error::bad_file(where, fmt::format("component '{}' is {}, expected [library, class] (two strings) "
                                                      "or [null, null]", key, dump(v).substr(0, 80)));
        if (!is_plain_name(key))
            return Error::bad_file(where, fmt::format("component name '{}' is not a plain folder name", key));
        DiffusersComponent c;
        c.name = key;
        c.enabled = v[0].is_string();
        if (c.enabled) {
            c.library = v[0].get<std::string>();
            c.class_name = v[1].get<std::string>();
        }
        c.path = (fs::path(folder) / key).string();
        f.components.push_back(std::move(c));
    }
    if (f.pipeline_class.empty())
        return Error::bad_file(where, "has no \"_class_name\" string; not a diffusers model_index.json?");
    // nlohmann's object is name-sorted already; keep the guarantee explicit.
    std::sort(f.components.begin(), f.components.end(),
              [](const DiffusersComponent& a, const DiffusersComponent& b) { return a.name < b.name; });
    return f;
}

Result<DiffusersFolder> open_diffusers_folder(const std::string& path) {
    std::error_code ec;
    if (!fs::is_directory(path, ec)) {
        if (fs::exists(path, ec))
            return Error::invalid_argument("is a file; a diffusers model is a folder holding model_index.json", path);
        return Error::io("no such folder", path);
    }
    const std::string index = (fs::path(path) / "model_index.json").string();
    if (!is_file(index))
        return Error::bad_file(path, "has no model_index.json; not a diffusers folder (a single-file checkpoint "
                                     "is opened with read_weights)");
    EASEL_TRY_ASSIGN(std::string text, read_text_file(index));
    EASEL_TRY_ASSIGN(DiffusersFolder f, parse_model_index(text, path));
    for (auto& c : f.components) c.on_disk = fs::is_directory(c.path, ec);
    return f;
}

Result<std::string> component_file(const DiffusersFolder& folder, std::string_view component, std::string_view file) {
    EASEL_TRY_ASSIGN(const DiffusersComponent* c, find_component(folder, component));
    if (!is_plain_name(file))
        return Error::invalid_argument(fmt::format("'{}' is not a plain file name", file), c->path);
    const std::string p = (fs::path(c->path) / std::string(file)).string();
    if (!is_file(p)) return Error::not_found(fmt::format("component '{}' has no {}", component, file), p);
    return p;
}

Result<std::string> component_config(const DiffusersFolder& folder, std::string_view component, std::string_view file) {
    EASEL_TRY_ASSIGN(std::string p, component_file(folder, component, file));
    EASEL_TRY_ASSIGN(std::string text, read_text_file(p));
    EASEL_TRY(parse_object(text, p));
    return text;
}

Result<std::map<std::string, std::string>> parse_weight_index(std::string_view text, const std::string& where) {
    EASEL_TRY_ASSIGN(Json j, parse_object(text, where));
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object())
        return Error::bad_file(where, "has no \"weight_map\" object (tensor name -> shard file)");
    std::map<std::string, std::string> out;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
        if (!it->is_string())
            return Error::bad_file(where, fmt::format("weight_map entry '{}' is {}, expected a shard file name",
                                                      it.key(), dump(*it).substr(0, 60)));
        const std::string shard = it->get<std::string>();
        if (!is_plain_name(shard))
            return Error::bad_file(where, fmt::format("weight_map entry '{}' names shard '{}', which is not a plain "
                                                      "file name in this folder", it.key(), shard));
        out.emplace(it.key(), shard);
    }
    if (out.empty()) return Error::bad_file(where, "weight_map is empty");
    return out;
}

Result<ComponentWeightFiles> find_component_weights(const DiffusersFolder& folder, std::string_view component,
                                                    std::string_view variant) {
    EASEL_TRY_ASSIGN(const DiffusersComponent* c, find_component(folder, component));
    if (!variant.empty() && !is_plain_name(variant))
        return Error::invalid_argument(fmt::format("variant '{}' is not a plain name", variant), "variant");
    const fs::path dir(c->path);
    const std::string v(variant);
    // Diffusers models use diffusion_pytorch_model.*; transformers models use model.* / pytorch_model.*.
    const std::vector<std::pair<std::string, std::string>> bases = {
        {"diffusion_pytorch_model", "diffusion_pytorch_model"}, {"model", "pytorch_model"}};

    // Returns the files for variant `var` ("" = none), or an empty result if nothing matches.
    auto try_variant = [&](const std::string& var) -> Result<ComponentWeightFiles> {
        const std::string dot = var.empty() ? "" : "." + var;
        for (const auto& [st, bin] : bases) {
            ComponentWeightFiles w;
            w.variant = var;
            if (const fs::path p = dir / (st + dot + ".safetensors"); is_file(p)) {
                w.files = {p.string()};
                return w;
            }
            if (const fs::path p = dir / (st + ".safetensors.index" + dot + ".json"); is_file(p)) {
                EASEL_TRY_ASSIGN(std::string text, read_text_file(p.string()));
                EASEL_TRY_ASSIGN(auto map, parse_weight_index(text, p.string()));
                std::set<std::string> seen;
                for (const auto& [name, shard] : map)
                    if (seen.insert(shard).second) w.files.push_back((dir / shard).string());
                w.index_file = p.string();
                return w;
            }
            if (const fs::path p = dir / (bin + dot + ".bin"); is_file(p)) {
                w.files = {p.string()};
                return w;
            }
        }
        return ComponentWeightFiles{};
    };

    if (!v.empty()) {
        EASEL_TRY_ASSIGN(ComponentWeightFiles w, try_variant(v));
        if (!w.files.empty()) return w;
    }
    EASEL_TRY_ASSIGN(ComponentWeightFiles w, try_variant(""));
    if (!w.files.empty()) {
        if (!v.empty()) w.note = fmt::format("no '{}' variant weights for '{}'; using the default weights", v, component);
        return w;
    }
    if (v.empty()) {
        // Only variant files (e.g. a repo that ships fp16 weights alone): prefer fp16, else the first by name.
        std::vector<std::string> found;
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(dir, ec)) {
            const std::string n = e.path().filename().string();
            // <st>.<V>.safetensors, or the index of sharded variant weights <st>.safetensors.index.<V>.json.
            for (const auto& [st, bin] : bases) {
                (void)bin;
                std::string var;
                const std::string pre = st + ".", index_pre = st + ".safetensors.index.";
                if (n.size() > index_pre.size() + 5 && n.rfind(index_pre, 0) == 0 && n.ends_with(".json"))
                    var = n.substr(index_pre.size(), n.size() - index_pre.size() - 5);
                else if (n.size() > pre.size() + 12 && n.rfind(pre, 0) == 0 && n.ends_with(".safetensors"))
                    var = n.substr(pre.size(), n.size() - pre.size() - 12);
                if (is_plain_name(var) && var.find('.') == std::string::npos && var.find('-') == std::string::npos)
                    found.push_back(var);
            }
        }
        std::sort(found.begin(), found.end());
        if (!found.empty()) {
            const std::string pick = std::count(found.begin(), found.end(), "fp16") ? "fp16" : found.front();
            EASEL_TRY_ASSIGN(ComponentWeightFiles fw, try_variant(pick));
            if (!fw.files.empty()) {
                fw.note = fmt::format("no default weights for '{}'; using the '{}' variant", component, pick);
                return fw;
            }
        }
    }
    return Error::not_found(fmt::format("no weights for component '{}'{} (looked for diffusion_pytorch_model / model "
                                        ".safetensors, sharded .safetensors.index.json and .bin)",
                                        component, v.empty() ? "" : fmt::format(" (variant '{}')", v)),
                            c->path);
}

Result<WeightSet> load_component_weights(const DiffusersFolder& folder, std::string_view component,
                                         std::string_view variant) {
    EASEL_TRY_ASSIGN(ComponentWeightFiles files, find_component_weights(folder, component, variant));
    if (!files.note.empty()) log_warn("io", "{}: {}", folder.path, files.note);
    WeightSet out;
    if (files.index_file.empty()) {
        EASEL_TRY_ASSIGN(out, read_weights(files.files.front()));
    } else {
        EASEL_TRY_ASSIGN(std::string text, read_text_file(files.index_file));
        EASEL_TRY_ASSIGN(auto map, parse_weight_index(text, files.index_file));
        out.source = files.index_file;  // names the index in a "tensor in two shards" error
        for (const std::string& shard : files.files) {
            if (!is_file(shard))
                return Error::not_found(fmt::format("shard '{}' named by the index is missing (incomplete download?)",
                                                    fs::path(shard).filename().string()),
                                        files.index_file);
            EASEL_TRY_ASSIGN(WeightSet part, read_safetensors(shard));
            for (const auto& [name, file] : map) {
                if (file == fs::path(shard).filename().string() && !part.contains(name))
                    return Error::bad_file(shard, fmt::format("tensor '{}' is listed in {} for this shard but the shard "
                                                              "does not hold it", name,
                                                              fs::path(files.index_file).filename().string()));
            }
            EASEL_TRY(out.merge(std::move(part)));
        }
    }
    out.metadata["easel.component"] = std::string(component);
    out.metadata["easel.variant"] = files.variant;
    if (!files.note.empty()) out.metadata["easel.weights_note"] = files.note;
    return out;
}

}  // namespace easel
