// Character tables for the ftfy port in text_clean.cpp (internal to models/clip).
//
// The data lives in text_clean_tables.cpp, generated from Python's html.entities/codecs and ftfy 6.1.1 by
// `tools/reference/make_tokenizer_goldens.py --tables`; regenerate instead of editing it.
//
//   const HtmlEntity* e = find_html_entity("&amp;");   // e->utf8 == "&"
//   uint32_t cats = char_categories(U'Ã');             // bit set of CharCat
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace easel::clip::ftfy_data {

struct HtmlEntity {
    const char* name;  // with '&' and ';', e.g. "&eacute;"
    const char* utf8;  // replacement text
};

// One single-byte encoding that ftfy tries when undoing mojibake (chardata.CHARMAP_ENCODINGS order).
struct Charmap {
    const char* name;
    bool sloppy;       // "sloppy-windows-125x": undefined bytes decode as Latin-1, byte 0x1A stands for U+FFFD
    char32_t sub;      // what byte 0x1A decodes to
    char32_t high[128];  // what bytes 0x80..0xFF decode to
};

struct WidthEntry {
    char32_t from;
    const char* utf8;
};

struct CatEntry {
    char32_t cp;
    uint32_t bits;  // CharCat bits
};

// ftfy's MOJIBAKE_CATEGORIES (badness.py) and UTF8_CLUES (chardata.py), one bit each, in this order.
enum CharCat : uint32_t {
    kCommon = 1u << 0,
    kC1 = 1u << 1,
    kBad = 1u << 2,
    kCurrency = 1u << 3,
    kStartPunct = 1u << 4,
    kEndPunct = 1u << 5,
    kNumeric = 1u << 6,
    kKaomoji = 1u << 7,
    kUpperAccented = 1u << 8,
    kLowerAccented = 1u << 9,
    kUpperCommon = 1u << 10,
    kLowerCommon = 1u << 11,
    kBox = 1u << 12,
    kUtf8First2 = 1u << 13,
    kUtf8First3 = 1u << 14,
    kUtf8First4 = 1u << 15,
    kUtf8Cont = 1u << 16,
    kUtf8ContStrict = 1u << 17,
};

extern const HtmlEntity kHtmlEntities[];  // sorted by name, bytewise
extern const size_t kNumHtmlEntities;
extern const Charmap kCharmaps[];
extern const size_t kNumCharmaps;
extern const WidthEntry kWidthMap[];  // sorted by code point
extern const size_t kNumWidthMap;
extern const CatEntry kCategories[];  // sorted by code point
extern const size_t kNumCategories;

const HtmlEntity* find_html_entity(std::string_view name);
const WidthEntry* find_width(char32_t cp);
uint32_t char_categories(char32_t cp);

}  // namespace easel::clip::ftfy_data
