#include "io/pickle.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <unordered_map>

#include <fmt/format.h>

namespace easel {

// Opcode table and semantics follow CPython's Lib/pickletools.py and Lib/pickle.py (3.11): every opcode of
// protocols 0-5 is read. The difference from pickle.load is what a "call" means: here it never reaches Python,
// it records the call (or builds a container) and only for globals on the caller's allow-list.

const char* pickle_kind_name(PickleKind k) {
    switch (k) {
        case PickleKind::None: return "None";
        case PickleKind::Bool: return "bool";
        case PickleKind::Int: return "int";
        case PickleKind::BigInt: return "int (big)";
        case PickleKind::Float: return "float";
        case PickleKind::Str: return "str";
        case PickleKind::Bytes: return "bytes";
        case PickleKind::Tuple: return "tuple";
        case PickleKind::List: return "list";
        case PickleKind::Dict: return "dict";
        case PickleKind::Set: return "set";
        case PickleKind::Global: return "global";
        case PickleKind::Call: return "call";
        case PickleKind::PersistentId: return "persistent id";
    }
    return "?";
}

const PickleValue* PickleValue::get(std::string_view key) const {
    if (kind != PickleKind::Dict) return nullptr;
    for (const auto& [k, v] : entries)
        if (k->is_str(key)) return v;
    return nullptr;
}

namespace {

enum Op : uint8_t {
    MARK = '(', STOP = '.', POP = '0', POP_MARK = '1', DUP = '2', FLOAT = 'F', INT = 'I', BININT = 'J',
    BININT1 = 'K', LONG = 'L', BININT2 = 'M', NONE = 'N', PERSID = 'P', BINPERSID = 'Q', REDUCE = 'R',
    STRING = 'S', BINSTRING = 'T', SHORT_BINSTRING = 'U', UNICODE = 'V', BINUNICODE = 'X', APPEND = 'a',
    BUILD = 'b', GLOBAL = 'c', DICT = 'd', EMPTY_DICT = '}', APPENDS = 'e', GET = 'g', BINGET = 'h', INST = 'i',
    LONG_BINGET = 'j', LIST = 'l', EMPTY_LIST = ']', OBJ = 'o', PUT = 'p', BINPUT = 'q', LONG_BINPUT = 'r',
    SETITEM = 's', TUPLE = 't', EMPTY_TUPLE = ')', SETITEMS = 'u', BINFLOAT = 'G',
    // protocol 2
    PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85, TUPLE2 = 0x86, TUPLE3 = 0x87,
    NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b,
    // protocol 3
    BINBYTES = 'B', SHORT_BINBYTES = 'C',
    // protocol 4
    SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d, BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90,
    FROZENSET = 0x91, NEWOBJ_EX = 0x92, STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95,
    // protocol 5
    BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97, READONLY_BUFFER = 0x98,
};

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xc0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        out += char(0xe0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    } else {
        out += char(0xf0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3f));
        out += char(0x80 | ((cp >> 6) & 0x3f));
        out += char(0x80 | (cp & 0x3f));
    }
}

std::string latin1_to_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) append_utf8(out, static_cast<unsigned char>(c));
    return out;
}

// Well-formed UTF-8 as Python's 'surrogatepass' decoder accepts it (so surrogate code points pass).
bool valid_utf8(std::string_view s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t len = 0;
        uint32_t cp = 0;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
        else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
        else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
        else return false;
        if (i + len > n) return false;
        for (size_t k = 1; k < len; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += len;
    }
    return true;
}

std::string printable(std::string_view s) {
    std::string out;
    for (char c : s.substr(0, 120)) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u == 0x7f) out += fmt::format("\\x{:02x}", u);
        else out += c;
    }
    if (s.size() > 120) out += "...";
    return out;
}

class Interpreter {
public:
    Interpreter(const uint8_t* data, size_t size, const PickleOptions& opt)
        : p_(data), n_(size), opt_(opt), values_(std::make_unique<std::deque<PickleValue>>()) {}

    Result<PickleDocument> run();

private:
    // ---- errors ----
    Error bad(const std::string& msg) const {
        return Error::bad_file(opt_.source, fmt::format("pickle: {} at byte {}", msg, op_at_));
    }
    Error refused(const std::string& msg) const {
        return Error::refused(fmt::format("pickle: {} at byte {}", msg, op_at_), opt_.source);
    }

    // ---- reading ----
    Result<const uint8_t*> take(uint64_t len, const char* what) {
        if (len > n_ - pos_)
            return bad(fmt::format("{} needs {} bytes but only {} remain (truncated, or a corrupt length)", what, len,
                                   n_ - pos_));
        const uint8_t* q = p_ + pos_;
        pos_ += size_t(len);
        return q;
    }
    Result<uint64_t> read_le(int bytes, const char* what) {
        EASEL_TRY_ASSIGN(const uint8_t* q, take(uint64_t(bytes), what));
        uint64_t v = 0;
        for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | q[i];
        return v;
    }
    // A protocol-0 text argument: the bytes up to (not including) the next '\n'.
    Result<std::string_view> read_line(const char* what) {
        const void* nl = std::memchr(p_ + pos_, '\n', n_ - pos_);
        if (!nl) return bad(fmt::format("{} is not terminated by a newline", what));
        const size_t len = size_t(static_cast<const uint8_t*>(nl) - (p_ + pos_));
        std::string_view s(reinterpret_cast<const char*>(p_ + pos_), len);
        pos_ += len + 1;
        return s;
    }

    // ---- values ----
    Result<PickleValue*> make(PickleKind k, size_t extra_bytes = 0) {
        EASEL_TRY(charge(sizeof(PickleValue) + extra_bytes));
        PickleValue& v = values_->emplace_back();
        v.kind = k;
        v.offset = op_at_;
        return &v;
    }
    Status charge(size_t bytes) {
        bytes_ += bytes;
        if (bytes_ > opt_.limits.max_bytes)
            return Error::exhausted(fmt::format("pickle: building its values would take more than {} bytes of memory "
                                                "at byte {} (limit; a real checkpoint needs far less)",
                                                opt_.limits.max_bytes, op_at_),
                                    opt_.source);
        return ok();
    }
    Status push(PickleValue* v) {
        if (stack_.size() >= opt_.limits.max_stack)
            return Error::exhausted(fmt::format("pickle: more than {} values on the stack at byte {}",
                                                opt_.limits.max_stack, op_at_), opt_.source);
        EASEL_TRY(charge(sizeof(void*)));
        stack_.push_back(v);
        return ok();
    }
    Status push_new(PickleKind k) {
        EASEL_TRY_ASSIGN(PickleValue * v, make(k));
        return push(v);
    }
    size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }
    Result<PickleValue*> pop(const char* opname) {
        if (stack_.size() <= stack_floor()) return bad(fmt::format("{} needs a value but the stack is empty", opname));
        PickleValue* v = stack_.back();
        stack_.pop_back();
        return v;
    }
    Result<PickleValue*> top(const char* opname) {
        if (stack_.size() <= stack_floor()) return bad(fmt::format("{} needs a value but the stack is empty", opname));
        return stack_.back();
    }
    // Pops everything above the innermost MARK, and the mark.
    Result<std::vector<PickleValue*>> pop_mark(const char* opname) {
        if (marks_.empty()) return bad(fmt::format("{} needs a MARK but there is none", opname));
        const size_t m = marks_.back();
        marks_.pop_back();
        std::vector<PickleValue*> items(stack_.begin() + std::ptrdiff_t(m), stack_.end());
        stack_.resize(m);
        return items;
    }

    Status set_item(PickleValue* dict, PickleValue* key, PickleValue* value, const char* opname);
    Status add_to_set(PickleValue* set, const std::vector<PickleValue*>& items, const char* opname);
    Result<PickleValue*> resolve_global(std::string_view module, std::string_view name);
    Result<PickleValue*> apply(PickleValue* callee, const std::vector<PickleValue*>& args, const char* opname);
    Status op_build();
    Result<PickleValue*> memo_get(uint64_t key);
    Status memo_put(uint64_t key);

    Status op_text_int();
    Status op_text_long();
    Status op_text_float();
    Status op_string();
    Status op_unicode();
    Status push_long(const uint8_t* q, size_t len);
    Status push_str(std::string_view raw, bool utf8);

    const uint8_t* p_;
    size_t n_;
    const PickleOptions& opt_;
    size_t pos_ = 0;
    size_t op_at_ = 0;
    size_t bytes_ = 0;
    std::unique_ptr<std::deque<PickleValue>> values_;
    std::vector<PickleValue*> stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint64_t, PickleValue*> memo_;
    // String-keyed index of each dict, so SETITEM replaces a repeated key as Python does, in O(1).
    std::unordered_map<const PickleValue*, std::unordered_map<std::string, size_t>> dict_index_;
};

Status Interpreter::set_item(PickleValue* dict, PickleValue* key, PickleValue* value, const char* opname) {
    if (dict->kind != PickleKind::Dict)
        return bad(fmt::format("{} on a {} (it needs a dict)", opname, pickle_kind_name(dict->kind)));
    EASEL_TRY(charge(2 * sizeof(void*)));
    if (key->kind == PickleKind::Str || key->kind == PickleKind::Int) {
        // Hashing a key costs its length even when it replaces an entry; charging it every time keeps one huge
        // memoized key set over and over from turning into quadratic work.
        EASEL_TRY(charge(key->text.size()));
        const std::string k = (key->kind == PickleKind::Str ? "s" + key->text : "i" + std::to_string(key->integer));
        auto& idx = dict_index_[dict];
        auto [it, inserted] = idx.emplace(k, dict->entries.size());
        if (!inserted) {
            dict->entries[it->second].second = value;
            return ok();
        }
        EASEL_TRY(charge(k.size() + 32));
    }
    dict->entries.emplace_back(key, value);
    return ok();
}

Status Interpreter::add_to_set(PickleValue* set, const std::vector<PickleValue*>& items, const char* opname) {
    if (set->kind != PickleKind::Set)
        return bad(fmt::format("{} on a {} (it needs a set)", opname, pickle_kind_name(set->kind)));
    EASEL_TRY(charge(items.size() * sizeof(void*)));
    set->items.insert(set->items.end(), items.begin(), items.end());
    return ok();
}

Result<PickleValue*> Interpreter::resolve_global(std::string_view module, std::string_view name) {
    for (size_t i = 0; i < opt_.allowed.size(); ++i) {
        const AllowedGlobal& g = opt_.allowed[i];
        if (g.module == module && g.name == name) {
            EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Global, module.size() + name.size() + 1));
            v->text = fmt::format("{}.{}", module, name);
            v->integer = int64_t(i);
            return v;
        }
    }
    return refused(fmt::format("refused global '{}.{}' (only the globals that rebuild tensors are allowed)",
                               printable(module), printable(name)));
}

// REDUCE, NEWOBJ, NEWOBJ_EX, INST and OBJ all come here: nothing is called, the allow-list decides what the
// "call" becomes.
Result<PickleValue*> Interpreter::apply(PickleValue* callee, const std::vector<PickleValue*>& args, const char* opname) {
    if (callee->kind != PickleKind::Global)
        return refused(fmt::format("refused {} on a {} (only allowed globals may be called)", opname,
                                   pickle_kind_name(callee->kind)));
    EASEL_ASSERT(callee->integer >= 0 && size_t(callee->integer) < opt_.allowed.size(),
                 "a Global value exists only for an allowed name");
    const AllowedGlobal* rule = &opt_.allowed[size_t(callee->integer)];

    auto iterable = [&](const PickleValue* v) {
        return v->kind == PickleKind::Tuple || v->kind == PickleKind::List || v->kind == PickleKind::Set;
    };
    switch (rule->use) {
        case GlobalUse::Reference:
            return refused(fmt::format("refused {} of '{}' (it is allowed only as a name, never called)", opname,
                                       callee->text));
        case GlobalUse::Record: {
            if (int(args.size()) < rule->min_args || int(args.size()) > rule->max_args)
                return refused(fmt::format("refused {} of '{}' with {} arguments (it takes {} to {})", opname,
                                           callee->text, args.size(), rule->min_args, rule->max_args));
            EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Call, args.size() * sizeof(void*)));
            v->callee = callee;
            v->items = args;
            return v;
        }
        case GlobalUse::Dict: {
            EASEL_TRY_ASSIGN(PickleValue * d, make(PickleKind::Dict));
            if (args.empty()) return d;
            if (args.size() == 1 && args[0]->kind == PickleKind::Dict) {
                for (const auto& [k, val] : args[0]->entries) EASEL_TRY(set_item(d, k, val, opname));
                return d;
            }
            if (args.size() == 1 && iterable(args[0])) {
                for (const PickleValue* pair : args[0]->items) {
                    if ((pair->kind != PickleKind::Tuple && pair->kind != PickleKind::List) || pair->items.size() != 2)
                        return refused(fmt::format("refused {} of '{}': its items must be (key, value) pairs", opname,
                                                   callee->text));
                    EASEL_TRY(set_item(d, pair->items[0], pair->items[1], opname));
                }
                return d;
            }
            return refused(fmt::format("refused {} of '{}' with these arguments (it takes () or (pairs,))", opname,
                                       callee->text));
        }
        case GlobalUse::Set:
        case GlobalUse::Tuple: {
            EASEL_TRY_ASSIGN(PickleValue * v, make(rule->use == GlobalUse::Set ? PickleKind::Set : PickleKind::Tuple));
            if (args.empty()) return v;
            if (args.size() == 1 && iterable(args[0])) {
                EASEL_TRY(charge(args[0]->items.size() * sizeof(void*)));
                v->items = args[0]->items;
                return v;
            }
            return refused(fmt::format("refused {} of '{}' with these arguments (it takes () or (iterable,))", opname,
                                       callee->text));
        }
    }
    return bad("unreachable");
}

Status Interpreter::op_build() {
    EASEL_TRY_ASSIGN(PickleValue * state, pop("BUILD"));
    EASEL_TRY_ASSIGN(PickleValue * obj, top("BUILD"));
    // A recorded call of an allowed global keeps its state as data (nothing like __setstate__ runs). A dict
    // may carry attributes: torch's state_dict() is an OrderedDict with a `_metadata` attribute.
    if (obj->kind == PickleKind::Call) {
        obj->state = state;
        return ok();
    }
    if (obj->kind == PickleKind::Dict && (state->kind == PickleKind::Dict || state->kind == PickleKind::None)) {
        obj->state = state;
        return ok();
    }
    return refused(fmt::format("refused BUILD on a {} with a {} state (BUILD may only set the state of an allowed "
                               "object)", pickle_kind_name(obj->kind), pickle_kind_name(state->kind)));
}

Result<PickleValue*> Interpreter::memo_get(uint64_t key) {
    auto it = memo_.find(key);
    if (it == memo_.end()) return bad(fmt::format("memo key {} is read before it was stored", key));
    return it->second;
}

Status Interpreter::memo_put(uint64_t key) {
    EASEL_TRY_ASSIGN(PickleValue * v, top("PUT"));
    auto [it, inserted] = memo_.emplace(key, v);
    if (inserted) EASEL_TRY(charge(48));
    else it->second = v;
    return ok();
}

Status Interpreter::op_text_int() {
    EASEL_TRY_ASSIGN(std::string_view s, read_line("INT argument"));
    if (s == "00" || s == "01") {  // protocol 0 spells False/True this way
        EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Bool));
        v->boolean = s == "01";
        return push(v);
    }
    std::string digits(s);
    if (digits.empty() || digits.size() > 4096) return bad("INT argument is empty or too long");
    char* end = nullptr;
    errno = 0;
    const long long x = std::strtoll(digits.c_str(), &end, 10);
    if (end == digits.c_str() || *end != '\0') return bad(fmt::format("INT argument '{}' is not a number", printable(s)));
    if (errno == ERANGE) {
        EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::BigInt, digits.size()));
        v->text = digits;
        return push(v);
    }
    EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Int));
    v->integer = x;
    return push(v);
}

Status Interpreter::op_text_long() {
    EASEL_TRY_ASSIGN(std::string_view s, read_line("LONG argument"));
    if (!s.empty() && s.back() == 'L') s.remove_suffix(1);
    std::string digits(s);
    if (digits.empty() || digits.size() > 4096) return bad("LONG argument is empty or too long");
    size_t i = (digits[0] == '-' || digits[0] == '+') ? 1 : 0;
    if (i == digits.size()) return bad("LONG argument has no digits");
    for (size_t k = i; k < digits.size(); ++k)
        if (digits[k] < '0' || digits[k] > '9') return bad(fmt::format("LONG argument '{}' is not a number", printable(s)));
    errno = 0;
    const long long x = std::strtoll(digits.c_str(), nullptr, 10);
    if (errno == ERANGE) {
        EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::BigInt, digits.size()));
        v->text = digits;
        return push(v);
    }
    EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Int));
    v->integer = x;
    return push(v);
}

Status Interpreter::op_text_float() {
    EASEL_TRY_ASSIGN(std::string_view s, read_line("FLOAT argument"));
    std::string t(s);
    if (t.empty() || t.size() > 4096) return bad("FLOAT argument is empty or too long");
    char* end = nullptr;
    const double x = std::strtod(t.c_str(), &end);
    if (end == t.c_str() || *end != '\0') return bad(fmt::format("FLOAT argument '{}' is not a number", printable(s)));
    EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Float));
    v->real = x;
    return push(v);
}

// LONG1/LONG4: little-endian two's complement of `len` bytes.
Status Interpreter::push_long(const uint8_t* q, size_t len) {
    if (len <= 8) {
        uint64_t u = 0;
        for (size_t i = len; i-- > 0;) u = (u << 8) | q[i];
        if (len > 0 && len < 8 && (q[len - 1] & 0x80)) u |= ~uint64_t(0) << (8 * len);  // sign-extend
        EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Int));
        v->integer = static_cast<int64_t>(u);
        return push(v);
    }
    EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::BigInt, len));
    v->text.assign(reinterpret_cast<const char*>(q), len);
    return push(v);
}

Status Interpreter::push_str(std::string_view raw, bool utf8) {
    if (utf8 && !valid_utf8(raw)) return bad("a unicode string is not valid UTF-8");
    EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Str, raw.size() * (utf8 ? 1 : 2)));
    v->text = utf8 ? std::string(raw) : latin1_to_utf8(raw);
    return push(v);
}

// STRING: a Python repr of a byte string, quotes included: 'abc' or "a\'b\x00".
Status Interpreter::op_string() {
    EASEL_TRY_ASSIGN(std::string_view s, read_line("STRING argument"));
    if (s.size() < 2 || (s.front() != '\'' && s.front() != '"') || s.back() != s.front())
        return bad("STRING argument is not a quoted string");
    s = s.substr(1, s.size() - 2);
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\') { out += s[i]; continue; }
        if (++i >= s.size()) return bad("STRING argument ends in a backslash");
        const char c = s[i];
        switch (c) {
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'a': out += '\a'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'v': out += '\v'; break;
            case '\\': case '\'': case '"': out += c; break;
            case '\n': break;
            case 'x': {
                if (i + 2 >= s.size()) return bad("STRING argument has a short \\x escape");
                const std::string hex(s.substr(i + 1, 2));
                char* end = nullptr;
                const long v = std::strtol(hex.c_str(), &end, 16);
                if (hex.size() != 2 || *end != '\0') return bad("STRING argument has a bad \\x escape");
                out += char(v);
                i += 2;
                break;
            }
            default:
                if (c >= '0' && c <= '7') {
                    int v = 0, k = 0;
                    while (k < 3 && i < s.size() && s[i] >= '0' && s[i] <= '7') v = v * 8 + (s[i++] - '0'), ++k;
                    --i;
                    out += char(v & 0xff);
                } else {
                    out += '\\';
                    out += c;
                }
        }
    }
    return push_str(out, /*utf8=*/false);
}

// UNICODE: raw-unicode-escape, i.e. latin-1 bytes except \uXXXX and \UXXXXXXXX.
Status Interpreter::op_unicode() {
    EASEL_TRY_ASSIGN(std::string_view s, read_line("UNICODE argument"));
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == 'u' || s[i + 1] == 'U')) {
            const size_t len = s[i + 1] == 'u' ? 4 : 8;
            if (i + 2 + len > s.size()) return bad("UNICODE argument has a short \\u escape");
            const std::string hex(s.substr(i + 2, len));
            char* end = nullptr;
            const unsigned long cp = std::strtoul(hex.c_str(), &end, 16);
            if (*end != '\0' || cp > 0x10ffff) return bad("UNICODE argument has a bad \\u escape");
            append_utf8(out, uint32_t(cp));
            i += 1 + len;
        } else {
            append_utf8(out, static_cast<unsigned char>(s[i]));
        }
    }
    return push_str(out, /*utf8=*/true);
}

Result<PickleDocument> Interpreter::run() {
    while (true) {
        op_at_ = pos_;
        if (pos_ >= n_) return bad("the pickle ends without a STOP opcode (truncated?)");
        const uint8_t op = p_[pos_++];
        switch (op) {
            case MARK:
                if (marks_.size() >= opt_.limits.max_nesting)
                    return Error::exhausted(fmt::format("pickle: more than {} nested MARKs at byte {} (limit)",
                                                        opt_.limits.max_nesting, op_at_), opt_.source);
                marks_.push_back(stack_.size());
                break;
            case STOP: {
                EASEL_TRY_ASSIGN(PickleValue * root, pop("STOP"));
                PickleDocument doc;
                doc.values = std::move(values_);
                doc.root = root;
                doc.end_offset = pos_;
                return doc;
            }
            case POP:
                if (stack_.size() > stack_floor()) stack_.pop_back();
                else if (!marks_.empty()) marks_.pop_back();  // CPython: POP of an empty frame pops the mark
                else return bad("POP on an empty stack");
                break;
            case POP_MARK: EASEL_TRY(pop_mark("POP_MARK")); break;
            case DUP: { EASEL_TRY_ASSIGN(PickleValue * v, top("DUP")); EASEL_TRY(push(v)); break; }
            case FLOAT: EASEL_TRY(op_text_float()); break;
            case BINFLOAT: {
                EASEL_TRY_ASSIGN(const uint8_t* q, take(8, "BINFLOAT"));
                uint64_t u = 0;
                for (int i = 0; i < 8; ++i) u = (u << 8) | q[i];  // big-endian
                double x;
                std::memcpy(&x, &u, 8);
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Float));
                v->real = x;
                EASEL_TRY(push(v));
                break;
            }
            case INT: EASEL_TRY(op_text_int()); break;
            case LONG: EASEL_TRY(op_text_long()); break;
            case BININT: {
                EASEL_TRY_ASSIGN(uint64_t u, read_le(4, "BININT"));
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Int));
                v->integer = int32_t(uint32_t(u));
                EASEL_TRY(push(v));
                break;
            }
            case BININT1:
            case BININT2: {
                EASEL_TRY_ASSIGN(uint64_t u, read_le(op == BININT1 ? 1 : 2, "BININT1/2"));
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Int));
                v->integer = int64_t(u);
                EASEL_TRY(push(v));
                break;
            }
            case LONG1:
            case LONG4: {
                const char* name = op == LONG1 ? "LONG1" : "LONG4";
                EASEL_TRY_ASSIGN(uint64_t len, read_le(op == LONG1 ? 1 : 4, name));
                if (op == LONG4 && (len & 0x80000000u)) return bad("LONG4 has a negative length");
                EASEL_TRY_ASSIGN(const uint8_t* q, take(len, name));
                EASEL_TRY(push_long(q, size_t(len)));
                break;
            }
            case NONE: EASEL_TRY(push_new(PickleKind::None)); break;
            case NEWTRUE:
            case NEWFALSE: {
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Bool));
                v->boolean = op == NEWTRUE;
                EASEL_TRY(push(v));
                break;
            }
            case STRING: EASEL_TRY(op_string()); break;
            case BINSTRING:
            case SHORT_BINSTRING: {
                const char* name = op == BINSTRING ? "BINSTRING" : "SHORT_BINSTRING";
                EASEL_TRY_ASSIGN(uint64_t len, read_le(op == BINSTRING ? 4 : 1, name));
                if (op == BINSTRING && (len & 0x80000000u)) return bad("BINSTRING has a negative length");
                EASEL_TRY_ASSIGN(const uint8_t* q, take(len, name));
                EASEL_TRY(push_str(std::string_view(reinterpret_cast<const char*>(q), size_t(len)), false));
                break;
            }
            case UNICODE: EASEL_TRY(op_unicode()); break;
            case SHORT_BINUNICODE:
            case BINUNICODE:
            case BINUNICODE8: {
                const int w = op == SHORT_BINUNICODE ? 1 : op == BINUNICODE ? 4 : 8;
                const char* name = w == 1 ? "SHORT_BINUNICODE" : w == 4 ? "BINUNICODE" : "BINUNICODE8";
                EASEL_TRY_ASSIGN(uint64_t len, read_le(w, name));
                EASEL_TRY_ASSIGN(const uint8_t* q, take(len, name));
                EASEL_TRY(push_str(std::string_view(reinterpret_cast<const char*>(q), size_t(len)), true));
                break;
            }
            case SHORT_BINBYTES:
            case BINBYTES:
            case BINBYTES8:
            case BYTEARRAY8: {
                const int w = op == SHORT_BINBYTES ? 1 : op == BINBYTES ? 4 : 8;
                const char* name = op == SHORT_BINBYTES ? "SHORT_BINBYTES" : op == BINBYTES ? "BINBYTES"
                                   : op == BINBYTES8 ? "BINBYTES8" : "BYTEARRAY8";
                EASEL_TRY_ASSIGN(uint64_t len, read_le(w, name));
                EASEL_TRY_ASSIGN(const uint8_t* q, take(len, name));
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Bytes, size_t(len)));
                v->text.assign(reinterpret_cast<const char*>(q), size_t(len));
                EASEL_TRY(push(v));
                break;
            }
            case NEXT_BUFFER:
                return Error::unsupported(fmt::format("pickle: NEXT_BUFFER at byte {} asks for an out-of-band buffer; "
                                                      "none is provided when reading a file", op_at_), opt_.source);
            case READONLY_BUFFER: EASEL_TRY(top("READONLY_BUFFER")); break;
            case EMPTY_TUPLE: EASEL_TRY(push_new(PickleKind::Tuple)); break;
            case TUPLE1:
            case TUPLE2:
            case TUPLE3: {
                const size_t k = size_t(op - TUPLE1 + 1);
                if (stack_.size() < stack_floor() + k) return bad(fmt::format("TUPLE{} needs {} values on the stack", k, k));
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Tuple, k * sizeof(void*)));
                v->items.assign(stack_.end() - std::ptrdiff_t(k), stack_.end());
                stack_.resize(stack_.size() - k);
                EASEL_TRY(push(v));
                break;
            }
            case TUPLE:
            case LIST: {
                EASEL_TRY_ASSIGN(auto items, pop_mark(op == TUPLE ? "TUPLE" : "LIST"));
                EASEL_TRY_ASSIGN(PickleValue * v, make(op == TUPLE ? PickleKind::Tuple : PickleKind::List));
                v->items = std::move(items);
                EASEL_TRY(push(v));
                break;
            }
            case EMPTY_LIST: EASEL_TRY(push_new(PickleKind::List)); break;
            case EMPTY_DICT: EASEL_TRY(push_new(PickleKind::Dict)); break;
            case EMPTY_SET: EASEL_TRY(push_new(PickleKind::Set)); break;
            case FROZENSET: {
                EASEL_TRY_ASSIGN(auto items, pop_mark("FROZENSET"));
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::Set));
                EASEL_TRY(add_to_set(v, items, "FROZENSET"));
                EASEL_TRY(push(v));
                break;
            }
            case ADDITEMS: {
                EASEL_TRY_ASSIGN(auto items, pop_mark("ADDITEMS"));
                EASEL_TRY_ASSIGN(PickleValue * set, top("ADDITEMS"));
                EASEL_TRY(add_to_set(set, items, "ADDITEMS"));
                break;
            }
            case DICT: {
                EASEL_TRY_ASSIGN(auto items, pop_mark("DICT"));
                if (items.size() % 2) return bad("DICT needs an even number of values (key, value, ...)");
                EASEL_TRY_ASSIGN(PickleValue * d, make(PickleKind::Dict));
                for (size_t i = 0; i < items.size(); i += 2) EASEL_TRY(set_item(d, items[i], items[i + 1], "DICT"));
                EASEL_TRY(push(d));
                break;
            }
            case APPEND: {
                EASEL_TRY_ASSIGN(PickleValue * v, pop("APPEND"));
                EASEL_TRY_ASSIGN(PickleValue * list, top("APPEND"));
                if (list->kind != PickleKind::List) return bad(fmt::format("APPEND on a {}", pickle_kind_name(list->kind)));
                EASEL_TRY(charge(sizeof(void*)));
                list->items.push_back(v);
                break;
            }
            case APPENDS: {
                EASEL_TRY_ASSIGN(auto items, pop_mark("APPENDS"));
                EASEL_TRY_ASSIGN(PickleValue * list, top("APPENDS"));
                if (list->kind != PickleKind::List) return bad(fmt::format("APPENDS on a {}", pickle_kind_name(list->kind)));
                EASEL_TRY(charge(items.size() * sizeof(void*)));
                list->items.insert(list->items.end(), items.begin(), items.end());
                break;
            }
            case SETITEM: {
                EASEL_TRY_ASSIGN(PickleValue * v, pop("SETITEM"));
                EASEL_TRY_ASSIGN(PickleValue * k, pop("SETITEM"));
                EASEL_TRY_ASSIGN(PickleValue * d, top("SETITEM"));
                EASEL_TRY(set_item(d, k, v, "SETITEM"));
                break;
            }
            case SETITEMS: {
                EASEL_TRY_ASSIGN(auto items, pop_mark("SETITEMS"));
                if (items.size() % 2) return bad("SETITEMS needs an even number of values (key, value, ...)");
                EASEL_TRY_ASSIGN(PickleValue * d, top("SETITEMS"));
                for (size_t i = 0; i < items.size(); i += 2) EASEL_TRY(set_item(d, items[i], items[i + 1], "SETITEMS"));
                break;
            }
            case GET: {
                EASEL_TRY_ASSIGN(std::string_view s, read_line("GET argument"));
                char* end = nullptr;
                const std::string t(s.substr(0, 32));
                const unsigned long long key = std::strtoull(t.c_str(), &end, 10);
                if (t.empty() || *end != '\0' || s.size() > 32) return bad("GET argument is not a memo key");
                EASEL_TRY_ASSIGN(PickleValue * v, memo_get(key));
                EASEL_TRY(push(v));
                break;
            }
            case BINGET:
            case LONG_BINGET: {
                EASEL_TRY_ASSIGN(uint64_t key, read_le(op == BINGET ? 1 : 4, "BINGET"));
                EASEL_TRY_ASSIGN(PickleValue * v, memo_get(key));
                EASEL_TRY(push(v));
                break;
            }
            case PUT: {
                EASEL_TRY_ASSIGN(std::string_view s, read_line("PUT argument"));
                char* end = nullptr;
                const std::string t(s.substr(0, 32));
                const unsigned long long key = std::strtoull(t.c_str(), &end, 10);
                if (t.empty() || *end != '\0' || s.size() > 32) return bad("PUT argument is not a memo key");
                EASEL_TRY(memo_put(key));
                break;
            }
            case BINPUT:
            case LONG_BINPUT: {
                EASEL_TRY_ASSIGN(uint64_t key, read_le(op == BINPUT ? 1 : 4, "BINPUT"));
                EASEL_TRY(memo_put(key));
                break;
            }
            case MEMOIZE: EASEL_TRY(memo_put(memo_.size())); break;
            case GLOBAL: {
                EASEL_TRY_ASSIGN(std::string_view module, read_line("GLOBAL module"));
                EASEL_TRY_ASSIGN(std::string_view name, read_line("GLOBAL name"));
                EASEL_TRY_ASSIGN(PickleValue * v, resolve_global(module, name));
                EASEL_TRY(push(v));
                break;
            }
            case STACK_GLOBAL: {
                EASEL_TRY_ASSIGN(PickleValue * name, pop("STACK_GLOBAL"));
                EASEL_TRY_ASSIGN(PickleValue * module, pop("STACK_GLOBAL"));
                if (module->kind != PickleKind::Str || name->kind != PickleKind::Str)
                    return bad(fmt::format("STACK_GLOBAL needs two strings, got a {} and a {}",
                                           pickle_kind_name(module->kind), pickle_kind_name(name->kind)));
                EASEL_TRY_ASSIGN(PickleValue * v, resolve_global(module->text, name->text));
                EASEL_TRY(push(v));
                break;
            }
            case EXT1:
            case EXT2:
            case EXT4: {
                EASEL_TRY_ASSIGN(uint64_t code, read_le(op == EXT1 ? 1 : op == EXT2 ? 2 : 4, "EXT code"));
                return refused(fmt::format("refused extension code {} (the copyreg extension registry can name any "
                                           "global, so it is never consulted)", code));
            }
            case REDUCE: {
                EASEL_TRY_ASSIGN(PickleValue * args, pop("REDUCE"));
                EASEL_TRY_ASSIGN(PickleValue * callee, pop("REDUCE"));
                if (callee->kind != PickleKind::Global)
                    return refused(fmt::format("refused REDUCE on a {} (only allowed globals may be called)",
                                               pickle_kind_name(callee->kind)));
                if (args->kind != PickleKind::Tuple)
                    return bad(fmt::format("REDUCE arguments are a {}, not a tuple", pickle_kind_name(args->kind)));
                EASEL_TRY_ASSIGN(PickleValue * v, apply(callee, args->items, "REDUCE"));
                EASEL_TRY(push(v));
                break;
            }
            case NEWOBJ:
            case NEWOBJ_EX: {
                const char* name = op == NEWOBJ ? "NEWOBJ" : "NEWOBJ_EX";
                if (op == NEWOBJ_EX) {
                    EASEL_TRY_ASSIGN(PickleValue * kwargs, pop(name));
                    if (kwargs->kind != PickleKind::Dict || !kwargs->entries.empty())
                        return refused("refused NEWOBJ_EX with keyword arguments (no allowed class takes any)");
                }
                EASEL_TRY_ASSIGN(PickleValue * args, pop(name));
                EASEL_TRY_ASSIGN(PickleValue * cls, pop(name));
                if (cls->kind != PickleKind::Global)
                    return refused(fmt::format("refused {} on a {} (only allowed classes may be instantiated)", name,
                                               pickle_kind_name(cls->kind)));
                if (args->kind != PickleKind::Tuple)
                    return bad(fmt::format("{} arguments are a {}, not a tuple", name, pickle_kind_name(args->kind)));
                EASEL_TRY_ASSIGN(PickleValue * v, apply(cls, args->items, name));
                EASEL_TRY(push(v));
                break;
            }
            case INST: {
                EASEL_TRY_ASSIGN(std::string_view module, read_line("INST module"));
                EASEL_TRY_ASSIGN(std::string_view name, read_line("INST name"));
                EASEL_TRY_ASSIGN(PickleValue * cls, resolve_global(module, name));
                EASEL_TRY_ASSIGN(auto args, pop_mark("INST"));
                EASEL_TRY_ASSIGN(PickleValue * v, apply(cls, args, "INST"));
                EASEL_TRY(push(v));
                break;
            }
            case OBJ: {
                EASEL_TRY_ASSIGN(auto items, pop_mark("OBJ"));
                if (items.empty()) return bad("OBJ needs a class after its MARK");
                PickleValue* cls = items.front();
                if (cls->kind != PickleKind::Global)
                    return refused(fmt::format("refused OBJ on a {} (only allowed classes may be instantiated)",
                                               pickle_kind_name(cls->kind)));
                items.erase(items.begin());
                EASEL_TRY_ASSIGN(PickleValue * v, apply(cls, items, "OBJ"));
                EASEL_TRY(push(v));
                break;
            }
            case BUILD: EASEL_TRY(op_build()); break;
            case PERSID: {
                EASEL_TRY_ASSIGN(std::string_view s, read_line("PERSID argument"));
                EASEL_TRY(push_str(s, /*utf8=*/false));
                EASEL_TRY_ASSIGN(PickleValue * pid, pop("PERSID"));
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::PersistentId, sizeof(void*)));
                v->items.push_back(pid);
                EASEL_TRY(push(v));
                break;
            }
            case BINPERSID: {
                EASEL_TRY_ASSIGN(PickleValue * pid, pop("BINPERSID"));
                EASEL_TRY_ASSIGN(PickleValue * v, make(PickleKind::PersistentId, sizeof(void*)));
                v->items.push_back(pid);
                EASEL_TRY(push(v));
                break;
            }
            case PROTO: {
                EASEL_TRY_ASSIGN(uint64_t version, read_le(1, "PROTO"));
                if (version > 5) return Error::unsupported(fmt::format("pickle: protocol {} at byte {}; protocols 0 to 5 "
                                                                       "are supported", version, op_at_), opt_.source);
                break;
            }
            case FRAME: {
                EASEL_TRY_ASSIGN(uint64_t len, read_le(8, "FRAME length"));
                if (len > n_ - pos_) return bad(fmt::format("FRAME of {} bytes runs past the end ({} bytes remain)", len, n_ - pos_));
                break;  // framing is only a read-ahead hint
            }
            default:
                return bad(fmt::format("unknown opcode 0x{:02x}", op));
        }
    }
}

}  // namespace

Result<PickleDocument> parse_pickle(const uint8_t* data, size_t size, const PickleOptions& options) {
    Interpreter in(data, size, options);
    return in.run();
}

}  // namespace easel
