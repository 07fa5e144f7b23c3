#include "io/torch_checkpoint.h"

#include <array>
#include <cctype>
#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <unordered_map>

#include <fmt/format.h>

#include "core/log.h"
#include "io/mapped_file.h"
#include "io/zip.h"

namespace easel {

// Layouts follow torch/serialization.py and torch/_utils.py of torch 1.13 (checked against 2.x): the zip
// writer puts `<top>/data.pkl` and one stored member `<top>/data/<key>` per storage; tensors are pickled as
// torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[,
// metadata]) with the storage as persistent id ('storage', torch.<T>Storage, key, location, numel). The legacy
// writer (_legacy_save) emits five pickles (magic number, protocol version, sys_info, the object, the sorted
// storage keys) and then, per key, an int64 element count and the raw bytes.

namespace {

constexpr std::string_view kComponent = "ckpt";

// Every entry is inert here: a Record is only remembered, never run. The tensor rebuilds are interpreted below;
// the rest (Lightning callback state, numpy scalars) is skipped as non-tensor data.
constexpr AllowedGlobal kTorchGlobals[] = {
    {"torch._utils", "_rebuild_tensor_v2", GlobalUse::Record, 6, 7},
    {"torch._utils", "_rebuild_tensor", GlobalUse::Record, 4, 4},
    {"torch._utils", "_rebuild_parameter", GlobalUse::Record, 3, 3},
    {"torch._utils", "_rebuild_parameter_with_state", GlobalUse::Record, 4, 4},
    {"torch._tensor", "_rebuild_from_type_v2", GlobalUse::Record, 4, 4},
    {"torch", "FloatStorage", GlobalUse::Reference, 0, 0},
    {"torch", "HalfStorage", GlobalUse::Reference, 0, 0},
    {"torch", "BFloat16Storage", GlobalUse::Reference, 0, 0},
    {"torch", "DoubleStorage", GlobalUse::Reference, 0, 0},
    {"torch", "LongStorage", GlobalUse::Reference, 0, 0},
    {"torch", "IntStorage", GlobalUse::Reference, 0, 0},
    {"torch", "ShortStorage", GlobalUse::Reference, 0, 0},
    {"torch", "CharStorage", GlobalUse::Reference, 0, 0},
    {"torch", "ByteStorage", GlobalUse::Reference, 0, 0},
    {"torch", "BoolStorage", GlobalUse::Reference, 0, 0},
    {"torch", "Tensor", GlobalUse::Reference, 0, 0},
    {"torch.nn.parameter", "Parameter", GlobalUse::Reference, 0, 0},
    {"torch", "float32", GlobalUse::Reference, 0, 0},
    {"torch", "float16", GlobalUse::Reference, 0, 0},
    {"torch", "bfloat16", GlobalUse::Reference, 0, 0},
    {"torch", "Size", GlobalUse::Tuple, 0, 1},
    {"torch", "device", GlobalUse::Record, 1, 2},
    {"torch.torch_version", "TorchVersion", GlobalUse::Record, 0, 1},
    {"torch.nn.modules.container", "ParameterDict", GlobalUse::Record, 0, 1},
    {"collections", "OrderedDict", GlobalUse::Dict, 0, 1},
    {"builtins", "set", GlobalUse::Set, 0, 1},
    {"__builtin__", "set", GlobalUse::Set, 0, 1},  // protocol-2 pickles spell builtins this way
    {"builtins", "frozenset", GlobalUse::Set, 0, 1},
    {"__builtin__", "frozenset", GlobalUse::Set, 0, 1},
    // Training state in Lightning checkpoints (SD 1.x sd-v1-*.ckpt carry the ModelCheckpoint callback and its
    // best score as a numpy scalar built from _codecs.encode bytes). Recorded, never interpreted.
    {"pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint", GlobalUse::Record, 0, 4},
    {"pytorch_lightning.callbacks", "model_checkpoint", GlobalUse::Reference, 0, 0},
    {"numpy.core.multiarray", "scalar", GlobalUse::Record, 1, 2},
    {"numpy.core.multiarray", "_reconstruct", GlobalUse::Record, 3, 3},
    {"numpy._core.multiarray", "scalar", GlobalUse::Record, 1, 2},
    {"numpy._core.multiarray", "_reconstruct", GlobalUse::Record, 3, 3},
    {"numpy", "dtype", GlobalUse::Record, 1, 3},
    {"numpy", "ndarray", GlobalUse::Reference, 0, 0},
    {"_codecs", "encode", GlobalUse::Record, 1, 2},
};

std::optional<DType> storage_dtype(std::string_view qualified) {
    static constexpr std::pair<std::string_view, DType> table[] = {
        {"torch.FloatStorage", DType::F32}, {"torch.HalfStorage", DType::F16},  {"torch.BFloat16Storage", DType::BF16},
        {"torch.DoubleStorage", DType::F64}, {"torch.LongStorage", DType::I64}, {"torch.IntStorage", DType::I32},
        {"torch.ShortStorage", DType::I16}, {"torch.CharStorage", DType::I8},   {"torch.ByteStorage", DType::U8},
        {"torch.BoolStorage", DType::Bool},
    };
    for (const auto& [n, t] : table)
        if (n == qualified) return t;
    return std::nullopt;
}

// One storage as the persistent id describes it.
struct StorageRef {
    DType dtype = DType::F32;
    std::string key;
    int64_t numel = 0;
};

// The bytes of one storage, element-aligned.
struct StorageBytes {
    const uint8_t* data = nullptr;
    size_t size = 0;
    std::shared_ptr<const void> owner;
};

Result<StorageRef> parse_storage_id(const PickleValue* pid_value, const std::string& where) {
    auto bad = [&](const std::string& m) {
        return Error::bad_file(where, fmt::format("persistent id at pickle byte {}: {}", pid_value->offset, m));
    };
    if (pid_value->kind != PickleKind::PersistentId || pid_value->items.size() != 1) return bad("not a persistent id");
    const PickleValue* pid = pid_value->items[0];
    if (pid->kind != PickleKind::Tuple || pid->items.empty())
        return bad(fmt::format("is a {}; expected a tuple ('storage', type, key, location, numel)", pickle_kind_name(pid->kind)));
    if (!pid->items[0]->is_str("storage"))
        return Error::unsupported(fmt::format("persistent id at pickle byte {} is not a storage (only tensor storages "
                                              "are read; whole pickled modules are not)", pid_value->offset), where);
    // zip: 5 items; legacy: 6 (the last is view metadata, None unless a storage was saved as a view).
    if (pid->items.size() != 5 && pid->items.size() != 6)
        return bad(fmt::format("has {} items; expected 5 ('storage', type, key, location, numel)", pid->items.size()));
    const PickleValue* type = pid->items[1];
    const PickleValue* key = pid->items[2];
    const PickleValue* numel = pid->items[4];
    if (type->kind != PickleKind::Global) return bad("storage type is not a torch storage class");
    const std::optional<DType> dt = storage_dtype(type->text);
    if (!dt) return Error::unsupported(fmt::format("storage type '{}' is not supported", type->text), where);
    if (key->kind != PickleKind::Str || key->text.empty() || key->text.size() > 64)
        return bad("storage key is not a short string");
    for (char c : key->text)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return bad("storage key has characters other than [A-Za-z0-9_]");
    if (numel->kind != PickleKind::Int || numel->integer < 0) return bad("storage size is not a non-negative integer");
    if (pid->items.size() == 6 && pid->items[5]->kind != PickleKind::None)
        return Error::unsupported("legacy storage views (view_metadata) are not supported", where);
    return StorageRef{*dt, key->text, numel->integer};
}

Result<std::vector<int64_t>> int_tuple(const PickleValue* v, const char* what, const std::string& where) {
    if (v->kind != PickleKind::Tuple && v->kind != PickleKind::List)
        return Error::bad_file(where, fmt::format("tensor {} at pickle byte {} is a {}, not a tuple of ints", what,
                                                  v->offset, pickle_kind_name(v->kind)));
    if (v->items.size() > size_t(kMaxRank))
        return Error::unsupported(fmt::format("tensor at pickle byte {} has rank {}; at most {} is supported",
                                              v->offset, v->items.size(), kMaxRank), where);
    std::vector<int64_t> out;
    for (const PickleValue* x : v->items) {
        if (x->kind != PickleKind::Int || x->integer < 0)
            return Error::bad_file(where, fmt::format("tensor {} at pickle byte {} holds something other than a "
                                                      "non-negative int", what, v->offset));
        out.push_back(x->integer);
    }
    return out;
}

using StorageLookup = std::function<Result<StorageBytes>(const StorageRef&)>;

class TensorBuilder {
public:
    TensorBuilder(StorageLookup lookup, std::string where) : lookup_(std::move(lookup)), where_(std::move(where)) {}

    // True if `v` is a tensor record (whether or not it is well-formed).
    static bool is_tensor(const PickleValue* v) {
        if (v->kind != PickleKind::Call) return false;
        const std::string& f = v->callee->text;
        return f.starts_with("torch._utils._rebuild_") || f == "torch._tensor._rebuild_from_type_v2";
    }

    Result<Tensor> build(const PickleValue* v, int depth = 0) {
        if (depth > 4) return bad(v, "tensor records nested too deeply");
        const std::string& f = v->callee->text;
        const auto& a = v->items;
        if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
            if (!is_tensor(a[0])) return bad(v, "a parameter whose data is not a tensor");
            return build(a[0], depth + 1);
        }
        if (f == "torch._tensor._rebuild_from_type_v2") {
            // (func, new_type, args, state): func must itself be a tensor rebuild, new_type a tensor class.
            if (a[0]->kind != PickleKind::Global || !a[0]->text.starts_with("torch._utils._rebuild_tensor") ||
                a[1]->kind != PickleKind::Global || a[2]->kind != PickleKind::Tuple)
                return bad(v, "_rebuild_from_type_v2 of something other than a plain tensor");
            PickleValue inner;
            inner.kind = PickleKind::Call;
            inner.callee = a[0];
            inner.items = a[2]->items;
            inner.offset = v->offset;
            const size_t n = inner.items.size();
            if ((a[0]->text == "torch._utils._rebuild_tensor_v2" && (n < 6 || n > 7)) ||
                (a[0]->text == "torch._utils._rebuild_tensor" && n != 4))
                return bad(v, "_rebuild_from_type_v2 with the wrong number of tensor arguments");
            return build(&inner, depth + 1);
        }
        if (f != "torch._utils._rebuild_tensor_v2" && f != "torch._utils._rebuild_tensor")
            return bad(v, fmt::format("unsupported tensor record '{}'", f));

        EASEL_TRY_ASSIGN(StorageRef sref, parse_storage_id(a[0], where_));
        if (a[1]->kind != PickleKind::Int || a[1]->integer < 0) return bad(v, "storage offset is not a non-negative int");
        const int64_t offset = a[1]->integer;
        EASEL_TRY_ASSIGN(std::vector<int64_t> size, int_tuple(a[2], "size", where_));
        EASEL_TRY_ASSIGN(std::vector<int64_t> stride, int_tuple(a[3], "stride", where_));
        if (size.size() != stride.size())
            return bad(v, fmt::format("size has {} dims but stride has {}", size.size(), stride.size()));

        // The last element the view touches must lie inside the storage; computed without overflow.
        const size_t esize = dtype_size(sref.dtype);
        uint64_t numel = 1, last = uint64_t(offset);
        for (size_t i = 0; i < size.size(); ++i) {
            uint64_t reach = 0;
            if (__builtin_mul_overflow(numel, uint64_t(size[i]), &numel) || numel > uint64_t(INT64_MAX))
                return bad(v, "element count overflows");
            if (size[i] > 0 && (__builtin_mul_overflow(uint64_t(size[i] - 1), uint64_t(stride[i]), &reach) ||
                                __builtin_add_overflow(last, reach, &last)))
                return bad(v, "view extent overflows");
        }
        {
            std::vector<uint64_t> udims;
            for (int64_t d : size) udims.push_back(d < 0 ? UINT64_MAX : uint64_t(d));
            if (!dims_fit_int64(udims.data(), udims.size())) return bad(v, "element count overflows");
        }
        if (numel > 0 && last >= uint64_t(sref.numel))
            return bad(v, fmt::format("view (offset {}, size {}, stride {}) reaches element {} of a storage of {} "
                                      "elements", offset, fmt::join(size, "x"), fmt::join(stride, ","), last,
                                      sref.numel));

        EASEL_TRY_ASSIGN(StorageBytes sb, storage(sref));
        const uint8_t* base = sb.data + (numel > 0 ? size_t(offset) * esize : 0);
        auto keep = std::const_pointer_cast<void>(sb.owner);
        return Tensor::wrap_strided(const_cast<uint8_t*>(base), Shape(size), Shape(stride), sref.dtype, std::move(keep));
    }

private:
    Error bad(const PickleValue* v, const std::string& m) const {
        return Error::bad_file(where_, fmt::format("tensor record at pickle byte {}: {}", v->offset, m));
    }

    // Storages are looked up once; two tensors over one key share the bytes (views of one storage).
    Result<StorageBytes> storage(const StorageRef& s) {
        auto it = cache_.find(s.key);
        if (it != cache_.end()) {
            if (it->second.first != s.dtype || it->second.second.size / dtype_size(s.dtype) < uint64_t(s.numel))
                return Error::bad_file(where_, fmt::format("storage '{}' is named with two different types or sizes", s.key));
            return it->second.second;
        }
        EASEL_TRY_ASSIGN(StorageBytes b, lookup_(s));
        cache_.emplace(s.key, std::make_pair(s.dtype, b));
        return b;
    }

    StorageLookup lookup_;
    std::string where_;
    std::unordered_map<std::string, std::pair<DType, StorageBytes>> cache_;
};

// Bytes that are not aligned to their element size are copied (only possible in re-zipped or legacy files;
// torch's own zip writer aligns every member to 64 bytes).
Result<StorageBytes> aligned(const uint8_t* p, size_t n, size_t esize, std::shared_ptr<const void> owner) {
    if (reinterpret_cast<uintptr_t>(p) % esize == 0) return StorageBytes{p, n, std::move(owner)};
    auto buf = std::shared_ptr<uint8_t[]>(new (std::nothrow) uint8_t[std::max<size_t>(n, 1)]);
    if (!buf) return Error::exhausted(fmt::format("no memory to copy an unaligned storage of {} bytes", n));
    std::memcpy(buf.get(), p, n);
    return StorageBytes{buf.get(), n, std::shared_ptr<const void>(buf, buf.get())};
}

std::string describe_leaf(const PickleValue* v) {
    switch (v->kind) {
        case PickleKind::Int: return std::to_string(v->integer);
        case PickleKind::Float: return fmt::format("{}", v->real);
        case PickleKind::Bool: return v->boolean ? "True" : "False";
        case PickleKind::Str: return v->text.size() <= 200 ? v->text : v->text.substr(0, 200) + "...";
        case PickleKind::Call: return fmt::format("<{}>", v->callee->text);
        default: return fmt::format("<{}>", pickle_kind_name(v->kind));
    }
}

constexpr int kMaxDictDepth = 64;
// Real names are under 200 bytes. Both bounds keep a hostile pickle (a key of a megabyte, a dict reached along
// exponentially many paths through shared sub-dicts) from making us build gigabytes of names.
constexpr size_t kMaxNameBytes = 1024;

struct FlattenState {
    TensorBuilder& tb;
    WeightSet& out;
    std::vector<std::string>& skipped;
    const std::string& where;
    size_t visits_left;
};

// Flattens nested dicts into dotted names; non-tensor leaves are skipped (listed at debug level).
Status flatten(const PickleValue* dict, const std::string& prefix, int depth, FlattenState& st) {
    TensorBuilder& tb = st.tb;
    WeightSet& out = st.out;
    std::vector<std::string>& skipped = st.skipped;
    const std::string& where = st.where;
    if (depth > kMaxDictDepth)
        return Error::bad_file(where, fmt::format("dicts nested more than {} deep at '{}' (or a dict that contains "
                                                  "itself)", kMaxDictDepth, prefix));
    for (const auto& [k, v] : dict->entries) {
        std::string key;
        if (k->kind == PickleKind::Str) key = k->text;
        else if (k->kind == PickleKind::Int) key = std::to_string(k->integer);
        else {
            skipped.push_back(fmt::format("{}<{} key>", prefix, pickle_kind_name(k->kind)));
            continue;
        }
        if (st.visits_left-- == 0)
            return Error::bad_file(where, "dict entries are reached along more paths than the pickle has values "
                                          "(shared sub-dicts used as a multiplier)");
        if (prefix.size() + key.size() > kMaxNameBytes)
            return Error::bad_file(where, fmt::format("a name longer than {} bytes under '{}'", kMaxNameBytes,
                                                      prefix.substr(0, 100)));
        const std::string name = prefix + key;
        if (TensorBuilder::is_tensor(v)) {
            EASEL_TRY_ASSIGN(Tensor t, tb.build(v));
            EASEL_TRY(out.add(name, std::move(t)));
        } else if (v->kind == PickleKind::Dict) {
            EASEL_TRY(flatten(v, name + ".", depth + 1, st));
        } else {
            skipped.push_back(fmt::format("{} = {}", name, describe_leaf(v)));
        }
    }
    return ok();
}

Result<WeightSet> weights_from_pickle(const PickleDocument& doc, TensorBuilder& tb, const std::string& where) {
    const PickleValue* root = doc.root;
    if (root->kind != PickleKind::Dict)
        return Error::unsupported(fmt::format("the checkpoint holds a {}, not a dict of tensors (a whole pickled "
                                              "model cannot be read without running its code)",
                                              pickle_kind_name(root->kind)), where);
    WeightSet w;
    w.source = where;
    std::vector<std::string> skipped;
    const PickleValue* sd = root->get("state_dict");
    if (sd && sd->kind == PickleKind::Dict) {
        // Lightning checkpoint: the weights are under "state_dict"; keep the scalars beside it as metadata.
        for (const auto& [k, v] : root->entries) {
            if (k->kind != PickleKind::Str || k->text == "state_dict") continue;
            if (v->kind == PickleKind::Int || v->kind == PickleKind::Float || v->kind == PickleKind::Str ||
                v->kind == PickleKind::Bool)
                w.metadata[k->text] = describe_leaf(v);
            else
                skipped.push_back(fmt::format("{} = {}", k->text, describe_leaf(v)));
        }
        root = sd;
    }
    FlattenState st{tb, w, skipped, where, 2 * doc.values->size() + 1024};
    EASEL_TRY(flatten(root, "", 0, st));
    for (const std::string& s : skipped) log_debug(kComponent, "{}: skipped non-tensor entry {}", where, s);
    return w;
}

PickleOptions checkpoint_pickle_options(std::string source) {
    PickleOptions o;
    o.allowed = torch_checkpoint_globals();
    o.source = std::move(source);
    return o;
}

Result<WeightSet> read_zip_checkpoint(const uint8_t* data, size_t size, const std::shared_ptr<const void>& keep_alive,
                                      const std::string& name) {
    EASEL_TRY_ASSIGN(ZipArchive zip, ZipArchive::open(data, size, name));
    // The pickle is `<top>/data.pkl`; torch names <top> after the file it saved to, so it varies.
    const ZipEntry* pkl = nullptr;
    for (const ZipEntry& e : zip.entries()) {
        const size_t slash = e.name.find('/');
        if (slash != std::string::npos && slash > 0 && e.name.substr(slash + 1) == "data.pkl") {
            if (pkl)
                return Error::bad_file(name, fmt::format("two pickles in one checkpoint: '{}' and '{}'", pkl->name, e.name));
            pkl = &e;
        }
    }
    if (!pkl)
        return Error::bad_file(name, "zip archive has no '<folder>/data.pkl' member: not a PyTorch checkpoint");
    const std::string top = pkl->name.substr(0, pkl->name.find('/'));

    if (const ZipEntry* bo = zip.find(top + "/byteorder")) {
        EASEL_TRY_ASSIGN(ZipMemberData b, zip.read(*bo, true));
        if (std::string_view(reinterpret_cast<const char*>(b.data), b.size) != "little")
            return Error::unsupported("checkpoint was saved big-endian (byteorder member is not 'little')", name);
    }

    EASEL_TRY_ASSIGN(ZipMemberData pkl_bytes, zip.read(*pkl, /*verify_crc=*/true));
    EASEL_TRY_ASSIGN(PickleDocument doc,
                     parse_pickle(pkl_bytes.data, pkl_bytes.size, checkpoint_pickle_options(name + ":" + pkl->name)));

    StorageLookup lookup = [&](const StorageRef& s) -> Result<StorageBytes> {
        const std::string member = top + "/data/" + s.key;
        const ZipEntry* e = zip.find(member);
        if (!e) return Error::bad_file(name, fmt::format("storage '{}' has no member '{}'", s.key, member));
        const size_t esize = dtype_size(s.dtype);
        if (e->size / esize < uint64_t(s.numel))
            return Error::bad_file(name, fmt::format("member '{}' holds {} bytes but its storage needs {} elements of "
                                                     "{} bytes", member, e->size, s.numel, esize));
        EASEL_TRY_ASSIGN(ZipMemberData m, zip.read(*e, /*verify_crc=*/false));
        return aligned(m.data, m.size, esize, m.owner ? m.owner : keep_alive);
    };
    TensorBuilder tb(lookup, name);
    EASEL_TRY_ASSIGN(WeightSet w, weights_from_pickle(doc, tb, name));
    w.metadata["format"] = "torch zip";
    return w;
}

// Legacy (pre-1.6) format: pickles back to back, then the storages in the order of the key list.
Result<WeightSet> read_legacy_checkpoint(const uint8_t* data, size_t size, const std::shared_ptr<const void>& keep_alive,
                                         const std::string& name) {
    size_t pos = 0;
    auto next = [&](const char* what) -> Result<PickleDocument> {
        auto r = parse_pickle(data + pos, size - pos, checkpoint_pickle_options(fmt::format("{}: {} (at byte {})", name, what, pos)));
        if (r) pos += r->end_offset;
        return r;
    };
    // The magic number 0x1950a86a20f9469cfc6c is pickled as a 10-byte LONG1.
    EASEL_TRY_ASSIGN(PickleDocument magic, next("magic number"));
    static constexpr std::array<uint8_t, 10> kMagicLE = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
    if (magic.root->kind != PickleKind::BigInt ||
        magic.root->text != std::string_view(reinterpret_cast<const char*>(kMagicLE.data()), kMagicLE.size()))
        return Error::bad_file(name, "neither a zip archive nor a legacy PyTorch file (wrong magic number)");
    EASEL_TRY_ASSIGN(PickleDocument proto, next("protocol version"));
    if (proto.root->kind != PickleKind::Int || proto.root->integer != 1001)
        return Error::unsupported("legacy PyTorch file with a protocol version other than 1001", name);
    EASEL_TRY_ASSIGN(PickleDocument sys_info, next("sys_info"));
    if (const PickleValue* le = sys_info.root->get("little_endian"); le && le->kind == PickleKind::Bool && !le->boolean)
        return Error::unsupported("legacy PyTorch file saved on a big-endian machine", name);
    EASEL_TRY_ASSIGN(PickleDocument obj, next("object"));
    EASEL_TRY_ASSIGN(PickleDocument keys, next("storage keys"));
    if (keys.root->kind != PickleKind::List)
        return Error::bad_file(name, "legacy file: the storage key list is not a list");

    // Each storage's dtype comes from the persistent ids that name it.
    std::unordered_map<std::string, StorageRef> refs;
    for (const PickleValue& v : *obj.values) {
        if (v.kind != PickleKind::PersistentId) continue;
        EASEL_TRY_ASSIGN(StorageRef r, parse_storage_id(&v, name));
        auto [it, inserted] = refs.emplace(r.key, r);
        if (!inserted && it->second.dtype != r.dtype)
            return Error::bad_file(name, fmt::format("legacy file: storage '{}' is named with two types", r.key));
    }
    std::unordered_map<std::string, StorageBytes> storages;
    for (const PickleValue* k : keys.root->items) {
        if (k->kind != PickleKind::Str) return Error::bad_file(name, "legacy file: a storage key is not a string");
        auto it = refs.find(k->text);
        if (it == refs.end()) return Error::bad_file(name, fmt::format("legacy file: storage '{}' is not used", k->text));
        if (storages.count(k->text)) return Error::bad_file(name, fmt::format("legacy file: storage '{}' listed twice", k->text));
        const size_t esize = dtype_size(it->second.dtype);
        if (size - pos < 8)
            return Error::bad_file(name, fmt::format("legacy file: storage '{}' at byte {} is truncated", k->text, pos));
        uint64_t numel = 0;
        for (int i = 7; i >= 0; --i) numel = (numel << 8) | data[pos + size_t(i)];
        pos += 8;
        if (numel != uint64_t(it->second.numel) || numel > (size - pos) / esize)
            return Error::bad_file(name, fmt::format("legacy file: storage '{}' at byte {} says {} elements; the "
                                                     "pickle says {} and {} bytes remain", k->text, pos - 8, numel,
                                                     it->second.numel, size - pos));
        const size_t nbytes = size_t(numel) * esize;
        EASEL_TRY_ASSIGN(StorageBytes sb, aligned(data + pos, nbytes, esize, keep_alive));
        storages.emplace(k->text, std::move(sb));
        pos += nbytes;
    }
    StorageLookup lookup = [&](const StorageRef& s) -> Result<StorageBytes> {
        auto it = storages.find(s.key);
        if (it == storages.end())
            return Error::bad_file(name, fmt::format("legacy file: storage '{}' is missing from the key list", s.key));
        return it->second;
    };
    TensorBuilder tb(lookup, name);
    EASEL_TRY_ASSIGN(WeightSet w, weights_from_pickle(obj, tb, name));
    w.metadata["format"] = "torch legacy";
    return w;
}

}  // namespace

std::span<const AllowedGlobal> torch_checkpoint_globals() { return kTorchGlobals; }

Result<WeightSet> read_torch_checkpoint_bytes(const uint8_t* data, size_t size, std::shared_ptr<const void> keep_alive,
                                              const std::string& name) {
    if (size == 0) return Error::bad_file(name, "file is empty");
    if (ZipArchive::looks_like_zip(data, size)) return read_zip_checkpoint(data, size, keep_alive, name);
    if (data[0] == 0x80) return read_legacy_checkpoint(data, size, keep_alive, name);  // PROTO opcode
    return Error::bad_file(name, fmt::format("starts with bytes {:02x} {:02x}: neither a zip archive (torch >= 1.6) nor "
                                             "a legacy PyTorch pickle", data[0], size > 1 ? data[1] : 0));
}

Result<WeightSet> read_torch_checkpoint(const std::string& path) {
    EASEL_TRY_ASSIGN(std::shared_ptr<const MappedFile> f, MappedFile::open(path));
    EASEL_TRY_ASSIGN(WeightSet w, read_torch_checkpoint_bytes(f->data(), f->size(), f, path));
    w.source = path;
    return w;
}

}  // namespace easel
