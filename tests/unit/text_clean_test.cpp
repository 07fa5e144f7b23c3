// ftfy port and CLIP text cleanup. Expected values are ftfy 6.1.1's documented examples (its docstrings) and
// Python's str/unicodedata behaviour; tests/golden/tokenizer_test.cpp checks 100+ prompts against ftfy itself.
#include <gtest/gtest.h>

#include "models/clip/text_clean.h"

namespace easel::clip {
namespace {

std::u32string U(std::string_view utf8) { return decode_utf8(utf8, "test").value(); }
std::string S(const std::u32string& t) { return encode_utf8(t); }
std::string fix(std::string_view s) { return S(ftfy_fix_text(U(s))); }

TEST(Utf8, RoundTripsAndRejectsInvalid) {
    const std::string s = "a\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80";  // a é 日 😀
    EXPECT_EQ(U(s), std::u32string(U"a\u00E9\u65E5\U0001F600"));
    EXPECT_EQ(S(U(s)), s);
    for (std::string bad : {"\xC3", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "ab\xFF", "\xE0\x80\xAF"}) {
        auto r = decode_utf8(bad, "prompt");
        ASSERT_FALSE(r.has_value()) << bad;
        EXPECT_EQ(r.error().where(), "prompt");
        EXPECT_NE(r.error().message().find("invalid UTF-8 at byte"), std::string::npos) << r.error().message();
    }
    EXPECT_NE(decode_utf8("ab\xFF", "p").error().message().find("byte 2"), std::string::npos);
}

TEST(Ftfy, FixesUtf8DecodedAsLatin1OrWindows1252) {
    EXPECT_EQ(fix("s\xC3\x83\xC2\xB3"), "s\xC3\xB3");                      // "sÃ³" -> "só"
    EXPECT_EQ(fix("caf\xC3\x83\xC2\xA9"), "caf\xC3\xA9");                   // "cafÃ©" -> "café"
    EXPECT_EQ(fix("voil\xC3\x83 le travail"), "voil\xC3\xA0 le travail");   // restore_byte_a0
    EXPECT_EQ(fix("\xC3\xA2\xE2\x82\xAC\xC5\x93quoted\xC3\xA2\xE2\x82\xAC\xC2\x9D"), "\"quoted\"");  // “…” via 1252
    EXPECT_EQ(fix("don\xC3\xA2\xE2\x82\xAC\xE2\x84\xA2t"), "don't");      // "donâ€™t", then uncurled
}

TEST(Ftfy, LeavesCorrectTextAlone) {
    for (std::string s : {"caf\xC3\xA9", "na\xC3\xAFve fa\xC3\xA7" "ade", "\xC3\x85land", "\xE6\x97\xA5\xE6\x9C\xAC",
                          "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82", "plain ascii", ""})
        EXPECT_EQ(fix(s), s);
    EXPECT_FALSE(ftfy_is_bad(U("caf\xC3\xA9 cr\xC3\xA8me")));
    EXPECT_TRUE(ftfy_is_bad(U("caf\xC3\x83\xC2\xA9")));
}

TEST(Ftfy, UnescapesHtmlAsFtfyDocuments) {
    auto un = [](std::string_view s) { return S(ftfy_unescape_html(U(s))); };
    EXPECT_EQ(un("&lt;tag&gt;"), "<tag>");
    EXPECT_EQ(un("&checkmark;"), "\xE2\x9C\x93");
    EXPECT_EQ(un("P&eacute;rez"), "P\xC3\xA9rez");
    EXPECT_EQ(un("P&EACUTE;REZ"), "P\xC3\x89REZ");
    EXPECT_EQ(un("BUNDESSTRA&SZLIG;E"), "BUNDESSTRASSE");
    EXPECT_EQ(un("&ntilde; &Ntilde; &NTILDE; &nTILDE;"), "\xC3\xB1 \xC3\x91 \xC3\x91 &nTILDE;");
    EXPECT_EQ(un("&amp &lt no semicolon"), "&amp &lt no semicolon");
    EXPECT_EQ(un("&#65;&#x42;&#X43;"), "ABC");
    EXPECT_EQ(un("&#0;&#x110000;&#xD800;"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    EXPECT_EQ(un("&#x80;&#150;"), "\xE2\x82\xAC\xE2\x80\x93");  // C1 references mean Windows-1252
    EXPECT_EQ(un("&#59;"), "&#59;");                          // a ';' result keeps the reference
    EXPECT_EQ(un("&#12ab;"), "&#12ab;");                      // not all digits
    EXPECT_EQ(un("&" + std::string(25, 'a') + ";"), "&" + std::string(25, 'a') + ";");
}

TEST(Ftfy, HtmlUnescapingStopsAtTheFirstLessThanSign) {
    EXPECT_EQ(fix("Tom &amp; Jerry"), "Tom & Jerry");
    EXPECT_EQ(fix("a < b &amp; c"), "a < b &amp; c");
    // "auto" turns off for the segment with '<' and every later one, not the earlier ones.
    EXPECT_EQ(fix("&amp;\n<b> &amp;\n&amp;"), "&\n<b> &amp;\n&amp;");
    EXPECT_EQ(fix("&amp;lt;"), "<");  // the fixer loops until nothing changes
}

TEST(Ftfy, SmallFixers) {
    EXPECT_EQ(fix("\xE2\x80\x9Chi\xE2\x80\x9D \xE2\x80\x98x\xE2\x80\x99"), "\"hi\" 'x'");  // curly quotes
    EXPECT_EQ(fix("\xEF\xAC\x81ne \xEF\xAC\x82uffiest"), "fine fluffiest");                // ligatures
    EXPECT_EQ(fix("\xEF\xBC\xA1\xEF\xBC\xA2\xE3\x80\x80\xEF\xBC\x91"), "AB 1");           // full width
    EXPECT_EQ(fix("\xEF\xBE\x8A\xEF\xBE\x9D"), "\xE3\x83\x8F\xE3\x83\xB3");               // half-width kana
    EXPECT_EQ(fix("a\r\nb\rc\xE2\x80\xA8" "d"), "a\nb\nc\nd");                             // line breaks
    EXPECT_EQ(fix("\x1B[36;44mblue\x1B[0m"), "blue");                                        // terminal escapes
    EXPECT_EQ(fix("a\x01\x07\x7F" "b\xEF\xBB\xBF" "c"), "abc");                             // control chars, BOM
    EXPECT_EQ(fix("tab\tstays"), "tab\tstays");
    EXPECT_EQ(fix("e\xCC\x81"), "\xC3\xA9");                                                 // NFC
    EXPECT_EQ(fix("\xC2\x93quoted\xC2\x94"), "\"quoted\"");                                  // C1 as Windows-1252
}

TEST(TextClean, WhitespaceCleanAndLower) {
    EXPECT_EQ(S(clip_whitespace_clean(U("  a \t\n b\xC2\xA0\xE3\x80\x80" "c  "))), "a b c");
    EXPECT_EQ(S(clip_whitespace_clean(U("   "))), "");
    EXPECT_EQ(S(to_lower(U("ABC \xC3\x89"))), "abc \xC3\xA9");
    EXPECT_EQ(S(to_lower(U("\xC4\xB0"))), "i\xCC\x87");                    // İ -> i + combining dot (full mapping)
    EXPECT_EQ(S(to_lower(U("\xCE\xA3\xCE\x91\xCE\xA3"))), "\xCF\x83\xCE\xB1\xCF\x82");  // ΣΑΣ -> σας (final sigma)
    EXPECT_TRUE(is_white_space(U'\u3000'));
    EXPECT_FALSE(is_white_space(U'\u200B'));  // zero width space is not White_Space
    EXPECT_TRUE(is_letter(U'\u65E5'));
    EXPECT_TRUE(is_number(U'\u00BD'));
    EXPECT_FALSE(is_letter(U'_'));
}

TEST(TextClean, WholeCleanupAsCLIPTokenizerDoesIt) {
    EXPECT_EQ(clip_clean_text("  A  Caf\xC3\x83\xC2\xA9 &amp; \xE2\x80\x9CTea\xE2\x80\x9D\n").value(),
              "a caf\xC3\xA9 & \"tea\"");
    auto bad = clip_clean_text("\xFF");
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code(), ErrorCode::InvalidArgument);
}

}  // namespace
}  // namespace easel::clip
