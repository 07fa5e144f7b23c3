#include "core/error.h"

namespace easel {

const char* error_code_name(ErrorCode c) {
    switch (c) {
        case ErrorCode::InvalidArgument: return "invalid_argument";
        case ErrorCode::BadFile: return "bad_file";
        case ErrorCode::NotFound: return "not_found";
        case ErrorCode::Unsupported: return "unsupported";
        case ErrorCode::Refused: return "refused";
        case ErrorCode::Io: return "io";
        case ErrorCode::ResourceExhausted: return "resource_exhausted";
        case ErrorCode::Cancelled: return "cancelled";
        case ErrorCode::Internal: return "internal";
    }
    return "unknown";
}

void assert_fail(const char* expr, const char* file, int line, const std::string& msg) {
    std::fprintf(stderr, "easel internal error (a bug, please report it): %s:%d: assertion `%s` failed%s%s\n", file, line,
                 expr, msg.empty() ? "" : ": ", msg.c_str());
    std::abort();
}

}  // namespace easel
