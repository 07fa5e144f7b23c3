// CBOR (RFC 8949) values, written and read through Debian's libcbor: what C2PA claims, assertions and COSE
// signatures are made of (io/c2pa.h). Integers are written in their shortest form; maps keep their order.
//
//   Cbor header = Cbor::map({{Cbor::integer(1), Cbor::integer(-7)}});     // COSE: alg = ES256
//   std::vector<uint8_t> bytes = cbor_encode(header);
//   EASEL_TRY_ASSIGN(Cbor back, cbor_decode(bytes.data(), bytes.size(), "claim"));
//   const Cbor* alg = back.get(1);
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"

namespace easel {

struct CborEntry;

struct Cbor {
    enum class Type { Uint, Negint, Bytes, Text, Array, Map, Tag, Bool, Null, Undefined, Float };
    Type type = Type::Null;
    uint64_t u = 0;           // Uint: the value; Negint: -1 - u; Tag: the tag number
    double f = 0;             // Float
    bool b = false;           // Bool
    std::string s;            // Text (UTF-8)
    std::vector<uint8_t> bin; // Bytes
    std::vector<Cbor> items;  // Array; Tag: the one tagged item
    std::vector<CborEntry> entries;  // Map, in order

    static Cbor integer(int64_t v);
    static Cbor text(std::string v);
    static Cbor bytes(std::vector<uint8_t> v);
    static Cbor array(std::vector<Cbor> v);
    static Cbor map(std::vector<CborEntry> v);
    // A map with text keys, the common case in C2PA.
    static Cbor object(std::vector<std::pair<std::string, Cbor>> v);
    static Cbor tag(uint64_t number, Cbor item);
    static Cbor null();
    static Cbor boolean(bool v);

    bool is_int() const { return type == Type::Uint || type == Type::Negint; }
    // The value of an integer that fits in int64_t (else `fallback`).
    int64_t as_int(int64_t fallback = 0) const;
    // A map's value for a text or integer key; nullptr when absent or this is not a map.
    const Cbor* get(std::string_view key) const;
    const Cbor* get(int64_t key) const;
    // Text of a Text value, else "".
    std::string str() const { return type == Type::Text ? s : std::string(); }
    // Appends a text-keyed entry to a map.
    void add(std::string key, Cbor value);
};

// A map's key and value (a struct, not std::pair, which cannot hold the type it is a member of).
struct CborEntry {
    Cbor key;
    Cbor value;
};

std::vector<uint8_t> cbor_encode(const Cbor& v);
// The value with every map's entries in RFC 8949's core deterministic order (section 4.2.1: by the bytes of each
// key's encoding, so shorter text keys first), as C2PA asks claims and assertions to be written.
Cbor cbor_deterministic(Cbor v);
// Exactly one item filling the buffer. Refuses nesting deeper than 32, more than 100,000 items, a count larger
// than the bytes left (libcbor reports the rest: truncation, malformed heads).
Result<Cbor> cbor_decode(const uint8_t* data, size_t size, const std::string& name_for_errors);

}  // namespace easel
