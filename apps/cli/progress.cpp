#include "progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include <fmt/format.h>

namespace easel::cli {

std::string hms(double s) {
    if (!std::isfinite(s) || s < 0) return "?";
    const long t = long(s + 0.5);
    return t >= 3600 ? fmt::format("{}:{:02}:{:02}", t / 3600, (t / 60) % 60, t % 60) : fmt::format("{}:{:02}", t / 60, t % 60);
}

namespace {
std::string bar(int step, int total, int width) {
    const int filled = total > 0 ? step * width / total : 0;
    return std::string(size_t(filled), '#') + std::string(size_t(width - filled), '-');
}
}  // namespace

ProgressPrinter::ProgressPrinter() : is_tty_(isatty(fileno(stderr)) != 0) {}

Status ProgressPrinter::on_event(const ProgressEvent& e) {
    static double phase_start = 0;
    if (e.phase != last_phase_ || e.step == 0) phase_start = e.elapsed_s;
    std::string line;
    if (e.phase == "sampling") {
        const double dt = e.elapsed_s - phase_start;
        const double rate = e.step > 0 && dt > 0 ? e.step / dt : 0;
        const std::string speed = rate <= 0 ? "" : rate >= 1.0 ? fmt::format("{:.2f} it/s", rate) : fmt::format("{:.2f} s/it", 1.0 / rate);
        // A batch sampled together: "images 1-4/8".
        const std::string which = e.batch > 1 ? fmt::format("images {}-{}", e.image + 1, e.image + e.batch)
                                              : fmt::format("image {}", e.image + 1);
        line = fmt::format("{:<8} {}/{} [{}] {:>3}/{}  {}  elapsed {}  eta {}", e.phase, which, e.images,
                           bar(e.step, e.total, 20), e.step, e.total, speed, hms(e.elapsed_s),
                           rate > 0 ? hms((e.total - e.step) / rate) : "?");
    } else {
        line = fmt::format("{:<8} image {}/{} {}", e.phase, e.image + 1, e.images, e.step == e.total ? "done" : "...");
    }
    if (is_tty_) {
        std::fprintf(stderr, "\r%s\x1b[K", line.c_str());
        line_open_ = true;
    } else if (e.phase != "sampling" || e.step == e.total || e.step % 5 == 0) {
        std::fprintf(stderr, "%s\n", line.c_str());
    }
    last_phase_ = e.phase;
    return ok();
}

void ProgressPrinter::finish() {
    if (is_tty_ && line_open_) std::fprintf(stderr, "\n");
    line_open_ = false;
}

}  // namespace easel::cli
