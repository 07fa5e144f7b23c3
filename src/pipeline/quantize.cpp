#include "pipeline/quantize.h"

#include <filesystem>

#include <fmt/format.h>

#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/mapped_file.h"
#include "io/model_file.h"

namespace easel {

namespace {

bool has(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

QuantType fallback(QuantType t) {
    switch (t) {
        case QuantType::Q4_K: return QuantType::Q4_1;
        case QuantType::Q5_K: return QuantType::Q5_1;
        case QuantType::Q6_K: return QuantType::Q8_0;
        default: return QuantType::None;
    }
}

// ComfyUI-GGUF's general.architecture names, from the tensor names.
std::string architecture(const WeightSet& w) {
    bool sd = false, sdxl = false;
    for (const std::string& n : w.names()) {
        if (has(n, "double_blocks.")) return "flux";
        if (has(n, "joint_blocks.")) return "sd3";
        sdxl |= has(n, "conditioner.embedders.1.") || has(n, "label_emb.0.");
        sd |= has(n, "input_blocks.");
    }
    return sdxl ? "sdxl" : sd ? "sd1" : "";
}

// What a tensor that is not quantized is stored as.
DType kept_dtype(const Tensor& t) {
    if (t.quant() == QuantType::F8_E4M3 || t.quant() == QuantType::F8_E5M2) return DType::F16;
    if (t.dtype() == DType::F64) return DType::F32;
    return t.dtype();
}

}  // namespace

QuantType quantize_choice(const std::string& name, const Tensor& t, QuantType type) {
    const bool floating = dtype_is_float(t.dtype()) || t.quantized();
    if (!floating || t.rank() != 2 || name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) return QuantType::None;
    if (has(name, "embedding") || has(name, "embed_tokens") || has(name, "shared.weight") || has(name, "pos_embed"))
        return QuantType::None;
    const int64_t k = t.size(1);
    if (k % quant_info(type).block_elems == 0) return type;
    const QuantType f = fallback(type);
    return f != QuantType::None && k % quant_info(f).block_elems == 0 ? f : QuantType::None;
}

Tensor quantize_tensor(const Tensor& t, QuantType type) {
    const Tensor f = t.to(DType::F32).contiguous();
    auto bytes = std::make_shared<std::vector<uint8_t>>(quant_bytes(type, f.numel()));
    const int64_t rows = f.size(0), k = f.size(1);
    parallel_for(rows, [&](int64_t r0, int64_t r1) {
        quantize(type, f.data<float>() + r0 * k, bytes->data() + quant_bytes(type, r0 * k),
                 size_t((r1 - r0) * k) / quant_info(type).block_elems);
    });
    return Tensor::wrap_quantized(bytes->data(), f.shape(), type, std::shared_ptr<void>(bytes, bytes->data()));
}

Result<QuantizeReport> quantize_model_file(const std::string& in, const std::string& out, const QuantizeOptions& options) {
    const QuantInfo& target = quant_info(options.type);
    if (!target.can_quantize)
        return Error::invalid_argument(fmt::format("cannot write {}; easel quantizes to {}", target.name, quantizable_names()),
                                       "--type");
    std::error_code ec;
    if (std::filesystem::is_directory(in, ec))
        return Error::invalid_argument("a diffusers folder: quantize its single-file checkpoint, or each component's "
                                       "weight file", in);
    EASEL_TRY_ASSIGN(WeightSet w, read_weights(in));

    QuantizeReport report;
    report.architecture = architecture(w);
    std::map<std::string, std::string> meta = w.metadata;
    if (!report.architecture.empty() && !meta.count("general.architecture")) meta["general.architecture"] = report.architecture;
    meta["general.quantization_version"] = "2";
    meta["easel.quantized"] = fmt::format("{} from {}", target.name, std::filesystem::path(in).filename().string());

    std::vector<GgufTensorPlan> plan;
    std::vector<std::string> as;
    for (const std::string& n : w.names()) {
        const Tensor& t = *w.find(n);
        GgufTensorPlan p;
        p.name = n;
        p.shape = t.rank() == 0 ? Shape{1} : t.shape();
        if (p.shape.rank() > 4)
            return Error::unsupported(fmt::format("tensor '{}' has rank {}; GGUF holds 1 to 4 dimensions", n, p.shape.rank()), in);
        const QuantType q = quantize_choice(n, t, options.type);
        if (q != QuantType::None) {
            p.quant = q;
            ++(q == options.type ? report.quantized : report.fell_back);
            as.push_back(std::string(quant_info(q).name));
        } else if (t.quantized() && t.quant() != QuantType::F8_E4M3 && t.quant() != QuantType::F8_E5M2) {
            p.quant = t.quant();  // a GGUF input's own blocks, copied
            ++report.kept;
            as.push_back(fmt::format("{} (kept)", quant_info(t.quant()).name));
        } else {
            p.dtype = kept_dtype(t);
            ++report.kept;
            as.push_back(fmt::format("{} (kept)", dtype_name(p.dtype)));
        }
        report.bytes_in += t.nbytes();
        report.bytes_out += p.quant != QuantType::None ? quant_bytes(p.quant, p.shape.numel())
                                                       : size_t(p.shape.numel()) * dtype_size(p.dtype);
        plan.push_back(std::move(p));
    }

    auto produce = [&](size_t i) -> Result<Tensor> {
        const GgufTensorPlan& p = plan[i];
        if (options.progress) options.progress(i, plan.size(), p.name, as[i]);
        const Tensor& t = *w.find(p.name);
        Tensor result;
        if (p.quant != QuantType::None && t.quant() == p.quant) {
            result = t;
        } else if (p.quant != QuantType::None) {
            result = quantize_tensor(t, p.quant);
        } else {
            result = t.to(p.dtype).contiguous().reshape(p.shape);
        }
        return result;
    };
    EASEL_TRY(write_gguf(out, meta, plan, [&](size_t i) -> Result<Tensor> {
        // The previous tensor is written: its pages of the input file can leave memory (a no-op off a mapping).
        if (i > 0)
            if (const Tensor& prev = *w.find(plan[i - 1].name); prev.storage())
                MappedFile::release_pages(prev.raw(), prev.nbytes());
        return produce(i);
    }));
    return report;
}

}  // namespace easel
