// AUTOMATIC1111 prompt syntax. Expected spans are the documented examples of A1111's parse_prompt_attention
// (modules/prompt_parser.py doctests); chunking follows sd_hijack_clip.py tokenize_line. Real-vocabulary
// agreement with A1111 itself is in tests/golden/tokenizer_test.cpp.
#include <gtest/gtest.h>

#include "models/clip/prompt_parser.h"

namespace easel::clip {
namespace {

std::vector<PromptSpan> parse(std::string_view s) {
    auto r = parse_prompt_attention(s);
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return r.has_value() ? *r : std::vector<PromptSpan>{};
}

using Spans = std::vector<PromptSpan>;

TEST(ParsePromptAttention, A1111DocumentedExamples) {
    EXPECT_EQ(parse("normal text"), (Spans{{"normal text", 1.0}}));
    EXPECT_EQ(parse("an (important) word"), (Spans{{"an ", 1.0}, {"important", 1.1}, {" word", 1.0}}));
    EXPECT_EQ(parse("(unbalanced"), (Spans{{"unbalanced", 1.1}}));
    EXPECT_EQ(parse("\\(literal\\]"), (Spans{{"(literal]", 1.0}}));
    EXPECT_EQ(parse("(unnecessary)(parens)"), (Spans{{"unnecessaryparens", 1.1}}));
    // The doctest's weights, as Python prints them: products of the same doubles in the same order.
    EXPECT_EQ(parse("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
              (Spans{{"a ", 1.0},
                     {"house", 1.5730000000000004},
                     {" ", 1.1},
                     {"on", 1.0},
                     {" a ", 1.1},
                     {"hill", 0.55},
                     {", sun, ", 1.1},
                     {"sky", 1.4641000000000006},
                     {".", 1.1}}));
}

TEST(ParsePromptAttention, WeightsBracketsAndEscapes) {
    EXPECT_EQ(parse(""), (Spans{{"", 1.0}}));
    EXPECT_EQ(parse("(word:1.3)"), (Spans{{"word", 1.3}}));
    EXPECT_EQ(parse("(word: 1.3 )"), (Spans{{"word", 1.3}}));
    EXPECT_EQ(parse("(word:+.5)"), (Spans{{"word", 0.5}}));
    EXPECT_EQ(parse("[word]"), (Spans{{"word", 1.0 * (1 / 1.1)}}));
    EXPECT_EQ(parse("[[word]]"), (Spans{{"word", 1.0 * (1 / 1.1) * (1 / 1.1)}}));
    EXPECT_EQ(parse("(a [b] c)"), (Spans{{"a ", 1.1}, {"b", 1.1 * (1 / 1.1)}, {" c", 1.1}}));
    EXPECT_EQ(parse("unbalanced) and]"), (Spans{{"unbalanced) and]", 1.0}}));
    EXPECT_EQ(parse("a:b:c"), (Spans{{"a:b:c", 1.0}}));
    EXPECT_EQ(parse("(a:b)"), (Spans{{"a:b", 1.1}}));
    EXPECT_EQ(parse(":1.5) no open bracket"), (Spans{{":1.5) no open bracket", 1.0}}));
    EXPECT_EQ(parse("\\\\ backslash"), (Spans{{"\\ backslash", 1.0}}));
    EXPECT_EQ(parse("lone \\n backslash"), (Spans{{"lone n backslash", 1.0}}));  // a lone '\' disappears
    EXPECT_EQ(parse("(caf\xC3\xA9:1.2)"), (Spans{{"caf\xC3\xA9", 1.2}}));
}

TEST(ParsePromptAttention, Break) {
    EXPECT_EQ(parse("a BREAK b"), (Spans{{"a", 1.0}, {"BREAK", -1.0}, {"b", 1.0}}));
    EXPECT_EQ(parse("aBREAK b BREAKc"), (Spans{{"aBREAK b BREAKc", 1.0}}));  // BREAK must be a whole word
    EXPECT_EQ(parse("BREAK"), (Spans{{"", 1.0}, {"BREAK", -1.0}, {"", 1.0}}));
    EXPECT_TRUE(parse("x BREAK y")[1].is_break());
    // Inside brackets the BREAK's -1 is scaled too, so it is no longer a break (as in A1111).
    const Spans in_parens = parse("(a BREAK b)");
    ASSERT_EQ(in_parens.size(), 3u);
    EXPECT_EQ(in_parens[1].text, "BREAK");
    EXPECT_DOUBLE_EQ(in_parens[1].weight, -1.1);
    EXPECT_FALSE(in_parens[1].is_break());
}

TEST(ParsePromptAttention, Errors) {
    auto r = parse_prompt_attention("(x:1.2.3)");
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::InvalidArgument);
    EXPECT_NE(r.error().message().find("1.2.3"), std::string::npos) << r.error().message();
    EXPECT_FALSE(parse_prompt_attention("(x:.)").has_value());
    EXPECT_FALSE(parse_prompt_attention("bad \xFF utf8").has_value());
    // Quadratic bracket work is refused, not run: 100k unclosed "(a" would take 5e9 multiplications.
    std::string nested;
    for (int i = 0; i < 100000; ++i) nested += "(a";
    auto deep = parse_prompt_attention(nested);
    ASSERT_FALSE(deep.has_value());
    EXPECT_NE(deep.error().message().find("brackets"), std::string::npos) << deep.error().message();
    std::string fine;
    for (int i = 0; i < 1000; ++i) fine += "(a";
    EXPECT_TRUE(parse_prompt_attention(fine).has_value());
}

// A vocabulary where every single letter and the comma are tokens of their own.
CLIPTokenizer letters() {
    auto t = CLIPTokenizer::from_bpe_text("#version: 0.2\n", "letters");
    EXPECT_TRUE(t.has_value());
    return std::move(t).value();
}

std::string repeat(std::string_view s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

TEST(TokenizeWeighted, ShortPromptIsOnePaddedChunk) {
    CLIPTokenizer t = letters();
    const int32_t a = *t.token_to_id("a</w>"), b = *t.token_to_id("b</w>");
    WeightedPrompt wp = tokenize_weighted(t, "a (b:1.5)").value();
    ASSERT_EQ(wp.chunks.size(), 1u);
    EXPECT_EQ(wp.token_count, 2);
    const PromptChunk& c = wp.chunks[0];
    ASSERT_EQ(c.ids.size(), 77u);
    ASSERT_EQ(c.weights.size(), 77u);
    EXPECT_EQ(c.ids[0], t.bos_id());
    EXPECT_EQ(c.ids[1], a);
    EXPECT_EQ(c.ids[2], b);
    for (size_t i = 3; i < 77; ++i) EXPECT_EQ(c.ids[i], t.eos_id()) << i;
    EXPECT_EQ(c.weights[1], 1.0f);
    EXPECT_EQ(c.weights[2], 1.5f);
    EXPECT_EQ(c.weights[3], 1.0f);

    WeightedPrompt empty = tokenize_weighted(t, "").value();
    ASSERT_EQ(empty.chunks.size(), 1u);
    EXPECT_EQ(empty.token_count, 0);
    EXPECT_EQ(empty.chunks[0].ids[1], t.eos_id());
}

TEST(TokenizeWeighted, LongPromptsSplitIntoChunksOf75) {
    CLIPTokenizer t = letters();
    WeightedPrompt wp = tokenize_weighted(t, repeat("a ", 80)).value();
    ASSERT_EQ(wp.chunks.size(), 2u);
    EXPECT_EQ(wp.token_count, 80);
    EXPECT_EQ(wp.chunks[0].ids[75], *t.token_to_id("a</w>"));
    EXPECT_EQ(wp.chunks[0].ids[76], t.eos_id());
    EXPECT_EQ(wp.chunks[1].ids[5], *t.token_to_id("a</w>"));
    EXPECT_EQ(wp.chunks[1].ids[6], t.eos_id());
    // Exactly 75 tokens fit one chunk.
    EXPECT_EQ(tokenize_weighted(t, repeat("a ", 75)).value().chunks.size(), 1u);
}

TEST(TokenizeWeighted, CommaPaddingBacktrack) {
    CLIPTokenizer t = letters();
    const int32_t comma = *t.token_to_id(",</w>"), b = *t.token_to_id("b</w>");
    // The chunk fills 5 tokens after a comma: the text after the comma moves to the next chunk.
    WeightedPrompt near = tokenize_weighted(t, repeat("a ", 70) + ", " + repeat("b ", 10)).value();
    ASSERT_EQ(near.chunks.size(), 2u);
    EXPECT_EQ(near.chunks[0].ids[71], comma);
    EXPECT_EQ(near.chunks[0].ids[72], t.eos_id());  // padded after the comma
    for (int i = 1; i <= 10; ++i) EXPECT_EQ(near.chunks[1].ids[size_t(i)], b) << i;
    EXPECT_EQ(near.token_count, 75 + 10);
    // A comma 25 tokens back is further than 20: a plain cut at 75.
    WeightedPrompt far = tokenize_weighted(t, repeat("a ", 50) + ", " + repeat("b ", 30)).value();
    ASSERT_EQ(far.chunks.size(), 2u);
    EXPECT_EQ(far.chunks[0].ids[75], b);
    // Backtracking switched off.
    ChunkOptions off;
    off.comma_padding_backtrack = 0;
    WeightedPrompt none = tokenize_weighted(t, repeat("a ", 70) + ", " + repeat("b ", 10), off).value();
    EXPECT_EQ(none.chunks[0].ids[75], b);
}

TEST(TokenizeWeighted, BreakStartsANewChunk) {
    CLIPTokenizer t = letters();
    WeightedPrompt wp = tokenize_weighted(t, "a BREAK b").value();
    ASSERT_EQ(wp.chunks.size(), 2u);
    EXPECT_EQ(wp.token_count, 76);
    EXPECT_EQ(wp.chunks[0].ids[1], *t.token_to_id("a</w>"));
    EXPECT_EQ(wp.chunks[0].ids[2], t.eos_id());
    EXPECT_EQ(wp.chunks[1].ids[1], *t.token_to_id("b</w>"));
}

TEST(TokenizeWeighted, SD2PadsAfterTheFirstEndOfText) {
    CLIPTokenizer t = letters();
    ChunkOptions sd2;
    sd2.pad_id = 0;
    WeightedPrompt wp = tokenize_weighted(t, "a b", sd2).value();
    const auto& ids = wp.chunks[0].ids;
    EXPECT_EQ(ids[3], t.eos_id());
    for (size_t i = 4; i < 77; ++i) EXPECT_EQ(ids[i], 0) << i;
}

TEST(TokenizeWeighted, EmphasisOffKeepsBracketsAsText) {
    CLIPTokenizer t = letters();
    ChunkOptions plain;
    plain.emphasis = false;
    WeightedPrompt wp = tokenize_weighted(t, "(a)", plain).value();
    EXPECT_EQ(wp.token_count, 3);  // "(", "a", ")"
    EXPECT_EQ(wp.chunks[0].ids[2], *t.token_to_id("a</w>"));
    EXPECT_EQ(wp.chunks[0].weights[2], 1.0f);
}

}  // namespace
}  // namespace easel::clip
