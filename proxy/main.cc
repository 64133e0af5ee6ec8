// ferry: the binary. Parses the command line, loads and validates the config, runs the Server.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "config/values.h"
#include "core/event/uring.h"
#include "core/log.h"
#include "core/reopenable_file.h"
#include "core/tls/memory.h"
#include "filters/registry.h"
#include "proxy/config_check.h"
#include "proxy/privileges.h"
#include "proxy/reload_client.h"
#include "revision.h"
#include "proxy/server.h"

namespace {

constexpr const char* kUsage =
    "usage: ferry -c FILE [options]\n"
    "\n"
    "  -c, --config FILE       the YAML config to run\n"
    "      --validate          parse and validate the config, then exit (0 valid, 1 not)\n"
    "      --upgrade-from PID|PATH\n"
    "                          take the listening sockets of the running ferry PID (or its\n"
    "                          upgrade socket PATH), serve, then let it drain and exit\n"
    "      --reload            ask the running ferry (admin API of FILE) to reload FILE; exit 0\n"
    "                          when it was applied, 1 when rejected (the errors on stderr)\n"
    "      --workers N         worker threads (overrides runtime.workers; 0 = one per core)\n"
    "      --log-level LEVEL   trace|debug|info|warn|error (overrides runtime.log_level)\n"
    "      --io BACKEND        auto|epoll|io_uring: the workers' I/O backend (overrides runtime.io;\n"
    "                          $FERRY_IO sets it where the config does not)\n"
    "      --probe-io          say whether io_uring can run here; exit 0 if it can, 1 if not\n"
    "      --version           print the version and exit\n"
    "  -h, --help              this help\n"
    "\n"
    "Signals: SIGHUP reloads the config file; SIGUSR1 reopens the log file (runtime.log_file);\n"
    "SIGUSR2 starts this binary again to take over (binary upgrade); SIGTERM/SIGINT drain and\n"
    "exit 0.\n";

bool validIo(std::string_view v) { return v == "auto" || v == "epoll" || v == "io_uring"; }

int usageError(const std::string& msg) {
  std::fprintf(stderr, "ferry: %s\n%s", msg.c_str(), kUsage);
  return 1;
}

ferry::core::log::Level toLogLevel(ferry::config::LogLevel l) {
  return static_cast<ferry::core::log::Level>(static_cast<int>(l));
}

}  // namespace

int main(int argc, char** argv) {
  // Before anything reaches OpenSSL: its record buffers are then recycled per thread.
  ferry::core::tls::installRecordBufferPool();
  std::string config_path;
  bool validate = false;
  bool reload = false;
  std::optional<uint32_t> workers;
  std::optional<ferry::config::LogLevel> log_level;
  std::optional<std::string> io;
  bool io_forced = false;
  std::string upgrade_from;

  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)name;
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--version") {
      std::printf("ferry %s (git %s)\n", FERRY_VERSION, FERRY_REVISION);
      return 0;
    } else if (a == "-c" || a == "--config") {
      const char* v = value("-c");
      if (!v) return usageError("-c needs a file");
      config_path = v;
    } else if (a == "--validate") {
      validate = true;
    } else if (a == "--reload") {
      reload = true;
    } else if (a == "--upgrade-from") {
      const char* v = value("--upgrade-from");
      if (!v) return usageError("--upgrade-from needs a PID or a socket path");
      upgrade_from = v;
    } else if (a == "--workers") {
      const char* v = value("--workers");
      if (!v) return usageError("--workers needs a number");
      char* end = nullptr;
      errno = 0;
      unsigned long n = std::strtoul(v, &end, 10);
      if (*v == '\0' || *end != '\0' || errno != 0 || n > 1024 || *v == '-')
        return usageError(std::string("--workers: bad number '") + v + "' (0..1024)");
      workers = static_cast<uint32_t>(n);
    } else if (a == "--io") {
      const char* v = value("--io");
      if (!v) return usageError("--io needs a backend");
      if (!validIo(v)) return usageError(std::string("--io: unknown backend '") + v + "' (auto, epoll or io_uring)");
      io = v;
      io_forced = true;
    } else if (a == "--probe-io") {
      std::string why;
      if (!ferry::core::Uring::probe(&why)) {
        std::printf("io_uring: unavailable: %s\n", why.c_str());
        return 1;
      }
      std::printf("io_uring: available\n");
      return 0;
    } else if (a == "--log-level") {
      const char* v = value("--log-level");
      if (!v) return usageError("--log-level needs a level");
      log_level = ferry::config::parseLogLevel(v);
      if (!log_level) return usageError(std::string("--log-level: unknown level '") + v + "'");
    } else {
      return usageError("unknown argument '" + a + "'");
    }
  }
  if (config_path.empty()) return usageError("no config file (-c FILE)");
  if (!io) {
    if (const char* env = std::getenv("FERRY_IO"); env != nullptr && *env != '\0') {
      if (!validIo(env)) return usageError(std::string("FERRY_IO: unknown backend '") + env + "' (auto, epoll or io_uring)");
      io = env;
    }
  }

  // The loader's checks and every filter's own, all errors at once.
  ferry::filters::Registry registry;
  ferry::filters::registerBuiltins(registry);
  auto result = ferry::proxy::loadConfigFile(config_path, registry);
  if (!result.errors.empty()) {
    for (const auto& e : result.errors) std::fprintf(stderr, "%s\n", e.format().c_str());
    return 1;
  }
  ferry::config::Config cfg = std::move(*result.config);
  if (workers) cfg.runtime.workers = *workers;
  if (log_level) cfg.runtime.log_level = *log_level;
  if (io && (io_forced || cfg.runtime.io_mark.line == 0)) cfg.runtime.io = *io;
  if (reload) return ferry::proxy::requestReload(cfg);
  if (validate) {
    std::printf("%s: configuration is valid\n", config_path.c_str());
    return 0;
  }
  ferry::core::log::setLevel(toLogLevel(cfg.runtime.log_level));
  ferry::core::log::setFormat(cfg.runtime.log_format == ferry::config::RuntimeConfig::LogFormat::kJson
                                  ? ferry::core::log::Format::kJson
                                  : ferry::core::log::Format::kText);
  // runtime.log_file: opened now, as the user Ferry starts as (before any privilege drop); a
  // file created here belongs to runtime.user, so that the dropped process can reopen it.
  std::unique_ptr<ferry::core::ReopenableFile> log_file;
  if (!cfg.runtime.log_file.empty()) {
    uid_t owner;
    gid_t group;
    ferry::proxy::runtimeOwner(cfg.runtime, &owner, &group);
    std::string err;
    log_file = ferry::core::ReopenableFile::open(cfg.runtime.log_file, 0640, &err, owner, group);
    if (!log_file) {
      std::fprintf(stderr, "%s: runtime.log_file: %s\n", config_path.c_str(), err.c_str());
      return 1;
    }
    ferry::core::log::setOutput(log_file->fd());
  }
  ferry::proxy::ServerOptions options;
  options.workers = workers;
  options.log_level = log_level;
  options.io = io;
  options.io_forced = io_forced;
  options.upgrade_from = upgrade_from;
  options.argv.assign(argv, argv + argc);
  ferry::proxy::Server server(std::move(cfg), options);
  return server.run();
}
