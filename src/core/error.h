// Result/Error: how every failure that input can cause travels (STYLE.md section 7).
//
//   Result<Tensor> load(const std::string& path) {
//       if (bad) return Error::bad_file(path, "header is not valid JSON");
//       EASEL_TRY_ASSIGN(auto idx, read_index(path));   // propagates the error
//       return tensor;
//   }
//
// Result<T> has the shape of C++23 std::expected<T, Error>. EASEL_ASSERT is for our own bugs only: input
// must never reach it.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace easel {

enum class ErrorCode {
    InvalidArgument,    // a flag, a parameter or a request field is wrong
    BadFile,            // a file is malformed or is not what it claims to be
    NotFound,           // a file, tensor or model that was named does not exist
    Unsupported,        // well-formed but not something easel handles (yet)
    Refused,            // deliberately refused for safety (e.g. a pickle global that could run code)
    Io,                 // the OS said no (open, read, mmap)
    ResourceExhausted,  // a limit was hit (memory, queue, size)
    Cancelled,
    Internal,
};

const char* error_code_name(ErrorCode c);

class Error {
public:
    Error(ErrorCode code, std::string message, std::string where = {})
        : code_(code), message_(std::move(message)), where_(std::move(where)) {}

    static Error invalid_argument(std::string message, std::string where = {}) {
        return {ErrorCode::InvalidArgument, std::move(message), std::move(where)};
    }
    // `path` names the file; `message` says what was wrong and what was expected.
    static Error bad_file(std::string path, std::string message) {
        return {ErrorCode::BadFile, std::move(message), std::move(path)};
    }
    static Error not_found(std::string message, std::string where = {}) {
        return {ErrorCode::NotFound, std::move(message), std::move(where)};
    }
    static Error unsupported(std::string message, std::string where = {}) {
        return {ErrorCode::Unsupported, std::move(message), std::move(where)};
    }
    static Error refused(std::string message, std::string where = {}) {
        return {ErrorCode::Refused, std::move(message), std::move(where)};
    }
    static Error io(std::string message, std::string where = {}) {
        return {ErrorCode::Io, std::move(message), std::move(where)};
    }
    static Error exhausted(std::string message, std::string where = {}) {
        return {ErrorCode::ResourceExhausted, std::move(message), std::move(where)};
    }
    static Error cancelled(std::string message = "cancelled") { return {ErrorCode::Cancelled, std::move(message)}; }
    static Error internal(std::string message) { return {ErrorCode::Internal, std::move(message)}; }

    ErrorCode code() const { return code_; }
    const std::string& message() const { return message_; }
    // Where it happened: a path, a tensor name, a request field. Empty when there is nothing to name.
    const std::string& where() const { return where_; }

    // Adds an outer context: Error("bad dtype", "unet.conv_in.weight").within("model.safetensors") reads
    // "model.safetensors: unet.conv_in.weight: bad dtype".
    Error within(const std::string& outer) const {
        return {code_, message_, where_.empty() ? outer : outer + ": " + where_};
    }

    // "where: message", the one line a user sees.
    std::string to_string() const { return where_.empty() ? message_ : where_ + ": " + message_; }

private:
    ErrorCode code_;
    std::string message_;
    std::string where_;
};

template <class T>
class [[nodiscard]] Result {
public:
    static_assert(!std::is_same_v<T, Error>, "Result<Error> is ambiguous");
    Result(const T& v) : v_(std::in_place_index<0>, v) {}
    Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}
    template <class U, class = std::enable_if_t<std::is_constructible_v<T, U&&> && !std::is_same_v<std::decay_t<U>, Error> &&
                                                !std::is_same_v<std::decay_t<U>, Result>>>
    Result(U&& v) : v_(std::in_place_index<0>, T(std::forward<U>(v))) {}
    Result(Error e) : v_(std::in_place_index<1>, std::move(e)) {}

    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    T& value() & { check(); return std::get<0>(v_); }
    const T& value() const& { check(); return std::get<0>(v_); }
    T&& value() && { check(); return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const {
        if (has_value()) fail("Result::error() called on a value");
        return std::get<1>(v_);
    }
    template <class U>
    T value_or(U&& fallback) const& { return has_value() ? std::get<0>(v_) : T(std::forward<U>(fallback)); }

private:
    void check() const {
        if (!has_value()) fail(("Result::value() called on an error: " + std::get<1>(v_).to_string()).c_str());
    }
    [[noreturn]] static void fail(const char* what) {
        std::fprintf(stderr, "easel internal error: %s\n", what);
        std::abort();
    }
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error e) : err_(std::move(e)), has_err_(true) {}
    bool has_value() const { return !has_err_; }
    explicit operator bool() const { return !has_err_; }
    void value() const {
        if (has_err_) {
            std::fprintf(stderr, "easel internal error: Result<void>::value() on error: %s\n", err_.to_string().c_str());
            std::abort();
        }
    }
    const Error& error() const { return err_; }

private:
    Error err_{ErrorCode::Internal, ""};
    bool has_err_ = false;
};

using Status = Result<void>;
inline Status ok() { return {}; }

[[noreturn]] void assert_fail(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace easel

#define EASEL_CONCAT_INNER_(a, b) a##b
#define EASEL_CONCAT_(a, b) EASEL_CONCAT_INNER_(a, b)

// Returns the error of a Result-valued expression from the enclosing function.
#define EASEL_TRY(expr)                                                   \
    do {                                                                  \
        auto&& easel_try_r_ = (expr);                                     \
        if (!easel_try_r_) return easel_try_r_.error();                   \
    } while (0)

// EASEL_TRY_ASSIGN(auto x, make_x());  or  EASEL_TRY_ASSIGN(existing, make_x());
#define EASEL_TRY_ASSIGN(lhs, expr) EASEL_TRY_ASSIGN_IMPL_(EASEL_CONCAT_(easel_try_tmp_, __LINE__), lhs, expr)
#define EASEL_TRY_ASSIGN_IMPL_(tmp, lhs, expr)      \
    auto tmp = (expr);                              \
    if (!tmp) return tmp.error();                   \
    lhs = std::move(tmp).value()

// For broken invariants (our bugs) only, never for input. Active in every build type.
#define EASEL_ASSERT(cond, ...)                                                             \
    do {                                                                                    \
        if (!(cond)) ::easel::assert_fail(#cond, __FILE__, __LINE__, std::string{__VA_ARGS__}); \
    } while (0)
