#include "core/stats.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>

namespace ferry::core {
namespace {

std::string escapeLabel(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

StatsStore::StatsStore(size_t shards) {
  for (size_t i = 0; i < shards; ++i) shards_.push_back(std::make_unique<StatsShard>());
}

StatHandle StatsStore::counter(const std::string& name,
                               const std::vector<std::pair<std::string, std::string>>& labels,
                               const std::string& help) {
  return add(MetricType::kCounter, name, labels, help);
}

StatHandle StatsStore::gauge(const std::string& name,
                             const std::vector<std::pair<std::string, std::string>>& labels,
                             const std::string& help) {
  return add(MetricType::kGauge, name, labels, help);
}

StatHandle StatsStore::add(MetricType type, const std::string& name,
                           const std::vector<std::pair<std::string, std::string>>& labels,
                           const std::string& help) {
  std::string rendered;
  if (!labels.empty()) {
    rendered = "{";
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i) rendered += ",";
      rendered += labels[i].first + "=\"" + escapeLabel(labels[i].second) + "\"";
    }
    rendered += "}";
  }
  std::string key = name + rendered;
  auto it = by_key_.find(key);
  if (it != by_key_.end()) return StatHandle{entries_[it->second].idx};
  if (next_slot_ >= StatsShard::kMaxSlots) return StatHandle{0};  // full: scratch slot
  uint32_t idx = next_slot_++;
  by_key_.emplace(key, static_cast<uint32_t>(entries_.size()));
  entries_.push_back(Entry{name, rendered, type, idx});
  if (!help.empty()) help_.emplace(name, help);
  return StatHandle{idx};
}

HistogramHandle StatsStore::histogram(const std::string& name,
                                     const std::vector<std::pair<std::string, std::string>>& labels,
                                     const std::vector<double>& bounds, const std::string& help, double unit) {
  std::string rendered;
  for (size_t i = 0; i < labels.size(); ++i) {
    rendered += (i ? "," : "{");
    rendered += labels[i].first + "=\"" + escapeLabel(labels[i].second) + "\"";
  }
  if (!labels.empty()) rendered += "}";
  std::string key = name + rendered;
  auto it = by_key_.find(key);
  if (it != by_key_.end()) {
    const Entry& e = entries_[it->second];
    return HistogramHandle{e.idx, static_cast<uint32_t>(e.bounds->size()), e.bounds, e.unit};
  }
  uint32_t need = static_cast<uint32_t>(bounds.size()) + 2;
  if (next_slot_ + need > StatsShard::kMaxSlots) return HistogramHandle{};
  bounds_.push_back(std::make_unique<std::vector<double>>(bounds));
  uint32_t first = next_slot_;
  next_slot_ += need;
  by_key_.emplace(key, static_cast<uint32_t>(entries_.size()));
  Entry e{name, rendered, MetricType::kHistogram, first, bounds_.back().get(), labels, unit};
  entries_.push_back(std::move(e));
  if (!help.empty()) help_.emplace(name, help);
  return HistogramHandle{first, static_cast<uint32_t>(bounds.size()), bounds_.back().get(), unit};
}

const std::vector<double>& latencyBounds() {
  static const std::vector<double> kBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                              0.25,   0.5,   1,      2.5,   5,    10,   30,    60};
  return kBounds;
}

namespace {
std::string formatBound(double b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", b);
  return buf;
}
// The sum in the bounds' unit: six decimals for seconds, whole numbers for bytes.
void formatSum(char* out, size_t size, int64_t raw, double unit) {
  if (unit == 1.0) std::snprintf(out, size, "%lld", static_cast<long long>(raw));
  else std::snprintf(out, size, "%.6f", static_cast<double>(raw) * unit);
}
std::string withLe(const std::vector<std::pair<std::string, std::string>>& labels, const std::string& le) {
  std::string out = "{";
  for (const auto& [k, v] : labels) out += k + "=\"" + escapeLabel(v) + "\",";
  out += "le=\"" + le + "\"}";
  return out;
}
}  // namespace

int64_t StatsStore::value(StatHandle h) const {
  int64_t sum = 0;
  for (const auto& s : shards_) sum += s->get(h);
  return sum;
}

std::string StatsStore::prometheus() const {
  // Group samples by metric name: Prometheus wants one # TYPE line per family.
  std::vector<const Entry*> sorted;
  sorted.reserve(entries_.size());
  for (const auto& e : entries_) sorted.push_back(&e);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const Entry* a, const Entry* b) { return a->name < b->name; });
  std::string out;
  const std::string* family = nullptr;
  for (const Entry* e : sorted) {
    if (!family || *family != e->name) {
      family = &e->name;
      auto h = help_.find(e->name);
      if (h != help_.end()) out += "# HELP " + e->name + " " + h->second + "\n";
      const char* type = e->type == MetricType::kCounter ? " counter\n"
                         : e->type == MetricType::kGauge ? " gauge\n"
                                                         : " histogram\n";
      out += "# TYPE " + e->name + type;
    }
    if (e->type == MetricType::kHistogram) {
      // Each bucket slot is read once and the count is their total: workers observing meanwhile
      // cannot make +Inf differ from the finite buckets.
      int64_t cumulative = 0;
      for (size_t b = 0; b < e->bounds->size(); ++b) {
        cumulative += value(StatHandle{static_cast<uint32_t>(e->idx + b)});
        out += e->name + "_bucket" + withLe(e->label_pairs, formatBound((*e->bounds)[b])) + " " +
               std::to_string(cumulative) + "\n";
      }
      uint32_t n = static_cast<uint32_t>(e->bounds->size());
      const int64_t count = cumulative + value(StatHandle{e->idx + n});
      char sum[64];
      formatSum(sum, sizeof sum, value(StatHandle{e->idx + n + 1}), e->unit);
      out += e->name + "_bucket" + withLe(e->label_pairs, "+Inf") + " " + std::to_string(count) + "\n";
      out += e->name + "_sum" + e->labels + " " + sum + "\n";
      out += e->name + "_count" + e->labels + " " + std::to_string(count) + "\n";
      continue;
    }
    out += e->name + e->labels + " " + std::to_string(value(StatHandle{e->idx})) + "\n";
  }
  return out;
}

std::string StatsStore::plain() const {
  std::vector<const Entry*> sorted;
  for (const auto& e : entries_) sorted.push_back(&e);
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry* a, const Entry* b) {
    return a->name != b->name ? a->name < b->name : a->labels < b->labels;
  });
  std::string out;
  for (const Entry* e : sorted) {
    if (e->type == MetricType::kHistogram) {
      uint32_t n = static_cast<uint32_t>(e->bounds->size());
      int64_t count = 0;
      for (uint32_t b = 0; b <= n; ++b) count += value(StatHandle{e->idx + b});
      out += e->name + "_count" + e->labels + ": " + std::to_string(count) + "\n";
      char sum[64];
      formatSum(sum, sizeof sum, value(StatHandle{e->idx + n + 1}), e->unit);
      out += e->name + "_sum" + e->labels + ": " + sum + "\n";
      continue;
    }
    out += e->name + e->labels + ": " + std::to_string(value(StatHandle{e->idx})) + "\n";
  }
  return out;
}

}  // namespace ferry::core
