// The Catch2 main of micro_bench (like tests/catch_main.cc, but with
// benchmarking enabled, and optimised like the rest: see benchmarks/meson.build).
#define CATCH_CONFIG_MAIN
#include "benchmarks/micro/micro.h"
