// A temporary file or folder removed (recursively, errors ignored) when the test that made it ends.
//
//   const easel::testing::ScopedPath dir{fs::temp_directory_path() / "easel-folder"};
#pragma once

#include <filesystem>
#include <system_error>
#include <utility>

namespace easel::testing {

struct ScopedPath {
    std::filesystem::path path;
    explicit ScopedPath(std::filesystem::path p) : path(std::move(p)) {}
    ScopedPath(const ScopedPath&) = delete;
    ScopedPath& operator=(const ScopedPath&) = delete;
    ~ScopedPath() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

}  // namespace easel::testing
