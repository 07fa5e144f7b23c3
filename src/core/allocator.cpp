#include "core/allocator.h"

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
        p = static_cast<std::byte*>(std::aligned_alloc(64, cap));
        if (!p) {
            trim();
            p = static_cast<std::byte*>(std::aligned_alloc(64, cap));
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
            std::free(q);
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
    for (auto& [cap, p] : state_->free) std::free(p);
    state_->free.clear();
    state_->stats.bytes_cached = 0;
}

}  // namespace easel
