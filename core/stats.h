// Stats: counters and gauges sharded per thread, summed on read.
// StatsStore is owned by the main thread, which alone registers metrics and reads them.
// Each worker (and the main thread) writes only its own StatsShard: single writer,
// relaxed atomics, no locks and no contended cache lines on the data path.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace ferry::core {

enum class MetricType { kCounter, kGauge, kHistogram };

// An index valid in every shard. The default handle points at a scratch slot, so an
// unregistered handle is harmless.
struct StatHandle {
  uint32_t idx = 0;
};

// A histogram: consecutive slots, one per bucket, one for the values above the last bound,
// then the sum of the observed values. The count is the sum of the bucket slots, so a reader
// that races the workers still renders a consistent histogram (+Inf == _count, cumulative counts
// never decreasing). Observed values are integers (microseconds, bytes); `unit` turns one into the
// unit of the bounds and of the rendered sum (1e-6: microseconds observed, seconds shown).
struct HistogramHandle {
  uint32_t first = 0;
  uint32_t buckets = 0;  // 0 = unregistered
  const std::vector<double>* bounds = nullptr;
  double unit = 1e-6;
};

class StatsShard {
 public:
  static constexpr uint32_t kMaxSlots = 16384;
  StatsShard() : slots_(new std::atomic<int64_t>[kMaxSlots]) {
    for (uint32_t i = 0; i < kMaxSlots; ++i) slots_[i].store(0, std::memory_order_relaxed);
  }
  // Single writer: load+store instead of a locked read-modify-write.
  void add(StatHandle h, int64_t n = 1) {
    auto& s = slots_[h.idx];
    s.store(s.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  void inc(StatHandle h) { add(h, 1); }
  void dec(StatHandle h) { add(h, -1); }
  int64_t get(StatHandle h) const { return slots_[h.idx].load(std::memory_order_relaxed); }
  // Records one observation (in the histogram's integer unit: microseconds, bytes).
  void observe(const HistogramHandle& h, int64_t value) {
    if (h.buckets == 0) return;
    const double v = static_cast<double>(value) * h.unit;
    uint32_t b = 0;
    while (b < h.buckets && v > (*h.bounds)[b]) ++b;
    add(StatHandle{h.first + b});  // b == buckets: above the last bound; cumulated when rendered
    add(StatHandle{h.first + h.buckets + 1}, value);
  }

 private:
  std::unique_ptr<std::atomic<int64_t>[]> slots_;
};

// The bucket bounds (seconds) of every latency histogram: 0.5 ms to 60 s.
const std::vector<double>& latencyBounds();

class StatsStore {
 public:
  // `shards` = workers + 1; shard 0 belongs to the main thread.
  explicit StatsStore(size_t shards);

  // Registers (or finds) the metric `name{labels}`; labels as ordered (key, value) pairs.
  // Main thread only. Registering the same name and labels again returns the same handle.
  StatHandle counter(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels = {},
                     const std::string& help = "");
  StatHandle gauge(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels = {},
                   const std::string& help = "");

  // Registers a histogram with the given upper bounds (ascending; +Inf is implied), in the
  // unit observed values are multiplied by `unit` into (seconds from microseconds by default).
  HistogramHandle histogram(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
                            const std::vector<double>& bounds, const std::string& help = "", double unit = 1e-6);

  StatsShard& shard(size_t i) { return *shards_[i]; }
  size_t shardCount() const { return shards_.size(); }

  // Sum over all shards. Main thread (or any reader: values are atomics).
  int64_t value(StatHandle h) const;

  // Prometheus text exposition format (0.0.4).
  std::string prometheus() const;
  // One "name{labels}: value" line per metric.
  std::string plain() const;

 private:
  struct Entry {
    std::string name;
    std::string labels;  // rendered: {k="v",...} or empty
    MetricType type;
    uint32_t idx;
    const std::vector<double>* bounds = nullptr;  // histograms
    std::vector<std::pair<std::string, std::string>> label_pairs;  // histograms (le is added)
    double unit = 1e-6;                                            // histograms
  };
  StatHandle add(MetricType type, const std::string& name,
                 const std::vector<std::pair<std::string, std::string>>& labels, const std::string& help);

  std::vector<std::unique_ptr<StatsShard>> shards_;
  std::vector<Entry> entries_;
  std::map<std::string, uint32_t> by_key_;  // name+labels -> entries_ index
  std::map<std::string, std::string> help_;
  std::vector<std::unique_ptr<std::vector<double>>> bounds_;
  uint32_t next_slot_ = 1;  // slot 0 is the scratch slot
};

}  // namespace ferry::core
