// Textual-inversion embeddings (AUTOMATIC1111 .pt and .safetensors, diffusers .bin, SDXL clip_l/clip_g) on the
// tiny SD 1.x and SDXL models against diffusers 0.30.3's load_textual_inversion: the conditioning alone, then
// whole txt2img runs with embeddings in the prompt, the negative prompt and both. Goldens and files:
// tools/reference/make_ti_goldens.py.
#include <gtest/gtest.h>

#include <cstdio>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "common/golden.h"
#include "common/golden_case.h"
#include "pipeline/embeddings.h"
#include "pipeline/families/clip_prompt.h"
#include "pipeline/families/sd.h"
#include "pipeline/generate.h"
#include "pipeline/model.h"

using namespace easel;
using easel::testing::golden_file;

namespace {

const std::string kDir = std::string(EASEL_GOLDEN_DIR) + "/embeddings";

const WeightSet& cases() { return golden_file("ti_cases.safetensors"); }

std::string model_folder(const std::string& model) {
    return std::string(EASEL_GOLDEN_DIR) + (model == "sdxl" ? "/pipeline_sdxl" : "/pipeline_sd1");
}

const Model& model(const std::string& name) {
    static std::map<std::string, std::unique_ptr<Model>> cache;
    auto it = cache.find(name);
    if (it == cache.end()) {
        auto m = load_model(model_folder(name), LoadOptions{});
        EASEL_ASSERT(m.has_value(), m ? "" : m.error().to_string());
        it = cache.emplace(name, std::move(m).value()).first;
    }
    return *it->second;
}

std::vector<std::string> case_names() {
    std::vector<std::string> names;
    for (const auto& [k, v] : cases().metadata)
        if (k.size() > 7 && k.compare(k.size() - 7, 7, ".params") == 0 && cases().contains(k.substr(0, k.size() - 7) + ".latent"))
            names.push_back(k.substr(0, k.size() - 7));
    return names;
}

// The embeddings a case loads (its "embeddings_loaded" files), read as the CLI reads them.
std::shared_ptr<TextualInversions> embeddings_of(const nlohmann::json& j) {
    auto set = std::make_shared<TextualInversions>();
    for (const std::string f : j["embeddings_loaded"]) {
        auto e = read_embedding(kDir + "/" + f);
        if (!e) {
            ADD_FAILURE() << e.error().to_string();
            continue;
        }
        set->items.push_back(std::move(e).value());
    }
    return set;
}

GenerateParams params_of(const nlohmann::json& j) {
    GenerateParams p = easel::testing::diffusers_case_params(j);
    p.embeddings = embeddings_of(j);
    return p;
}

}  // namespace

// The scan of the folder: every embedding read, the LoRA kept among them and the embedding of a width no tiny
// model has are read or skipped as A1111 would (the width is checked where a conditioner uses them).
TEST(TextualInversionGolden, FolderScanSkipsWhatIsNotAnEmbedding) {
    EmbeddingScan scan = load_embeddings_dir(kDir);
    for (const std::string& s : scan.skipped) std::printf("skipped %s\n", s.c_str());
    for (const TextualInversion& e : scan.set->items) std::printf("loaded %s (%s)\n", e.name.c_str(), e.hash.c_str());
    ASSERT_EQ(scan.skipped.size(), 1u);
    EXPECT_NE(scan.skipped[0].find("not_an_embedding"), std::string::npos);
    EXPECT_NE(scan.skipped[0].find("but a LoRA"), std::string::npos);
    EXPECT_GE(scan.set->items.size(), 4u);
}

// diffusers' encode_prompt with the embeddings loaded, against our conditioner on the same request.
TEST(TextualInversionGolden, ConditioningMatchesEncodePrompt) {
    for (const std::string name : {"sd1_both", "sdxl_style"}) {
        if (!cases().contains(name + ".prompt_embeds")) continue;
        const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
        const GenerateParams p = params_of(j);
        const Model& m = model(j["model"]);
        BufferPool pool;
        Ctx c{&pool};
        PromptRequest r{.prompt = p.prompt, .negative = p.negative_prompt, .width = p.width, .height = p.height,
                        .embeddings = p.embeddings};
        auto conds = m.conditioner().encode(c, r);
        ASSERT_TRUE(conds) << conds.error().to_string();
        const easel::testing::Tolerance tol{.atol = 1e-4, .rtol = 1e-4};
        easel::testing::expect_close(conds->cond.context, *cases().find(name + ".prompt_embeds"), tol, name + ".prompt_embeds");
        easel::testing::expect_close(conds->uncond.context, *cases().find(name + ".negative_prompt_embeds"), tol,
                                     name + ".negative_prompt_embeds");
        if (const Tensor* pooled = cases().find(name + ".pooled_prompt_embeds")) {
            easel::testing::expect_close(*conds->cond.pooled, *pooled, tol, name + ".pooled_prompt_embeds");
            easel::testing::expect_close(*conds->uncond.pooled, *cases().find(name + ".negative_pooled_prompt_embeds"), tol,
                                         name + ".negative_pooled_prompt_embeds");
        }
        std::string used;
        for (const std::string& u : conds->embeddings_used) used += u + " ";
        std::printf("%s: embeddings used: %s\n", name.c_str(), used.c_str());
        EXPECT_EQ(conds->embeddings_used.empty(), j["embeddings"].empty());
    }
}

// The token ids: where diffusers put an embedding's new tokens (ids past the vocabulary), A1111's tokenization has
// its placeholders (0) covered by a fix of that embedding; every other id is the same.
TEST(TextualInversionGolden, TokensMatchDiffusers) {
    const auto* m = dynamic_cast<const SDModel*>(&model("sd1"));
    ASSERT_NE(m, nullptr);
    int checked = 0;
    for (const std::string& name : case_names()) {
        const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
        if (j["model"] != "sd1") continue;
        const GenerateParams p = params_of(j);
        const auto emb = clip_embeddings(p.embeddings.get(), m->tokenizer, "", "", m->text_encoder.config().hidden_size);
        clip::ChunkOptions o;
        o.pad_id = m->pad_id;
        o.embeddings = &emb;
        for (const auto& [text, key] : {std::pair{p.prompt, name + ".ids"}, std::pair{p.negative_prompt, name + ".neg_ids"}}) {
            auto wp = clip::tokenize_weighted(m->tokenizer, text, o);
            ASSERT_TRUE(wp) << wp.error().to_string();
            const Tensor want = cases().find(key)->to(DType::I32).contiguous();
            const std::vector<int32_t>& ids = wp->chunks[0].ids;
            ASSERT_EQ(int64_t(ids.size()), want.numel()) << key;
            for (size_t k = 0; k < ids.size(); ++k) {
                const int32_t w = want.data<int32_t>()[k];
                if (w >= m->text_encoder.config().vocab_size) {
                    bool covered = false;
                    for (const auto& f : wp->chunks[0].fixes)
                        covered |= int(k) >= f.position && int(k) < f.position + int(f.embedding->vectors.size(0));
                    EXPECT_TRUE(ids[k] == 0 && covered) << key << " position " << k << ": diffusers' id " << w << ", ours " << ids[k];
                } else {
                    EXPECT_EQ(ids[k], w) << key << " position " << k;
                }
            }
            ++checked;
        }
    }
    std::printf("%d token sequences checked\n", checked);
    EXPECT_GT(checked, 0);
}

class TextualInversionCase : public ::testing::TestWithParam<std::string> {};

TEST_P(TextualInversionCase, MatchesDiffusers) {
    const std::string name = GetParam();
    const nlohmann::json j = nlohmann::json::parse(cases().metadata.at(name + ".params"));
    const GenerateParams p = params_of(j);
    auto out = generate(model(j["model"]), p);
    ASSERT_TRUE(out) << out.error().to_string();
    const easel::testing::Tolerance tol{.atol = 2e-3, .rtol = 2e-4};
    if (cases().find(name + ".image")->rank() == 3) easel::testing::expect_matches_hwc_case((*out)[0], cases(), name, name, tol);
    else easel::testing::expect_matches_case((*out)[0], cases(), name, name, tol);
    // A1111's "TI hashes" for what the prompts used.
    const bool uses = !j["embeddings"].empty();
    EXPECT_EQ((*out)[0].infotext.find("TI hashes: ") != std::string::npos, uses) << (*out)[0].infotext;
}

INSTANTIATE_TEST_SUITE_P(Cases, TextualInversionCase, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });
