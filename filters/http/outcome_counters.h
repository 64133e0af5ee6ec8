// A filter's outcome counters: one series `NAME{listener="...",result="..."}` per outcome,
// registered when the filter's config is built for a snapshot (nothing is registered when a
// config is only validated: the handles then point at the stats scratch slot). Bumped per
// request on the worker's own stats shard.
#pragma once

#include <array>
#include <string>

#include "core/event/worker_context.h"
#include "core/http/filter.h"
#include "core/stats.h"
#include "filters/registry.h"

namespace ferry::filters::http {

template <size_t N>
struct OutcomeCounters {
  std::array<core::StatHandle, N> handles{};

  void registerAll(const HttpBuildContext& ctx, const std::string& name, const std::array<const char*, N>& results,
                   const std::string& help) {
    if (ctx.stats == nullptr) return;
    for (size_t i = 0; i < N; ++i)
      handles[i] = ctx.stats->counter(name, {{"listener", ctx.listener}, {"result", results[i]}}, help);
  }
  void inc(core::http::FilterCallbacks& cb, size_t i) const {
    if (auto* s = cb.worker().stats) s->inc(handles[i]);
  }
};

}  // namespace ferry::filters::http
