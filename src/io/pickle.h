// An interpreter of Python pickles (protocols 0-5) that never runs code. It reads every opcode of the format
// and builds an inert tree of values: numbers, strings, containers, references to globals, records of calls
// and persistent ids. A global is accepted only if the caller's allow-list names it (for checkpoints, the
// globals that rebuild tensors plus a few inert records: see torch_checkpoint_globals()); any other is refused
// by name, before anything else happens. "Calling" an allowed global (REDUCE, NEWOBJ, INST, OBJ) only records
// the call or, for container constructors such as collections.OrderedDict, builds the container; BUILD only
// records state. Sizes, nesting and total memory are bounded; every read is bounds-checked.
//
//   PickleOptions opt{.allowed = torch_checkpoint_globals(), .source = "model.ckpt:archive/data.pkl"};
//   EASEL_TRY_ASSIGN(PickleDocument doc, parse_pickle(bytes, size, opt));
//   const PickleValue* root = doc.root;                 // e.g. a Dict
//   for (auto& [k, v] : root->entries) if (k->is_str("state_dict")) ...
//   // refused global 'os.system' at byte 2 (only the globals that rebuild tensors are allowed)
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace easel {

enum class PickleKind : uint8_t {
    None,
    Bool,
    Int,           // fits in int64
    BigInt,        // does not; `text` holds the raw encoding (little-endian bytes, or decimal digits)
    Float,
    Str,           // UTF-8 text (protocol-0/1 byte strings are decoded as latin-1, as torch.load does)
    Bytes,
    Tuple,
    List,
    Dict,
    Set,           // set and frozenset
    Global,        // a reference to an allowed global: `text` is "module.name"
    Call,          // an allowed global applied to arguments (REDUCE/NEWOBJ/INST/OBJ): callee, items = args
    PersistentId,  // PERSID/BINPERSID: items[0] is the id (torch: ('storage', type, key, location, numel))
};

const char* pickle_kind_name(PickleKind k);

struct PickleValue {
    PickleKind kind = PickleKind::None;
    bool boolean = false;
    int64_t integer = 0;                                       // Int; Global: its index in the allow-list
    double real = 0.0;
    std::string text;                                          // Str, Bytes, BigInt, Global
    std::vector<PickleValue*> items;                           // Tuple, List, Set, Call args, PersistentId
    std::vector<std::pair<PickleValue*, PickleValue*>> entries;  // Dict, in insertion order
    const PickleValue* callee = nullptr;                       // Call: a Global
    const PickleValue* state = nullptr;                        // Call, Dict: the BUILD state, if any
    size_t offset = 0;                                         // byte of the opcode that made it

    bool is_str(std::string_view s) const { return kind == PickleKind::Str && text == s; }
    bool is_global(std::string_view qualified_name) const { return kind == PickleKind::Global && text == qualified_name; }
    // The value under a string key of a Dict, or nullptr.
    const PickleValue* get(std::string_view key) const;
};

// What an allowed global may do.
enum class GlobalUse : uint8_t {
    Record,     // may be called; the call is recorded as a Call value (tensor rebuilds, inert training state)
    Dict,       // a dict constructor: () or (iterable of pairs) -> Dict   (collections.OrderedDict)
    Set,        // a set constructor: () or (iterable) -> Set                (builtins.set)
    Tuple,      // a tuple constructor: () or (iterable) -> Tuple            (torch.Size)
    Reference,  // only named, never called (a storage type in a persistent id, a class used as a dict key)
};

struct AllowedGlobal {
    std::string_view module;
    std::string_view name;
    GlobalUse use = GlobalUse::Reference;
    int min_args = 0;   // for Record: how many positional arguments a call may take
    int max_args = 0;
};

// Limits on what one pickle may make us build. Defaults suit a Stable Diffusion checkpoint (~1,100 tensors,
// data.pkl of a few hundred KB) with room to spare; values are counted as they are created.
struct PickleLimits {
    size_t max_nesting = 256;            // MARK depth (nested tuples/lists/dicts being built)
    size_t max_stack = size_t(1) << 22;  // values on the stack at once
    size_t max_bytes = size_t(1) << 28;  // memory for values, strings and containers, in bytes (256 MiB)
};

struct PickleOptions {
    std::span<const AllowedGlobal> allowed;
    PickleLimits limits;
    std::string source;  // names the pickle in messages ("model.ckpt:archive/data.pkl")
};

// The value tree of one pickle. Values are owned by the document (they may share children and even form
// cycles, as pickles can); the document can be moved, the pointers stay valid.
struct PickleDocument {
    std::unique_ptr<std::deque<PickleValue>> values;
    const PickleValue* root = nullptr;
    size_t end_offset = 0;  // the byte after STOP (legacy torch files hold several pickles back to back)
};

Result<PickleDocument> parse_pickle(const uint8_t* data, size_t size, const PickleOptions& options);

}  // namespace easel
