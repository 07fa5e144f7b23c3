// The image analysis of tools/train/data.py (analyse/score), in C++, for checking what the embedded tiny model
// draws: background = nearest palette colour of the border's per-channel median; foreground = pixels more than
// 60 (RGB distance) from that colour; colour = nearest palette colour of their median; position = the named
// centre nearest the foreground's centroid; size from the bounding box; shape from how much of the bounding
// box the foreground fills (triangle 1/2, circle pi/4, square 1).
//
//   SceneAttributes a = analyse_scene(image);   // a.colour == "red", a.shape == "circle", ...
#pragma once

#include <string>

#include "io/image.h"

namespace easel::testing {

struct SceneAttributes {
    std::string colour, shape, size, position, background;  // empty: no foreground found
};

SceneAttributes analyse_scene(const Image& img);

}  // namespace easel::testing
