// CLIP BPE tokenizer on small in-memory vocabularies (no downloads): merge order, special tokens, padding,
// errors for bad vocabulary files, where the vocabulary comes from, and the built-in one. tests/golden/tokenizer_test.cpp checks the real
// vocabulary against transformers.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <unistd.h>

#include <gtest/gtest.h>

#include "models/clip/builtin_vocab.h"
#include "models/clip/tokenizer.h"

namespace easel::clip {
namespace {

namespace fs = std::filesystem;

// Ids in a vocabulary built the CLIP way: byte symbols in bytes_to_unicode order ('!' is 0), then the same
// with "</w>" (+256), then one id per merge (from 512), then BOS and EOS.
int32_t sym(char c) { return int32_t(c - '!'); }
int32_t sym_end(char c) { return 256 + sym(c); }

// "hello" is one token after four merges; "aa" shows repeated pairs.
const char* kTinyBpe = "#version: 0.2 (header line, ignored)\nh e\nl o</w>\nhe l\nhel lo</w>\na a\n";
constexpr int32_t kHe = 512, kLoEnd = 513, kHelloEnd = 515, kAa = 516, kBos = 517, kEos = 518;  // "hel" is 514

CLIPTokenizer tiny() {
    auto t = CLIPTokenizer::from_bpe_text(kTinyBpe, "tiny");
    EXPECT_TRUE(t.has_value()) << t.error().to_string();
    return std::move(t).value();
}

std::vector<int32_t> enc(const CLIPTokenizer& t, std::string_view s) {
    auto r = t.encode(s);
    EXPECT_TRUE(r.has_value()) << r.error().to_string();
    return r.has_value() ? *r : std::vector<int32_t>{};
}

TEST(CLIPTokenizer, BuildsTheVocabularyTheWayCLIPDoes) {
    CLIPTokenizer t = tiny();
    EXPECT_EQ(t.vocab_size(), 519u);
    EXPECT_EQ(t.num_merges(), 5u);
    EXPECT_EQ(t.bos_id(), kBos);
    EXPECT_EQ(t.eos_id(), kEos);
    EXPECT_EQ(t.token_to_id("!"), 0);
    EXPECT_EQ(t.token_to_id(",</w>"), 267);  // same id as in the real vocabulary: the first 512 never change
    EXPECT_EQ(t.token_to_id("hello</w>"), kHelloEnd);
    EXPECT_EQ(t.token_to_id("\xC4\x80"), 188);  // byte 0x00 is the first non-printable byte: U+0100
}

TEST(CLIPTokenizer, MergesByRankThenLeftToRight) {
    CLIPTokenizer t = tiny();
    EXPECT_EQ(enc(t, "hello"), (std::vector<int32_t>{kHelloEnd}));
    EXPECT_EQ(enc(t, "Hello  HELLO\n"), (std::vector<int32_t>{kHelloEnd, kHelloEnd}));
    EXPECT_EQ(enc(t, "hel"), (std::vector<int32_t>{kHe, sym_end('l')}));  // "he l</w>" is not a merge
    EXPECT_EQ(enc(t, "helo"), (std::vector<int32_t>{kHe, kLoEnd}));
    // "a a" merges every non-overlapping occurrence from the left.
    EXPECT_EQ(enc(t, "aaa"), (std::vector<int32_t>{kAa, sym_end('a')}));
    EXPECT_EQ(enc(t, "aaaa"), (std::vector<int32_t>{kAa, sym('a'), sym_end('a')}));
    EXPECT_EQ(enc(t, "x"), (std::vector<int32_t>{sym_end('x')}));
}

TEST(CLIPTokenizer, PreTokenizerSplits) {
    CLIPTokenizer t = tiny();
    // Letters run together, digits stand alone, punctuation runs together, contractions split off.
    EXPECT_EQ(enc(t, "ab12"), (std::vector<int32_t>{sym('a'), sym_end('b'), sym_end('1'), sym_end('2')}));
    EXPECT_EQ(enc(t, "!?"), (std::vector<int32_t>{sym('!'), sym_end('?')}));
    auto toks = t.tokenize("it's").value();
    EXPECT_EQ(toks, (std::vector<std::string>{"i", "t</w>", "'", "s</w>"}));
    EXPECT_EQ(t.tokenize("x's").value().back(), "s</w>");
}

TEST(CLIPTokenizer, SpecialTokens) {
    CLIPTokenizer t = tiny();
    EXPECT_EQ(enc(t, "<|endoftext|>"), (std::vector<int32_t>{kEos}));
    EXPECT_EQ(enc(t, "x<|startoftext|>hello"), (std::vector<int32_t>{sym_end('x'), kBos, kHelloEnd}));
    // Not split out before cleanup (case differs), but the pre-tokenizer still recognises it after lower().
    EXPECT_EQ(enc(t, "<|ENDOFTEXT|>"), (std::vector<int32_t>{kEos}));
    EXPECT_EQ(t.encode_with_specials("hello").value(), (std::vector<int32_t>{kBos, kHelloEnd, kEos}));
    EXPECT_EQ(t.encode_with_specials("").value(), (std::vector<int32_t>{kBos, kEos}));
}

TEST(CLIPTokenizer, PaddingForSD1AndSD2) {
    CLIPTokenizer t = tiny();
    auto sd1 = t.encode_padded("hello x", t.eos_id()).value();
    ASSERT_EQ(sd1.size(), 77u);
    EXPECT_EQ(std::vector<int32_t>(sd1.begin(), sd1.begin() + 4),
              (std::vector<int32_t>{kBos, kHelloEnd, sym_end('x'), kEos}));
    EXPECT_TRUE(std::all_of(sd1.begin() + 3, sd1.end(), [](int32_t i) { return i == kEos; }));
    auto sd2 = t.encode_padded("hello x", 0).value();
    EXPECT_EQ(sd2[3], kEos);
    EXPECT_TRUE(std::all_of(sd2.begin() + 4, sd2.end(), [](int32_t i) { return i == 0; }));
    // Longer than 75 tokens: cut to 75, EOS still last.
    std::string many;
    for (int i = 0; i < 100; ++i) many += "x ";
    auto cut = t.encode_padded(many, 0).value();
    ASSERT_EQ(cut.size(), 77u);
    EXPECT_EQ(cut[75], sym_end('x'));
    EXPECT_EQ(cut[76], kEos);
    EXPECT_EQ(t.encode_padded("x", 0, 1).error().code(), ErrorCode::InvalidArgument);
}

TEST(CLIPTokenizer, DecodeRoundTrip) {
    CLIPTokenizer t = tiny();
    EXPECT_EQ(t.decode(enc(t, "hello aaaa x")), "hello aaaa x");
    EXPECT_EQ(t.decode(enc(t, "x!")), "x !");  // words come back separated
    EXPECT_EQ(t.decode(enc(t, "caf\xC3\xA9")), "caf\xC3\xA9");
    EXPECT_EQ(t.decode(std::vector<int32_t>{t.token_to_id("\xC3\x83").value()}), "\xEF\xBF\xBD");  // lone lead byte
}

TEST(CLIPTokenizer, UnknownTokensMapToEndOfText) {
    auto t = CLIPTokenizer::from_vocab_json_text(R"({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2})",
                                                 "#version: 0.2\n", "mini");
    ASSERT_TRUE(t.has_value()) << t.error().to_string();
    EXPECT_EQ(t->encode("a b").value(), (std::vector<int32_t>{2, 1}));
    EXPECT_EQ(t->unk_id(), 1);
}

TEST(CLIPTokenizer, RejectsBadPrompts) {
    CLIPTokenizer t = tiny();
    auto bad = t.encode("ok \xFF");
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().code(), ErrorCode::InvalidArgument);
    EXPECT_NE(bad.error().message().find("UTF-8"), std::string::npos);
    auto long_word = t.encode(std::string(CLIPTokenizer::kMaxWordChars + 1, 'a'));
    ASSERT_FALSE(long_word.has_value());
    EXPECT_NE(long_word.error().message().find("single word"), std::string::npos);
    EXPECT_TRUE(t.encode(std::string(CLIPTokenizer::kMaxWordChars, 'a')).has_value());
    EXPECT_FALSE(t.encode(std::string(CLIPTokenizer::kMaxTextBytes + 1, ' ')).has_value());
}

TEST(CLIPTokenizer, LongWordsStayFast) {
    // 4096 'a's: "a a" merges pairwise from the left; the last two are "a" and "a</w>", which do not merge.
    CLIPTokenizer t = tiny();
    auto ids = t.encode(std::string(CLIPTokenizer::kMaxWordChars, 'a')).value();
    ASSERT_EQ(ids.size(), 2049u);
    EXPECT_TRUE(std::all_of(ids.begin(), ids.begin() + 2047, [](int32_t i) { return i == kAa; }));
    EXPECT_EQ(ids[2047], sym('a'));
    EXPECT_EQ(ids[2048], sym_end('a'));
    // "hello" repeated inside one word: four merge rounds, each applied everywhere at once.
    std::string hellos;
    for (int i = 0; i < 500; ++i) hellos += "hel";
    hellos += "lo";
    auto h = t.encode(hellos).value();
    ASSERT_EQ(h.size(), 500u);
    EXPECT_EQ(h.front(), 514);  // "hel"
    EXPECT_EQ(h.back(), kHelloEnd);
}

TEST(CLIPTokenizer, RejectsBadVocabularies) {
    auto expect_bad = [](Result<CLIPTokenizer> r, std::string_view needle, std::string_view where) {
        ASSERT_FALSE(r.has_value()) << needle;
        EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().to_string();
        EXPECT_EQ(r.error().where(), where);
    };
    expect_bad(CLIPTokenizer::from_vocab_json_text("{not json", "#v\n", "v.json"), "not valid JSON", "v.json");
    expect_bad(CLIPTokenizer::from_vocab_json_text("[1,2]", "#v\n", "v.json"), "expected an object", "v.json");
    expect_bad(CLIPTokenizer::from_vocab_json_text(R"({"a": "x"})", "#v\n", "v.json"), "expected an integer",
               "v.json");
    expect_bad(CLIPTokenizer::from_vocab_json_text(R"({"a": -1})", "#v\n", "v.json"), "expected an integer", "v.json");
    expect_bad(CLIPTokenizer::from_vocab_json_text(R"({"a": 1})", "#v\n", "v.json"), "<|startoftext|>", "v.json");
    expect_bad(CLIPTokenizer::from_bpe_text("#v\na b\na b c\n", "bpe.txt"), "line 3", "bpe.txt");
    expect_bad(CLIPTokenizer::from_bpe_text("#v\nab\n", "bpe.txt"), "two symbols", "bpe.txt");
    expect_bad(CLIPTokenizer::from_bpe_text("#v\n\xFF b\n", "bpe.txt"), "UTF-8", "bpe.txt");
}

class TempDir : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = fs::temp_directory_path() / ("easel_tok_" + std::to_string(::getpid()) + "_" +
                                            ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
    }
    void TearDown() override { fs::remove_all(dir_); }
    void write(const fs::path& p, std::string_view data) {
        fs::create_directories(p.parent_path());
        std::ofstream(p, std::ios::binary).write(data.data(), std::streamsize(data.size()));
    }
    fs::path dir_;
};

using CLIPTokenizerFiles = TempDir;

TEST_F(CLIPTokenizerFiles, LoadsDiffusersFolderAndNamesTheBadFile) {
    write(dir_ / "m" / "tokenizer" / "vocab.json", R"({"<|startoftext|>": 0, "<|endoftext|>": 1, "a</w>": 2})");
    write(dir_ / "m" / "tokenizer" / "merges.txt", "#version: 0.2\n");
    auto t = CLIPTokenizer::load((dir_ / "m").string());
    ASSERT_TRUE(t.has_value()) << t.error().to_string();
    EXPECT_EQ(t->encode("a").value(), (std::vector<int32_t>{2}));
    auto t2 = CLIPTokenizer::load((dir_ / "m" / "tokenizer" / "vocab.json").string());
    ASSERT_TRUE(t2.has_value()) << t2.error().to_string();

    write(dir_ / "m" / "tokenizer" / "merges.txt", "#version: 0.2\na b c\n");
    auto bad = CLIPTokenizer::load((dir_ / "m").string());
    ASSERT_FALSE(bad.has_value());
    EXPECT_EQ(bad.error().where(), (dir_ / "m" / "tokenizer" / "merges.txt").string());

    auto none = CLIPTokenizer::load(dir_.string());
    ASSERT_FALSE(none.has_value());
    EXPECT_EQ(none.error().code(), ErrorCode::NotFound);
    EXPECT_EQ(CLIPTokenizer::load((dir_ / "missing.gz").string()).error().code(), ErrorCode::NotFound);
    EXPECT_EQ(CLIPTokenizer::load((dir_ / "m" / "tokenizer" / "merges.txt").string()).error().code(),
              ErrorCode::Unsupported);
}

TEST_F(CLIPTokenizerFiles, RejectsCorruptGzip) {
    write(dir_ / "junk.txt.gz", "this is not gzip data at all");
    auto junk = CLIPTokenizer::load((dir_ / "junk.txt.gz").string());
    ASSERT_FALSE(junk.has_value());
    EXPECT_EQ(junk.error().code(), ErrorCode::BadFile);
    EXPECT_NE(junk.error().message().find("gzip"), std::string::npos) << junk.error().message();
    EXPECT_EQ(junk.error().where(), (dir_ / "junk.txt.gz").string());

    const std::span<const uint8_t> builtin = builtin_bpe_gz();
    const std::string gz(reinterpret_cast<const char*>(builtin.data()), builtin.size());
    write(dir_ / "cut.txt.gz", std::string_view(gz).substr(0, gz.size() / 2));
    auto cut = CLIPTokenizer::load((dir_ / "cut.txt.gz").string());
    ASSERT_FALSE(cut.has_value());
    EXPECT_NE(cut.error().message().find("truncated"), std::string::npos) << cut.error().message();
}

TEST_F(CLIPTokenizerFiles, FindVocabOrder) {
    ::unsetenv("EASEL_VOCAB");
    // Nothing given: the built-in vocabulary, whatever lies next to the model or in ~/.cache.
    auto none = find_vocab("");
    ASSERT_TRUE(none.has_value()) << none.error().to_string();
    EXPECT_TRUE(none->is_builtin());
    EXPECT_NE(none->describe().find("built-in"), std::string::npos) << none->describe();

    // EASEL_VOCAB beats the built-in one; --vocab beats EASEL_VOCAB; a wrong path the user gave is an error
    // naming it, never skipped in favour of the built-in one.
    write(dir_ / "env" / "v.txt.gz", "x");
    write(dir_ / "models" / "vocab.json", "{}");
    write(dir_ / "models" / "merges.txt", "#");
    ::setenv("EASEL_VOCAB", (dir_ / "env" / "v.txt.gz").c_str(), 1);
    auto env = find_vocab("");
    ASSERT_TRUE(env.has_value());
    EXPECT_EQ(env->path, (dir_ / "env" / "v.txt.gz").string());
    EXPECT_EQ(env->describe(), (dir_ / "env" / "v.txt.gz").string() + " (EASEL_VOCAB)");
    auto flag = find_vocab((dir_ / "models").string());
    ASSERT_TRUE(flag.has_value());
    EXPECT_EQ(flag->path, (dir_ / "models").string());
    EXPECT_EQ(flag->origin, "--vocab");
    auto wrong = find_vocab((dir_ / "nope").string());
    ASSERT_FALSE(wrong.has_value());
    EXPECT_EQ(wrong.error().where(), (dir_ / "nope").string());
    EXPECT_NE(wrong.error().message().find("--vocab"), std::string::npos) << wrong.error().message();
    ::setenv("EASEL_VOCAB", (dir_ / "nope").c_str(), 1);
    auto wrong_env = find_vocab("");
    ASSERT_FALSE(wrong_env.has_value());
    EXPECT_NE(wrong_env.error().message().find("EASEL_VOCAB"), std::string::npos) << wrong_env.error().message();
    ::unsetenv("EASEL_VOCAB");
}

// The built-in vocabulary is data/clip/bpe_simple_vocab_16e6.txt.gz byte for byte (so the binary grows by the
// compressed file alone), and parses to CLIP's vocabulary.
TEST(CLIPTokenizerBuiltin, IsTheRepositoryFileAndKnowsCLIPIds) {
    std::ifstream in(EASEL_CLIP_VOCAB_GZ, std::ios::binary);
    ASSERT_TRUE(in) << EASEL_CLIP_VOCAB_GZ;
    const std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::span<const uint8_t> builtin = builtin_bpe_gz();
    ASSERT_EQ(builtin.size(), file.size());
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(builtin.data()), builtin.size()), file);

    auto t = CLIPTokenizer::builtin();
    ASSERT_TRUE(t.has_value()) << t.error().to_string();
    EXPECT_EQ(t->vocab_size(), 49408u);
    EXPECT_EQ(t->num_merges(), CLIPTokenizer::kMaxMerges);
    EXPECT_EQ(t->bos_id(), 49406);
    EXPECT_EQ(t->eos_id(), 49407);
    // Ids from transformers' CLIPTokenizer (tests/golden/data/tokenizer_clip.json).
    EXPECT_EQ(t->encode("a photo of a cat").value(), (std::vector<int32_t>{320, 1125, 539, 320, 2368}));
    EXPECT_EQ(t->decode(t->encode("a photo of a cat").value()), "a photo of a cat");
    // The same vocabulary read from the file.
    auto f = CLIPTokenizer::load(EASEL_CLIP_VOCAB_GZ);
    ASSERT_TRUE(f.has_value()) << f.error().to_string();
    EXPECT_EQ(f->vocab_size(), t->vocab_size());
    EXPECT_EQ(f->encode("an astronaut riding a horse, (masterpiece:1.2)").value(),
              t->encode("an astronaut riding a horse, (masterpiece:1.2)").value());
}

}  // namespace
}  // namespace easel::clip
