// easel: the command-line interface.
#include <cstdio>
#include <cstring>
#include <string>

#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace {

void print_version() {
    std::printf("easel 0.1.0 (cpu isa %s, %d threads)\n", std::string(easel::isa_name(easel::active_isa())).c_str(),
                easel::num_threads());
}

void print_help() {
    std::printf(
        "usage: easel <command> [options]\n"
        "\n"
        "commands:\n"
        "  --version    print the version, the CPU ISA in use and the thread count\n"
        "  --help       this text\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
        print_help();
        return argc < 2 ? 2 : 0;
    }
    if (!std::strcmp(argv[1], "--version")) {
        print_version();
        return 0;
    }
    std::fprintf(stderr, "error: unknown command '%s'; see 'easel --help'\n", argv[1]);
    return 2;
}
