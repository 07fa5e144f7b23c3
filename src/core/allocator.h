// BufferPool: a caching allocator for activations. A buffer freed by its last tensor goes back to the pool
// and is handed out again to the next request of a size it fits, so a sampling loop allocates only on its
// first step. Thread-safe.
//
//   BufferPool pool;
//   Tensor h = Tensor::empty({2, 320, 64, 64}, DType::F32, &pool);   // reused next step
//   pool.stats();                                                    // bytes held, peak, hits
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "core/tensor.h"

namespace easel {

struct BufferPoolStats {
    size_t bytes_in_use = 0;   // handed out and not yet returned
    size_t bytes_cached = 0;   // returned, waiting for reuse
    size_t peak_bytes = 0;     // max of in_use + cached
    size_t allocations = 0;    // requests served from fresh memory
    size_t reuses = 0;         // requests served from the cache
};

class BufferPool final : public Allocator {
public:
    BufferPool();
    ~BufferPool() override;
    std::shared_ptr<std::byte> allocate(size_t bytes) override;
    BufferPoolStats stats() const;
    // Frees cached (not in-use) buffers.
    void trim();

private:
    struct State;
    std::shared_ptr<State> state_;  // shared with outstanding buffers' deleters, so they may outlive the pool
};

// Zero-filled memory for large long-lived buffers (packed weights): fresh anonymous pages, which the kernel
// zeroes, so the caller needs no memset. A region of 2 MiB or more is 2 MiB-aligned and asks for transparent
// huge pages (MADV_HUGEPAGE), which cuts the page faults of filling gigabytes of weights up to 512-fold. Null
// when the memory cannot be had. The memory is returned to the system when the last owner lets go.
//
//   std::shared_ptr<void> w = allocate_zeroed_pages(bytes);   // all zero
std::shared_ptr<void> allocate_zeroed_pages(size_t bytes);

}  // namespace easel
