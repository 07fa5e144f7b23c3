// Progress on stderr: a bar redrawn in place on a terminal, plain lines now and then when piped (STYLE.md 8).
#pragma once

#include <string>

#include "pipeline/generate.h"

namespace easel::cli {

class ProgressPrinter {
public:
    ProgressPrinter();
    Status on_event(const ProgressEvent& e);
    void finish();

private:
    bool is_tty_;
    std::string last_phase_;
    bool line_open_ = false;
};

std::string hms(double seconds);

}  // namespace easel::cli
