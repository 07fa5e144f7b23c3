// The inert pickle interpreter: benign pickles of every protocol (0-5) build exactly the tree Python pickled
// (tests/data/pickle/benign/proto<N>.{pkl,tree}, written by tools/reference/make_pickle_corpus.py with
// pickle.dumps), and every hostile pickle of tests/data/pickle/malicious is refused with the expected code and a
// message naming what was refused, while nothing runs.
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "io/pickle.h"
#include "io/torch_checkpoint.h"

namespace easel {
namespace {

namespace fs = std::filesystem;
const fs::path kPickleDir = fs::path(EASEL_TEST_DATA_DIR) / "pickle";
const char* kRegen = " (regenerate with /usr/bin/python3 tools/reference/make_pickle_corpus.py)";

std::vector<uint8_t> read_bytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    EXPECT_TRUE(in.good()) << "missing " << p << kRegen;
    return {(std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()};
}

std::string hex(std::string_view s) {
    std::string out;
    for (unsigned char c : s) out += fmt::format("{:02x}", c);
    return out;
}

// The rendering make_pickle_corpus.py's render() writes: one line, one letter per kind.
std::string render(const PickleValue* v, int depth = 0) {
    if (depth > 100) return "...";
    auto seq = [&](const std::vector<PickleValue*>& items) {
        std::string s;
        for (size_t i = 0; i < items.size(); ++i) s += (i ? "," : "") + render(items[i], depth + 1);
        return s;
    };
    switch (v->kind) {
        case PickleKind::None: return "N";
        case PickleKind::Bool: return v->boolean ? "T" : "F";
        case PickleKind::Int: return fmt::format("i{}", v->integer);
        case PickleKind::BigInt:
            // Text LONG keeps decimal digits; LONG1/LONG4 keep their little-endian bytes.
            return !v->text.empty() && (std::isdigit(static_cast<unsigned char>(v->text[0])) || v->text[0] == '-') &&
                           v->text.find_first_not_of("-0123456789") == std::string::npos
                       ? "I" + v->text
                       : "L" + hex(v->text);
        case PickleKind::Float: {
            uint64_t u;
            std::memcpy(&u, &v->real, 8);
            return fmt::format("f{:016x}", u);
        }
        case PickleKind::Str: return "s" + hex(v->text);
        case PickleKind::Bytes: return "b" + hex(v->text);
        case PickleKind::Tuple: return "(" + seq(v->items) + ")";
        case PickleKind::List: return "[" + seq(v->items) + "]";
        case PickleKind::Set: return "<" + seq(v->items) + ">";
        case PickleKind::Dict: {
            std::string s = "{";
            for (size_t i = 0; i < v->entries.size(); ++i)
                s += (i ? "," : "") + render(v->entries[i].first, depth + 1) + ":" + render(v->entries[i].second, depth + 1);
            return s + "}";
        }
        case PickleKind::Global: return "G" + v->text;
        case PickleKind::Call: return "C" + v->callee->text + "(" + seq(v->items) + ")";
        case PickleKind::PersistentId: return "P(" + seq(v->items) + ")";
    }
    return "?";
}

// A string literal's bytes, embedded NULs included (the terminating NUL excluded).
template <size_t N>
std::string_view lit(const char (&s)[N]) {
    return std::string_view(s, N - 1);
}

PickleOptions options(std::string source = "test") {
    PickleOptions o;
    o.allowed = torch_checkpoint_globals();
    o.source = std::move(source);
    return o;
}

Result<PickleDocument> parse(const std::vector<uint8_t>& b, const PickleOptions& o = options()) {
    return parse_pickle(b.data(), b.size(), o);
}
Result<PickleDocument> parse(std::string_view s, const PickleOptions& o = options()) {
    return parse_pickle(reinterpret_cast<const uint8_t*>(s.data()), s.size(), o);
}

TEST(Pickle, EveryProtocolBuildsThePickledTree) {
    for (int p = 0; p <= 5; ++p) {
        const auto bytes = read_bytes(kPickleDir / "benign" / fmt::format("proto{}.pkl", p));
        const auto tree_bytes = read_bytes(kPickleDir / "benign" / fmt::format("proto{}.tree", p));
        std::string want(tree_bytes.begin(), tree_bytes.end());
        while (!want.empty() && want.back() == '\n') want.pop_back();
        auto doc = parse(bytes);
        ASSERT_TRUE(doc) << "protocol " << p << ": " << doc.error().to_string();
        EXPECT_EQ(render(doc->root), want) << "protocol " << p;
        EXPECT_EQ(doc->end_offset, bytes.size());
        std::printf("protocol %d: %zu bytes -> %zu values, tree matches Python (%zu chars)\n", p, bytes.size(),
                    doc->values->size(), want.size());
    }
}

TEST(Pickle, MaliciousCorpusIsRefusedAndNothingRuns) {
    const fs::path dir = kPickleDir / "malicious";
    std::ifstream mf(dir / "MANIFEST.json");
    ASSERT_TRUE(mf.good()) << "missing MANIFEST.json" << kRegen;
    const nlohmann::json manifest = nlohmann::json::parse(mf);
    std::set<std::string> listed;
    for (auto& [file, want] : manifest.items()) listed.insert(file);
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().filename() != "MANIFEST.json") {
            EXPECT_TRUE(listed.count(e.path().filename().string())) << e.path() << " has no expectation in MANIFEST.json";
        }
    }

    // Payloads would `touch EASEL_PWNED` in the working directory: run in an empty one and check afterwards.
    const fs::path tmp = fs::temp_directory_path() / fmt::format("easel_pickle_test_{}", ::getpid());
    fs::create_directories(tmp);
    const fs::path old_cwd = fs::current_path();
    fs::current_path(tmp);
    size_t refused = 0;
    for (auto& [file, want] : manifest.items()) {
        const auto bytes = read_bytes(dir / file);
        auto doc = parse(bytes, options(file));
        if (doc) {
            ADD_FAILURE() << file << ": was accepted: " << render(doc->root);
            continue;
        }
        const std::string msg = doc.error().to_string();
        EXPECT_EQ(error_code_name(doc.error().code()), want.at("code").get<std::string>()) << file << ": " << msg;
        EXPECT_NE(msg.find(want.at("contains").get<std::string>()), std::string::npos)
            << file << ": message does not name " << want.at("contains") << ": " << msg;
        std::printf("  %-36s %s\n", file.c_str(), msg.substr(file.size() + 2).c_str());
        ++refused;
    }
    const bool ran = fs::exists(tmp / "EASEL_PWNED");
    fs::current_path(old_cwd);
    fs::remove_all(tmp);
    EXPECT_FALSE(ran) << "a payload ran: EASEL_PWNED was created";
    std::printf("%zu hostile pickles refused, sentinel absent\n", refused);
}

TEST(Pickle, RefusalNamesTheGlobalAndTheByte) {
    // \x80\x02 then GLOBAL at byte 2.
    auto doc = parse(lit("\x80\x02" "cos\nsystem\n" "X\x01\x00\x00\x00x\x85R."));
    ASSERT_FALSE(doc);
    EXPECT_EQ(doc.error().code(), ErrorCode::Refused);
    EXPECT_EQ(doc.error().to_string(),
              "test: pickle: refused global 'os.system' (only the globals that rebuild tensors are allowed) at byte 2");
}

TEST(Pickle, MemoSharesValuesAndSeesLaterMutation) {
    // l = []; memo[0] = l; d = {'a': l, 'b': l}; then l.append(1) through the memo (as pickle does for cycles).
    auto doc = parse(lit("\x80\x02}(X\x01\x00\x00\x00" "a]q\x00X\x01\x00\x00\x00" "bh\x00uh\x00K\x01" "a0."));
    ASSERT_TRUE(doc) << doc.error().to_string();
    EXPECT_EQ(render(doc->root), "{s61:[i1],s62:[i1]}");
    EXPECT_EQ(doc->root->entries[0].second, doc->root->entries[1].second);
}

TEST(Pickle, SelfReferenceIsAGraphNotARecursion) {
    // l = []; l.append(l)
    auto doc = parse(lit("\x80\x02]q\x00h\x00" "a."));
    ASSERT_TRUE(doc) << doc.error().to_string();
    ASSERT_EQ(doc->root->items.size(), 1u);
    EXPECT_EQ(doc->root->items[0], doc->root);
}

TEST(Pickle, DeepNestingNeedsNoRecursion) {
    // 100,000 lists, each appended into the one below it: [[[[...]]]] built iteratively, dropped iteratively.
    std::string p = "\x80\x02";
    p += std::string(100000, ']') + std::string(99999, 'a') + ".";
    auto doc = parse(p);
    ASSERT_TRUE(doc) << doc.error().to_string();
    size_t depth = 0;
    for (const PickleValue* v = doc->root; !v->items.empty(); v = v->items[0]) ++depth;
    EXPECT_EQ(depth, 99999u);
}

TEST(Pickle, RepeatedDictKeyReplacesTheValue) {
    auto doc = parse(lit("\x80\x02}(X\x01\x00\x00\x00" "aK\x01X\x01\x00\x00\x00" "aK\x02u."));
    ASSERT_TRUE(doc) << doc.error().to_string();
    EXPECT_EQ(render(doc->root), "{s61:i2}");
}

TEST(Pickle, ConcatenatedPicklesReportWhereEachEnds) {
    const std::string two(lit("\x80\x02K\x07.\x80\x02K\x08."));
    auto first = parse(two);
    ASSERT_TRUE(first) << first.error().to_string();
    EXPECT_EQ(first->end_offset, 5u);
    auto second = parse_pickle(reinterpret_cast<const uint8_t*>(two.data()) + 5, 5, options());
    ASSERT_TRUE(second) << second.error().to_string();
    EXPECT_EQ(second->root->integer, 8);
}

TEST(Pickle, MemoryLimitIsEnforced) {
    const auto bytes = read_bytes(kPickleDir / "benign" / "proto2.pkl");
    PickleOptions o = options();
    o.limits.max_bytes = 4096;
    auto doc = parse(bytes, o);
    ASSERT_FALSE(doc);
    EXPECT_EQ(doc.error().code(), ErrorCode::ResourceExhausted) << doc.error().to_string();
    o.limits.max_bytes = size_t(1) << 28;
    o.limits.max_stack = 3;
    doc = parse(bytes, o);
    ASSERT_FALSE(doc);
    EXPECT_EQ(doc.error().code(), ErrorCode::ResourceExhausted) << doc.error().to_string();
}

TEST(Pickle, EmptyAllowListRefusesEvenTensorRebuilds) {
    const auto bytes = read_bytes(kPickleDir / "benign" / "proto2.pkl");  // contains OrderedDict
    PickleOptions o;
    o.source = "x";
    auto doc = parse(bytes, o);
    ASSERT_FALSE(doc);
    EXPECT_NE(doc.error().message().find("refused global '"), std::string::npos) << doc.error().to_string();
}

// No prefix of a valid pickle and no single-byte corruption may crash, hang or be silently accepted as the
// whole value (prefixes lack STOP). ASan/UBSan builds run this too.
TEST(Pickle, TruncationsAndByteFlipsFailCleanly) {
    size_t runs = 0;
    for (int p = 0; p <= 5; ++p) {
        const auto bytes = read_bytes(kPickleDir / "benign" / fmt::format("proto{}.pkl", p));
        for (size_t n = 0; n < bytes.size(); ++n) {
            std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + std::ptrdiff_t(n));
            EXPECT_FALSE(parse(cut)) << "protocol " << p << ": " << n << "-byte prefix accepted";
            ++runs;
        }
        uint32_t rng = 12345u + uint32_t(p);
        for (int k = 0; k < 2000; ++k) {
            std::vector<uint8_t> b = bytes;
            rng = rng * 1664525u + 1013904223u;
            b[(rng >> 8) % b.size()] = uint8_t(rng >> 24);
            (void)parse(b);  // any outcome but a crash is fine
            ++runs;
        }
    }
    std::printf("%zu mutated pickles parsed without a crash\n", runs);
}

}  // namespace
}  // namespace easel
