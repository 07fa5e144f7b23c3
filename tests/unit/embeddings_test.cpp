// Textual-inversion embeddings: the file formats (pipeline/embeddings.h), AUTOMATIC1111's tokenization with
// embeddings (models/clip/prompt_parser.h: placeholders, fixes, chunk boundaries, the longest name first) and the
// text encoder's fixes, on the tiny SD 1.x model. The images against diffusers are in tests/golden/ti_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "common/golden.h"
#include "io/safetensors.h"
#include "pipeline/embeddings.h"
#include "pipeline/families/sd.h"

using namespace easel;

namespace {

const SDModel& tiny() {
    static std::unique_ptr<SDModel> m = [] {
        auto r = load_sd_model(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1", LoadOptions{});
        EASEL_ASSERT(r.has_value(), r ? "" : r.error().to_string());
        return std::move(r).value();
    }();
    return *m;
}

Tensor vectors(int64_t n, int64_t d, float base) {
    std::vector<float> v(size_t(n * d));
    for (size_t i = 0; i < v.size(); ++i) v[i] = base + 0.01f * float(i % 17);
    return Tensor::from_floats(Shape{n, d}, v);
}

Result<TextualInversion> from(std::vector<std::pair<std::string, Tensor>> tensors, const std::string& path = "x/emb.pt") {
    WeightSet w;
    for (auto& [n, t] : tensors) EXPECT_TRUE(w.add(n, t));
    return embedding_from_weights(w, path, "0123456789abcdef0123");
}

}  // namespace

TEST(EmbeddingFile, ReadsEveryFormat) {
    auto a = from({{"string_to_param.*", vectors(3, 32, 0.1f)}}, "dir/my_style.pt");
    ASSERT_TRUE(a) << a.error().to_string();
    EXPECT_EQ(a->name, "my_style");
    EXPECT_EQ(a->hash, "0123456789ab");
    EXPECT_EQ(a->vectors.at("").shape(), (Shape{3, 32}));
    auto b = from({{"emb_params", vectors(2, 768, 0.1f)}});
    ASSERT_TRUE(b);
    EXPECT_EQ(b->vectors.at("").shape(), (Shape{2, 768}));
    auto c = from({{"<cat-toy>", Tensor::from_floats(Shape{32}, std::vector<float>(32, 0.5f))}});
    ASSERT_TRUE(c) << c.error().to_string();
    EXPECT_EQ(c->vectors.at("").shape(), (Shape{1, 32}));
    auto d = from({{"clip_l", vectors(2, 768, 0.1f)}, {"clip_g", vectors(2, 1280, 0.2f)}});
    ASSERT_TRUE(d);
    EXPECT_EQ(d->vectors.at("clip_g").shape(), (Shape{2, 1280}));

    auto expect_error = [](const Result<TextualInversion>& r, const std::string& needle) {
        ASSERT_FALSE(r) << needle;
        std::printf("%s\n", r.error().to_string().c_str());
        EXPECT_NE(r.error().to_string().find(needle), std::string::npos) << r.error().to_string();
    };
    expect_error(from({{"lora_unet_x.lora_down.weight", vectors(2, 4, 0)}, {"lora_unet_x.lora_up.weight", vectors(4, 2, 0)}}),
                 "but a LoRA");
    expect_error(from({{"clip_l", vectors(2, 768, 0)}}), "needs both clip_l and clip_g");
    expect_error(from({{"clip_l", vectors(2, 768, 0)}, {"clip_g", vectors(3, 1280, 0)}}), "clip_l has 2 vectors, clip_g 3");
    Tensor nan = vectors(1, 8, 0);
    nan.data<float>()[3] = std::nanf("");
    expect_error(from({{"emb_params", nan}}), "nan");
    expect_error(from({{"emb_params", Tensor::zeros(Shape{2, 3, 4})}}), "expected [vectors, width]");
    expect_error(from({{"a", vectors(1, 4, 0)}, {"b", vectors(1, 4, 0)}}), "not a textual-inversion embedding");
}

// A1111's tokenize_line with embeddings: the name's tokens become n placeholder positions carrying the span's
// weight, the fix points at the first (BOS counted); an embedding that would not fit moves to the next chunk.
TEST(EmbeddingTokens, PlaceholdersFixesAndChunks) {
    const clip::CLIPTokenizer& tok = tiny().tokenizer;
    auto name_ids = tok.encode("redsquare");
    ASSERT_TRUE(name_ids);
    std::printf("'redsquare' -> %zu tokens\n", name_ids->size());
    std::vector<clip::Embedding> emb = {{"redsquare", *name_ids, vectors(3, 32, 0.3f)}};
    if (name_ids->size() > 1)  // a shorter name sharing the first token: the longer one wins where both fit
        emb.push_back({"red", {(*name_ids)[0]}, vectors(1, 32, 0.9f)});
    clip::ChunkOptions o;
    o.embeddings = &emb;
    auto plain = clip::tokenize_weighted(tok, "a circle", o);
    auto wp = clip::tokenize_weighted(tok, "a circle (redsquare:1.2) dog", o);
    ASSERT_TRUE(plain && wp) << (wp ? "" : wp.error().to_string());
    auto circle = tok.encode("a circle");
    ASSERT_TRUE(circle);
    const int at = int(circle->size()) + 1;  // after BOS and "a circle"
    ASSERT_EQ(wp->chunks.size(), 1u);
    const clip::PromptChunk& ch = wp->chunks[0];
    ASSERT_EQ(ch.fixes.size(), 1u);
    EXPECT_EQ(ch.fixes[0].position, at);
    EXPECT_EQ(ch.fixes[0].embedding->name, "redsquare");
    for (int k = 0; k < 3; ++k) {
        EXPECT_EQ(ch.ids[size_t(at + k)], 0);
        EXPECT_FLOAT_EQ(ch.weights[size_t(at + k)], 1.2f);
    }
    EXPECT_EQ(wp->embeddings_used, std::vector<std::string>{"redsquare"});
    EXPECT_TRUE(plain->embeddings_used.empty());
    EXPECT_TRUE(plain->chunks[0].fixes.empty());

    // 74 words then the embedding: it does not fit in the first chunk's 75 and starts the second.
    std::string words;
    for (int i = 0; i < 200; ++i) {
        words += "a ";
        auto t = tok.encode(words);
        ASSERT_TRUE(t);
        if (t->size() == 74) break;
    }
    auto edge = clip::tokenize_weighted(tok, words + "redsquare", o);
    ASSERT_TRUE(edge);
    ASSERT_EQ(edge->chunks.size(), 2u);
    EXPECT_TRUE(edge->chunks[0].fixes.empty());
    ASSERT_EQ(edge->chunks[1].fixes.size(), 1u);
    EXPECT_EQ(edge->chunks[1].fixes[0].position, 1);
}

// An embedding longer than a chunk (A1111 lets it overfill one): the chunk is cut back to 77 ids, the text after it
// starts the next chunk, and every chunk the encoder gets is 77 long.
TEST(EmbeddingTokens, LongerThanAChunk) {
    const clip::CLIPTokenizer& tok = tiny().tokenizer;
    auto name_ids = tok.encode("redsquare");
    ASSERT_TRUE(name_ids);
    std::vector<clip::Embedding> emb = {{"redsquare", *name_ids, vectors(100, 32, 0.3f)}};
    clip::ChunkOptions o;
    o.embeddings = &emb;
    auto wp = clip::tokenize_weighted(tok, "a redsquare circle dog", o);
    ASSERT_TRUE(wp) << wp.error().to_string();
    ASSERT_EQ(wp->chunks.size(), 3u);
    for (const auto& c : wp->chunks) {
        EXPECT_EQ(c.ids.size(), 77u);
        EXPECT_EQ(c.weights.size(), 77u);
    }
    ASSERT_EQ(wp->chunks[1].fixes.size(), 1u);
    auto rest = tok.encode("circle dog");
    ASSERT_TRUE(rest);
    EXPECT_EQ(wp->chunks[2].ids[1], (*rest)[0]);
    BufferPool pool;
    Ctx c{&pool};
    auto z = encode_prompt(c, tiny(), "a redsquare circle dog", 1, 1, &emb);
    ASSERT_TRUE(z) << z.error().to_string();
    EXPECT_EQ(z->size(1), 3 * 77);
}

// The encoder with fixes: vectors equal to the name's own token embeddings give exactly the prompt without the
// embedding; other vectors change the output from the fix on.
TEST(EmbeddingTokens, EncoderFixesReplaceTokenEmbeddings) {
    const SDModel& m = tiny();
    auto te = read_safetensors(std::string(EASEL_GOLDEN_DIR) + "/pipeline_sd1/text_encoder/model.safetensors");
    ASSERT_TRUE(te);
    const Tensor table = te->find("text_model.embeddings.token_embedding.weight")->to(DType::F32).contiguous();
    auto name_ids = m.tokenizer.encode("redsquare");
    ASSERT_TRUE(name_ids);
    const int64_t D = table.size(1), n = int64_t(name_ids->size());
    Tensor own = Tensor::empty(Shape{n, D});
    for (int64_t k = 0; k < n; ++k)
        std::memcpy(own.data<float>() + k * D, table.data<float>() + int64_t((*name_ids)[size_t(k)]) * D, size_t(D) * 4);
    BufferPool pool;
    Ctx c{&pool};
    std::vector<clip::Embedding> same = {{"redsquare", *name_ids, own}};
    auto with = encode_prompt(c, m, "a circle redsquare dog", 1, 1, &same);
    auto without = encode_prompt(c, m, "a circle redsquare dog", 1, 1, nullptr);
    ASSERT_TRUE(with && without);
    auto r = easel::testing::compare(*with, *without, {.atol = 0, .rtol = 0});
    std::printf("own token embeddings as vectors: %s\n", r.summary().c_str());
    EXPECT_TRUE(r.passed());
    std::vector<clip::Embedding> other = {{"redsquare", *name_ids, vectors(2, D, 0.5f)}};
    std::vector<std::string> used;
    auto changed = encode_prompt(c, m, "a circle redsquare dog", 1, 1, &other, &used);
    ASSERT_TRUE(changed);
    EXPECT_FALSE(easel::testing::compare(*changed, *without, {.atol = 1e-4}).passed());
    EXPECT_EQ(used, std::vector<std::string>{"redsquare"});
}
