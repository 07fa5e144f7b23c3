#include "pipeline/infotext.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace easel {

std::string infotext_quote(const std::string& value) {
    if (value.find(',') == std::string::npos && value.find('\n') == std::string::npos &&
        value.find(':') == std::string::npos)
        return value;
    // json.dumps(text, ensure_ascii=False): escape backslash, quote and control characters only.
    std::string out = "\"";
    for (unsigned char c : value) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += char(c);
                }
        }
    }
    return out + "\"";
}

std::string python_float_str(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    // Python's repr: the shortest string that round-trips; exponent form below 1e-4 or from 1e16.
    char buf[64];
    for (int prec = 1; prec <= 17; ++prec) {
        std::snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    std::string s = buf;
    const auto e = s.find('e');
    if (e != std::string::npos) {
        // C prints 1e-05 like Python; make sure the mantissa has no trailing ".0" issues: Python prints "1e-05".
        return s;
    }
    if (s.find('.') == std::string::npos) s += ".0";
    return s;
}

std::string format_infotext(const InfotextParams& p) {
    std::vector<std::pair<std::string, std::string>> kv;
    kv.emplace_back("Steps", std::to_string(p.steps));
    kv.emplace_back("Sampler", p.sampler);
    if (!p.schedule_type.empty()) kv.emplace_back("Schedule type", p.schedule_type);
    kv.emplace_back("CFG scale", python_float_str(p.cfg_scale));
    kv.emplace_back("Seed", std::to_string(p.seed));
    kv.emplace_back("Size", std::to_string(p.width) + "x" + std::to_string(p.height));
    if (!p.model_hash.empty()) kv.emplace_back("Model hash", p.model_hash);
    if (!p.model_name.empty()) kv.emplace_back("Model", p.model_name);
    if (p.denoising_strength) kv.emplace_back("Denoising strength", python_float_str(*p.denoising_strength));
    if (p.clip_skip > 1) kv.emplace_back("Clip skip", std::to_string(p.clip_skip));
    if (!p.rng.empty() && p.rng != "GPU") kv.emplace_back("RNG", p.rng);
    for (const auto& e : p.extra) kv.push_back(e);
    if (!p.version.empty()) kv.emplace_back("Version", p.version);

    std::string params;
    for (const auto& [k, v] : kv) {
        if (!params.empty()) params += ", ";
        params += (k == v) ? k : k + ": " + infotext_quote(v);
    }
    std::string text = p.prompt;
    if (!p.negative_prompt.empty()) text += "\nNegative prompt: " + p.negative_prompt;
    text += "\n" + params;
    // Python's str.strip(): leading and trailing whitespace.
    const char* ws = " \t\n\r\f\v";
    const auto b = text.find_first_not_of(ws);
    if (b == std::string::npos) return "";
    const auto e = text.find_last_not_of(ws);
    return text.substr(b, e - b + 1);
}

namespace {

std::string trim(const std::string& s) {
    const char* ws = " \t\n\r";
    const auto b = s.find_first_not_of(ws);
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// Splits "Key: value, Key2: "quoted, value", ..." as A1111's re_param does.
std::vector<std::pair<std::string, std::string>> split_params(const std::string& line) {
    std::vector<std::pair<std::string, std::string>> out;
    size_t i = 0;
    const size_t n = line.size();
    while (i < n) {
        while (i < n && (line[i] == ' ' || line[i] == ',')) ++i;
        const size_t colon = line.find(':', i);
        if (colon == std::string::npos) break;
        std::string key = trim(line.substr(i, colon - i));
        i = colon + 1;
        while (i < n && line[i] == ' ') ++i;
        std::string value;
        if (i < n && line[i] == '"') {
            ++i;
            while (i < n && line[i] != '"') {
                if (line[i] == '\\' && i + 1 < n) {
                    const char c = line[++i];
                    value += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
                } else {
                    value += line[i];
                }
                ++i;
            }
            ++i;  // closing quote
        } else {
            const size_t comma = line.find(',', i);
            value = trim(line.substr(i, comma == std::string::npos ? std::string::npos : comma - i));
            i = comma == std::string::npos ? n : comma;
        }
        out.emplace_back(key, value);
    }
    return out;
}

}  // namespace

ParsedInfotext parse_infotext(const std::string& text) {
    ParsedInfotext r;
    std::vector<std::string> lines;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t nl = text.find('\n', start);
        lines.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    // The last line holds the parameters if it has at least three "Key: value" pairs (A1111's rule).
    std::string last = lines.empty() ? "" : trim(lines.back());
    auto params = split_params(last);
    if (params.size() >= 3) {
        r.params = std::move(params);
        lines.pop_back();
    }
    bool in_negative = false;
    for (const std::string& l0 : lines) {
        std::string l = trim(l0);
        if (l.rfind("Negative prompt:", 0) == 0) {
            in_negative = true;
            l = trim(l.substr(16));
        }
        std::string& dst = in_negative ? r.negative_prompt : r.prompt;
        dst += (dst.empty() ? "" : "\n") + l;
    }
    return r;
}

}  // namespace easel
