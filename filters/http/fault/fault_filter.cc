#include "filters/http/fault/fault_filter.h"

#include <memory>
#include <random>

#include "core/event/timer.h"

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

class FaultFilter : public HttpFilter {
 public:
  explicit FaultFilter(std::shared_ptr<const config::FaultFilterConfig> c) : c_(std::move(c)) {}

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

  std::shared_ptr<const config::FaultFilterConfig> c_;
  std::unique_ptr<core::Timer> timer_;
  bool abort_ = false;
};

}  // namespace

Registry::HttpBuilder faultFilterBuilder() {
  return [](const config::HttpFilterConfig& cfg, std::string* error) -> HttpFilterFactory {
    if (!cfg.fault) {
      *error = "fault filter without config";
      return {};
    }
    auto c = std::make_shared<const config::FaultFilterConfig>(*cfg.fault);
    return [c] { return std::make_unique<FaultFilter>(c); };
  };
}

}  // namespace ferry::filters::http
