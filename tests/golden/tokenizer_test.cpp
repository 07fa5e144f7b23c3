// CLIP tokenizer and A1111 prompt parsing against their Python references, and T5's built-in tokenizer.
// Goldens made by tools/reference/make_tokenizer_goldens.py (transformers 4.40 slow CLIPTokenizer + ftfy 6.1.1;
// AUTOMATIC1111 prompt_parser.py / sd_hijack_clip.py). The vocabulary is the one built into easel (CLIP's
// bpe_simple_vocab_16e6.txt.gz, data/clip/): what a single-file checkpoint gets without --vocab.
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/compare.h"
#include "models/clip/prompt_parser.h"
#include "models/clip/text_clean.h"
#include "models/clip/tokenizer.h"
#include "models/t5/tokenizer.h"

namespace easel::clip {
namespace {

nlohmann::json load_golden(const std::string& name) {
    const std::string path = std::string(EASEL_GOLDEN_DIR) + "/" + name;
    std::ifstream f(path);
    if (!f) ADD_FAILURE() << path << " missing; regenerate: source /work/refenv/env.sh && /usr/bin/python3 "
                          << "tools/reference/make_tokenizer_goldens.py --a1111 <webui checkout>";
    std::stringstream ss;
    ss << f.rdbuf();
    return nlohmann::json::parse(ss.str(), nullptr, false);
}

// Printable form of a prompt for failure messages.
std::string escaped(const std::string& s, size_t max = 80) {
    std::string out;
    for (unsigned char c : s.substr(0, max)) {
        if (c < 0x20 || c == 0x7F)
            out += fmt::format("\\x{:02x}", c);
        else
            out += char(c);
    }
    return s.size() > max ? out + "..." : out;
}

std::string ids_str(const std::vector<int32_t>& v, size_t max = 24) {
    std::string s;
    for (size_t i = 0; i < v.size() && i < max; ++i) s += (i ? " " : "") + std::to_string(v[i]);
    return v.size() > max ? s + fmt::format(" ... ({} ids)", v.size()) : s;
}

class ClipGolden : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        auto t = CLIPTokenizer::builtin();
        ASSERT_TRUE(t.has_value()) << t.error().to_string();
        tok_ = new CLIPTokenizer(std::move(t).value());
    }
    static void TearDownTestSuite() {
        delete tok_;
        tok_ = nullptr;
    }
    void SetUp() override { ASSERT_NE(tok_, nullptr) << "the built-in vocabulary did not load"; }
    static CLIPTokenizer* tok_;
};
CLIPTokenizer* ClipGolden::tok_ = nullptr;

TEST_F(ClipGolden, VocabularyShape) {
    EXPECT_EQ(tok_->vocab_size(), 49408u);
    EXPECT_EQ(tok_->num_merges(), 48894u);
    EXPECT_EQ(tok_->bos_id(), 49406);
    EXPECT_EQ(tok_->eos_id(), 49407);
    EXPECT_EQ(tok_->token_to_id(",</w>"), 267);  // A1111's comma token
}

TEST_F(ClipGolden, IdsMatchTransformersForEveryPrompt) {
    const nlohmann::json g = load_golden("tokenizer_clip.json");
    ASSERT_TRUE(g.contains("cases"));
    size_t same = 0, total = 0;
    for (const auto& c : g["cases"]) {
        const std::string prompt = c["prompt"];
        const std::vector<int32_t> want = c["ids"];
        auto got = tok_->encode_with_specials(prompt);
        ++total;
        if (!got) {
            ADD_FAILURE() << "prompt \"" << escaped(prompt) << "\": " << got.error().to_string();
            continue;
        }
        if (*got == want) {
            ++same;
            continue;
        }
        auto ours = ftfy_fix_text(decode_utf8(prompt, "prompt").value());
        ADD_FAILURE() << "prompt \"" << escaped(prompt) << "\"\n  want " << ids_str(want) << "\n  got  "
                      << ids_str(*got) << "\n  ftfy want \"" << escaped(c["fixed"]) << "\"\n  ftfy got  \""
                      << escaped(encode_utf8(ours)) << "\"";
    }
    std::printf("tokenizer_clip: %zu/%zu prompts give identical ids\n", same, total);
    EXPECT_GE(total, 100u);
}

TEST_F(ClipGolden, FtfyFixTextMatches) {
    const nlohmann::json g = load_golden("tokenizer_clip.json");
    size_t same = 0, total = 0;
    for (const auto& c : g["cases"]) {
        const std::string prompt = c["prompt"];
        const std::string want = c["fixed"];
        const std::string got = encode_utf8(ftfy_fix_text(decode_utf8(prompt, "prompt").value()));
        ++total;
        if (got == want)
            ++same;
        else
            ADD_FAILURE() << "fix_text(\"" << escaped(prompt) << "\")\n  want \"" << escaped(want) << "\"\n  got  \""
                          << escaped(got) << "\"";
    }
    std::printf("ftfy.fix_text: %zu/%zu prompts identical\n", same, total);
}

// 600 mojibake strings made by mis-decoding UTF-8 with each of ftfy's codecs (and some random runs of the
// characters ftfy's heuristic looks at): fix_text and is_bad must agree with ftfy exactly.
TEST(FtfyGolden, MojibakeCasesMatchFtfy) {
    const nlohmann::json g = load_golden("tokenizer_clip.json");
    ASSERT_TRUE(g.contains("ftfy_cases"));
    size_t fixed_same = 0, bad_same = 0, total = 0;
    for (const auto& c : g["ftfy_cases"]) {
        const std::string text = c["text"];
        const std::u32string t = decode_utf8(text, "case").value();
        ++total;
        const std::string got = encode_utf8(ftfy_fix_text(t));
        const bool bad = ftfy_is_bad(t);
        if (got == c["fixed"].get<std::string>())
            ++fixed_same;
        else
            ADD_FAILURE() << "fix_text(\"" << escaped(text) << "\")\n  want \"" << escaped(c["fixed"]) << "\"\n  got  \""
                          << escaped(got) << "\"";
        if (bad == c["is_bad"].get<bool>())
            ++bad_same;
        else
            ADD_FAILURE() << "is_bad(\"" << escaped(text) << "\") want " << c["is_bad"].get<bool>();
    }
    std::printf("ftfy mojibake cases: fix_text %zu/%zu identical, is_bad %zu/%zu identical\n", fixed_same, total,
                bad_same, total);
    EXPECT_GE(total, 500u);
}

// The pre-tokenizer's classes over the whole code space, against the `regex` module's.
TEST(ClipGoldenClasses, LetterNumberSpaceMatchPythonRegex) {
    const nlohmann::json g = load_golden("tokenizer_clip.json");
    ASSERT_TRUE(g.contains("char_classes"));
    struct Cls {
        const char* name;
        bool (*fn)(char32_t);
    };
    for (Cls cls : {Cls{"letter", is_letter}, Cls{"number", is_number}, Cls{"space", is_white_space},
                    Cls{"dropped", is_dropped_by_pretokenizer}}) {
        std::vector<bool> want(0x110000, false);
        for (const auto& r : g["char_classes"][cls.name])
            for (uint32_t cp = r[0]; cp <= uint32_t(r[1]); ++cp) want[cp] = true;
        size_t diffs = 0;
        std::string first;
        for (uint32_t cp = 0; cp < 0x110000; ++cp) {
            if (cls.fn(char32_t(cp)) == want[cp]) continue;
            if (diffs++ < 10) first += fmt::format(" U+{:04X}({})", cp, want[cp] ? "python only" : "ours only");
        }
        std::printf("class %s: %zu code points differ%s\n", cls.name, diffs, first.c_str());
        EXPECT_EQ(diffs, 0u) << cls.name << ":" << first;
    }
}

TEST_F(ClipGolden, A1111ParseAndChunksMatch) {
    const nlohmann::json g = load_golden("tokenizer_a1111.json");
    if (!g.contains("cases")) GTEST_SKIP() << "tokenizer_a1111.json not generated";
    size_t same_parse = 0, same_chunks = 0, total = 0;
    std::vector<float> got_w, want_w;
    for (const auto& c : g["cases"]) {
        const std::string prompt = c["prompt"];
        ++total;
        auto spans = parse_prompt_attention(prompt);
        ASSERT_TRUE(spans.has_value()) << escaped(prompt) << ": " << spans.error().to_string();
        bool parse_ok = spans->size() == c["parsed"].size();
        for (size_t i = 0; parse_ok && i < spans->size(); ++i) {
            // Weights are products of the same doubles in the same order as in Python: exact.
            parse_ok = (*spans)[i].text == c["parsed"][i][0].get<std::string>() &&
                       (*spans)[i].weight == c["parsed"][i][1].get<double>();
        }
        if (parse_ok) {
            ++same_parse;
        } else {
            std::string got, want;
            for (const auto& s : *spans) got += fmt::format("[\"{}\", {}] ", escaped(s.text), s.weight);
            for (const auto& s : c["parsed"]) want += fmt::format("[\"{}\", {}] ", escaped(s[0]), s[1].get<double>());
            ADD_FAILURE() << "parse \"" << escaped(prompt) << "\"\n  want " << want << "\n  got  " << got;
        }

        auto wp = tokenize_weighted(*tok_, prompt);
        ASSERT_TRUE(wp.has_value()) << escaped(prompt) << ": " << wp.error().to_string();
        bool chunks_ok = wp->chunks.size() == c["chunks"].size() && wp->token_count == c["token_count"].get<int>();
        for (size_t k = 0; chunks_ok && k < wp->chunks.size(); ++k) {
            const std::vector<int32_t> want_ids = c["chunks"][k]["ids"];
            const std::vector<double> want_mults = c["chunks"][k]["weights"];
            chunks_ok = wp->chunks[k].ids == want_ids && wp->chunks[k].weights.size() == want_mults.size();
            for (size_t i = 0; chunks_ok && i < want_mults.size(); ++i) {
                got_w.push_back(wp->chunks[k].weights[i]);
                want_w.push_back(float(want_mults[i]));  // torch.asarray of Python floats: float32
            }
        }
        if (chunks_ok) {
            ++same_chunks;
        } else {
            std::string detail = fmt::format("chunks {} vs {}, token_count {} vs {}", wp->chunks.size(),
                                             c["chunks"].size(), wp->token_count, c["token_count"].get<int>());
            for (size_t k = 0; k < std::min(wp->chunks.size(), c["chunks"].size()); ++k)
                detail += fmt::format("\n  chunk {} want {}\n  chunk {} got  {}", k,
                                      ids_str(c["chunks"][k]["ids"].get<std::vector<int32_t>>(), 80), k,
                                      ids_str(wp->chunks[k].ids, 80));
            ADD_FAILURE() << "chunks \"" << escaped(prompt) << "\": " << detail;
        }
    }
    const auto r = testing::compare(got_w, want_w, {.atol = 0.0, .rtol = 0.0});
    std::printf("a1111: parse %zu/%zu identical, chunks %zu/%zu identical; weights: %s\n", same_parse, total,
                same_chunks, total, r.summary().c_str());
    EXPECT_TRUE(r.passed()) << r.summary();
}

// T5 v1.1's built-in vocabulary (data/t5/spiece.model) against transformers' T5TokenizerFast on T5's own
// tokenizer.json, the tokenizer diffusers' SD3 and Flux pipelines run (tools/reference/make_t5_spiece.py): every
// prompt of the CLIP set, untruncated. A case with "easel_ids" is where tokenizers' normalization differs from
// sentencepiece's (stacked combining marks); easel gives sentencepiece's ids there, and the case says so.
TEST(T5Golden, BuiltinIdsMatchT5TokenizerFast) {
    auto tok = T5Tokenizer::builtin();
    ASSERT_TRUE(tok) << tok.error().to_string();
    EXPECT_EQ(tok->id_limit(), 32000);
    EXPECT_EQ(tok->eos_id(), 1);
    EXPECT_EQ(tok->pad_id(), 0);
    const nlohmann::json g = load_golden("tokenizer_t5.json");
    ASSERT_TRUE(g.contains("cases"));
    size_t same = 0, known = 0, total = 0;
    for (const auto& c : g["cases"]) {
        const std::string prompt = c["prompt"];
        const std::vector<int32_t> fast = c["ids"];
        const std::vector<int32_t> want = c.contains("easel_ids") ? c["easel_ids"].get<std::vector<int32_t>>() : fast;
        const int n = tok->count(prompt);
        std::vector<int32_t> got = tok->encode(prompt, n + 1);  // untruncated: the pieces and </s>
        ++total;
        if (got != want) {
            ADD_FAILURE() << "prompt \"" << escaped(prompt) << "\"\n  want " << ids_str(want) << "\n  got  " << ids_str(got);
            continue;
        }
        ++(c.contains("easel_ids") ? known : same);
    }
    std::printf("tokenizer_t5: %zu/%zu prompts give T5TokenizerFast's ids; %zu give sentencepiece's where the two "
                "normalizers differ (recorded in the golden)\n", same, total, known);
    EXPECT_GE(total, 100u);
    EXPECT_LE(known, 1u);
    // Padding and truncation as diffusers asks for them (max_length, truncation): the last id is always </s>.
    const int pieces = tok->count("a photo of a cat ");
    EXPECT_EQ(pieces, tok->count("a photo of a cat") + 1);
    const std::vector<int32_t> ids = tok->encode("a photo of a cat ", pieces + 2);
    ASSERT_EQ(ids.size(), size_t(pieces + 2));
    EXPECT_EQ(ids[ids.size() - 3], 3) << "a trailing space is a lone \u2581 piece, as in T5TokenizerFast";
    EXPECT_EQ(ids[ids.size() - 2], 1);
    EXPECT_EQ(ids.back(), 0);
    const std::vector<int32_t> cut = tok->encode(std::string(400, 'a') + " b", 4);
    EXPECT_EQ(cut.size(), 4u);
    EXPECT_EQ(cut.back(), 1);
}

}  // namespace
}  // namespace easel::clip
