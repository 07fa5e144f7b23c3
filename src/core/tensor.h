// Tensor: a typed, strided view of shared memory, in PyTorch dimension order (outermost first).
//
//   Tensor x = Tensor::zeros({1, 4, 64, 64});          // F32, contiguous
//   Tensor t = x.permute({0, 2, 3, 1});                // a view: no copy, strides change
//   Tensor c = t.contiguous();                          // [1, 64, 64, 4], copied
//   float* p = c.data<float>();
//   Tensor w = Tensor::wrap(ptr, {320, 4, 3, 3}, DType::F16, mapping);  // zero-copy over a mmap
//
// Views share their memory through a shared_ptr that also keeps the owner (an allocation, a mapped file)
// alive. Strides are in elements. Kernels take raw pointers; this class only does layout.
//
// A quantized tensor (core/quant.h: a GGUF q4_K weight, an fp8 one) has its logical shape, dtype U8 and its
// blocks as stored, contiguous, each row (innermost dimension, a multiple of the block) whole blocks:
//   Tensor q = Tensor::wrap_quantized(p, {3072, 3072}, QuantType::Q8_0, mapping);
//   q.slice(0, 0, 1024);        // rows stay quantized (a view); q.to(DType::F32) decodes
// Views that keep rows whole (slice of dim 0, reshape keeping the innermost size a multiple of the block,
// unsqueeze before it) stay quantized; any other view or read decodes to f32 first.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant.h"

namespace easel {

constexpr int kMaxRank = 8;

class Shape {
public:
    Shape() = default;
    Shape(std::initializer_list<int64_t> dims);
    explicit Shape(const std::vector<int64_t>& dims);

    int rank() const { return rank_; }
    int64_t operator[](int i) const { return d_[size_t(i)]; }
    int64_t& operator[](int i) { return d_[size_t(i)]; }
    // Negative indices count from the end, as in PyTorch: dim(-1) is the innermost.
    int64_t dim(int i) const { return d_[size_t(i < 0 ? i + rank_ : i)]; }
    int64_t numel() const;
    const int64_t* begin() const { return d_.data(); }
    const int64_t* end() const { return d_.data() + rank_; }
    std::vector<int64_t> to_vector() const { return {begin(), end()}; }
    void push_back(int64_t v);

    bool operator==(const Shape& o) const;
    bool operator!=(const Shape& o) const { return !(*this == o); }
    std::string to_string() const;  // "[1, 4, 64, 64]"

private:
    std::array<int64_t, kMaxRank> d_{};
    int rank_ = 0;
};

// Contiguous (row-major) strides, in elements.
Shape contiguous_strides(const Shape& shape);

// True when every dim is at most INT64_MAX and the product of the non-zero ones fits in int64: then the element
// count, every partial product (in any order) and every contiguous stride fit too. A reader checks it before it
// makes a Shape from a file: a zero dimension must not hide [0, 2^40, 2^40], whose strides overflow.
bool dims_fit_int64(const uint64_t* dims, size_t n);

// Memory source for tensors. The default allocator is plain 64-byte-aligned heap memory; a BufferPool
// (core/allocator.h) reuses activation buffers across steps.
class Allocator {
public:
    virtual ~Allocator() = default;
    // Never returns null: exhausting memory is fatal for an inference engine's activations.
    virtual std::shared_ptr<std::byte> allocate(size_t bytes) = 0;
};
Allocator& heap_allocator();

class Tensor {
public:
    Tensor() = default;

    static Tensor empty(const Shape& shape, DType dtype = DType::F32, Allocator* alloc = nullptr);
    static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Allocator* alloc = nullptr);
    static Tensor full(const Shape& shape, float value, DType dtype = DType::F32);
    // Copies `values` (shape.numel() of them) into a new F32 tensor.
    static Tensor from_floats(const Shape& shape, const std::vector<float>& values);
    // Zero-copy: `data` stays valid while `keep_alive` (or any view) lives. Contiguous unless strides given.
    static Tensor wrap(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive);
    static Tensor wrap_strided(void* data, const Shape& shape, const Shape& strides, DType dtype,
                               std::shared_ptr<void> keep_alive);
    // Zero-copy over quant_bytes(type, shape.numel()) bytes of blocks. The innermost dimension must be a
    // multiple of the block (checked by the caller: a reader reports it as a bad file).
    static Tensor wrap_quantized(const void* data, const Shape& shape, QuantType type, std::shared_ptr<void> keep_alive);

    bool defined() const { return data_ != nullptr || numel() == 0; }
    const Shape& shape() const { return shape_; }
    const Shape& strides() const { return strides_; }
    int rank() const { return shape_.rank(); }
    int64_t size(int dim) const { return shape_.dim(dim); }
    int64_t stride(int dim) const { return strides_.dim(dim); }
    int64_t numel() const { return shape_.numel(); }
    DType dtype() const { return dtype_; }
    QuantType quant() const { return quant_; }
    bool quantized() const { return quant_ != QuantType::None; }
    size_t nbytes() const { return quantized() ? quant_bytes(quant_, numel()) : size_t(numel()) * dtype_size(dtype_); }
    bool is_contiguous() const;

    void* raw() const { return data_.get(); }
    // Typed pointer to element 0 of this view; asserts the dtype matches T.
    template <class T>
    T* data() const;

    // Views (no copy). Each asserts its preconditions: passing wrong dims is a bug in the caller.
    Tensor reshape(const Shape& shape) const;  // needs a contiguous tensor; one dim may be -1
    Tensor permute(std::initializer_list<int> dims) const;
    Tensor transpose(int a, int b) const;
    Tensor slice(int dim, int64_t start, int64_t end) const;
    Tensor select(int dim, int64_t index) const;  // drops `dim`
    Tensor unsqueeze(int dim) const;

    // Copies.
    Tensor contiguous() const;  // returns *this if already contiguous
    Tensor clone() const;
    Tensor to(DType dtype) const;  // numeric conversion (fp16/bf16 round to nearest even)
    // Copies src (same shape, any strides and dtype, converting) into this tensor's memory.
    void copy_from(const Tensor& src);

    // Element read as double, for tests and small tools; slow.
    double item(std::initializer_list<int64_t> index) const;
    std::vector<float> to_floats() const;  // all elements in row-major order, converted to f32

    const std::shared_ptr<std::byte>& storage() const { return data_; }

private:
    std::shared_ptr<std::byte> data_;  // points at element 0 of this view (aliasing the owner)
    Shape shape_;
    Shape strides_;
    DType dtype_ = DType::F32;
    QuantType quant_ = QuantType::None;
};

template <class T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::F32; }
template <> constexpr DType dtype_of<double>() { return DType::F64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::I32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::I64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::U8; }
template <> constexpr DType dtype_of<int8_t>() { return DType::I8; }

template <class T>
T* Tensor::data() const {
    if constexpr (std::is_same_v<T, uint16_t>) {
        EASEL_ASSERT(dtype_ == DType::F16 || dtype_ == DType::BF16 || dtype_ == DType::I16 || dtype_ == DType::U16,
                     "uint16_t view of a tensor of another dtype");
    } else if constexpr (!std::is_same_v<T, std::byte> && !std::is_same_v<T, void>) {
        EASEL_ASSERT(dtype_ == dtype_of<std::remove_const_t<T>>(), "typed view of a tensor of another dtype");
    }
    return reinterpret_cast<T*>(data_.get());
}

}  // namespace easel
