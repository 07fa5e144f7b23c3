// Text cleanup in front of CLIP's BPE, as transformers' CLIPTokenizer does it with ftfy installed:
// whitespace_clean(ftfy.fix_text(text)).lower().
//
// ftfy_fix_text() ports ftfy 6.1.1's fix_text with its default TextFixerConfig. That covers HTML entity
// unescaping (switched off for a line segment, and every segment after it, once a '<' is seen), mojibake
// repair and the small fixers: C1 controls, Latin ligatures, character width, curly quotes, line breaks,
// terminal escapes and control characters. Then comes NFC. Mojibake repair follows ftfy's plan. The `is_bad`
// heuristic (badness.py) is ported in full. Re-encoding tries the nine single-byte encodings that ftfy tries,
// with the restore_byte_a0 and replace_lossy_sequences transcoders and the utf-8-variants decoder.
// decode_inconsistent_utf8 and the Latin-1/Windows-1252 fallbacks are ported as well. What is not ported:
// ftfy's explanations, and fix_surrogates, which cannot apply here because our input is valid UTF-8.
//
//   EASEL_TRY_ASSIGN(std::u32string t, decode_utf8(prompt, "prompt"));
//   std::u32string fixed = ftfy_fix_text(t);             // "cafÃ©" -> "café", "&amp;" -> "&"
//   std::u32string clean = to_lower(clip_whitespace_clean(fixed));
//   std::string utf8 = encode_utf8(clean);
//   // or in one call: EASEL_TRY_ASSIGN(std::string s, clip_clean_text(prompt));
#pragma once

#include <string>
#include <string_view>

#include "core/error.h"

namespace easel::clip {

// Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). `what` names the text in the error,
// which gives the byte offset of the first invalid sequence.
Result<std::u32string> decode_utf8(std::string_view bytes, std::string_view what);
std::string encode_utf8(std::u32string_view text);

// ftfy.fix_text(text) with ftfy 6.1.1's defaults.
std::u32string ftfy_fix_text(std::u32string_view text);
// ftfy.fix_encoding(text): the mojibake repair alone.
std::u32string ftfy_fix_encoding(std::u32string_view text);
// ftfy.badness.is_bad(text): whether the text contains a sequence that is far likelier to be mojibake than
// intended.
bool ftfy_is_bad(std::u32string_view text);
// ftfy.fixes.unescape_html(text): "&amp;" -> "&", "&EACUTE;" -> "É", "&#x41;" -> "A"; an entity without its
// ';' is left alone.
std::u32string ftfy_unescape_html(std::u32string_view text);

// Unicode normalization form C (ICU).
std::u32string nfc(std::u32string_view text);
// Python's str.lower(): full case mapping with no language rules, final sigma included (ICU root locale).
std::u32string to_lower(std::u32string_view text);
// CLIP's whitespace_clean: each run of White_Space becomes one space, then the ends are stripped.
std::u32string clip_whitespace_clean(std::u32string_view text);

// The character classes of CLIP's pre-tokenizer regex (`regex` module, Unicode 15): \s is the White_Space
// property, \p{L} the letter categories (Lu Ll Lt Lm Lo), \p{N} the number categories (Nd Nl No).
bool is_white_space(char32_t c);
bool is_letter(char32_t c);
bool is_number(char32_t c);
// A character that no alternative of the pre-tokenizer regex matches, so it is dropped like white space.
// Under IGNORECASE the `regex` module rejects a character from the negated class [^\s\p{L}\p{N}] when one of
// its case variants is a letter or number, while [\p{L}] does not match the character itself. In Unicode 15
// that is only U+0345 COMBINING GREEK YPOGEGRAMMENI, which case-folds to iota.
bool is_dropped_by_pretokenizer(char32_t c);

// whitespace_clean(ftfy.fix_text(text)).lower(), from UTF-8 to UTF-8.
Result<std::string> clip_clean_text(std::string_view utf8);

}  // namespace easel::clip
