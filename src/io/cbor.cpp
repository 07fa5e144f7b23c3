#include "io/cbor.h"

#include <cbor.h>

#include <algorithm>
#include <limits>

#include <fmt/format.h>

namespace easel {

namespace {
// A value of type `t`, with `set` filling its one payload member.
template <class F>
Cbor make(Cbor::Type t, F&& set) {
    Cbor c;
    c.type = t;
    set(c);
    return c;
}
Cbor of_type(Cbor::Type t) {
    return make(t, [](Cbor&) {});
}
}  // namespace

Cbor Cbor::integer(int64_t v) {
    return make(v >= 0 ? Type::Uint : Type::Negint, [&](Cbor& c) { c.u = v >= 0 ? uint64_t(v) : uint64_t(-(v + 1)); });
}
Cbor Cbor::text(std::string v) { return make(Type::Text, [&](Cbor& c) { c.s = std::move(v); }); }
Cbor Cbor::bytes(std::vector<uint8_t> v) { return make(Type::Bytes, [&](Cbor& c) { c.bin = std::move(v); }); }
Cbor Cbor::array(std::vector<Cbor> v) { return make(Type::Array, [&](Cbor& c) { c.items = std::move(v); }); }
Cbor Cbor::map(std::vector<CborEntry> v) { return make(Type::Map, [&](Cbor& c) { c.entries = std::move(v); }); }
Cbor Cbor::object(std::vector<std::pair<std::string, Cbor>> v) {
    Cbor c = of_type(Type::Map);
    for (auto& [k, val] : v) c.entries.push_back({text(k), std::move(val)});
    return c;
}
void Cbor::add(std::string key, Cbor value) { entries.push_back({text(std::move(key)), std::move(value)}); }

Cbor Cbor::tag(uint64_t number, Cbor item) {
    return make(Type::Tag, [&](Cbor& c) {
        c.u = number;
        c.items.push_back(std::move(item));
    });
}
Cbor Cbor::null() { return Cbor{}; }
Cbor Cbor::boolean(bool v) { return make(Type::Bool, [&](Cbor& c) { c.b = v; }); }

int64_t Cbor::as_int(int64_t fallback) const {
    constexpr uint64_t kMax = uint64_t(std::numeric_limits<int64_t>::max());
    if (type == Type::Uint && u <= kMax) return int64_t(u);
    if (type == Type::Negint && u <= kMax) return -int64_t(u) - 1;
    return fallback;
}

const Cbor* Cbor::get(std::string_view key) const {
    if (type != Type::Map) return nullptr;
    for (const auto& [k, v] : entries)
        if (k.type == Type::Text && k.s == key) return &v;
    return nullptr;
}

const Cbor* Cbor::get(int64_t key) const {
    if (type != Type::Map) return nullptr;
    for (const auto& [k, v] : entries)
        if (k.is_int() && k.as_int(key == 0 ? 1 : 0) == key) return &v;
    return nullptr;
}

namespace {

void encode_into(const Cbor& v, std::vector<uint8_t>& out) {
    unsigned char head[9];
    auto put = [&](size_t n) { out.insert(out.end(), head, head + n); };
    switch (v.type) {
        case Cbor::Type::Uint: put(cbor_encode_uint(v.u, head, sizeof head)); break;
        case Cbor::Type::Negint: put(cbor_encode_negint(v.u, head, sizeof head)); break;
        case Cbor::Type::Bytes:
            put(cbor_encode_bytestring_start(v.bin.size(), head, sizeof head));
            out.insert(out.end(), v.bin.begin(), v.bin.end());
            break;
        case Cbor::Type::Text:
            put(cbor_encode_string_start(v.s.size(), head, sizeof head));
            out.insert(out.end(), v.s.begin(), v.s.end());
            break;
        case Cbor::Type::Array:
            put(cbor_encode_array_start(v.items.size(), head, sizeof head));
            for (const Cbor& i : v.items) encode_into(i, out);
            break;
        case Cbor::Type::Map:
            put(cbor_encode_map_start(v.entries.size(), head, sizeof head));
            for (const auto& [k, val] : v.entries) {
                encode_into(k, out);
                encode_into(val, out);
            }
            break;
        case Cbor::Type::Tag:
            put(cbor_encode_tag(v.u, head, sizeof head));
            encode_into(v.items.empty() ? Cbor::null() : v.items[0], out);
            break;
        case Cbor::Type::Bool: put(cbor_encode_bool(v.b, head, sizeof head)); break;
        case Cbor::Type::Null: put(cbor_encode_null(head, sizeof head)); break;
        case Cbor::Type::Undefined: put(cbor_encode_undef(head, sizeof head)); break;
        case Cbor::Type::Float: put(cbor_encode_double(v.f, head, sizeof head)); break;
    }
}

constexpr size_t kMaxDepth = 32;
constexpr size_t kMaxItems = 100000;

// Builds the tree from libcbor's streaming events, with an explicit stack of open containers (arrays, maps,
// tags, indefinite strings), so no input recursion reaches the C++ stack.
struct Builder {
    struct Frame {
        Cbor value;
        int64_t remaining = -1;  // items (map: pairs) still to come; -1 = indefinite (ends at a break)
        bool have_key = false;
        Cbor key;
    };
    std::vector<Frame> stack;
    bool done = false;
    Cbor result;
    std::string error;
    size_t bytes_left = 0;
    size_t items = 0;

    void fail(std::string e) {
        if (error.empty()) error = std::move(e);
    }
    void emit(Cbor v) {
        if (!error.empty()) return;
        if (++items > kMaxItems) return fail("more than 100,000 items");
        while (true) {
            if (stack.empty()) {
                if (done) return fail("more than one item");
                done = true;
                result = std::move(v);
                return;
            }
            Frame& top = stack.back();
            if (top.value.type == Cbor::Type::Bytes || top.value.type == Cbor::Type::Text) {
                // A chunk of an indefinite string: the same major type, definite.
                if (v.type != top.value.type) return fail("an indefinite string holds a chunk of another type");
                if (v.type == Cbor::Type::Bytes)
                    top.value.bin.insert(top.value.bin.end(), v.bin.begin(), v.bin.end());
                else
                    top.value.s += v.s;
                return;
            }
            if (top.value.type == Cbor::Type::Map) {
                if (!top.have_key) {
                    top.key = std::move(v);
                    top.have_key = true;
                    return;
                }
                top.value.entries.push_back({std::move(top.key), std::move(v)});
                top.have_key = false;
            } else {
                top.value.items.push_back(std::move(v));
            }
            if (top.remaining < 0 || --top.remaining > 0) return;
            v = std::move(top.value);
            stack.pop_back();
        }
    }
    void open(Cbor container, int64_t count) {
        if (!error.empty()) return;
        if (stack.size() >= kMaxDepth) return fail("nested more than 32 deep");
        if (count == 0) return emit(std::move(container));
        stack.push_back({std::move(container), count, false, {}});
    }
    void open_sized(Cbor container, size_t count, size_t per_item) {
        // Every item takes at least a byte, so a count the bytes left cannot hold is a lie (and libcbor's own
        // tree builder would allocate it up front).
        if (count > bytes_left / per_item) return fail(fmt::format("a count of {} where {} bytes remain", count, bytes_left));
        open(std::move(container), int64_t(count));
    }
};

Builder& B(void* ctx) { return *static_cast<Builder*>(ctx); }
void on_uint(void* c, uint64_t v) {
    Cbor x;
    x.type = Cbor::Type::Uint;
    x.u = v;
    B(c).emit(std::move(x));
}
void on_negint(void* c, uint64_t v) {
    Cbor x;
    x.type = Cbor::Type::Negint;
    x.u = v;
    B(c).emit(std::move(x));
}
void on_float(void* c, double v) {
    Cbor x;
    x.type = Cbor::Type::Float;
    x.f = v;
    B(c).emit(std::move(x));
}

const cbor_callbacks kCallbacks = [] {
    cbor_callbacks cb = cbor_empty_callbacks;
    cb.uint8 = [](void* c, uint8_t v) { on_uint(c, v); };
    cb.uint16 = [](void* c, uint16_t v) { on_uint(c, v); };
    cb.uint32 = [](void* c, uint32_t v) { on_uint(c, v); };
    cb.uint64 = [](void* c, uint64_t v) { on_uint(c, v); };
    cb.negint8 = [](void* c, uint8_t v) { on_negint(c, v); };
    cb.negint16 = [](void* c, uint16_t v) { on_negint(c, v); };
    cb.negint32 = [](void* c, uint32_t v) { on_negint(c, v); };
    cb.negint64 = [](void* c, uint64_t v) { on_negint(c, v); };
    cb.byte_string = [](void* c, cbor_data d, size_t n) { B(c).emit(Cbor::bytes(std::vector<uint8_t>(d, d + n))); };
    cb.string = [](void* c, cbor_data d, size_t n) { B(c).emit(Cbor::text(std::string(reinterpret_cast<const char*>(d), n))); };
    cb.byte_string_start = [](void* c) { B(c).open(of_type(Cbor::Type::Bytes), -1); };
    cb.string_start = [](void* c) { B(c).open(of_type(Cbor::Type::Text), -1); };
    cb.array_start = [](void* c, size_t n) { B(c).open_sized(of_type(Cbor::Type::Array), n, 1); };
    cb.indef_array_start = [](void* c) { B(c).open(of_type(Cbor::Type::Array), -1); };
    cb.map_start = [](void* c, size_t n) { B(c).open_sized(of_type(Cbor::Type::Map), n, 2); };
    cb.indef_map_start = [](void* c) { B(c).open(of_type(Cbor::Type::Map), -1); };
    cb.tag = [](void* c, uint64_t v) {
        Cbor t = of_type(Cbor::Type::Tag);
        t.u = v;
        B(c).open(std::move(t), 1);
    };
    cb.float2 = [](void* c, float v) { on_float(c, v); };
    cb.float4 = [](void* c, float v) { on_float(c, v); };
    cb.float8 = [](void* c, double v) { on_float(c, v); };
    cb.undefined = [](void* c) { B(c).emit(of_type(Cbor::Type::Undefined)); };
    cb.null = [](void* c) { B(c).emit(Cbor::null()); };
    cb.boolean = [](void* c, bool v) { B(c).emit(Cbor::boolean(v)); };
    cb.indef_break = [](void* c) {
        Builder& b = B(c);
        if (!b.error.empty()) return;
        if (b.stack.empty() || b.stack.back().remaining >= 0 || b.stack.back().have_key)
            return b.fail("a break where no indefinite item is open");
        Cbor v = std::move(b.stack.back().value);
        b.stack.pop_back();
        b.emit(std::move(v));
    };
    return cb;
}();

}  // namespace

std::vector<uint8_t> cbor_encode(const Cbor& v) {
    std::vector<uint8_t> out;
    encode_into(v, out);
    return out;
}

Cbor cbor_deterministic(Cbor v) {
    for (Cbor& i : v.items) i = cbor_deterministic(std::move(i));
    if (v.type == Cbor::Type::Map) {
        std::vector<std::pair<std::vector<uint8_t>, CborEntry>> keyed;
        for (auto& [k, val] : v.entries) keyed.push_back({cbor_encode(k), {std::move(k), cbor_deterministic(std::move(val))}});
        std::sort(keyed.begin(), keyed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        v.entries.clear();
        for (auto& e : keyed) v.entries.push_back(std::move(e.second));
    }
    return v;
}

Result<Cbor> cbor_decode(const uint8_t* data, size_t size, const std::string& name) {
    Builder b;
    size_t pos = 0;
    while (pos < size) {
        if (b.done) return Error::bad_file(name, fmt::format("CBOR: {} bytes after the item's end (byte {})", size - pos, pos));
        b.bytes_left = size - pos;
        if (data[pos] >= 0xc6 && data[pos] <= 0xd4) {
            // One-byte tags 6..20: libcbor 0.8's stream decoder refuses them as unassigned, but COSE_Sign1 is tag
            // 18 (0xd2), so they are read here.
            kCallbacks.tag(&b, data[pos] & 0x1f);
            if (!b.error.empty()) return Error::bad_file(name, fmt::format("CBOR: {} (byte {})", b.error, pos));
            ++pos;
            continue;
        }
        const cbor_decoder_result r = cbor_stream_decode(data + pos, size - pos, &kCallbacks, &b);
        if (r.status == CBOR_DECODER_NEDATA) return Error::bad_file(name, fmt::format("CBOR: cut off at byte {} of {}", pos, size));
        if (r.status != CBOR_DECODER_FINISHED || r.read == 0)
            return Error::bad_file(name, fmt::format("CBOR: malformed item at byte {}", pos));
        if (!b.error.empty()) return Error::bad_file(name, fmt::format("CBOR: {} (byte {})", b.error, pos));
        pos += r.read;
    }
    if (!b.done) return Error::bad_file(name, size == 0 ? "CBOR: empty" : "CBOR: cut off (a container is not closed)");
    return std::move(b.result);
}

}  // namespace easel
