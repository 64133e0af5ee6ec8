// Shared by every micro benchmark file: Catch2 v2 with BENCHMARK enabled. The macro must be
// defined identically in every translation unit, main included (docs/development.md), so
// each file includes Catch2 through this header only.
#pragma once

#define CATCH_CONFIG_ENABLE_BENCHMARKING
#include <catch2/catch.hpp>
