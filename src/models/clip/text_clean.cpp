// Port of ftfy 6.1.1's fix_text (defaults) and CLIP's text cleanup; see text_clean.h for the scope.
// Upstream: rspeer/python-ftfy v6.1.1, ftfy/__init__.py (fix_text, fix_and_explain, fix_encoding_and_explain),
// ftfy/fixes.py, ftfy/badness.py, ftfy/chardata.py, ftfy/bad_codecs/{sloppy,utf8_variants}.py. The regular
// expressions there are restated as small hand-written matchers with the same alternation order, so that the
// leftmost-first choices Python's `re` makes are the ones made here.
#include "models/clip/text_clean.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include "models/clip/text_clean_tables.h"

namespace easel::clip {

namespace ftfy_data {

const HtmlEntity* find_html_entity(std::string_view name) {
    const HtmlEntity* begin = kHtmlEntities;
    const HtmlEntity* end = kHtmlEntities + kNumHtmlEntities;
    const HtmlEntity* it = std::lower_bound(begin, end, name, [](const HtmlEntity& e, std::string_view n) {
        return std::string_view(e.name) < n;
    });
    return (it != end && std::string_view(it->name) == name) ? it : nullptr;
}

const WidthEntry* find_width(char32_t cp) {
    const WidthEntry* end = kWidthMap + kNumWidthMap;
    const WidthEntry* it =
        std::lower_bound(kWidthMap, end, cp, [](const WidthEntry& e, char32_t c) { return e.from < c; });
    return (it != end && it->from == cp) ? it : nullptr;
}

uint32_t char_categories(char32_t cp) {
    const CatEntry* end = kCategories + kNumCategories;
    const CatEntry* it =
        std::lower_bound(kCategories, end, cp, [](const CatEntry& e, char32_t c) { return e.cp < c; });
    return (it != end && it->cp == cp) ? it->bits : 0;
}

}  // namespace ftfy_data

namespace {

namespace fd = ftfy_data;
using Bytes = std::string;

constexpr char32_t kNone = 0xFFFFFFFFu;  // "past the end" in the matchers below; belongs to no class

// ---------------------------------------------------------------------------------------------------------
// UTF-8

// Length of the strict UTF-8 sequence at s[i], writing its code point to *out; 0 if it is not valid there.
size_t utf8_sequence(const unsigned char* s, size_t n, size_t i, char32_t* out) {
    const unsigned c = s[i];
    if (c < 0x80) {
        *out = c;
        return 1;
    }
    auto cont = [&](size_t k) { return i + k < n && (s[i + k] & 0xC0) == 0x80; };
    if (c >= 0xC2 && c < 0xE0) {
        if (!cont(1)) return 0;
        *out = ((c & 0x1F) << 6) | (s[i + 1] & 0x3F);
        return 2;
    }
    if (c >= 0xE0 && c < 0xF0) {
        if (!cont(1) || !cont(2)) return 0;
        const unsigned c1 = s[i + 1];
        if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) return 0;  // overlong; surrogate
        *out = ((c & 0x0F) << 12) | ((c1 & 0x3F) << 6) | (s[i + 2] & 0x3F);
        return 3;
    }
    if (c >= 0xF0 && c < 0xF5) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        const unsigned c1 = s[i + 1];
        if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90)) return 0;  // overlong; above U+10FFFF
        *out = ((c & 0x07) << 18) | ((c1 & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
        return 4;
    }
    return 0;
}

std::optional<std::u32string> decode_utf8_strict(std::string_view b) {
    std::u32string out;
    out.reserve(b.size());
    const auto* s = reinterpret_cast<const unsigned char*>(b.data());
    for (size_t i = 0; i < b.size();) {
        char32_t cp = 0;
        const size_t len = utf8_sequence(s, b.size(), i, &cp);
        if (len == 0) return std::nullopt;
        out.push_back(cp);
        i += len;
    }
    return out;
}

// ftfy's "utf-8-variants" codec: UTF-8 plus CESU-8 surrogate pairs and Java's C0 80 for U+0000.
std::optional<std::u32string> decode_utf8_variants(std::string_view b) {
    std::u32string out;
    const auto* s = reinterpret_cast<const unsigned char*>(b.data());
    const size_t n = b.size();
    auto in = [&](size_t k, unsigned lo, unsigned hi) { return k < n && s[k] >= lo && s[k] <= hi; };
    for (size_t i = 0; i < n;) {
        if (s[i] == 0xC0 && i + 1 < n && s[i + 1] == 0x80) {
            out.push_back(0);
            i += 2;
            continue;
        }
        if (s[i] == 0xED && in(i + 1, 0xA0, 0xAF) && in(i + 2, 0x80, 0xBF) && in(i + 3, 0xED, 0xED) &&
            in(i + 4, 0xB0, 0xBF) && in(i + 5, 0x80, 0xBF)) {
            const char32_t hi = 0xD000 | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F);
            const char32_t lo = 0xD000 | ((s[i + 4] & 0x3F) << 6) | (s[i + 5] & 0x3F);
            out.push_back(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
            i += 6;
            continue;
        }
        char32_t cp = 0;
        const size_t len = utf8_sequence(s, n, i, &cp);
        if (len == 0) return std::nullopt;
        out.push_back(cp);
        i += len;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// Byte-level regular expressions of ftfy (ALTERED_UTF8_RE, LOSSY_UTF8_RE) as lists of alternatives, each a
// fixed-length sequence of byte sets; the first alternative that matches at a position wins, as in `re`.

using ByteSet = std::bitset<256>;
using BytePattern = std::vector<ByteSet>;

ByteSet bytes_of(std::initializer_list<std::pair<int, int>> ranges) {
    ByteSet s;
    for (auto [lo, hi] : ranges)
        for (int b = lo; b <= hi; ++b) s.set(size_t(b));
    return s;
}
ByteSet byte1(int b) { return bytes_of({{b, b}}); }

size_t match_bytes_at(const std::vector<BytePattern>& alts, const Bytes& s, size_t i) {
    for (const BytePattern& p : alts) {
        if (i + p.size() > s.size()) continue;
        bool ok = true;
        for (size_t k = 0; k < p.size() && ok; ++k) ok = p[k].test(static_cast<unsigned char>(s[i + k]));
        if (ok) return p.size();
    }
    return 0;
}

const std::vector<BytePattern>& altered_utf8_patterns() {
    static const std::vector<BytePattern> p = [] {
        const ByteSet sp = byte1(0x20);
        const ByteSet cont_no_85_a0 = bytes_of({{0x80, 0x84}, {0x86, 0x9F}, {0xA1, 0xBF}});
        const ByteSet cont = bytes_of({{0x80, 0xBF}});
        const ByteSet f0 = byte1(0xF0);
        return std::vector<BytePattern>{
            {bytes_of({{0xC2, 0xC3}, {0xC5, 0xC5}, {0xCE, 0xCE}, {0xD0, 0xD0}, {0xD9, 0xD9}}), sp},
            {bytes_of({{0xE2, 0xE3}}), sp, cont_no_85_a0},
            {bytes_of({{0xE0, 0xE3}}), cont_no_85_a0, sp},
            {f0, sp, cont, cont},
            {f0, cont, sp, cont},
            {f0, cont, cont, sp},
        };
    }();
    return p;
}

const std::vector<BytePattern>& lossy_utf8_patterns() {
    static const std::vector<BytePattern> p = [] {
        const ByteSet sub = byte1(0x1A);
        const ByteSet sub_q = bytes_of({{0x1A, 0x1A}, {'?', '?'}});
        const ByteSet sub_cont = bytes_of({{0x1A, 0x1A}, {0x80, 0xBF}});
        const ByteSet sub_q_cont = bytes_of({{0x1A, 0x1A}, {'?', '?'}, {0x80, 0xBF}});
        const ByteSet ed = byte1(0xED);
        const ByteSet e = bytes_of({{0xE0, 0xEF}});
        const ByteSet f = bytes_of({{0xF0, 0xF4}});
        return std::vector<BytePattern>{
            {bytes_of({{0xC2, 0xDF}}), sub},
            {bytes_of({{0xC2, 0xC3}}), byte1('?')},
            {ed, bytes_of({{0xA0, 0xAF}}), sub_q, ed, bytes_of({{0xB0, 0xBF}}), sub_q_cont},
            {ed, bytes_of({{0xA0, 0xAF}}), sub_q_cont, ed, bytes_of({{0xB0, 0xBF}}), sub_q},
            {e, sub_q, sub_cont},
            {e, sub_cont, sub_q},
            {f, sub_q, sub_cont, sub_cont},
            {f, sub_cont, sub_q, sub_cont},
            {f, sub_cont, sub_cont, sub_q},
            {sub},
        };
    }();
    return p;
}

bool search_bytes(const std::vector<BytePattern>& alts, const Bytes& s) {
    for (size_t i = 0; i < s.size(); ++i)
        if (match_bytes_at(alts, s, i)) return true;
    return false;
}

// fixes.restore_byte_a0: first A_GRAVE_WORD_RE (b"\xc3 (?! |quele|quela|quilo|s )" -> b"\xc3\xa0 "), then
// every ALTERED_UTF8_RE match has its spaces turned back into 0xA0.
Bytes restore_byte_a0(const Bytes& in) {
    Bytes s;
    s.reserve(in.size() + 8);
    for (size_t i = 0; i < in.size();) {
        if (static_cast<unsigned char>(in[i]) == 0xC3 && i + 1 < in.size() && in[i + 1] == ' ') {
            std::string_view rest(in.data() + i + 2, in.size() - i - 2);
            const bool excluded = rest.starts_with(" ") || rest.starts_with("quele") || rest.starts_with("quela") ||
                                  rest.starts_with("quilo") || rest.starts_with("s ");
            if (!excluded) {
                s += "\xC3\xA0 ";
                i += 2;
                continue;
            }
        }
        s += in[i++];
    }
    Bytes out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const size_t m = match_bytes_at(altered_utf8_patterns(), s, i);
        if (m == 0) {
            out += s[i++];
            continue;
        }
        for (size_t k = 0; k < m; ++k) out += (s[i + k] == ' ') ? '\xA0' : s[i + k];
        i += m;
    }
    return out;
}

// fixes.replace_lossy_sequences: each LOSSY_UTF8_RE match becomes the UTF-8 of U+FFFD.
Bytes replace_lossy_sequences(const Bytes& s) {
    Bytes out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const size_t m = match_bytes_at(lossy_utf8_patterns(), s, i);
        if (m == 0) {
            out += s[i++];
            continue;
        }
        out += "\xEF\xBF\xBD";
        i += m;
    }
    return out;
}

// ---------------------------------------------------------------------------------------------------------
// Single-byte encodings (chardata.CHARMAP_ENCODINGS and the sloppy codecs).

const std::unordered_map<char32_t, uint8_t>& charmap_encoder(size_t k) {
    static const std::vector<std::unordered_map<char32_t, uint8_t>> maps = [] {
        std::vector<std::unordered_map<char32_t, uint8_t>> v(fd::kNumCharmaps);
        for (size_t m = 0; m < fd::kNumCharmaps; ++m)
            for (int b = 0; b < 128; ++b) v[m].emplace(fd::kCharmaps[m].high[b], uint8_t(0x80 + b));
        return v;
    }();
    return maps[k];
}

// chardata.possible_encoding: could `text` have come from decoding bytes in this encoding?
bool possible_encoding(std::u32string_view text, size_t k) {
    const fd::Charmap& m = fd::kCharmaps[k];
    const auto& enc = charmap_encoder(k);
    for (char32_t c : text) {
        if (c < 0x80 && c != 0x1A) continue;
        if (c == m.sub) continue;
        if (!enc.count(c)) return false;
    }
    return true;
}

Bytes encode_charmap(std::u32string_view text, size_t k) {
    const fd::Charmap& m = fd::kCharmaps[k];
    const auto& enc = charmap_encoder(k);
    Bytes out;
    out.reserve(text.size());
    for (char32_t c : text) {
        if (c == m.sub)
            out += '\x1A';
        else if (c < 0x80)
            out += char(c);
        else
            out += char(enc.at(c));
    }
    return out;
}

constexpr size_t kLatin1 = 0;
constexpr size_t kSloppy1252 = 1;

// ---------------------------------------------------------------------------------------------------------
// badness.is_bad: BADNESS_RE, alternative by alternative.

uint32_t cats(char32_t c) { return c == kNone ? 0 : fd::char_categories(c); }
bool has(char32_t c, uint32_t mask) { return (cats(c) & mask) != 0; }
bool one_of(char32_t c, std::u32string_view set) { return c != kNone && set.find(c) != std::u32string_view::npos; }
bool ascii_lower(char32_t c) { return c >= 'a' && c <= 'z'; }
bool ascii_alpha(char32_t c) { return ascii_lower(c) || (c >= 'A' && c <= 'Z'); }

// Python `re`'s \s on str: str.isspace(), which adds U+001C..U+001F to White_Space.
bool re_space(char32_t c) {
    if (c == kNone) return false;
    return (c >= 0x1C && c <= 0x1F) || is_white_space(c);
}
// Python `re`'s \w on str: alphanumeric (letters and numbers of every kind) or '_'.
bool re_word(char32_t c) {
    if (c == kNone) return false;
    return c == '_' || (U_GET_GC_MASK(UChar32(c)) & (U_GC_L_MASK | U_GC_N_MASK)) != 0;
}

using namespace fd;  // CharCat bits

constexpr uint32_t kAccented = kLowerAccented | kUpperAccented;

bool bad_at(std::u32string_view t, size_t i) {
    auto at = [&](size_t k) { return i + k < t.size() ? t[i + k] : kNone; };
    const char32_t a = at(0), b = at(1), c = at(2);
    if (has(a, kC1)) return true;
    if (has(a, kBad | kAccented | kBox | kStartPunct | kEndPunct | kCurrency | kNumeric) && has(b, kBad)) return true;
    if (ascii_alpha(a) && has(b, kLowerCommon | kUpperCommon) && has(c, kBad)) return true;
    if (has(a, kBad) && has(b, kAccented | kBox | kStartPunct | kEndPunct | kCurrency | kNumeric)) return true;
    if (has(a, kLowerAccented | kLowerCommon | kBox | kEndPunct | kCurrency | kNumeric) && has(b, kUpperAccented))
        return true;
    if (has(a, kBox | kEndPunct | kCurrency | kNumeric) && has(b, kLowerAccented)) return true;
    if (has(a, kLowerAccented | kBox | kEndPunct) && has(b, kCurrency)) return true;
    if (re_space(a) && has(b, kUpperAccented) && has(c, kCurrency)) return true;
    if (has(a, kUpperAccented | kBox) && has(b, kNumeric)) return true;
    if (has(a, kAccented | kBox | kCurrency | kEndPunct) && has(b, kStartPunct) && has(c, kNumeric)) return true;
    if (has(a, kAccented | kCurrency | kNumeric | kBox) && has(b, kEndPunct) && has(c, kStartPunct)) return true;
    if (has(a, kCurrency | kNumeric | kBox) && has(b, kStartPunct)) return true;
    if (ascii_lower(a) && has(b, kUpperAccented) && has(c, kStartPunct | kCurrency)) return true;
    if (has(a, kBox) && has(b, kKaomoji)) return true;
    if (has(a, kAccented | kCurrency | kNumeric | kStartPunct | kEndPunct) && has(b, kBox)) return true;
    if (has(a, kBox) && has(b, kEndPunct)) return true;
    if (has(a, kAccented) && has(b, kEndPunct) && re_word(c)) return true;
    if (one_of(a, U"\u0152\u0153") && b != kNone && !ascii_alpha(b)) return true;
    if (one_of(a, U"\u00C2\u00C3\u00CE\u00D0") &&
        (one_of(b, U"\u20AC\u0160\u0161\u00A2\u00A3\u0178\u017E\u00A0\u00AD\u00AE\u00A9\u00B0\u00B7\u00BB"
                   U"\u2013\u2014\u00B4") ||
         has(b, kStartPunct | kEndPunct)))
        return true;
    if (a == U'\u00D7' && one_of(b, U"\u00B2\u00B3")) return true;
    {
        auto arabic_second = [&](char32_t x) {
            return has(x, kCommon | kCurrency | kBad | kNumeric | kStartPunct) ||
                   one_of(x, U"\u0178\u0160\u00AE\u00B0\u00B5\u00BB");
        };
        if (one_of(a, U"\u00D8\u00D9") && arabic_second(b) && one_of(c, U"\u00D8\u00D9") && arabic_second(at(3)))
            return true;
    }
    if (a == U'\u00E0' && one_of(b, U"\u00B2\u00B5\u00B9\u00BC\u00BD\u00BE")) return true;
    if (a == U'\u221A' &&
        one_of(b, U"\u00B1\u2202\u2020\u2260\u00AE\u2122\u00B4\u2264\u2265\u00A5\u00B5\u00F8"))
        return true;
    if (a == U'\u2248' && one_of(b, U"\u00B0\u00A2")) return true;
    if (a == U'\u201A' && b == U'\u00C4' &&
        one_of(c, U"\u00EC\u00EE\u00EF\u00F2\u00F4\u00FA\u00F9\u00FB\u2020\u00B0\u00A2\u03C0"))
        return true;
    if (a == U'\u201A' && one_of(b, U"\u00E2\u00F3") && one_of(c, U"\u00E0\u00E4\u00B0\u00EA")) return true;
    if (a == U'\u0432' && b == U'\u0402') return true;
    if (one_of(a, U"\u0412\u0413\u0420\u0421") &&
        (has(b, kC1 | kBad | kStartPunct | kEndPunct | kCurrency) || one_of(b, U"\u00B0\u00B5")) &&
        one_of(c, U"\u0412\u0413\u0420\u0421"))
        return true;
    if (a == U'\u0413' && b == U'\u045E' && c == U'\u0412' && at(3) == U'\u0402' && at(4) == U'\u0412' &&
        at(5) != kNone && at(5) != U'\n' && (ascii_alpha(at(6)) || at(6) == U' '))
        return true;
    if (a == U'\u00C3' && one_of(b, U"\u00A0\u00A1")) return true;
    if (ascii_lower(a) && one_of(b, U"\u00C3\u00C2") && c == U' ') return true;
    if (ascii_lower(a) && re_space(b) && one_of(c, U"\u00C3\u00C2") && at(3) == U' ') return true;
    if (i == 0 && one_of(a, U"\u00C3\u00C2") && b == U' ') return true;
    if ((ascii_lower(a) || one_of(a, U".,?!") || has(a, kEndPunct)) && b == U'\u00C2' &&
        (c == U' ' || has(c, kStartPunct | kEndPunct)))
        return true;
    if (a == U'\u03B2' && b == U'\u20AC' && one_of(c, U"\u2122\u00A0\u0386\u00AD\u00AE\u00B0")) return true;
    if (one_of(a, U"\u0392\u0393\u039E\u039F") &&
        (has(b, kC1 | kBad | kStartPunct | kEndPunct | kCurrency) || b == U'\u00B0') &&
        one_of(c, U"\u0392\u0393\u039E\u039F"))
        return true;
    return false;
}

// ---------------------------------------------------------------------------------------------------------
// The encoding fixer.

std::u32string fix_c1_controls(std::u32string_view text) {
    std::u32string out(text);
    for (char32_t& c : out)
        if (c >= 0x80 && c <= 0x9F) c = fd::kCharmaps[kSloppy1252].high[c - 0x80];
    return out;
}

// chardata.UTF8_DETECTOR_RE at position i: the length of the match there, or 0.
size_t utf8_detector_at(std::u32string_view t, size_t i) {
    if (i > 0 && has(t[i - 1], kUtf8ContStrict)) return 0;  // (?<! [utf8_continuation_strict])
    auto at = [&](size_t k) { return k < t.size() ? t[k] : kNone; };
    size_t j = i;
    for (;;) {
        if (has(at(j), kUtf8First2) && has(at(j + 1), kUtf8Cont)) {
            j += 2;
        } else if (has(at(j), kUtf8First3) && has(at(j + 1), kUtf8Cont) && has(at(j + 2), kUtf8Cont)) {
            j += 3;
        } else if (has(at(j), kUtf8First4) && has(at(j + 1), kUtf8Cont) && has(at(j + 2), kUtf8Cont) &&
                   has(at(j + 3), kUtf8Cont)) {
            j += 4;
        } else {
            break;
        }
    }
    return j - i;
}

std::u32string decode_inconsistent_utf8(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const size_t m = utf8_detector_at(text, i);
        if (m == 0) {
            out += text[i++];
            continue;
        }
        const std::u32string_view sub = text.substr(i, m);
        // The match must be shorter than the whole text, or this would recurse forever.
        if (m < text.size() && ftfy_is_bad(sub))
            out += ftfy_fix_encoding(sub);
        else
            out += sub;
        i += m;
    }
    return out;
}

// _fix_encoding_one_step_and_explain.
std::u32string fix_encoding_one_step(std::u32string_view text) {
    if (text.empty()) return {};
    const bool ascii = std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; });
    if (ascii || !ftfy_is_bad(text)) return std::u32string(text);

    bool latin1_possible = false;
    for (size_t k = 0; k < fd::kNumCharmaps; ++k) {
        if (!possible_encoding(text, k)) continue;
        if (k == kLatin1) latin1_possible = true;
        Bytes bytes = encode_charmap(text, k);
        if (search_bytes(altered_utf8_patterns(), bytes)) bytes = restore_byte_a0(bytes);
        if (fd::kCharmaps[k].sloppy) bytes = replace_lossy_sequences(bytes);
        const bool variants = bytes.find('\xED') != Bytes::npos || bytes.find('\xC0') != Bytes::npos;
        auto decoded = variants ? decode_utf8_variants(bytes) : decode_utf8_strict(bytes);
        if (decoded) return std::move(*decoded);
    }

    for (size_t i = 0; i < text.size(); ++i) {
        if (utf8_detector_at(text, i) > 0) {
            std::u32string fixed = decode_inconsistent_utf8(text);
            if (fixed != text) return fixed;
            break;
        }
    }

    // ftfy checks `"windows-1252" in possible_1byte_encodings`, a name its list never holds (it has
    // "sloppy-windows-1252"), so Latin-1 text always gets a strict Windows-1252 decode attempt here.
    if (latin1_possible) {
        std::u32string fixed;
        bool ok = true;
        for (char32_t c : text) {
            if (c >= 0x80 && c <= 0x9F) {
                if (c == 0x81 || c == 0x8D || c == 0x8F || c == 0x90 || c == 0x9D) {  // undefined in cp1252
                    ok = false;
                    break;
                }
                fixed += fd::kCharmaps[kSloppy1252].high[c - 0x80];
            } else {
                fixed += c;
            }
        }
        if (ok && fixed != text) return fixed;
    }

    if (std::any_of(text.begin(), text.end(), [](char32_t c) { return c >= 0x80 && c <= 0x9F; }))
        return fix_c1_controls(text);
    return std::u32string(text);
}

// ---------------------------------------------------------------------------------------------------------
// The small fixers, in fix_and_explain's order.

std::u32string fix_latin_ligatures(std::u32string_view text) {
    // chardata.LIGATURES
    static const std::unordered_map<char32_t, std::u32string_view> lig = {
        {U'\u0132', U"IJ"}, {U'\u0133', U"ij"}, {U'\u0149', U"\u02BCn"}, {U'\u01F1', U"DZ"},
        {U'\u01F2', U"Dz"}, {U'\u01F3', U"dz"}, {U'\u01C4', U"D\u017D"}, {U'\u01C5', U"D\u017E"},
        {U'\u01C6', U"d\u017E"}, {U'\u01C7', U"LJ"}, {U'\u01C8', U"Lj"}, {U'\u01C9', U"lj"},
        {U'\u01CA', U"NJ"}, {U'\u01CB', U"Nj"}, {U'\u01CC', U"nj"}, {U'\uFB00', U"ff"},
        {U'\uFB01', U"fi"}, {U'\uFB02', U"fl"}, {U'\uFB03', U"ffi"}, {U'\uFB04', U"ffl"},
        {U'\uFB05', U"\u017Ft"}, {U'\uFB06', U"st"},
    };
    std::u32string out;
    out.reserve(text.size());
    for (char32_t c : text) {
        auto it = lig.find(c);
        if (it != lig.end())
            out += it->second;
        else
            out += c;
    }
    return out;
}

std::u32string fix_character_width(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (char32_t c : text) {
        if (c == 0x3000 || (c >= 0xFF01 && c < 0xFFF0)) {
            if (const fd::WidthEntry* w = fd::find_width(c)) {
                auto s = decode_utf8_strict(w->utf8);
                out += *s;
                continue;
            }
        }
        out += c;
    }
    return out;
}

std::u32string uncurl_quotes(std::u32string_view text) {
    std::u32string out(text);
    for (char32_t& c : out) {
        if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B))
            c = U'\'';
        else if (c >= 0x201C && c <= 0x201F)
            c = U'"';
    }
    return out;
}

std::u32string fix_line_breaks(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        const char32_t c = text[i];
        if (c == U'\r') {
            if (i + 1 < text.size() && text[i + 1] == U'\n') ++i;
            out += U'\n';
        } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
            out += U'\n';
        } else {
            out += c;
        }
    }
    return out;
}

// fixes.remove_terminal_escapes: "\033\[((?:\d|;)*)([a-zA-Z])" -> "".
std::u32string remove_terminal_escapes(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        if (text[i] == 0x1B && i + 1 < text.size() && text[i + 1] == U'[') {
            size_t j = i + 2;
            while (j < text.size() && (text[j] == U';' || u_isdigit(UChar32(text[j])))) ++j;
            if (j < text.size() && ascii_alpha(text[j])) {
                i = j + 1;
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

bool is_removed_control(char32_t c) {
    return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
           c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

std::u32string remove_control_chars(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    for (char32_t c : text)
        if (!is_removed_control(c)) out += c;
    return out;
}

// html.unescape applied to one "&#...;" reference, as ftfy's _unescape_fixup uses it. Returns nullopt when
// the reference must be left as it is.
std::optional<std::u32string> numeric_char_ref(std::u32string_view ref) {
    // ref is "&#" + 1..24 alphanumerics (the first may be the '#') + ";"
    std::u32string_view body = ref.substr(2, ref.size() - 3);
    int base = 10;
    if (!body.empty() && (body[0] == U'x' || body[0] == U'X')) {
        base = 16;
        body.remove_prefix(1);
    }
    if (body.empty()) return std::nullopt;
    uint64_t num = 0;
    for (char32_t c : body) {
        int d;
        if (c >= U'0' && c <= U'9')
            d = int(c - U'0');
        else if (base == 16 && c >= U'a' && c <= U'f')
            d = int(c - U'a' + 10);
        else if (base == 16 && c >= U'A' && c <= U'F')
            d = int(c - U'A' + 10);
        else
            return std::nullopt;  // html.unescape stops early and leaves the ';': ftfy keeps the original
        num = std::min<uint64_t>(num * uint64_t(base) + uint64_t(d), 0x7FFFFFFFull);
    }
    std::u32string r;
    if (num == 0x00)
        r = U"\uFFFD";
    else if (num == 0x0D)
        r = U"\r";
    else if (num >= 0x80 && num <= 0x9F)
        r = std::u32string(1, fd::kCharmaps[kSloppy1252].high[num - 0x80]);
    else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF)
        r = U"\uFFFD";
    else if ((num >= 0x01 && num <= 0x08) || num == 0x0B || (num >= 0x0E && num <= 0x1F) ||
             (num >= 0x7F && num <= 0x9F) || (num >= 0xFDD0 && num <= 0xFDEF) || (num & 0xFFFE) == 0xFFFE)
        r = U"";
    else
        r = std::u32string(1, char32_t(num));
    if (r == U";") return std::nullopt;  // ftfy: "the semicolon should be consumed"
    return r;
}

bool ascii_alnum(char32_t c) { return ascii_alpha(c) || (c >= U'0' && c <= U'9'); }

std::u32string fix_and_explain(std::u32string text, bool unescape) {
    for (;;) {
        const std::u32string orig = text;
        if (unescape) text = ftfy_unescape_html(text);
        text = ftfy_fix_encoding(text);
        text = fix_c1_controls(text);
        text = fix_latin_ligatures(text);
        text = fix_character_width(text);
        text = uncurl_quotes(text);
        text = fix_line_breaks(text);
        // fix_surrogates: nothing to do, decoded UTF-8 holds no surrogates.
        text = remove_terminal_escapes(text);
        text = remove_control_chars(text);
        text = nfc(text);
        if (text == orig) return text;
    }
}

std::u16string to_utf16(std::u32string_view s) {
    std::u16string out;
    out.reserve(s.size());
    for (char32_t c : s) {
        if (c < 0x10000) {
            out += char16_t(c);
        } else {
            c -= 0x10000;
            out += char16_t(0xD800 + (c >> 10));
            out += char16_t(0xDC00 + (c & 0x3FF));
        }
    }
    return out;
}

std::u32string from_utf16(const char16_t* s, size_t n) {
    std::u32string out;
    out.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        char32_t c = s[i];
        if (c >= 0xD800 && c < 0xDC00 && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] < 0xE000) {
            c = 0x10000 + ((c - 0xD800) << 10) + (char32_t(s[i + 1]) - 0xDC00);
            ++i;
        }
        out += c;
    }
    return out;
}

}  // namespace

// -------------------------------------------------------------------------------------------------------------

Result<std::u32string> decode_utf8(std::string_view bytes, std::string_view what) {
    std::u32string out;
    out.reserve(bytes.size());
    const auto* s = reinterpret_cast<const unsigned char*>(bytes.data());
    for (size_t i = 0; i < bytes.size();) {
        char32_t cp = 0;
        const size_t len = utf8_sequence(s, bytes.size(), i, &cp);
        if (len == 0)
            return Error::invalid_argument(
                fmt::format("invalid UTF-8 at byte {} (0x{:02X}); text must be UTF-8", i, s[i]), std::string(what));
        out.push_back(cp);
        i += len;
    }
    return out;
}

std::string encode_utf8(std::u32string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char32_t c : text) {
        if (c < 0x80) {
            out += char(c);
        } else if (c < 0x800) {
            out += char(0xC0 | (c >> 6));
            out += char(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out += char(0xE0 | (c >> 12));
            out += char(0x80 | ((c >> 6) & 0x3F));
            out += char(0x80 | (c & 0x3F));
        } else {
            out += char(0xF0 | (c >> 18));
            out += char(0x80 | ((c >> 12) & 0x3F));
            out += char(0x80 | ((c >> 6) & 0x3F));
            out += char(0x80 | (c & 0x3F));
        }
    }
    return out;
}

bool ftfy_is_bad(std::u32string_view text) {
    for (size_t i = 0; i < text.size(); ++i)
        if (bad_at(text, i)) return true;
    return false;
}

std::u32string ftfy_fix_encoding(std::u32string_view text) {
    std::u32string cur(text);
    for (;;) {
        std::u32string next = fix_encoding_one_step(cur);
        if (next == cur) return cur;
        cur = std::move(next);
    }
}

std::u32string ftfy_unescape_html(std::u32string_view text) {
    // HTML_ENTITY_RE = "&#?[0-9A-Za-z]{1,24};"
    std::u32string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        if (text[i] == U'&') {
            size_t j = i + 1;
            if (j < text.size() && text[j] == U'#') ++j;
            const size_t body = j;
            while (j < text.size() && j - body < 25 && ascii_alnum(text[j])) ++j;
            const size_t n = j - body;
            if (n >= 1 && n <= 24 && j < text.size() && text[j] == U';') {
                const std::u32string_view ref = text.substr(i, j + 1 - i);
                std::optional<std::u32string> rep;
                if (const fd::HtmlEntity* e = fd::find_html_entity(encode_utf8(ref)))
                    rep = decode_utf8_strict(e->utf8);
                else if (ref[1] == U'#')
                    rep = numeric_char_ref(ref);
                out += rep ? *rep : std::u32string(ref);
                i = j + 1;
                continue;
            }
        }
        out += text[i++];
    }
    return out;
}

std::u32string ftfy_fix_text(std::u32string_view text) {
    // fix_text: independent segments ending after each '\n' (at most max_decode_length = 10^6 code points).
    // unescape_html="auto" switches off for good at the first segment holding a '<'.
    constexpr size_t kMaxDecodeLength = 1000000;
    bool unescape = true;
    std::u32string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        size_t brk = text.find(U'\n', pos);
        brk = (brk == std::u32string_view::npos) ? text.size() : brk + 1;
        if (brk - pos > kMaxDecodeLength) brk = pos + kMaxDecodeLength;
        const std::u32string_view segment = text.substr(pos, brk - pos);
        if (unescape && segment.find(U'<') != std::u32string_view::npos) unescape = false;
        out += fix_and_explain(std::u32string(segment), unescape);
        pos = brk;
    }
    return out;
}

std::u32string nfc(std::u32string_view text) {
    // Below U+0300 every character is its own NFC form and nothing combines with it.
    if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x300; })) return std::u32string(text);
    UErrorCode err = U_ZERO_ERROR;
    const UNormalizer2* n2 = unorm2_getNFCInstance(&err);
    EASEL_ASSERT(U_SUCCESS(err), "ICU NFC data missing");
    const std::u16string src = to_utf16(text);
    std::u16string dst(src.size() * 3 + 16, u'\0');
    err = U_ZERO_ERROR;
    int32_t len = unorm2_normalize(n2, reinterpret_cast<const UChar*>(src.data()), int32_t(src.size()),
                                   reinterpret_cast<UChar*>(dst.data()), int32_t(dst.size()), &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
        dst.assign(size_t(len), u'\0');
        err = U_ZERO_ERROR;
        len = unorm2_normalize(n2, reinterpret_cast<const UChar*>(src.data()), int32_t(src.size()),
                               reinterpret_cast<UChar*>(dst.data()), int32_t(dst.size()), &err);
    }
    EASEL_ASSERT(U_SUCCESS(err), "ICU NFC failed");
    return from_utf16(dst.data(), size_t(len));
}

std::u32string to_lower(std::u32string_view text) {
    if (std::all_of(text.begin(), text.end(), [](char32_t c) { return c < 0x80; })) {
        std::u32string out(text);
        for (char32_t& c : out)
            if (c >= U'A' && c <= U'Z') c += 32;
        return out;
    }
    const std::u16string src = to_utf16(text);
    std::u16string dst(src.size() + 16, u'\0');
    UErrorCode err = U_ZERO_ERROR;
    int32_t len = u_strToLower(reinterpret_cast<UChar*>(dst.data()), int32_t(dst.size()),
                               reinterpret_cast<const UChar*>(src.data()), int32_t(src.size()), "", &err);
    if (err == U_BUFFER_OVERFLOW_ERROR) {
        dst.assign(size_t(len), u'\0');
        err = U_ZERO_ERROR;
        len = u_strToLower(reinterpret_cast<UChar*>(dst.data()), int32_t(dst.size()),
                           reinterpret_cast<const UChar*>(src.data()), int32_t(src.size()), "", &err);
    }
    EASEL_ASSERT(U_SUCCESS(err), "ICU u_strToLower failed");
    return from_utf16(dst.data(), size_t(len));
}

bool is_white_space(char32_t c) { return u_hasBinaryProperty(UChar32(c), UCHAR_WHITE_SPACE) != 0; }
bool is_letter(char32_t c) { return (U_GET_GC_MASK(UChar32(c)) & U_GC_L_MASK) != 0; }
bool is_number(char32_t c) { return (U_GET_GC_MASK(UChar32(c)) & U_GC_N_MASK) != 0; }

bool is_dropped_by_pretokenizer(char32_t c) {
    if (is_letter(c) || is_number(c) || is_white_space(c)) return false;
    for (UChar32 v : {u_tolower(UChar32(c)), u_toupper(UChar32(c)), u_totitle(UChar32(c)),
                      u_foldCase(UChar32(c), U_FOLD_CASE_DEFAULT)})
        if (v != UChar32(c) && (is_letter(char32_t(v)) || is_number(char32_t(v)))) return true;
    return false;
}

std::u32string clip_whitespace_clean(std::u32string_view text) {
    std::u32string out;
    out.reserve(text.size());
    bool in_space = false;
    for (char32_t c : text) {
        if (is_white_space(c)) {
            in_space = true;
            continue;
        }
        if (in_space && !out.empty()) out += U' ';
        in_space = false;
        out += c;
    }
    return out;
}

Result<std::string> clip_clean_text(std::string_view utf8) {
    EASEL_TRY_ASSIGN(std::u32string text, decode_utf8(utf8, "prompt"));
    return encode_utf8(to_lower(clip_whitespace_clean(ftfy_fix_text(text))));
}

}  // namespace easel::clip
