#include "io/keymap_config_doc.h"

#include <charconv>
#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace easel {
namespace {

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

Error type_error(std::string_view where, std::string_view expected, const ConfigNode& n) {
    const char* got = n.is_map() ? "a mapping" : n.is_list() ? "a list" : n.is_null() ? "null" : "text";
    std::string text = n.is_scalar() ? fmt::format(" '{}'", n.scalar().substr(0, 40)) : std::string();
    return Error(ErrorCode::BadFile, fmt::format("expected {}, got {}{}", expected, got, text), std::string(where));
}

// A line of the file with its indentation measured and its comment removed.
struct Line {
    int indent = 0;
    std::string text;
    int lineno = 0;
};

// Index of the ':' that separates a mapping key from its value (followed by a space or the end), skipping
// quoted text; npos if the text is not a `key: value` pair.
size_t find_mapping_colon(std::string_view s) {
    char quote = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (quote) {
            if (c == quote) quote = 0;
            continue;
        }
        if ((c == '"' || c == '\'') && i == 0) { quote = c; continue; }
        if ((c == '[' || c == '{') && i == 0) return std::string_view::npos;  // a flow collection, not a key
        if (c == ':' && (i + 1 == s.size() || s[i + 1] == ' ')) return i;
    }
    return std::string_view::npos;
}

bool is_list_item(std::string_view s) { return !s.empty() && s[0] == '-' && (s.size() == 1 || s[1] == ' '); }

class Parser {
public:
    Parser(std::vector<Line> lines, const std::string& source) : lines_(std::move(lines)), source_(source) {}

    Result<ConfigNode> parse_document() {
        if (lines_.empty()) return ConfigNode();
        EASEL_TRY_ASSIGN(ConfigNode root, parse_block(lines_[0].indent, 0));
        if (pos_ < lines_.size()) return err(lines_[pos_].lineno, "indentation goes back past the first line's");
        return root;
    }

private:
    Error err(int lineno, const std::string& msg) const {
        return Error::bad_file(source_, fmt::format("line {}: {}", lineno, msg));
    }

    Result<ConfigNode> parse_block(int indent, int depth) {
        if (depth > kYamlMaxDepth) return err(lines_[pos_].lineno, fmt::format("nested deeper than {} levels", kYamlMaxDepth));
        if (is_list_item(lines_[pos_].text)) return parse_list(indent, depth);
        return parse_map(indent, depth);
    }

    Result<ConfigNode> parse_map(int indent, int depth) {
        ConfigNode map = ConfigNode::make_map();
        while (pos_ < lines_.size() && lines_[pos_].indent == indent) {
            const Line& line = lines_[pos_];
            if (is_list_item(line.text)) return err(line.lineno, "a list item where a 'key: value' line was expected");
            const size_t colon = find_mapping_colon(line.text);
            if (colon == std::string_view::npos)
                return err(line.lineno, fmt::format("expected 'key: value', got '{}'", line.text.substr(0, 60)));
            std::string_view key = trim(std::string_view(line.text).substr(0, colon));
            std::string key_text;
            if (!key.empty() && (key.front() == '"' || key.front() == '\'')) {
                EASEL_TRY_ASSIGN(ConfigNode k, parse_quoted(key, line.lineno));
                key_text = k.scalar();
            } else {
                key_text = std::string(key);
            }
            const std::string_view value = trim(std::string_view(line.text).substr(colon + 1));
            const int lineno = line.lineno;
            ++pos_;
            ConfigNode child;
            if (!value.empty()) {
                EASEL_TRY_ASSIGN(child, parse_inline(value, lineno, depth));
            } else if (pos_ < lines_.size() && lines_[pos_].indent > indent) {
                EASEL_TRY_ASSIGN(child, parse_block(lines_[pos_].indent, depth + 1));
            } else if (pos_ < lines_.size() && lines_[pos_].indent == indent && is_list_item(lines_[pos_].text)) {
                // PyYAML accepts a block list at the key's own indentation ("ch_mult:\n- 1\n- 2").
                EASEL_TRY_ASSIGN(child, parse_list(indent, depth + 1));
            }
            if (Status s = map.add_entry(key_text, std::move(child)); !s)
                return err(lineno, s.error().message());
        }
        if (pos_ < lines_.size() && lines_[pos_].indent > indent)
            return err(lines_[pos_].lineno, "unexpected indentation");
        return map;
    }

    Result<ConfigNode> parse_list(int indent, int depth) {
        ConfigNode list = ConfigNode::make_list();
        while (pos_ < lines_.size() && lines_[pos_].indent == indent && is_list_item(lines_[pos_].text)) {
            Line& line = lines_[pos_];
            size_t off = 1;
            while (off < line.text.size() && line.text[off] == ' ') ++off;
            const std::string rest = line.text.substr(off);
            if (rest.empty()) {
                ++pos_;
                if (pos_ < lines_.size() && lines_[pos_].indent > indent) {
                    EASEL_TRY_ASSIGN(ConfigNode child, parse_block(lines_[pos_].indent, depth + 1));
                    list.add_item(std::move(child));
                } else {
                    list.add_item(ConfigNode());
                }
            } else if (is_list_item(rest) || find_mapping_colon(rest) != std::string_view::npos) {
                // "- key: value" opens a mapping (or "- - x" a list) whose lines sit at the column after "- ".
                line.indent += int(off);
                line.text = rest;
                EASEL_TRY_ASSIGN(ConfigNode child, parse_block(line.indent, depth + 1));
                list.add_item(std::move(child));
            } else {
                const int lineno = line.lineno;
                ++pos_;
                EASEL_TRY_ASSIGN(ConfigNode child, parse_inline(rest, lineno, depth));
                list.add_item(std::move(child));
            }
        }
        if (pos_ < lines_.size() && lines_[pos_].indent > indent)
            return err(lines_[pos_].lineno, "unexpected indentation");
        return list;
    }

    Result<ConfigNode> parse_quoted(std::string_view v, int lineno) const {
        const char q = v.front();
        if (v.size() < 2 || v.back() != q) return err(lineno, "unterminated quoted string");
        std::string out;
        for (size_t i = 1; i + 1 < v.size(); ++i) {
            char c = v[i];
            if (q == '\'' && c == '\'') {
                if (i + 2 < v.size() && v[i + 1] == '\'') { out += '\''; ++i; continue; }
                return err(lineno, "a lone ' inside a single-quoted string");
            }
            if (q == '"' && c == '"') return err(lineno, "a lone \" inside a double-quoted string");
            if (q == '"' && c == '\\' && i + 2 < v.size()) {
                const char e = v[++i];
                switch (e) {
                    case 'n': c = '\n'; break;
                    case 't': c = '\t'; break;
                    case '\\': c = '\\'; break;
                    case '"': c = '"'; break;
                    case '/': c = '/'; break;
                    default: return err(lineno, fmt::format("unsupported escape '\\{}' in a quoted string", e));
                }
            }
            out += c;
        }
        return ConfigNode::make_scalar(std::move(out), /*quoted=*/true);
    }

    // A value written on the key's line: a scalar, a quoted string or a flow collection.
    Result<ConfigNode> parse_inline(std::string_view v, int lineno, int depth) const {
        const char c = v.front();
        if (c == '&' || c == '*' || c == '!' || c == '|' || c == '>' || c == '%' || c == '@' || c == '`')
            return err(lineno, fmt::format("unsupported YAML feature (anchor, alias, tag or block scalar) at '{}'",
                                           v.substr(0, 40)));
        if (c == '"' || c == '\'') return parse_quoted(v, lineno);
        if (c == '[' || c == '{') {
            size_t i = 0;
            EASEL_TRY_ASSIGN(ConfigNode n, parse_flow(v, i, lineno, depth + 1));
            skip_spaces(v, i);
            if (i != v.size())
                return err(lineno, fmt::format("unexpected text after a closing bracket: '{}'", v.substr(i, 40)));
            return n;
        }
        return plain_scalar(v);
    }

    static ConfigNode plain_scalar(std::string_view v) {
        if (v == "~" || v == "null" || v == "Null" || v == "NULL") return ConfigNode();
        return ConfigNode::make_scalar(std::string(v), /*quoted=*/false);
    }

    static void skip_spaces(std::string_view v, size_t& i) {
        while (i < v.size() && (v[i] == ' ' || v[i] == '\t')) ++i;
    }

    Result<ConfigNode> parse_flow_scalar(std::string_view v, size_t& i, int lineno, bool is_key) const {
        skip_spaces(v, i);
        if (i < v.size() && (v[i] == '"' || v[i] == '\'')) {
            const char q = v[i];
            size_t j = i + 1;
            while (j < v.size() && v[j] != q) j += (q == '"' && v[j] == '\\') ? 2 : 1;
            if (j >= v.size()) return err(lineno, "unterminated quoted string");
            EASEL_TRY_ASSIGN(ConfigNode n, parse_quoted(v.substr(i, j + 1 - i), lineno));
            i = j + 1;
            return n;
        }
        const size_t start = i;
        while (i < v.size() && v[i] != ',' && v[i] != ']' && v[i] != '}' && !(is_key && v[i] == ':')) {
            if (v[i] == '[' || v[i] == '{') return err(lineno, "a bracket inside a plain scalar");
            ++i;
        }
        return plain_scalar(trim(v.substr(start, i - start)));
    }

    Result<ConfigNode> parse_flow(std::string_view v, size_t& i, int lineno, int depth) const {
        if (depth > kYamlMaxDepth) return err(lineno, fmt::format("nested deeper than {} levels", kYamlMaxDepth));
        skip_spaces(v, i);
        if (i >= v.size()) return err(lineno, "unterminated inline list or mapping (multi-line ones are not supported)");
        if (v[i] != '[' && v[i] != '{') return parse_flow_scalar(v, i, lineno, false);
        const char close = v[i] == '[' ? ']' : '}';
        ConfigNode n = close == ']' ? ConfigNode::make_list() : ConfigNode::make_map();
        ++i;
        skip_spaces(v, i);
        if (i < v.size() && v[i] == close) { ++i; return n; }
        for (;;) {
            if (close == ']') {
                EASEL_TRY_ASSIGN(ConfigNode item, parse_flow(v, i, lineno, depth + 1));
                n.add_item(std::move(item));
            } else {
                EASEL_TRY_ASSIGN(ConfigNode key, parse_flow_scalar(v, i, lineno, true));
                skip_spaces(v, i);
                if (i >= v.size() || v[i] != ':') return err(lineno, "expected ':' in an inline mapping");
                ++i;
                EASEL_TRY_ASSIGN(ConfigNode value, parse_flow(v, i, lineno, depth + 1));
                if (Status s = n.add_entry(key.scalar(), std::move(value)); !s) return err(lineno, s.error().message());
            }
            skip_spaces(v, i);
            if (i >= v.size()) return err(lineno, "unterminated inline list or mapping (multi-line ones are not supported)");
            if (v[i] == close) { ++i; return n; }
            if (v[i] != ',') return err(lineno, fmt::format("expected ',' or '{}' in an inline collection", close));
            ++i;
        }
    }

    std::vector<Line> lines_;
    const std::string& source_;
    size_t pos_ = 0;
};

}  // namespace

ConfigNode ConfigNode::make_scalar(std::string s, bool quoted) {
    ConfigNode n;
    n.kind_ = Kind::Scalar;
    n.scalar_ = std::move(s);
    n.quoted_ = quoted;
    return n;
}

const ConfigNode* ConfigNode::get(std::string_view key) const {
    for (const auto& [k, v] : entries_)
        if (k == key) return &v;
    return nullptr;
}

const ConfigNode* ConfigNode::path(std::string_view dotted) const {
    const ConfigNode* n = this;
    while (n && !dotted.empty()) {
        const size_t dot = dotted.find('.');
        n = n->get(dotted.substr(0, dot));
        dotted = dot == std::string_view::npos ? std::string_view() : dotted.substr(dot + 1);
    }
    return n;
}

Status ConfigNode::add_entry(std::string key, ConfigNode value) {
    if (get(key)) return Error(ErrorCode::BadFile, fmt::format("key '{}' appears twice in one mapping", key));
    entries_.emplace_back(std::move(key), std::move(value));
    return ok();
}

Result<int64_t> ConfigNode::as_int(std::string_view where) const {
    if (!is_scalar() || quoted_) return type_error(where, "an integer", *this);
    std::string_view s = scalar_;
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return type_error(where, "an integer", *this);
    return v;
}

Result<double> ConfigNode::as_double(std::string_view where) const {
    if (!is_scalar() || quoted_) return type_error(where, "a number", *this);
    std::string_view s = scalar_;
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    double v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || s.empty() || !std::isfinite(v))
        return type_error(where, "a finite number", *this);
    return v;
}

Result<bool> ConfigNode::as_bool(std::string_view where) const {
    if (is_scalar() && !quoted_) {
        const std::string& s = scalar_;
        if (s == "true" || s == "True" || s == "TRUE" || s == "yes" || s == "Yes" || s == "on" || s == "On") return true;
        if (s == "false" || s == "False" || s == "FALSE" || s == "no" || s == "No" || s == "off" || s == "Off")
            return false;
    }
    return type_error(where, "true or false", *this);
}

Result<std::vector<int64_t>> ConfigNode::as_int_list(std::string_view where) const {
    std::vector<int64_t> out;
    if (is_scalar()) {
        EASEL_TRY_ASSIGN(int64_t v, as_int(where));
        out.push_back(v);
        return out;
    }
    if (!is_list()) return type_error(where, "a list of integers", *this);
    for (size_t i = 0; i < items_.size(); ++i) {
        EASEL_TRY_ASSIGN(int64_t v, items_[i].as_int(fmt::format("{}[{}]", where, i)));
        out.push_back(v);
    }
    return out;
}

Result<std::optional<int64_t>> ConfigNode::get_int(std::string_view key) const {
    const ConfigNode* n = get(key);
    if (!n || n->is_null()) return std::optional<int64_t>();
    EASEL_TRY_ASSIGN(int64_t v, n->as_int(key));
    return std::optional<int64_t>(v);
}

Result<std::optional<double>> ConfigNode::get_double(std::string_view key) const {
    const ConfigNode* n = get(key);
    if (!n || n->is_null()) return std::optional<double>();
    EASEL_TRY_ASSIGN(double v, n->as_double(key));
    return std::optional<double>(v);
}

Result<std::optional<bool>> ConfigNode::get_bool(std::string_view key) const {
    const ConfigNode* n = get(key);
    if (!n || n->is_null()) return std::optional<bool>();
    EASEL_TRY_ASSIGN(bool v, n->as_bool(key));
    return std::optional<bool>(v);
}

Result<std::optional<std::string>> ConfigNode::get_string(std::string_view key) const {
    const ConfigNode* n = get(key);
    if (!n || n->is_null()) return std::optional<std::string>();
    if (!n->is_scalar()) return type_error(key, "text", *n);
    return std::optional<std::string>(n->scalar());
}

Result<std::string> ConfigNode::get_string_or(std::string_view key, std::string fallback) const {
    const ConfigNode* n = get(key);
    if (!n || n->is_null()) return fallback;
    if (!n->is_scalar()) return type_error(key, "text", *n);
    return n->scalar();
}

Result<std::optional<std::vector<int64_t>>> ConfigNode::get_int_list(std::string_view key) const {
    const ConfigNode* n = get(key);
    if (!n || n->is_null()) return std::optional<std::vector<int64_t>>();
    EASEL_TRY_ASSIGN(std::vector<int64_t> v, n->as_int_list(key));
    return std::optional<std::vector<int64_t>>(std::move(v));
}

Result<ConfigNode> parse_yaml_subset(std::string_view text, const std::string& source) {
    if (text.size() > kYamlMaxBytes)
        return Error::bad_file(source, fmt::format("{} bytes; a model config is expected to be under {} bytes",
                                                   text.size(), kYamlMaxBytes));
    std::vector<Line> lines;
    int lineno = 0;
    size_t start = 0;
    while (start <= text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view raw = text.substr(start, end - start);
        start = end + 1;
        ++lineno;
        if (raw.find('\0') != std::string_view::npos)
            return Error::bad_file(source, fmt::format("line {}: a NUL byte; this is not a text file", lineno));
        int indent = 0;
        while (size_t(indent) < raw.size() && raw[size_t(indent)] == ' ') ++indent;
        std::string_view body = raw.substr(size_t(indent));
        // Cut a comment: '#' at the start or after a space, outside quotes.
        char quote = 0;
        for (size_t i = 0; i < body.size(); ++i) {
            const char c = body[i];
            if (quote) { if (c == quote) quote = 0; continue; }
            if (c == '"' || c == '\'') {
                if (i == 0 || body[i - 1] == ' ' || body[i - 1] == '[' || body[i - 1] == ',' || body[i - 1] == '{')
                    quote = c;
                continue;
            }
            if (c == '#' && (i == 0 || body[i - 1] == ' ' || body[i - 1] == '\t')) { body = body.substr(0, i); break; }
        }
        body = trim(body);
        if (body.empty()) continue;
        if (raw[size_t(indent)] == '\t')
            return Error::bad_file(source, fmt::format("line {}: a tab in the indentation (YAML allows spaces only)", lineno));
        if (lines.empty() && body == "---") continue;  // an optional document start marker
        if (body == "---" || body == "...")
            return Error::bad_file(source, fmt::format("line {}: several YAML documents in one file are not supported", lineno));
        lines.push_back(Line{indent, std::string(body), lineno});
        if (end == text.size()) break;
    }
    Parser p(std::move(lines), source);
    return p.parse_document();
}

namespace {

Result<ConfigNode> from_json(const nlohmann::json& j, int depth) {
    if (depth > kYamlMaxDepth) return Error(ErrorCode::BadFile, fmt::format("nested deeper than {} levels", kYamlMaxDepth));
    switch (j.type()) {
        case nlohmann::json::value_t::null: return ConfigNode();
        case nlohmann::json::value_t::boolean: return ConfigNode::make_scalar(j.get<bool>() ? "true" : "false", false);
        case nlohmann::json::value_t::number_integer: return ConfigNode::make_scalar(std::to_string(j.get<int64_t>()), false);
        case nlohmann::json::value_t::number_unsigned:
            return ConfigNode::make_scalar(std::to_string(j.get<uint64_t>()), false);
        case nlohmann::json::value_t::number_float: {
            // Shortest text that reads back to the same double.
            return ConfigNode::make_scalar(fmt::format("{}", j.get<double>()), false);
        }
        case nlohmann::json::value_t::string: {
            std::string v = j.get<std::string>();
            if (!v.empty() && v[0] == '\x01') return ConfigNode::make_scalar(v.substr(1), false);  // see parse_json_config
            return ConfigNode::make_scalar(std::move(v), true);
        }
        case nlohmann::json::value_t::array: {
            ConfigNode n = ConfigNode::make_list();
            for (const auto& e : j) {
                EASEL_TRY_ASSIGN(ConfigNode c, from_json(e, depth + 1));
                n.add_item(std::move(c));
            }
            return n;
        }
        case nlohmann::json::value_t::object: {
            ConfigNode n = ConfigNode::make_map();
            for (auto it = j.begin(); it != j.end(); ++it) {
                EASEL_TRY_ASSIGN(ConfigNode c, from_json(it.value(), depth + 1));
                EASEL_TRY(n.add_entry(it.key(), std::move(c)));
            }
            return n;
        }
        default: return Error(ErrorCode::BadFile, "a JSON value of an unsupported type (binary)");
    }
}

}  // namespace

Result<ConfigNode> parse_json_config(std::string_view text, const std::string& source) {
    if (text.size() > kYamlMaxBytes)
        return Error::bad_file(source, fmt::format("{} bytes; a model config is expected to be under {} bytes",
                                                   text.size(), kYamlMaxBytes));
    // Depth is bounded before nlohmann's recursive parser sees the text: it recurses once per bracket. The same
    // pass turns Python's json tokens for non-finite floats (NaN, Infinity, -Infinity: diffusers writes
    // DPMSolverMultistepScheduler's lambda_min_clipped as -Infinity) into marked strings that from_json turns
    // into the unquoted scalars nan, inf and -inf (which as_double still refuses: they are not finite).
    int depth = 0;
    bool in_string = false;
    std::string rewritten;
    size_t copied = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > kYamlMaxDepth)
                return Error::bad_file(source, fmt::format("JSON nested deeper than {} levels", kYamlMaxDepth));
        } else if (c == ']' || c == '}') {
            --depth;
        } else if (c == 'N' || c == 'I' || c == '-') {
            static constexpr std::pair<std::string_view, std::string_view> kNonFinite[] = {
                {"NaN", "nan"}, {"Infinity", "inf"}, {"-Infinity", "-inf"}};
            for (const auto& [token, scalar] : kNonFinite)
                if (text.substr(i, token.size()) == token) {
                    rewritten.append(text.substr(copied, i - copied));
                    rewritten += fmt::format("\"\\u0001{}\"", scalar);
                    i += token.size() - 1;
                    copied = i + 1;
                    break;
                }
        }
    }
    if (copied > 0) {
        rewritten.append(text.substr(copied));
        text = rewritten;
    }
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return Error::bad_file(source, "not valid JSON");
    auto r = from_json(j, 0);
    if (!r) return r.error().within(source);
    return r;
}

}  // namespace easel
