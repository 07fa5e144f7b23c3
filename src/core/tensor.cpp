#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

#include <fmt/format.h>

#include "core/half.h"

namespace easel {

Shape::Shape(std::initializer_list<int64_t> dims) {
    EASEL_ASSERT(dims.size() <= size_t(kMaxRank), "rank above kMaxRank");
    for (int64_t v : dims) d_[size_t(rank_++)] = v;
}

Shape::Shape(const std::vector<int64_t>& dims) {
    EASEL_ASSERT(dims.size() <= size_t(kMaxRank), "rank above kMaxRank");
    for (int64_t v : dims) d_[size_t(rank_++)] = v;
}

int64_t Shape::numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[size_t(i)];
    return n;
}

void Shape::push_back(int64_t v) {
    EASEL_ASSERT(rank_ < kMaxRank, "rank above kMaxRank");
    d_[size_t(rank_++)] = v;
}

bool Shape::operator==(const Shape& o) const {
    if (rank_ != o.rank_) return false;
    for (int i = 0; i < rank_; ++i)
        if (d_[size_t(i)] != o.d_[size_t(i)]) return false;
    return true;
}

std::string Shape::to_string() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? ", " : "") + std::to_string(d_[size_t(i)]);
    return s + "]";
}

bool dims_fit_int64(const uint64_t* dims, size_t n) {
    uint64_t prod = 1;
    for (size_t i = 0; i < n; ++i) {
        if (dims[i] > uint64_t(INT64_MAX)) return false;
        if (dims[i] != 0 && (__builtin_mul_overflow(prod, dims[i], &prod) || prod > uint64_t(INT64_MAX))) return false;
    }
    return true;
}

Shape contiguous_strides(const Shape& shape) {
    Shape st = shape;
    int64_t acc = 1;
    for (int i = shape.rank() - 1; i >= 0; --i) {
        st[i] = acc;
        acc *= shape[i];
    }
    return st;
}

namespace {

class HeapAllocator final : public Allocator {
public:
    std::shared_ptr<std::byte> allocate(size_t bytes) override {
        const size_t rounded = (bytes + 63) / 64 * 64;
        void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
        if (!p) throw std::bad_alloc();
        return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
    }
};

double load_as_double(const std::byte* p, DType t) {
    switch (t) {
        case DType::F32: { float v; std::memcpy(&v, p, 4); return v; }
        case DType::F16: { uint16_t v; std::memcpy(&v, p, 2); return f16_to_f32(v); }
        case DType::BF16: { uint16_t v; std::memcpy(&v, p, 2); return bf16_to_f32(v); }
        case DType::F64: { double v; std::memcpy(&v, p, 8); return v; }
        case DType::I8: return double(*reinterpret_cast<const int8_t*>(p));
        case DType::I16: { int16_t v; std::memcpy(&v, p, 2); return v; }
        case DType::I32: { int32_t v; std::memcpy(&v, p, 4); return v; }
        case DType::I64: { int64_t v; std::memcpy(&v, p, 8); return double(v); }
        case DType::U8: return double(*reinterpret_cast<const uint8_t*>(p));
        case DType::U16: { uint16_t v; std::memcpy(&v, p, 2); return v; }
        case DType::U32: { uint32_t v; std::memcpy(&v, p, 4); return v; }
        case DType::U64: { uint64_t v; std::memcpy(&v, p, 8); return double(v); }
        case DType::Bool: return *reinterpret_cast<const uint8_t*>(p) ? 1.0 : 0.0;
    }
    return 0.0;
}

void store_from_double(std::byte* p, DType t, double v) {
    switch (t) {
        case DType::F32: { float f = float(v); std::memcpy(p, &f, 4); return; }
        case DType::F16: { uint16_t h = f32_to_f16(float(v)); std::memcpy(p, &h, 2); return; }
        case DType::BF16: { uint16_t h = f32_to_bf16(float(v)); std::memcpy(p, &h, 2); return; }
        case DType::F64: std::memcpy(p, &v, 8); return;
        case DType::I8: { int8_t x = int8_t(v); std::memcpy(p, &x, 1); return; }
        case DType::I16: { int16_t x = int16_t(v); std::memcpy(p, &x, 2); return; }
        case DType::I32: { int32_t x = int32_t(v); std::memcpy(p, &x, 4); return; }
        case DType::I64: { int64_t x = int64_t(v); std::memcpy(p, &x, 8); return; }
        case DType::U8: { uint8_t x = uint8_t(v); std::memcpy(p, &x, 1); return; }
        case DType::U16: { uint16_t x = uint16_t(v); std::memcpy(p, &x, 2); return; }
        case DType::U32: { uint32_t x = uint32_t(v); std::memcpy(p, &x, 4); return; }
        case DType::U64: { uint64_t x = uint64_t(v); std::memcpy(p, &x, 8); return; }
        case DType::Bool: { uint8_t x = v != 0.0; std::memcpy(p, &x, 1); return; }
    }
}

// Calls fn(src_offset, dst_index) for every element in row-major order of `shape`, where src_offset is in
// elements of the strided source.
template <class F>
void for_each_index(const Shape& shape, const Shape& strides, F&& fn) {
    const int r = shape.rank();
    const int64_t n = shape.numel();
    if (n == 0) return;
    std::array<int64_t, kMaxRank> idx{};
    int64_t off = 0;
    for (int64_t i = 0; i < n; ++i) {
        fn(off, i);
        for (int d = r - 1; d >= 0; --d) {
            if (++idx[size_t(d)] < shape[d]) {
                off += strides[d];
                break;
            }
            off -= strides[d] * (shape[d] - 1);
            idx[size_t(d)] = 0;
        }
    }
}

}  // namespace

Allocator& heap_allocator() {
    static HeapAllocator a;
    return a;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Allocator* alloc) {
    for (int i = 0; i < shape.rank(); ++i) EASEL_ASSERT(shape[i] >= 0, "negative dimension " + shape.to_string());
    Tensor t;
    t.shape_ = shape;
    t.strides_ = contiguous_strides(shape);
    t.dtype_ = dtype;
    t.data_ = (alloc ? *alloc : heap_allocator()).allocate(t.nbytes());
    return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Allocator* alloc) {
    Tensor t = empty(shape, dtype, alloc);
    std::memset(t.raw(), 0, t.nbytes());
    return t;
}

Tensor Tensor::full(const Shape& shape, float value, DType dtype) {
    Tensor t = empty(shape, dtype);
    const size_t es = dtype_size(dtype);
    std::byte one[8];
    store_from_double(one, dtype, value);
    auto* p = static_cast<std::byte*>(t.raw());
    for (int64_t i = 0; i < t.numel(); ++i) std::memcpy(p + size_t(i) * es, one, es);
    return t;
}

Tensor Tensor::from_floats(const Shape& shape, const std::vector<float>& values) {
    EASEL_ASSERT(int64_t(values.size()) == shape.numel(), "from_floats: value count does not match the shape");
    Tensor t = empty(shape, DType::F32);
    if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * 4);
    return t;
}

Tensor Tensor::wrap(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive) {
    return wrap_strided(data, shape, contiguous_strides(shape), dtype, std::move(keep_alive));
}

Tensor Tensor::wrap_strided(void* data, const Shape& shape, const Shape& strides, DType dtype,
                            std::shared_ptr<void> keep_alive) {
    EASEL_ASSERT(shape.rank() == strides.rank(), "wrap_strided: shape and strides differ in rank");
    Tensor t;
    t.shape_ = shape;
    t.strides_ = strides;
    t.dtype_ = dtype;
    t.data_ = std::shared_ptr<std::byte>(std::move(keep_alive), static_cast<std::byte*>(data));
    return t;
}

Tensor Tensor::wrap_quantized(const void* data, const Shape& shape, QuantType type, std::shared_ptr<void> keep_alive) {
    EASEL_ASSERT(type != QuantType::None, "wrap_quantized: no quantized type");
    EASEL_ASSERT(shape.rank() >= 1 && shape.dim(-1) % quant_info(type).block_elems == 0,
                 "wrap_quantized: the innermost dimension of " + shape.to_string() + " is not a multiple of the block");
    Tensor t = wrap_strided(const_cast<void*>(data), shape, contiguous_strides(shape), DType::U8, std::move(keep_alive));
    t.quant_ = type;
    return t;
}

bool Tensor::is_contiguous() const {
    int64_t acc = 1;
    for (int i = rank() - 1; i >= 0; --i) {
        if (shape_[i] != 1 && strides_[i] != acc) return false;
        acc *= shape_[i];
    }
    return true;
}

Tensor Tensor::reshape(const Shape& shape) const {
    EASEL_ASSERT(is_contiguous(), "reshape of a non-contiguous tensor " + shape_.to_string() + "; call contiguous()");
    Shape s = shape;
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < s.rank(); ++i) {
        if (s[i] == -1) {
            EASEL_ASSERT(infer < 0, "reshape: more than one -1");
            infer = i;
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) {
        EASEL_ASSERT(known > 0 && numel() % known == 0, "reshape: cannot infer -1");
        s[infer] = numel() / known;
    }
    EASEL_ASSERT(s.numel() == numel(), "reshape " + shape_.to_string() + " -> " + s.to_string() + " changes the element count");
    // A quantized tensor stays one while its rows stay whole blocks (the new innermost size a multiple of the block).
    if (quantized() && (s.rank() == 0 || s.dim(-1) % quant_info(quant_).block_elems != 0)) return to(DType::F32).reshape(s);
    Tensor t = *this;
    t.shape_ = s;
    t.strides_ = contiguous_strides(s);
    return t;
}

Tensor Tensor::permute(std::initializer_list<int> dims) const {
    if (quantized()) return to(DType::F32).permute(dims);
    EASEL_ASSERT(int(dims.size()) == rank(), "permute: wrong number of dims");
    Tensor t = *this;
    int i = 0;
    unsigned seen = 0;
    for (int d : dims) {
        const int dd = d < 0 ? d + rank() : d;
        EASEL_ASSERT(dd >= 0 && dd < rank() && !(seen & (1u << dd)), "permute: bad or repeated dim");
        seen |= 1u << dd;
        t.shape_[i] = shape_[dd];
        t.strides_[i] = strides_[dd];
        ++i;
    }
    return t;
}

Tensor Tensor::transpose(int a, int b) const {
    if (quantized()) return to(DType::F32).transpose(a, b);
    a = a < 0 ? a + rank() : a;
    b = b < 0 ? b + rank() : b;
    EASEL_ASSERT(a >= 0 && a < rank() && b >= 0 && b < rank(), "transpose: dim out of range");
    Tensor t = *this;
    std::swap(t.shape_[a], t.shape_[b]);
    std::swap(t.strides_[a], t.strides_[b]);
    return t;
}

Tensor Tensor::slice(int dim, int64_t start, int64_t end) const {
    dim = dim < 0 ? dim + rank() : dim;
    EASEL_ASSERT(dim >= 0 && dim < rank(), "slice: dim out of range");
    EASEL_ASSERT(0 <= start && start <= end && end <= shape_[dim], "slice: range out of bounds");
    if (quantized()) {
        if (dim != 0) return to(DType::F32).slice(dim, start, end);
        // Whole rows: index i of dim 0 starts at byte quant_bytes(numel / shape[0] * i).
        Tensor t = *this;
        t.shape_[0] = end - start;
        const int64_t per = shape_[0] > 0 ? numel() / shape_[0] : 0;
        t.data_ = std::shared_ptr<std::byte>(data_, data_.get() + quant_bytes(quant_, per * start));
        return t;
    }
    Tensor t = *this;
    t.shape_[dim] = end - start;
    t.data_ = std::shared_ptr<std::byte>(data_, data_.get() + start * strides_[dim] * int64_t(dtype_size(dtype_)));
    return t;
}

Tensor Tensor::select(int dim, int64_t index) const {
    if (quantized()) return to(DType::F32).select(dim, index);
    dim = dim < 0 ? dim + rank() : dim;
    Tensor s = slice(dim, index, index + 1);
    Tensor t;
    t.data_ = s.data_;
    t.dtype_ = dtype_;
    for (int i = 0; i < rank(); ++i) {
        if (i == dim) continue;
        t.shape_.push_back(shape_[i]);
        t.strides_.push_back(strides_[i]);
    }
    return t;
}

Tensor Tensor::unsqueeze(int dim) const {
    dim = dim < 0 ? dim + rank() + 1 : dim;
    EASEL_ASSERT(dim >= 0 && dim <= rank(), "unsqueeze: dim out of range");
    if (quantized()) {
        Shape s;
        for (int i = 0; i <= rank(); ++i) {
            if (i == dim) s.push_back(1);
            if (i < rank()) s.push_back(shape_[i]);
        }
        return reshape(s);  // stays quantized unless the new innermost dimension is 1
    }
    Tensor t;
    t.data_ = data_;
    t.dtype_ = dtype_;
    for (int i = 0; i <= rank(); ++i) {
        if (i == dim) {
            t.shape_.push_back(1);
            t.strides_.push_back(i < rank() ? shape_[i] * strides_[i] : 1);
        }
        if (i < rank()) {
            t.shape_.push_back(shape_[i]);
            t.strides_.push_back(strides_[i]);
        }
    }
    return t;
}

void Tensor::copy_from(const Tensor& src) {
    EASEL_ASSERT(!quantized(), "copy_from: the destination is quantized");
    if (src.quantized()) {
        copy_from(src.to(DType::F32));
        return;
    }
    EASEL_ASSERT(src.shape() == shape_, "copy_from: shape " + src.shape().to_string() + " into " + shape_.to_string());
    EASEL_ASSERT(is_contiguous(), "copy_from: destination must be contiguous");
    auto* dst = static_cast<std::byte*>(raw());
    const auto* s = static_cast<const std::byte*>(src.raw());
    const size_t ses = dtype_size(src.dtype()), des = dtype_size(dtype_);
    if (src.dtype() == dtype_ && src.is_contiguous()) {
        if (nbytes()) std::memcpy(dst, s, nbytes());
        return;
    }
    if (src.dtype() == dtype_) {
        for_each_index(src.shape(), src.strides(), [&](int64_t off, int64_t i) {
            std::memcpy(dst + size_t(i) * des, s + size_t(off) * ses, des);
        });
        return;
    }
    if (src.dtype() == DType::F16 && dtype_ == DType::F32) {
        for_each_index(src.shape(), src.strides(), [&](int64_t off, int64_t i) {
            uint16_t h;
            std::memcpy(&h, s + size_t(off) * 2, 2);
            const float f = f16_to_f32(h);
            std::memcpy(dst + size_t(i) * 4, &f, 4);
        });
        return;
    }
    for_each_index(src.shape(), src.strides(), [&](int64_t off, int64_t i) {
        store_from_double(dst + size_t(i) * des, dtype_, load_as_double(s + size_t(off) * ses, src.dtype()));
    });
}

Tensor Tensor::contiguous() const {
    if (is_contiguous()) return *this;
    return clone();
}

Tensor Tensor::clone() const {
    if (quantized()) {
        Tensor t = empty(Shape{int64_t(nbytes())}, DType::U8);
        if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
        t.shape_ = shape_;
        t.strides_ = strides_;
        t.quant_ = quant_;
        return t;
    }
    Tensor t = empty(shape_, dtype_);
    t.copy_from(*this);
    return t;
}

Tensor Tensor::to(DType dtype) const {
    if (quantized()) {
        Tensor f = empty(shape_, DType::F32);
        dequantize(quant_, static_cast<const uint8_t*>(raw()), f.data<float>(), size_t(numel()) / quant_info(quant_).block_elems);
        return f.to(dtype);
    }
    if (dtype == dtype_) return *this;
    Tensor t = empty(shape_, dtype);
    t.copy_from(*this);
    return t;
}

double Tensor::item(std::initializer_list<int64_t> index) const {
    if (quantized()) return to(DType::F32).item(index);
    EASEL_ASSERT(int(index.size()) == rank(), "item: wrong number of indices");
    int64_t off = 0;
    int i = 0;
    for (int64_t v : index) {
        EASEL_ASSERT(v >= 0 && v < shape_[i], "item: index out of range");
        off += v * strides_[i++];
    }
    return load_as_double(data_.get() + off * int64_t(dtype_size(dtype_)), dtype_);
}

std::vector<float> Tensor::to_floats() const {
    Tensor f = to(DType::F32).contiguous();
    const float* p = f.data<float>();
    return {p, p + f.numel()};
}

}  // namespace easel
