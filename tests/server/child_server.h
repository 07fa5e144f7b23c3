// The real `easel serve` binary (EASEL_CLI) as a child process, for tests that kill, restart or load it.
//
//   Child s = start_server(data_dir, {"--queue-size", "16"});   // easel serve --port 0 --data DIR ...
//   ASSERT_GT(s.port, 0) << s.first_line;
#pragma once

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

namespace easel::testing {

struct Child {
    pid_t pid = -1;
    int port = 0;            // 0 when the server did not report that it listens
    std::string first_line;  // what it printed first on stdout
};

// Starts `easel ARGS...` and reads its first stdout line.
inline Child start_easel(std::vector<std::string> args) {
    args.insert(args.begin(), EASEL_CLI);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    int out[2];
    if (pipe(out) != 0) return {};
    const pid_t pid = fork();
    if (pid == 0) {
        dup2(out[1], 1);
        close(out[0]);
        close(out[1]);
        execv(EASEL_CLI, argv.data());
        _exit(127);
    }
    close(out[1]);
    Child ch;
    ch.pid = pid;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') ch.first_line.push_back(c);
    close(out[0]);
    return ch;
}

// Starts `easel serve --port 0 --data DIR [extra...]` and reads the port from its first stdout line
// ("easel serve: listening on http://127.0.0.1:PORT").
inline Child start_server(const std::filesystem::path& data, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {"serve", "--port", "0", "--data", data.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    Child ch = start_easel(args);
    const size_t colon = ch.first_line.rfind(':');
    if (ch.first_line.rfind("easel serve: listening on", 0) == 0 && colon != std::string::npos)
        ch.port = std::stoi(ch.first_line.substr(colon + 1));
    return ch;
}

}  // namespace easel::testing
