// OTLP/HTTP JSON span export (https://opentelemetry.io/docs/specs/otlp/#otlphttp): finished
// spans are encoded straight into the JSON body of the next batch, per worker and per
// listener, and POSTed to the listener's `tracing.otlp.cluster` through the worker's own
// upstream pools, like the router's requests. Nothing here blocks or locks: a full queue drops
// the span (counted), a failed export drops its batch (counted).
//
// Threading: ExportConfig is built on the main thread with a snapshot and shared read-only.
// WorkerTracing and its SpanExporters live on one worker (WorkerContext::tracing), made and
// destroyed there, before the worker's pools are destroyed.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "core/event/worker_context.h"
#include "core/stats.h"
#include "core/tracing/trace_context.h"

namespace ferry::core::upstream {
class Cluster;
}

namespace ferry::core::tracing {

// Why an export POST failed (ferry_tracing_export_failures_total{reason}).
enum class ExportFailure { kConnect, kStatus, kTimeout, kReset, kCount };
const char* exportFailureName(ExportFailure f);

// One listener's `tracing.otlp`, resolved. Immutable.
struct ExportConfig {
  std::string listener;
  std::shared_ptr<const upstream::Cluster> cluster;
  std::string path;       // request path of the POST
  std::string authority;  // Host / :authority of the POST (the cluster's name)
  std::chrono::milliseconds timeout{5000};
  std::chrono::milliseconds flush_interval{1000};
  uint32_t max_batch = 512;
  uint32_t max_queue = 4096;
  // The JSON before the first span: {"resourceSpans":[{"resource":{"attributes":[service.name]},
  // "scopeSpans":[{"scope":{"name":"ferry"},"spans":[
  std::string body_prefix;
  StatHandle exported;             // ferry_tracing_spans_exported_total{listener}
  StatHandle dropped_queue_full;   // ferry_tracing_spans_dropped_total{listener,reason="queue_full"}
  StatHandle dropped_export;       // ferry_tracing_spans_dropped_total{listener,reason="export_failed"}
  StatHandle failures[static_cast<size_t>(ExportFailure::kCount)];  // ferry_tracing_export_failures_total
  // Sets body_prefix for this service name.
  void setServiceName(std::string_view service_name);
};

// One finished server span, as the connection manager hands it over. The views need only
// live for the call to SpanExporter::add.
struct SpanRecord {
  const TraceContext* trace = nullptr;
  int64_t start_unix_ns = 0;
  int64_t end_unix_ns = 0;
  std::string_view method;         // also the span name
  std::string_view path;           // without the query
  std::string_view scheme;
  std::string_view server_address;  // the authority without its port
  std::string_view protocol_version;  // "1.1", "1.0", "2"
  int status = 0;                  // 0: no response (reset)
  std::string_view user_agent;     // "" = none
  std::string_view client_address;
  std::string_view request_id;     // x-request-id
  std::string_view response_flags;  // "-" = none
  std::string_view upstream_cluster;
};

// Appends one OTLP JSON span object to `out` (exposed for tests).
void appendSpanJson(std::string& out, const SpanRecord& span);

// One POST's worth of spans (outside SpanExporter: clang wants its default member
// initializers complete before std::optional of it is used in the class).
struct ExportBatch {
  std::shared_ptr<const ExportConfig> cfg;
  std::string body;
  uint32_t spans = 0;
};

class SpanExporter {
 public:
  SpanExporter(WorkerContext& ctx, std::shared_ptr<const ExportConfig> cfg);
  ~SpanExporter();
  SpanExporter(const SpanExporter&) = delete;
  SpanExporter& operator=(const SpanExporter&) = delete;

  // New spans go to batches for this config (a reload changed it).
  void setConfig(std::shared_ptr<const ExportConfig> cfg);
  const std::shared_ptr<const ExportConfig>& config() const { return cfg_; }
  // Queues the span; false (counted as dropped) when max_queue spans already wait.
  bool add(const SpanRecord& span);
  // Spans waiting (not yet being sent), batches in flight: for tests.
  uint32_t queued() const { return queued_; }
  size_t inFlight() const { return in_flight_.size(); }

  // At most this many POSTs at once per worker and listener.
  static constexpr size_t kMaxInFlight = 4;

 private:
  class Export;
  using Batch = ExportBatch;
  void closeOpen();
  void sendReady();
  void send(Batch batch);
  void onExportDone(Export& e, bool ok, ExportFailure why);

  WorkerContext& ctx_;
  std::shared_ptr<const ExportConfig> cfg_;
  std::optional<Batch> open_;  // filling
  std::deque<Batch> ready_;    // full (or flushed) and waiting for a free export slot
  uint32_t queued_ = 0;        // spans in open_ and ready_
  std::list<std::unique_ptr<Export>> in_flight_;
  class FlushTimer;
  std::unique_ptr<FlushTimer> flush_;  // the flush_interval timer, and the finished exports' graveyard
  std::string spare_;  // a body's buffer kept for the next batch (no allocation per batch)
  bool alive_ = true;
  bool sending_ = false;
};

// One HTTP listener's `tracing` block, resolved (HcmConfig::tracing). Immutable.
struct TracerConfig {
  double sample_rate = 1.0;  // of new traces (a valid incoming traceparent decides by itself)
  std::shared_ptr<const ExportConfig> exporter;  // null: no `otlp` (ids and headers only)
};

// The exporters of one worker, by listener name. Owned by the worker (WorkerContext::tracing).
class WorkerTracing {
 public:
  explicit WorkerTracing(WorkerContext& ctx) : ctx_(ctx) {}
  ~WorkerTracing();
  // The exporter of cfg's listener, made on first use; switched to `cfg` when a reload made a
  // new one.
  SpanExporter& exporter(const std::shared_ptr<const ExportConfig>& cfg);

 private:
  WorkerContext& ctx_;
  absl::flat_hash_map<std::string, std::unique_ptr<SpanExporter>> exporters_;
};

}  // namespace ferry::core::tracing
