// SD 1.x / 2.x behind the family interfaces (loading: sd_load.cpp).
#include "pipeline/families/sd.h"

#include <algorithm>

#include <fmt/format.h>

#include "models/clip/prompt_parser.h"
#include "pipeline/controlnet.h"
#include "pipeline/ip_adapter.h"
#include "pipeline/families/clip_prompt.h"
#include "runtime/ops.h"

namespace easel {

Result<Tensor> encode_prompt(const Ctx& c, const SDModel& m, const std::string& prompt, int clip_skip, int min_chunks,
                             const std::vector<clip::Embedding>* embeddings, std::vector<std::string>* used) {
    clip::ChunkOptions opt;
    opt.pad_id = m.pad_id;
    opt.embeddings = embeddings;
    EASEL_TRY_ASSIGN(clip::WeightedPrompt wp, clip::tokenize_weighted(m.tokenizer, prompt, opt));
    EASEL_TRY(pad_chunks(wp, m.tokenizer, opt, min_chunks));
    if (used) note_embeddings(wp, *used);
    std::vector<Tensor> parts;
    for (const clip::PromptChunk& ch : wp.chunks) {
        Tensor z = m.text_encoder.encode(c, {ch.ids}, {.clip_skip = clip_skip, .fixes = chunk_fixes(ch)}).hidden;  // [1, 77, D]
        apply_a1111_emphasis(z, ch.weights);
        parts.push_back(z);
    }
    return parts.size() == 1 ? parts[0] : ops::concat(c, parts, 1);
}

Result<ConditioningPair> SDConditioner::encode(const Ctx& c, const PromptRequest& p) const {
    ConditioningPair r;
    // One-encoder embeddings of this encoder's width (SD 1.x 768, SD 2.x 1024).
    const std::vector<clip::Embedding> emb =
        clip_embeddings(p.embeddings.get(), m_.tokenizer, "", "", m_.text_encoder.config().hidden_size);
    std::vector<std::string>* used = &r.embeddings_used;
    EASEL_TRY_ASSIGN(r.cond.context, encode_prompt(c, m_, p.prompt, p.clip_skip, 1, &emb, used));
    const int chunks = int(r.cond.context.size(1) / 77);
    EASEL_TRY_ASSIGN(r.uncond.context, encode_prompt(c, m_, p.negative, p.clip_skip, chunks, &emb, used));
    if (r.uncond.context.size(1) > r.cond.context.size(1)) {
        // A1111 pads the shorter conditioning with empty chunks so both have the same length.
        EASEL_TRY_ASSIGN(r.cond.context, encode_prompt(c, m_, p.prompt, p.clip_skip, int(r.uncond.context.size(1) / 77), &emb));
    }
    return r;
}

Result<Tensor> SDDiffusionModel::predict(const Ctx& c, const Tensor& x, float t, const DiffusionInputs& in) const {
    const int expected = unet_.config().in_channels;
    const Tensor xin = in.concat ? ops::concat(c, {x, *in.concat}, 1) : x;
    EASEL_ASSERT(xin.size(1) == expected, "SDDiffusionModel: the driver's input channels differ from the UNet's");
    EASEL_TRY_ASSIGN(const auto control, control_residuals(in.control, unet_.config()));
    EASEL_TRY(check_image_prompts(*in.cond, unet_.config()));
    return unet_.forward(c, xin, t, in.cond->context, nullptr, control ? &*control : nullptr, in.cond->extra_kv);
}

std::string SDModel::describe() const {
    std::string s = fmt::format("{}: {} ({}), weights {}\n  text encoder: {}\n  unet: {}\n  vae: {}", path,
                                model_kind_name(info), layout_name(info.layout), dtype_name(info.weight_dtype),
                                info.text.summary(), info.unet.summary(), info.vae.summary());
    for (const auto& n : info.notes) s += "\n  note: " + n;
    for (const auto& n : notes) s += "\n  note: " + n;
    return s;
}

}  // namespace easel
