// A throwaway PostgreSQL server for a test: `initdb` into a temporary folder and `postgres` on a Unix socket in
// that folder only (no TCP port), as the unprivileged `postgres` user when the test runs as root (PostgreSQL
// refuses to run as root). Debian's `postgresql` package (scripts/setup) provides the programs.
//
//   easel::testing::TempPostgres pg;
//   ASSERT_TRUE(pg.start()) << pg.error;
//   auto store = PgStore::open(pg.url(), PgStore::Migrate::AtStart);
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace easel::testing {

class TempPostgres {
public:
    ~TempPostgres() { stop(); }

    // Creates the cluster and starts the server; false with `error` set when it cannot.
    bool start() {
        namespace fs = std::filesystem;
        std::error_code ec;
        std::vector<fs::path> bins;
        for (const auto& de : fs::directory_iterator("/usr/lib/postgresql", ec))
            if (fs::exists(de.path() / "bin/initdb")) bins.push_back(de.path() / "bin");
        if (bins.empty()) {
            error = "PostgreSQL's programs are not installed (/usr/lib/postgresql/*/bin/initdb): run scripts/setup";
            return false;
        }
        std::sort(bins.begin(), bins.end());
        bin_ = bins.back();
        char tmpl[] = "/tmp/easel-pg-XXXXXX";
        if (!mkdtemp(tmpl)) {
            error = "cannot create a temporary folder";
            return false;
        }
        dir_ = tmpl;
        if (geteuid() == 0) {
            const passwd* pw = getpwnam("postgres");
            if (!pw) {
                error = "running as root and there is no 'postgres' user to run PostgreSQL as";
                return false;
            }
            uid_ = pw->pw_uid;
            gid_ = pw->pw_gid;
            if (chown(dir_.c_str(), uid_, gid_) != 0) {
                error = "cannot hand the temporary folder to the postgres user";
                return false;
            }
        }
        const std::string data = dir_ + "/data";
        const pid_t init = spawn({(bin_ / "initdb").string(), "-D", data, "-U", "easel", "-A", "trust", "--no-sync", "-E", "UTF8"},
                                 dir_ + "/initdb.log");
        int st = 0;
        if (init < 0 || waitpid(init, &st, 0) != init || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            error = "initdb failed (see " + dir_ + "/initdb.log)";
            return false;
        }
        pid_ = spawn({(bin_ / "postgres").string(), "-D", data, "-k", dir_, "-c", "listen_addresses=", "-c", "fsync=off",
                      "-c", "max_connections=200", "-c", "shared_buffers=32MB"},
                     dir_ + "/postgres.log");
        // Ready once the socket answers a connection (pg_isready).
        for (int i = 0; i < 300; ++i) {
            const pid_t probe = spawn({(bin_ / "pg_isready").string(), "-q", "-h", dir_, "-U", "easel", "-d", "postgres"}, "/dev/null");
            if (probe > 0 && waitpid(probe, &st, 0) == probe && WIFEXITED(st) && WEXITSTATUS(st) == 0) return true;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                error = "postgres exited at start (see " + dir_ + "/postgres.log)";
                return false;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        error = "postgres did not answer in 30 s (see " + dir_ + "/postgres.log)";
        return false;
    }

    // libpq's URL of the server's `postgres` database over its socket.
    std::string url() const { return "postgresql:///postgres?host=" + dir_ + "&user=easel"; }
    const std::string& folder() const { return dir_; }

    // Runs one SQL statement with psql; true when it succeeded.
    bool sql(const std::string& statement) {
        const pid_t p = spawn({(bin_ / "psql").string(), "-q", "-v", "ON_ERROR_STOP=1", "-h", dir_, "-U", "easel", "-d", "postgres",
                               "-c", statement}, dir_ + "/psql.log");
        int st = 0;
        return p > 0 && waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    }

    void stop() {
        if (pid_ > 0) {
            kill(pid_, SIGINT);  // "fast" shutdown
            int st = 0;
            waitpid(pid_, &st, 0);
            pid_ = -1;
        }
        if (!dir_.empty()) {
            std::error_code ec;
            std::filesystem::remove_all(dir_, ec);
            dir_.clear();
        }
    }

    std::string error;

private:
    // Runs a PostgreSQL program (as the postgres user when root), its output to `log`.
    pid_t spawn(std::vector<std::string> args, const std::string& log) {
        std::vector<char*> argv;
        for (std::string& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const pid_t pid = fork();
        if (pid != 0) return pid;
        if (uid_ != 0) {
            if (setgroups(0, nullptr) != 0 || setgid(gid_) != 0 || setuid(uid_) != 0) _exit(126);
        }
        const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        setpgid(0, 0);  // a test's Ctrl-C reaches the test, which stops the server in order
        prctl(PR_SET_PDEATHSIG, SIGQUIT);  // and a test that dies takes it along (after setuid, which clears it)
        execv(argv[0], argv.data());
        _exit(127);
    }

    std::filesystem::path bin_;
    std::string dir_;
    pid_t pid_ = -1;
    uid_t uid_ = 0;
    gid_t gid_ = 0;
};

}  // namespace easel::testing
