#include "runtime/pack_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <set>

#include <fmt/format.h>

#include "core/allocator.h"
#include "io/mapped_file.h"

namespace easel {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'E', 'A', 'S', 'E', 'L', 'P', 'K', '1'};
constexpr uint32_t kVersion = 1;
constexpr uint64_t kAlign = 4096;
constexpr uint32_t kMaxEntries = 1u << 20;
constexpr uint32_t kMaxName = 4096;
constexpr uint32_t kMaxKey = 1u << 24;
constexpr const char* kSuffix = ".easelpack";

uint64_t fnv1a64(std::string_view s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

// Bounds-checked little-endian reader over the file image; every read says what it was reading on failure.
class Reader {
public:
    Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
    template <typename T>
    Result<T> get(std::string_view what) {
        if (n_ - pos_ < sizeof(T)) return Error::bad_file("", fmt::format("truncated at byte {} reading {}", pos_, what));
        T v;
        std::memcpy(&v, d_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    Result<std::string> str(uint32_t max, std::string_view what) {
        EASEL_TRY_ASSIGN(uint32_t len, get<uint32_t>(what));
        if (len > max) return Error::bad_file("", fmt::format("{} at byte {} is {} bytes long (at most {})", what, pos_ - 4, len, max));
        if (n_ - pos_ < len) return Error::bad_file("", fmt::format("truncated at byte {} reading {}", pos_, what));
        std::string s(reinterpret_cast<const char*>(d_ + pos_), len);
        pos_ += len;
        return s;
    }
    size_t pos() const { return pos_; }

private:
    const uint8_t* d_;
    size_t n_;
    size_t pos_ = 0;
};

template <typename T>
void put(std::string& out, T v) {
    out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
void put_str(std::string& out, std::string_view s) {
    put<uint32_t>(out, uint32_t(s.size()));
    out.append(s);
}

Status write_all(int fd, const void* p, size_t n, const std::string& path) {
    const auto* c = static_cast<const uint8_t*>(p);
    while (n > 0) {
        const ssize_t w = ::write(fd, c, std::min<size_t>(n, size_t(1) << 30));
        if (w < 0) {
            if (errno == EINTR) continue;
            return Error::io(fmt::format("cannot write: {}", std::strerror(errno)), path);
        }
        c += w;
        n -= size_t(w);
    }
    return ok();
}

// Writes a file sequentially in whole 2 MiB chunks at 2 MiB offsets (the last may be shorter). The page cache
// then holds it in 2 MiB folios where the file system allows (ext4 since Linux 6.16), and a later mapping with
// MapOptions::huge maps each with one page-table entry, as fast to use as the packed weights in fresh memory.
// Writes of each entry as it comes, at 4 KiB offsets, leave small folios at every entry's start.
class ChunkWriter {
public:
    ChunkWriter(int fd, const std::string& path) : fd_(fd), path_(path), buf_(kChunk) {}
    Status put(const void* p, size_t n) { return fill(static_cast<const uint8_t*>(p), n); }
    Status zeros(size_t n) { return fill(nullptr, n); }
    Status finish() {
        EASEL_TRY(write_all(fd_, buf_.data(), used_, path_));
        used_ = 0;
        return ok();
    }

private:
    static constexpr size_t kChunk = size_t(2) << 20;
    Status fill(const uint8_t* p, size_t n) {
        while (n > 0) {
            const size_t k = std::min(n, kChunk - used_);
            if (p) {
                std::memcpy(buf_.data() + used_, p, k);
                p += k;
            } else {
                std::memset(buf_.data() + used_, 0, k);
            }
            used_ += k;
            n -= k;
            if (used_ == kChunk) EASEL_TRY(finish());
        }
        return ok();
    }
    int fd_;
    const std::string& path_;
    std::vector<uint8_t> buf_;
    size_t used_ = 0;
};

std::string file_identity(const fs::path& p, const struct stat& st) {
    return fmt::format("{} {} {}.{:09d} {}:{}\n", p.string(), uint64_t(st.st_size), int64_t(st.st_mtim.tv_sec),
                       int64_t(st.st_mtim.tv_nsec), uint64_t(st.st_dev), uint64_t(st.st_ino));
}

}  // namespace

std::string default_weight_cache_dir() {
    if (const char* v = std::getenv("EASEL_WEIGHT_CACHE")) {
        const std::string s = v;
        if (s.empty() || s == "off" || s == "0") return {};
        return s;
    }
    return standard_weight_cache_dir();
}

std::string standard_weight_cache_dir() {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "easel" / "weights").string();
    if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "easel" / "weights").string();
    return {};
}

uint64_t default_weight_cache_max_bytes() {
    double gb = 8.0;
    if (const char* v = std::getenv("EASEL_WEIGHT_CACHE_MAX_GB"); v && *v) {
        char* end = nullptr;
        const double d = std::strtod(v, &end);
        if (end && *end == '\0' && d >= 0 && d < 1e6) gb = d;
    }
    return uint64_t(gb * double(uint64_t(1) << 30));
}

Result<PackCache::ModelKey> PackCache::model_key(const std::string& path, std::string_view extra) {
    std::error_code ec;
    const fs::path canon = fs::canonical(path, ec);
    if (ec) return Error::io(fmt::format("cannot resolve the path: {}", ec.message()), path);
    struct stat st {};
    if (::stat(canon.c_str(), &st) != 0) return Error::io(fmt::format("cannot stat: {}", std::strerror(errno)), path);
    ModelKey k;
    if (S_ISREG(st.st_mode)) {
        k.key = file_identity(canon, st);
        k.total_bytes = uint64_t(st.st_size);
    } else if (S_ISDIR(st.st_mode)) {
        std::vector<std::string> lines;
        fs::recursive_directory_iterator it(canon, fs::directory_options::skip_permission_denied, ec), end;
        if (ec) return Error::io(fmt::format("cannot list the folder: {}", ec.message()), path);
        for (; it != end; it.increment(ec)) {
            if (ec) return Error::io(fmt::format("cannot list the folder: {}", ec.message()), path);
            struct stat fst {};
            if (::stat(it->path().c_str(), &fst) != 0 || !S_ISREG(fst.st_mode)) continue;
            if (lines.size() >= 10000) return Error::invalid_argument("more than 10,000 files under the model folder", path);
            lines.push_back(file_identity(it->path(), fst));
            k.total_bytes += uint64_t(fst.st_size);
        }
        std::sort(lines.begin(), lines.end());
        for (const auto& l : lines) k.key += l;
    } else {
        return Error::io("is neither a file nor a folder", path);
    }
    k.key += fmt::format("easel packed weights v{}: {}\n", kVersion, extra);
    return k;
}

Result<std::map<std::string, PackCache::Entry>> PackCache::parse(const uint8_t* data, size_t size, std::string_view key) {
    Reader r(data, size);
    if (size < sizeof(kMagic) || std::memcmp(data, kMagic, sizeof(kMagic)) != 0)
        return Error::bad_file("", "not an easel packed-weight cache (bad magic)");
    EASEL_TRY(r.get<uint64_t>("magic"));
    EASEL_TRY_ASSIGN(uint32_t version, r.get<uint32_t>("version"));
    if (version != kVersion) return Error::bad_file("", fmt::format("format version {}, expected {}", version, kVersion));
    EASEL_TRY(r.get<uint32_t>("reserved"));
    EASEL_TRY_ASSIGN(uint64_t data_begin, r.get<uint64_t>("data offset"));
    EASEL_TRY_ASSIGN(uint64_t file_size, r.get<uint64_t>("file size"));
    if (file_size != size) return Error::bad_file("", fmt::format("file is {} bytes, its header says {}", size, file_size));
    EASEL_TRY_ASSIGN(std::string file_key, r.str(kMaxKey, "key"));
    if (file_key != key) return Error::bad_file("", "written for another model file, precision or CPU (key differs)");
    EASEL_TRY_ASSIGN(uint32_t count, r.get<uint32_t>("entry count"));
    if (count > kMaxEntries) return Error::bad_file("", fmt::format("{} entries (at most {})", count, kMaxEntries));
    std::map<std::string, Entry> out;
    std::vector<std::pair<uint64_t, uint64_t>> spans;
    for (uint32_t i = 0; i < count; ++i) {
        EASEL_TRY_ASSIGN(std::string name, r.str(kMaxName, "entry name"));
        Entry e;
        EASEL_TRY_ASSIGN(e.kind, r.get<uint8_t>("entry kind"));
        EASEL_TRY_ASSIGN(e.isa, r.get<uint8_t>("entry isa"));
        EASEL_TRY_ASSIGN(e.precision, r.get<uint8_t>("entry precision"));
        EASEL_TRY_ASSIGN(e.kpack, r.get<uint8_t>("entry kpack"));
        EASEL_TRY_ASSIGN(e.nr, r.get<int32_t>("entry nr"));
        for (int64_t& d : e.dims) {
            EASEL_TRY_ASSIGN(d, r.get<int64_t>("entry dims"));
        }
        EASEL_TRY_ASSIGN(e.k_words, r.get<int64_t>("entry k_words"));
        EASEL_TRY_ASSIGN(e.ld_words, r.get<int64_t>("entry ld_words"));
        EASEL_TRY_ASSIGN(e.offset, r.get<uint64_t>("entry offset"));
        EASEL_TRY_ASSIGN(e.bytes, r.get<uint64_t>("entry size"));
        if (name.empty()) return Error::bad_file("", fmt::format("entry {} has an empty name", i));
        if (e.kind > 1) return Error::bad_file("", fmt::format("entry {} ({}) has kind {}, expected 0 or 1", i, name, e.kind));
        if (e.offset % 64 != 0 || e.offset < data_begin || e.offset > size || e.bytes > size - e.offset)
            return Error::bad_file("", fmt::format("entry {} ({}): {} bytes at offset {} are not inside the data "
                                                   "[{}, {}) or not 64-byte aligned",
                                                   i, name, e.bytes, e.offset, data_begin, size));
        if (!out.emplace(name, e).second) return Error::bad_file("", fmt::format("entry name {} appears twice", name));
        spans.emplace_back(e.offset, e.bytes);
    }
    if (data_begin < r.pos() || data_begin > size)
        return Error::bad_file("", fmt::format("data offset {} is inside the header (which ends at {}) or past the end",
                                               data_begin, r.pos()));
    std::sort(spans.begin(), spans.end());
    for (size_t i = 1; i < spans.size(); ++i)
        if (spans[i - 1].first + spans[i - 1].second > spans[i].first)
            return Error::bad_file("", fmt::format("entries at offsets {} and {} overlap", spans[i - 1].first, spans[i].first));
    return out;
}

std::unique_ptr<PackCache> PackCache::open(std::string dir, std::string key, uint64_t max_bytes, Use use) {
    std::unique_ptr<PackCache> c(new PackCache());
    c->dir_ = std::move(dir);
    c->key_ = std::move(key);
    c->max_bytes_ = max_bytes;
    c->path_ = (fs::path(c->dir_) / fmt::format("{:016x}{}", fnv1a64(c->key_), kSuffix)).string();
    std::error_code ec;
    if (!fs::exists(c->path_, ec)) return c;
    MapOptions mo;
    mo.populate = true;
    mo.huge = true;  // commit() writes the file in 2 MiB chunks, so its page cache can be mapped in 2 MiB pages
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto f = MappedFile::open(c->path_, mo);
        if (!f) {
            c->note_ = f.error().to_string();
            return c;
        }
        auto entries = parse((*f)->data(), (*f)->size(), c->key_);
        if (!entries) {
            c->note_ = fmt::format("{}: {}", c->path_, entries.error().message());
            return c;
        }
        // 90% of the part that 2 MiB pages can cover (a tail shorter than 2 MiB never is).
        const uint64_t pmd = uint64_t(2) << 20;
        const uint64_t huge = (*f)->huge_mapped_bytes(), enough = (*f)->size() / pmd * pmd / 10 * 9;
        // Part of the file in 2 MiB pages shows that the kernel can; the rest was read back into small folios
        // after part of it left the page cache (seen here after an hour of other work: 82%). Dropping the
        // file's unmapped cached pages and reading it again with the huge-page advice restores them (1.9 GB in
        // 0.33 s here), far cheaper than copying every panel into fresh memory.
        if (use == Use::Auto && attempt == 0 && huge > 0 && huge < enough) {
            mo.drop_cached = true;
            continue;
        }
        c->file_ = std::move(f).value();
        c->entries_ = std::move(entries).value();
        c->copy_ = use == Use::Copy || (use == Use::Auto && huge < enough);
        break;
    }
    ::utimensat(AT_FDCWD, c->path_.c_str(), nullptr, 0);  // most recently used, for the trim in commit()
    return c;
}

PackCache::~PackCache() = default;

namespace {
// An entry's bytes, keeping the mapping alive; when the last weight using them goes (generate_once drops the
// text encoder and the UNet early), their pages leave the resident set, as freed packed memory would.
// With `copy`, the bytes are copied into fresh memory and the file's pages of them dropped at once; null if that
// memory cannot be had.
std::shared_ptr<const void> entry_data(const std::shared_ptr<const MappedFile>& file, const PackCache::Entry& e,
                                       bool copy) {
    const size_t n = size_t(e.bytes);
    const uint8_t* src = file->data() + e.offset;
    if (copy) {
        std::shared_ptr<void> mem = allocate_zeroed_pages(n);
        if (!mem) return nullptr;
        std::memcpy(mem.get(), src, n);
        MappedFile::release_pages(src, n);
        return mem;
    }
    return std::shared_ptr<const void>(src, [file, n](const void* p) { MappedFile::release_pages(p, n); });
}

// The entry a weight of this layout has: what add() records and what a lookup must find, field for field.
PackCache::Entry entry_of(const PackedWeight& w) {
    PackCache::Entry e;
    e.kind = 0;
    e.isa = uint8_t(w.isa);
    e.precision = uint8_t(w.precision);
    e.kpack = uint8_t(w.kpack);
    e.nr = w.nr;
    e.dims[0] = w.n;
    e.dims[1] = w.k;
    e.k_words = w.k_words;
    e.bytes = w.layout_bytes();
    return e;
}

PackCache::Entry entry_of(const PackedConv2dWeight& w) {
    PackCache::Entry e;
    e.kind = 1;
    e.isa = uint8_t(w.isa);
    e.precision = uint8_t(w.precision);
    e.kpack = uint8_t(w.kpack);
    e.dims[0] = w.cout;
    e.dims[1] = w.cin;
    e.dims[2] = w.kh;
    e.dims[3] = w.kw;
    e.k_words = w.k_words;
    e.ld_words = w.ld_words;
    e.bytes = w.layout_bytes();
    return e;
}

bool same_layout(const PackCache::Entry& a, const PackCache::Entry& b) {
    return a.kind == b.kind && a.isa == b.isa && a.precision == b.precision && a.kpack == b.kpack && a.nr == b.nr &&
           std::equal(std::begin(a.dims), std::end(a.dims), std::begin(b.dims)) && a.k_words == b.k_words &&
           a.ld_words == b.ld_words && a.bytes == b.bytes;
}
}  // namespace

const PackCache::Entry* PackCache::match(const std::string& name, const Entry& want) {
    if (!file_) return nullptr;
    auto it = entries_.find(name);
    if (it == entries_.end() || !same_layout(it->second, want)) return nullptr;
    ++hits_;
    hit_bytes_ += it->second.bytes;
    return &it->second;
}

std::optional<PackedWeight> PackCache::linear(const std::string& name, const PackedWeight& layout) {
    const Entry* e = match(name, entry_of(layout));
    if (!e) return std::nullopt;
    PackedWeight w = layout;
    w.data = entry_data(file_, *e, copy_);
    if (!w.data) return std::nullopt;  // no memory for the copy: packing will report it
    handed_out_[name] = e;
    return w;
}

std::shared_ptr<const void> PackCache::original(const std::string& name) const {
    if (!copy_ || !file_) return nullptr;
    auto it = handed_out_.find(name);
    if (it == handed_out_.end()) return nullptr;
    return std::shared_ptr<const void>(file_, file_->data() + it->second->offset);
}

std::optional<PackedConv2dWeight> PackCache::conv2d(const std::string& name, const PackedConv2dWeight& layout) {
    const Entry* e = match(name, entry_of(layout));
    if (!e) return std::nullopt;
    PackedConv2dWeight w = layout;
    w.data = entry_data(file_, *e, copy_);
    if (!w.data) return std::nullopt;
    handed_out_[name] = e;
    return w;
}

void PackCache::add(const std::string& name, const PackedWeight& w) {
    if (!w.empty()) added_[name] = Added{entry_of(w), w.data};
}

void PackCache::add(const std::string& name, const PackedConv2dWeight& w) {
    if (!w.empty()) added_[name] = Added{entry_of(w), w.data};
}

uint64_t PackCache::added_bytes() const {
    uint64_t n = 0;
    for (const auto& [name, a] : added_) n += a.entry.bytes;
    return n;
}

Status PackCache::commit() {
    if (added_.empty()) return ok();
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) return Error::io(fmt::format("cannot create the weight cache folder: {}", ec.message()), dir_);

    // Every entry to write: the old file's (unless re-added) and the new ones, each with its bytes.
    struct Out {
        const std::string* name;
        Entry entry;
        const void* data;
    };
    std::vector<Out> outs;
    for (const auto& [name, e] : entries_)
        if (!added_.count(name)) outs.push_back({&name, e, file_->data() + e.offset});
    for (const auto& [name, a] : added_) outs.push_back({&name, a.entry, a.data.get()});

    std::string header(kMagic, sizeof(kMagic));
    put<uint32_t>(header, kVersion);
    put<uint32_t>(header, 0);
    const size_t data_begin_at = header.size();
    put<uint64_t>(header, 0);  // data_begin, patched below
    put<uint64_t>(header, 0);  // file_size, patched below
    put_str(header, key_);
    put<uint32_t>(header, uint32_t(outs.size()));
    std::vector<size_t> offset_at(outs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
        const Entry& e = outs[i].entry;
        put_str(header, *outs[i].name);
        put<uint8_t>(header, e.kind);
        put<uint8_t>(header, e.isa);
        put<uint8_t>(header, e.precision);
        put<uint8_t>(header, e.kpack);
        put<int32_t>(header, e.nr);
        for (int64_t d : e.dims) put<int64_t>(header, d);
        put<int64_t>(header, e.k_words);
        put<int64_t>(header, e.ld_words);
        offset_at[i] = header.size();
        put<uint64_t>(header, 0);  // offset, patched below
        put<uint64_t>(header, e.bytes);
    }
    const uint64_t data_begin = align_up(header.size());
    uint64_t pos = data_begin;
    for (size_t i = 0; i < outs.size(); ++i) {
        outs[i].entry.offset = pos;
        std::memcpy(header.data() + offset_at[i], &pos, 8);
        pos = align_up(pos + outs[i].entry.bytes);
    }
    const uint64_t file_size = pos;
    std::memcpy(header.data() + data_begin_at, &data_begin, 8);
    std::memcpy(header.data() + data_begin_at + 8, &file_size, 8);

    // Unique per writer: two loads of one model in one process (a reload, the server) may write at once.
    static std::atomic<uint64_t> writers{0};
    const std::string tmp = fmt::format("{}.tmp.{}.{}", path_, ::getpid(), writers++);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return Error::io(fmt::format("cannot create: {}", std::strerror(errno)), tmp);
    Status st = [&]() -> Status {
        ChunkWriter w(fd, tmp);
        EASEL_TRY(w.put(header.data(), header.size()));
        EASEL_TRY(w.zeros(data_begin - header.size()));
        uint64_t at = data_begin;
        for (const Out& o : outs) {
            EASEL_TRY(w.put(o.data, o.entry.bytes));
            const uint64_t next = align_up(at + o.entry.bytes);
            EASEL_TRY(w.zeros(next - at - o.entry.bytes));
            at = next;
        }
        EASEL_TRY(w.finish());
        // On disk before the rename: a crash must never leave a complete-looking file with missing data.
        if (::fdatasync(fd) != 0) return Error::io(fmt::format("cannot sync: {}", std::strerror(errno)), tmp);
        return ok();
    }();
    if (::close(fd) != 0 && st.has_value()) st = Error::io(fmt::format("cannot close: {}", std::strerror(errno)), tmp);
    if (st.has_value() && ::rename(tmp.c_str(), path_.c_str()) != 0)
        st = Error::io(fmt::format("cannot rename to {}: {}", path_, std::strerror(errno)), tmp);
    if (!st.has_value()) {
        ::unlink(tmp.c_str());
        return st;
    }

    // Trim: least recently used files first, never the one just written; leftovers of interrupted writes
    // (".tmp.<pid>") older than an hour go too.
    struct Item {
        fs::file_time_type time;
        uint64_t size;
        fs::path path;
    };
    std::vector<Item> items;
    uint64_t total = 0;
    const auto now = fs::file_time_type::clock::now();
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
        const fs::path p = it->path();
        const std::string fname = p.filename().string();
        std::error_code e2;
        const auto t = fs::last_write_time(p, e2);
        if (e2 || !it->is_regular_file(e2)) continue;
        if (fname.find(std::string(kSuffix) + ".tmp.") != std::string::npos) {
            if (now - t > std::chrono::hours(1)) fs::remove(p, e2);
            continue;
        }
        if (fname.size() <= std::strlen(kSuffix) || fname.compare(fname.size() - std::strlen(kSuffix), std::string::npos, kSuffix) != 0)
            continue;
        const uint64_t sz = uint64_t(it->file_size(e2));
        total += sz;
        if (p.string() != path_) items.push_back({t, sz, p});
    }
    std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.time < b.time; });
    for (const Item& item : items) {
        if (total <= max_bytes_) break;
        std::error_code e2;
        if (fs::remove(item.path, e2)) total -= item.size;
    }
    added_.clear();
    return ok();
}

}  // namespace easel
