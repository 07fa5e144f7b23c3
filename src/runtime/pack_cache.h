// PackCache: a file of packed weights (the layouts pack_linear_weight / pack_conv2d_weight give for this CPU and
// precision), so that a model loaded again maps them instead of converting fp16 -> bf16 panels into fresh
// memory. On the development VM (Firecracker, free-page reporting to the host) fresh memory is what a load
// costs: the first touch of each new 2 MiB page takes ~2 ms, ~4.5 s for the 2 GB of SD 1.5's packed weights,
// while the page cache of a cached file is already backed: SD 1.5 fast loads in ~1.1 s instead of 4.5 s.
// The file is written in 2 MiB chunks and mapped with MapOptions::huge, so where the page cache keeps it in
// 2 MiB folios (Linux 6.16+ on ext4) the panels are mapped in huge pages and a UNet step runs as fast as from
// packed memory. (Session 5's cache, written entry by entry and mapped in 4 KiB pages, made steps ~5% slower.)
// On by default in the CLI, server and benchmark (default_weight_cache_dir()); the library's LoadOptions leave
// it off unless a folder is given.
//
//   EASEL_TRY_ASSIGN(std::string key, PackCache::model_key("v1-5.safetensors", "bf16 avx512bf16"));
//   auto cache = PackCache::open(default_weight_cache_dir(), key);        // never fails: a bad file is rebuilt
//   loader.set_pack_cache(cache.get());   // Linear/Conv2d::declare look entries up, then add what they packed
//   ... declare the model ...
//   cache->commit();                      // writes a new file if anything was added; trims the folder
//
// The file is ours but lives in a user-writable folder, so it is read like any untrusted model file: every
// offset and size is checked and an entry is used only when its layout equals, field for field, the layout
// this build would pack for the same tensor. A file that fails any check is ignored (and rewritten), never
// trusted. The key names the model files by path, size, modification time and inode, so an edited or replaced
// model never meets a stale entry; files are replaced by rename, so a reader never sees a half-written one.
//
// Layout (little-endian): "EASELPK1", u32 version, u32 0, u64 data_begin, u64 file_size, u32 key length + key,
// u32 entry count, entries {u32 name length + name, u8 kind, u8 isa, u8 precision, u8 kpack, i32 nr, i64 dims[4],
// i64 k_words, i64 ld_words, u64 offset, u64 bytes}; entry data 4 KiB-aligned after data_begin.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "kernels/conv2d.h"
#include "kernels/matmul.h"

namespace easel {

class MappedFile;

// The cache folder the CLI, server and benchmark use unless told: EASEL_WEIGHT_CACHE=DIR; "", "off" or "0": off
// (""); unset: standard_weight_cache_dir().
std::string default_weight_cache_dir();
// $XDG_CACHE_HOME/easel/weights, else $HOME/.cache/easel/weights, else "".
std::string standard_weight_cache_dir();
// EASEL_WEIGHT_CACHE_MAX_GB (a number; default 8): the folder is trimmed to this size, least recently used first.
uint64_t default_weight_cache_max_bytes();

class PackCache {
public:
    // Identity of the model at `path` (a file, or a folder walked recursively, at most 10,000 files): the
    // canonical path, size, modification time (ns) and inode of each file, then `extra` (precision, ISA,
    // options that change what gets packed). Also reports the files' total size, so small models can skip the
    // cache. Errors: the path cannot be read.
    struct ModelKey {
        std::string key;
        uint64_t total_bytes = 0;
    };
    static Result<ModelKey> model_key(const std::string& path, std::string_view extra);

    // How hits hand out their bytes. Map: the weight uses the mapped file in place. Copy: each hit is copied
    // into fresh memory (huge pages from 2 MiB on, as packing allocates) and the file's pages are dropped.
    // Auto: Map when the kernel maps at least 90% of the file (of its whole 2 MiB blocks) in 2 MiB pages, after
    // reading the file again once if only part of it is (see open()), else Copy, because panels on
    // 4 KiB pages made steps ~5% slower (session 5): on a kernel or file system without large page-cache
    // folios (ext4 before Linux 6.16, Debian 12's 6.1) the cache then still saves the packing.
    enum class Use { Auto, Map, Copy };

    // Maps the cache file for `key` in `dir` if there is a valid one; otherwise the cache starts empty and
    // note() says why (missing, or which check the file failed). Never fails.
    static std::unique_ptr<PackCache> open(std::string dir, std::string key, uint64_t max_bytes = default_weight_cache_max_bytes(),
                                           Use use = Use::Auto);
    ~PackCache();

    // The cached weight `name` if it has exactly `layout` (from packed_*_layout); else nullopt (a miss).
    std::optional<PackedWeight> linear(const std::string& name, const PackedWeight& layout);
    std::optional<PackedConv2dWeight> conv2d(const std::string& name, const PackedConv2dWeight& layout);
    // Records a freshly packed weight for commit(). Its data stays shared until then.
    void add(const std::string& name, const PackedWeight& w);
    void add(const std::string& name, const PackedConv2dWeight& w);

    // When anything was added: writes every entry (the old file's and the new ones) to a new file, renames it
    // over the old one, then deletes the least recently used cache files beyond max_bytes. Errors (a full disk,
    // a read-only folder) leave no partial file; the caller may warn and go on.
    Status commit();

    const std::string& path() const { return path_; }
    const std::string& note() const { return note_; }  // why an existing file was not used; empty otherwise
    size_t hits() const { return hits_; }
    size_t added() const { return added_.size(); }
    uint64_t hit_bytes() const { return hit_bytes_; }
    uint64_t added_bytes() const;
    bool mapped() const { return file_ != nullptr; }
    bool copies() const { return copy_; }  // hits are copies (Use::Copy, or Auto on 4 KiB pages)
    // For a weight a hit copied (copies()): its bytes in the cache file as it is mapped, kept alive with the
    // mapping (the pages are not resident until read). A weight patched in place (LoRAs, pipeline/lora.h) is
    // written back from there. Null for a name no hit handed out, or when hits are not copies.
    std::shared_ptr<const void> original(const std::string& name) const;

    // Parses a cache file image: for the fuzzer and tests (open() goes through it). On success, the entries.
    struct Entry {
        uint8_t kind = 0;  // 0: linear, 1: conv2d
        uint8_t isa = 0, precision = 0, kpack = 0;
        int32_t nr = 0;
        int64_t dims[4] = {0, 0, 0, 0};  // linear: n, k; conv2d: cout, cin, kh, kw
        int64_t k_words = 0, ld_words = 0;
        uint64_t offset = 0, bytes = 0;
    };
    static Result<std::map<std::string, Entry>> parse(const uint8_t* data, size_t size, std::string_view key);

private:
    PackCache() = default;
    // The entry `name` if the file has it with exactly `want`'s layout (counting the hit); else null.
    const Entry* match(const std::string& name, const Entry& want);
    std::string dir_, key_, path_, note_;
    uint64_t max_bytes_ = 0;
    std::shared_ptr<const MappedFile> file_;
    std::map<std::string, Entry> entries_;
    struct Added {
        Entry entry;
        std::shared_ptr<const void> data;
    };
    std::map<std::string, Added> added_;
    size_t hits_ = 0;
    uint64_t hit_bytes_ = 0;
    std::map<std::string, const Entry*> handed_out_;  // hits, by name
    bool copy_ = false;
};

}  // namespace easel
