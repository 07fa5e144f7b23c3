#include "core/allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace easel {

struct BufferPool::State {
    std::mutex mu;
    std::multimap<size_t, std::byte*> free;  // capacity -> block
    BufferPoolStats stats;
    bool closed = false;
};

namespace {
constexpr size_t kHugePage = size_t(2) << 20;

// Maps `len` bytes (a multiple of 4 KiB) of fresh zeroed memory; from 2 MiB on, 2 MiB-aligned and advised
// to use transparent huge pages. Null on failure. Release with unmap_pages(p, len).
std::byte* map_pages(size_t len) {
    const bool huge = len >= kHugePage;
    const size_t span = huge ? len + kHugePage : len;
    void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return nullptr;
    auto* base = static_cast<std::byte*>(raw);
    if (huge) {
        // Cut the region to a 2 MiB boundary so that whole huge pages fit.
        const uintptr_t a = reinterpret_cast<uintptr_t>(base);
        const size_t head = size_t((a + kHugePage - 1) / kHugePage * kHugePage - a);
        if (head > 0) ::munmap(base, head);
        const size_t tail = span - head - len;
        if (tail > 0) ::munmap(base + head + len, tail);
        base += head;
        ::madvise(base, len, MADV_HUGEPAGE);  // advice only: without THP the region still works with small pages
    }
    return base;
}

void unmap_pages(void* p, size_t len) { ::munmap(p, len); }

// The pool's blocks: small ones from the heap, large ones (2 MiB and more) straight from the kernel on huge
// pages, so that a first decode at 512x512 (GBs of fresh activations) faults 512x fewer times.
std::byte* block_alloc(size_t cap) {
    if (cap >= kHugePage) return map_pages(cap);
    return static_cast<std::byte*>(std::aligned_alloc(64, cap));
}

void block_free(std::byte* p, size_t cap) {
    if (cap >= kHugePage) unmap_pages(p, cap);
    else std::free(p);
}

// Sizes are rounded up to a 4 KiB multiple; a cached block is reused if it is at most 25% larger than asked,
// which keeps reuse high for a model whose activation sizes repeat every step without wasting much memory.
size_t round_capacity(size_t bytes) { return (bytes + 4095) / 4096 * 4096 + (bytes == 0 ? 4096 : 0); }
}  // namespace

BufferPool::BufferPool() : state_(std::make_shared<State>()) {}

BufferPool::~BufferPool() {
    trim();
    std::lock_guard<std::mutex> lk(state_->mu);
    state_->closed = true;  // buffers returned after this are freed directly
}

std::shared_ptr<std::byte> BufferPool::allocate(size_t bytes) {
    const size_t cap = round_capacity(bytes);
    std::byte* p = nullptr;
    size_t got = cap;
    {
        std::lock_guard<std::mutex> lk(state_->mu);
        auto it = state_->free.lower_bound(cap);
        if (it != state_->free.end() && it->first <= cap + cap / 4) {
            got = it->first;
            p = it->second;
            state_->free.erase(it);
            state_->stats.bytes_cached -= got;
            state_->stats.reuses++;
        }
    }
    if (!p) {
        p = block_alloc(cap);
        if (!p) {
            trim();
            p = block_alloc(cap);
            if (!p) throw std::bad_alloc();
        }
        std::lock_guard<std::mutex> lk(state_->mu);
        state_->stats.allocations++;
    }
    {
        std::lock_guard<std::mutex> lk(state_->mu);
        state_->stats.bytes_in_use += got;
        const size_t total = state_->stats.bytes_in_use + state_->stats.bytes_cached;
        if (total > state_->stats.peak_bytes) state_->stats.peak_bytes = total;
    }
    std::shared_ptr<State> st = state_;
    return std::shared_ptr<std::byte>(p, [st, got](std::byte* q) {
        std::lock_guard<std::mutex> lk(st->mu);
        st->stats.bytes_in_use -= got;
        if (st->closed) {
            block_free(q, got);
            return;
        }
        st->free.emplace(got, q);
        st->stats.bytes_cached += got;
    });
}

BufferPoolStats BufferPool::stats() const {
    std::lock_guard<std::mutex> lk(state_->mu);
    return state_->stats;
}

void BufferPool::trim() {
    std::lock_guard<std::mutex> lk(state_->mu);
    for (auto& [cap, p] : state_->free) block_free(p, cap);
    state_->free.clear();
    state_->stats.bytes_cached = 0;
}

std::shared_ptr<void> allocate_zeroed_pages(size_t bytes) {
    if (bytes > (size_t(1) << 46)) return nullptr;
    const size_t len = (std::max<size_t>(bytes, 1) + 4095) / 4096 * 4096;
    std::byte* p = map_pages(len);
    if (!p) return nullptr;
    return std::shared_ptr<void>(p, [len](void* q) { unmap_pages(q, len); });
}

}  // namespace easel
