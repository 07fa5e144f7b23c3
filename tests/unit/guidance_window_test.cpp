// Guidance windows (pipeline/guidance.h in_guidance_window), the rule ControlNet and IP-Adapter units share, on the
// tables tools/reference/make_controlnet_a1111_goldens.py records: 8 steps, window 0.25..0.75.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "pipeline/guidance.h"

using namespace easel;

namespace {

// A schedule of 8 steps: 9 sigmas, decreasing, the last 0.
std::vector<float> schedule() { return {14.6f, 8.0f, 4.5f, 2.6f, 1.5f, 0.9f, 0.5f, 0.25f, 0.0f}; }

std::string acting_steps(double start, double end, bool a1111) {
    const std::vector<float> s = schedule();
    std::string r;
    for (int i = 0; i + 1 < int(s.size()); ++i) r += in_guidance_window(s, s[size_t(i)], start, end, a1111) ? '+' : '-';
    return r;
}

}  // namespace

TEST(GuidanceWindow, DiffusersActsFromStepTwoToFive) {
    // keep = 1 - (i / 8 < 0.25 or (i + 1) / 8 > 0.75)
    EXPECT_EQ(acting_steps(0.25, 0.75, false), "--++++--");
    EXPECT_EQ(acting_steps(0.0, 1.0, false), "++++++++");
    EXPECT_EQ(acting_steps(0.0, 0.1, false), "--------");  // (0 + 1) / 8 > 0.1: not even the first step
}

TEST(GuidanceWindow, AutomaticSeesTheStepBeforeAndBothEnds) {
    // A step's first call sees max(i - 1, 0): percent 0, 0, 1/8, ..., 6/8; acting where 0.25 <= percent <= 0.75.
    EXPECT_EQ(acting_steps(0.25, 0.75, true), "---+++++");
    EXPECT_EQ(acting_steps(0.0, 0.1, true), "++------");
    EXPECT_EQ(acting_steps(0.0, 1.0, true), "++++++++");
}

TEST(GuidanceWindow, AutomaticSecondCallSeesItsOwnStep) {
    // Heun's second call of step 2 lies between sigmas 2 and 3 and sees sampling_step 2 (percent 0.25).
    const std::vector<float> s = schedule();
    EXPECT_TRUE(in_guidance_window(s, 3.0f, 0.25, 0.75, true));
    EXPECT_FALSE(in_guidance_window(s, s[2], 0.25, 0.75, true));  // step 2's first call: sampling_step 1
    EXPECT_FALSE(in_guidance_window(s, 3.0f, 0.3, 0.75, true));
}
