// ConfigNode: a parsed model config document, one tree type for both formats models travel with, so that
// each *Config reads its fields through one set of checked accessors.
//  - JSON (diffusers config.json, scheduler_config.json): parse_json_config. numbers/bools become unquoted
//    scalars, strings quoted scalars, null a null node.
//  - The YAML subset that LDM model configs use (v1-inference.yaml, v2-inference-v.yaml, the
// `.yaml` AUTOMATIC1111 reads beside a single-file checkpoint): block mappings and lists by indentation,
// plain/quoted scalars, inline lists `[1, 2, 4]` and inline maps `{}`/`{a: 1}`, `#` comments. Anchors,
// aliases, tags, multi-line scalars and documents are refused with an error, never guessed at. Any input,
// however broken, yields a value or an Error (it is fuzzed: tests/fuzz/ldm_yaml_fuzz.cpp).
//
//   EASEL_TRY_ASSIGN(ConfigNode root, parse_yaml_subset(text, "v2-inference-v.yaml"));   // or parse_json_config
//   const ConfigNode* unet = root.path("model.params.unet_config.params");
//   if (unet) { EASEL_TRY_ASSIGN(auto ch, unet->get_int("model_channels")); }
//   if (const ConfigNode* p = root.path("model.params.parameterization")) p->scalar();   // "v"
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace easel {

class ConfigNode {
public:
    enum class Kind { Null, Scalar, Map, List };

    ConfigNode() = default;
    static ConfigNode make_scalar(std::string s, bool quoted);
    static ConfigNode make_map() { ConfigNode n; n.kind_ = Kind::Map; return n; }
    static ConfigNode make_list() { ConfigNode n; n.kind_ = Kind::List; return n; }

    Kind kind() const { return kind_; }
    bool is_null() const { return kind_ == Kind::Null; }
    bool is_map() const { return kind_ == Kind::Map; }
    bool is_list() const { return kind_ == Kind::List; }
    bool is_scalar() const { return kind_ == Kind::Scalar; }

    // Scalar text, unquoted. Empty for non-scalars.
    const std::string& scalar() const { return scalar_; }
    const std::vector<std::pair<std::string, ConfigNode>>& entries() const { return entries_; }
    const std::vector<ConfigNode>& items() const { return items_; }

    // Map lookup; null when this is not a map or the key is absent.
    const ConfigNode* get(std::string_view key) const;
    // Dotted path through nested maps: "model.params.unet_config.params".
    const ConfigNode* path(std::string_view dotted) const;

    // Scalar conversions. `where` names the value in messages (e.g. "model.params.scale_factor").
    Result<int64_t> as_int(std::string_view where) const;
    Result<double> as_double(std::string_view where) const;
    Result<bool> as_bool(std::string_view where) const;  // true/false/True/False/yes/no/on/off
    // A scalar int, or an inline/block list of ints.
    Result<std::vector<int64_t>> as_int_list(std::string_view where) const;

    // Map member conversions: absent (or YAML null) gives std::nullopt, a wrong type gives an Error.
    Result<std::optional<int64_t>> get_int(std::string_view key) const;
    Result<std::optional<double>> get_double(std::string_view key) const;
    Result<std::optional<bool>> get_bool(std::string_view key) const;
    Result<std::optional<std::string>> get_string(std::string_view key) const;
    // Text of a scalar member, or `fallback` when absent or null (std::optional<std::string> trips g++ 12's
    // -Wmaybe-uninitialized in comparisons, so string members are mostly read this way).
    Result<std::string> get_string_or(std::string_view key, std::string fallback) const;
    Result<std::optional<std::vector<int64_t>>> get_int_list(std::string_view key) const;

    // Builders, used by the parser.
    Status add_entry(std::string key, ConfigNode value);
    void add_item(ConfigNode value) { items_.push_back(std::move(value)); }

private:
    Kind kind_ = Kind::Null;
    bool quoted_ = false;  // a quoted scalar is always a string ("null" stays the text null)
    std::string scalar_;
    std::vector<std::pair<std::string, ConfigNode>> entries_;
    std::vector<ConfigNode> items_;
};

// Limits that keep junk input cheap: a config is a few KiB.
constexpr size_t kYamlMaxBytes = 1 << 20;
constexpr int kYamlMaxDepth = 64;

// `source` names the text in errors (a path). Errors carry the 1-based line number.
Result<ConfigNode> parse_yaml_subset(std::string_view text, const std::string& source);
// Any JSON document (nlohmann_json underneath, kept out of every other file). Same size limit.
Result<ConfigNode> parse_json_config(std::string_view text, const std::string& source);

}  // namespace easel
