#include "io/xmp.h"

#include <cctype>
#include <cstdlib>

#include <fmt/format.h>

namespace easel {

namespace {

struct Namespace {
    std::string_view prefix, uri;
};
// Prefixes easel writes, with their namespace URIs (XMP specification part 1; IPTC Photo Metadata Extension).
constexpr Namespace kNamespaces[] = {
    {"Iptc4xmpExt", "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"},
    {"xmp", "http://ns.adobe.com/xap/1.0/"},
    {"dc", "http://purl.org/dc/elements/1.1/"},
    {"xmpRights", "http://ns.adobe.com/xap/1.0/rights/"},
    {"easel", kEaselXmpNamespace},
};

std::string escape(std::string_view s) {
    std::string o;
    for (char c : s) {
        switch (c) {
            case '&': o += "&amp;"; break;
            case '<': o += "&lt;"; break;
            case '>': o += "&gt;"; break;
            case '"': o += "&quot;"; break;
            case '\n': o += "&#xA;"; break;
            case '\r': o += "&#xD;"; break;
            case '\t': o += "&#x9;"; break;
            default:
                if (static_cast<unsigned char>(c) >= 0x20) o += c;  // other control characters cannot appear in XML 1.0
        }
    }
    return o;
}

std::string unescape(std::string_view s) {
    std::string o;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '&') {
            o += s[i];
            continue;
        }
        const size_t semi = s.find(';', i);
        if (semi == std::string_view::npos) {
            o += s.substr(i);
            break;
        }
        const std::string_view ent = s.substr(i + 1, semi - i - 1);
        if (ent == "amp") o += '&';
        else if (ent == "lt") o += '<';
        else if (ent == "gt") o += '>';
        else if (ent == "quot") o += '"';
        else if (ent == "apos") o += '\'';
        else if (ent.size() > 1 && ent[0] == '#') {
            const bool hex = ent[1] == 'x' || ent[1] == 'X';
            const unsigned long cp = std::strtoul(std::string(ent.substr(hex ? 2 : 1)).c_str(), nullptr, hex ? 16 : 10);
            if (cp < 0x80) {
                o += char(cp);
            } else if (cp < 0x800) {
                o += char(0xC0 | (cp >> 6));
                o += char(0x80 | (cp & 0x3F));
            } else if (cp < 0x10000) {
                o += char(0xE0 | (cp >> 12));
                o += char(0x80 | ((cp >> 6) & 0x3F));
                o += char(0x80 | (cp & 0x3F));
            } else if (cp < 0x110000) {
                o += char(0xF0 | (cp >> 18));
                o += char(0x80 | ((cp >> 12) & 0x3F));
                o += char(0x80 | ((cp >> 6) & 0x3F));
                o += char(0x80 | (cp & 0x3F));
            }
        } else {
            o += s.substr(i, semi - i + 1);
        }
        i = semi;
    }
    return o;
}

bool is_lang_alt(std::string_view name) { return name == "xmpRights:UsageTerms" || name == "dc:rights"; }

bool name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == ':' || c == '_' || c == '-' || c == '.';
}

}  // namespace

std::string build_xmp(const XmpFields& fields) {
    std::string o = "<?xpacket begin=\"\xEF\xBB\xBF\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n"
                    "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\">\n"
                    " <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\">\n"
                    "  <rdf:Description rdf:about=\"\"";
    for (const Namespace& ns : kNamespaces) o += fmt::format("\n    xmlns:{}=\"{}\"", ns.prefix, ns.uri);
    for (const auto& [name, value] : fields)
        if (!is_lang_alt(name)) o += fmt::format("\n    {}=\"{}\"", name, escape(value));
    o += ">\n";
    for (const auto& [name, value] : fields)
        if (is_lang_alt(name))
            o += fmt::format("   <{0}>\n    <rdf:Alt>\n     <rdf:li xml:lang=\"x-default\">{1}</rdf:li>\n    </rdf:Alt>\n   </{0}>\n",
                             name, escape(value));
    o += "  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<?xpacket end=\"w\"?>";
    return o;
}

XmpFields parse_xmp(std::string_view p) {
    XmpFields out;
    const size_t desc = p.find("<rdf:Description");
    if (desc == std::string_view::npos) return out;
    // Attributes of the start tag: name="value" pairs (namespace declarations and rdf:about left out).
    for (size_t i = desc + 16;;) {
        while (i < p.size() && std::isspace(static_cast<unsigned char>(p[i]))) ++i;
        if (i >= p.size() || p[i] == '>' || p[i] == '/') break;
        size_t n = i;
        while (n < p.size() && name_char(p[n])) ++n;
        if (n == i || n + 1 >= p.size() || p[n] != '=' || (p[n + 1] != '"' && p[n + 1] != '\'')) return {};  // not XML we wrote
        const size_t close = p.find(p[n + 1], n + 2);
        if (close == std::string_view::npos) return {};
        const std::string_view name = p.substr(i, n - i);
        if (name.rfind("xmlns:", 0) != 0 && name != "rdf:about") out.emplace_back(std::string(name), unescape(p.substr(n + 2, close - n - 2)));
        i = close + 1;
    }
    // Language alternatives: <name><rdf:Alt><rdf:li xml:lang="x-default">value</rdf:li>.
    for (size_t at = p.find("<rdf:li xml:lang=\"x-default\">"); at != std::string_view::npos;
         at = p.find("<rdf:li xml:lang=\"x-default\">", at + 1)) {
        const size_t alt = p.rfind("<rdf:Alt", at);
        const size_t open = alt == std::string_view::npos ? alt : p.rfind('<', alt - 1);
        const size_t vstart = at + 29, vend = p.find("</rdf:li>", vstart);
        if (open == std::string_view::npos || vend == std::string_view::npos) continue;
        size_t n = open + 1;
        while (n < p.size() && name_char(p[n])) ++n;
        out.emplace_back(std::string(p.substr(open + 1, n - open - 1)), unescape(p.substr(vstart, vend - vstart)));
    }
    return out;
}

std::string xmp_value(const XmpFields& fields, std::string_view name) {
    for (const auto& [k, v] : fields)
        if (k == name) return v;
    return {};
}

}  // namespace easel
