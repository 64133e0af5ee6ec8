#include "filters/http/fault/fault_filter.h"

#include <memory>
#include <random>

#include "core/event/timer.h"
#include "core/pooled.h"

namespace ferry::filters::http {
using namespace core::http;
using core::Buffer;
namespace {

bool roll(double percentage) {
  if (percentage >= 100) return true;
  if (percentage <= 0) return false;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 100)(rng) < percentage;
}

class FaultFilter : public HttpFilter, public core::PerThreadPooled<FaultFilter> {
 public:
  explicit FaultFilter(std::shared_ptr<const FaultFilterConfig> c) : c_(std::move(c)) {}

  FilterStatus onRequestHeaders(RequestHeaders&, bool) override {
    abort_ = c_->abort_status && roll(c_->abort_percentage);
    if (c_->delay && roll(c_->delay_percentage)) {
      timer_ = std::make_unique<core::Timer>(*callbacks_->worker().io, [this] { afterDelay(); });
      timer_->enable(*c_->delay);
      return FilterStatus::kStop;
    }
    if (abort_) {
      doAbort();
      return FilterStatus::kStop;
    }
    return FilterStatus::kContinue;
  }

  void onDestroy() override { timer_.reset(); }

 private:
  void afterDelay() {
    if (abort_) {
      doAbort();
      return;
    }
    callbacks_->resume();
  }
  void doAbort() {
    callbacks_->sendLocalReply(*c_->abort_status, "fault filter abort\n", ResponseFlag::kFaultInjected);
  }

  std::shared_ptr<const FaultFilterConfig> c_;
  std::unique_ptr<core::Timer> timer_;
  bool abort_ = false;
};

}  // namespace

std::optional<FaultFilterConfig> parseFaultFilterConfig(const config::HttpFilterConfig& entry,
                                                        config::NodeReader& r) {
  if (!entry.config) {
    r.error(entry.mark, "missing required key 'config' in filter");
    return std::nullopt;
  }
  const size_t before = r.errorCount();
  FaultFilterConfig out;
  const config::NodeReader::Field root{"config", entry.mark, &*entry.config};
  if (!r.isMap(root, true)) return std::nullopt;
  auto f = r.fields(root, "in fault config", {"delay", "abort"});
  if (f.get("delay") == nullptr && f.get("abort") == nullptr)
    r.error(entry.config->mark, "fault config needs at least one of 'delay' or 'abort'");
  if (auto* x = f.get("delay"); x != nullptr && r.isMap(*x)) {
    auto df = r.fields(*x, "in delay", {"duration", "percentage"});
    if (auto* y = r.need(df, "duration", x->value->mark, "in delay"))
      if (auto v = r.getDuration(*y, true)) out.delay = *v;
    if (auto* y = df.get("percentage"))
      if (auto v = r.getNumber(*y, 0, 100)) out.delay_percentage = *v;
  }
  if (auto* x = f.get("abort"); x != nullptr && r.isMap(*x)) {
    auto af = r.fields(*x, "in abort", {"status", "percentage"});
    if (auto* y = r.need(af, "status", x->value->mark, "in abort"))
      if (auto v = r.getUint(*y, 200, 599)) out.abort_status = static_cast<int>(*v);
    if (auto* y = af.get("percentage"))
      if (auto v = r.getNumber(*y, 0, 100)) out.abort_percentage = *v;
  }
  if (r.errorCount() != before) return std::nullopt;
  return out;
}

Registry::HttpBuilder faultFilterBuilder() {
  return [](const config::HttpFilterConfig& entry, config::NodeReader& reader, const HttpBuildContext&) -> HttpFilterFactory {
    auto parsed = parseFaultFilterConfig(entry, reader);
    if (!parsed) return {};
    auto c = std::make_shared<const FaultFilterConfig>(*parsed);
    return [c] { return std::make_unique<FaultFilter>(c); };
  };
}

}  // namespace ferry::filters::http
