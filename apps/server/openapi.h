// The OpenAPI 3.0 description served at /openapi.json: every route of `easel serve`, its parameters, request
// bodies and the error envelope.
#pragma once

#include <nlohmann/json.hpp>

namespace easel::server {

nlohmann::json openapi_json();

}  // namespace easel::server
