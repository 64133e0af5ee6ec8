// YAML -> Config with validation. Every error found is collected (sorted into document
// order at the end); no exception leaves this file. yaml-cpp's marks are 0-based, ours are
// 1-based. yaml-cpp keeps duplicate mapping keys, so each mapping is walked entry by entry.
// The `http` listener block is parsed in loader_http.cc, with the helpers of
// loader_internal.h (class Parser, defined here).
#include "config/loader.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <set>
#include <string_view>
#include <utility>

#include "config/loader_internal.h"
#include "config/node_reader.h"
#include "config/render.h"
#include "config/values.h"

namespace ferry::config {

std::string ConfigError::format() const {
  if (mark.line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(mark.line) + ":" + std::to_string(mark.col) + ": " + message;
}

namespace internal {

bool before(Mark a, Mark b) { return a.line != b.line ? a.line < b.line : a.col < b.col; }

std::string quote(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string join(Keys options) {
  std::string out;
  for (std::string_view o : options) {
    if (!out.empty()) out += ", ";
    out += o;
  }
  return out;
}

bool contains(Keys options, std::string_view s) {
  return std::find(options.begin(), options.end(), s) != options.end();
}

namespace {

// Plain (unquoted, untagged) scalars have the non-specific tag "?".
bool isPlain(const YAML::Node& n) { return n.Tag() == "?"; }

}  // namespace

bool isPlainOr(const YAML::Node& n, std::string_view core_type) {
  return n.IsScalar() && (isPlain(n) || n.Tag() == "tag:yaml.org,2002:" + std::string(core_type));
}

ConfigNode shallowNode(const YAML::Node& n, Mark m) {
  ConfigNode c;
  c.mark = m;
  if (n.IsMap()) {
    c.kind = ConfigNode::Kind::kMap;
  } else if (n.IsSequence()) {
    c.kind = ConfigNode::Kind::kList;
  } else if (n.IsScalar()) {
    c.kind = ConfigNode::Kind::kScalar;
    c.scalar = n.Scalar();
    c.tag = isPlain(n) ? "" : n.Tag();
  }
  return c;
}

std::string describe(const YAML::Node& n) { return NodeReader::describe(shallowNode(n, Mark{})); }

namespace {


Mark toMark(const YAML::Mark& m) {
  if (m.is_null() || m.line < 0 || m.column < 0) return {};
  return {m.line + 1, m.column + 1};
}

bool validName(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Canonical "host|port" for comparing listener addresses ("::1" == "0:0::1").
std::string canonicalAddress(const Address& a) {
  std::array<unsigned char, 16> buf{};
  char text[INET6_ADDRSTRLEN] = {};
  int af = a.v6 ? AF_INET6 : AF_INET;
  std::string host = a.host;
  if (inet_pton(af, a.host.c_str(), buf.data()) == 1 &&
      inet_ntop(af, buf.data(), text, sizeof(text)) != nullptr)
    host = text;
  return host + "|" + std::to_string(a.port);
}

}  // namespace

// ---- Parser: error collection and typed values

namespace {
constexpr size_t kMaxErrors = 1000;
}  // namespace

void Parser::error(Mark m, std::string message) {
  // Every error is reported, up to a sane number: past it one line says the rest was cut.
  if (errors_.size() >= kMaxErrors) {
    truncated_ = true;
    return;
  }
  errors_.push_back({path_, m, std::move(message)});
}

std::optional<std::string> Parser::getPath(const Entry& e) {
  auto s = getString(e);
  if (!s) return std::nullopt;
  std::string dir = std::filesystem::path(path_).parent_path().string();
  if (s->front() == '/' || dir.empty() || dir == ".") return s;
  return (std::filesystem::path(dir) / *s).string();
}

void Parser::checkReadable(const Entry& e, const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error(e.value_mark, "cannot read " + e.key + " " + quote(path) + ": " + std::strerror(errno));
    return;
  }
  struct stat st {};
  bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  ::close(fd);
  if (!regular) error(e.value_mark, e.key + " " + quote(path) + " is not a regular file");
}

Mark Parser::posOf(const YAML::Node& n, Mark fallback) const {
  YAML::Mark m = n.Mark();
  if (m.is_null() || m.line < 0) return fallback;
  if (n.IsNull() && !writtenNull(m.pos) && fallback.line > 0) return fallback;
  return toMark(m);
}

bool Parser::writtenNull(int pos) const {
  if (pos < 0 || static_cast<size_t>(pos) >= text_.size()) return false;
  std::string_view rest = std::string_view(text_).substr(pos);
  size_t len = 0;
  if (rest.starts_with("~")) len = 1;
  else if (rest.starts_with("null") || rest.starts_with("Null") || rest.starts_with("NULL")) len = 4;
  else return false;
  return len == rest.size() || std::string_view(" \t\r\n,]}#").find(rest[len]) != std::string_view::npos;
}

Entry Parser::itemEntry(const YAML::Node& n, Mark fallback, std::string what) const {
  Mark m = posOf(n, fallback);
  return {std::move(what), n, m, m};
}

Entries Parser::fields(const YAML::Node& map, std::string_view where, Keys allowed) {
  return walk(map, where, &allowed);
}

Entries Parser::anyFields(const YAML::Node& map, std::string_view where) {
  return walk(map, where, nullptr);
}

Entries Parser::walk(const YAML::Node& map, std::string_view where, const Keys* allowed) {
  Entries out;
  if (!map.IsMap()) return out;
  for (auto it = map.begin(); it != map.end(); ++it) {
    // Copies: `it->` yields a proxy that dies at the end of the expression.
    const YAML::Node k = it->first;
    const YAML::Node v = it->second;
    Mark km = posOf(k, toMark(map.Mark()));
    if (!k.IsScalar()) {
      error(km, "expected a string key " + std::string(where) + ", got " + describe(k));
      continue;
    }
    const std::string key = k.Scalar();
    if (allowed != nullptr && !contains(*allowed, key)) {
      std::string msg = "unknown key " + quote(key) + " " + std::string(where);
      std::string_view best = NodeReader::suggest(key, *allowed);
      if (!best.empty()) msg += " (did you mean " + quote(best) + "?)";
      error(km, std::move(msg));
      continue;
    }
    if (out.get(key) != nullptr) {
      error(km, "duplicate key " + quote(key));
      continue;
    }
    out.list.push_back({key, v, km, posOf(v, km)});
  }
  return out;
}

const Entry* Parser::need(const Entries& f, std::string_view key, const Entry& parent,
                          std::string_view where) {
  const Entry* e = f.get(key);
  if (e == nullptr)
    error(parent.value_mark, "missing required key " + quote(key) + " " + std::string(where));
  return e;
}

const Entry* Parser::oneOf(const Entries& f, Keys keys, const Entry& parent, std::string_view what,
                           bool required) {
  const Entry* first = nullptr;
  for (const Entry& e : f.list) {
    if (!contains(keys, e.key)) continue;
    if (first == nullptr) {
      first = &e;
      continue;
    }
    error(e.key_mark, std::string(what) + " has both " + quote(first->key) + " and " + quote(e.key) +
                          " (use " + (required ? "exactly one" : "only one") + ")");
  }
  if (first == nullptr && required) {
    std::string options;
    size_t i = 0;
    for (std::string_view k : keys) {
      if (i > 0) options += i + 1 == keys.size() ? " or " : ", ";
      options += quote(k);
      ++i;
    }
    error(parent.value_mark, std::string(what) + " needs one of " + options);
  }
  return first;
}

void Parser::typeError(const Entry& e, std::string_view expected) {
  ConfigNode v = shallowNode(e.value, e.value_mark);
  reader_.typeError({e.key, e.key_mark, &v}, expected);
}

bool Parser::isMap(const Entry& e, bool null_ok) {
  if (e.value.IsMap() || (null_ok && e.value.IsNull())) return true;
  typeError(e, "a mapping");
  return false;
}

bool Parser::isList(const Entry& e) {
  if (e.value.IsSequence()) return true;
  typeError(e, "a list");
  return false;
}

std::optional<std::string> Parser::getString(const Entry& e) {
  ConfigNode v = shallowNode(e.value, e.value_mark);
  return reader_.getString({e.key, e.key_mark, &v});
}

std::optional<bool> Parser::getBool(const Entry& e) {
  ConfigNode v = shallowNode(e.value, e.value_mark);
  return reader_.getBool({e.key, e.key_mark, &v});
}

std::optional<uint64_t> Parser::getUint(const Entry& e, uint64_t lo, uint64_t hi) {
  ConfigNode v = shallowNode(e.value, e.value_mark);
  return reader_.getUint({e.key, e.key_mark, &v}, lo, hi);
}

std::optional<Duration> Parser::getDuration(const Entry& e, bool positive) {
  ConfigNode v = shallowNode(e.value, e.value_mark);
  return reader_.getDuration({e.key, e.key_mark, &v}, positive);
}

std::optional<Address> Parser::getAddress(const Entry& e, int min_port) {
  auto s = getString(e);
  if (!s) return std::nullopt;
  std::string why;
  auto a = parseAddress(*s, &why);
  if (!a) {
    error(e.value_mark, "bad address " + quote(*s) + ": " + why);
    return std::nullopt;
  }
  if (a->port < min_port) {
    error(e.value_mark, "bad address " + quote(*s) + ": port must be 1-65535 here");
    return std::nullopt;
  }
  a->mark = e.value_mark;
  return a;
}

std::optional<std::string> Parser::getEnum(const Entry& e, Keys options) {
  auto s = getString(e);
  if (!s) return std::nullopt;
  if (!contains(options, *s)) {
    error(e.value_mark, "bad " + e.key + " " + quote(*s) + " (use " + join(options) + ")");
    return std::nullopt;
  }
  return s;
}

std::optional<std::string> Parser::getName(const Entry& e, std::string_view what) {
  auto s = getString(e);
  if (s && !validName(*s)) {
    error(e.value_mark, "bad " + std::string(what) + " name " + quote(*s) +
                            " (use letters, digits, '_', '.', '-')");
    return std::nullopt;
  }
  return s;
}

std::optional<double> Parser::getNumber(const Entry& e, double lo, double hi) {
  ConfigNode v = shallowNode(e.value, e.value_mark);
  return reader_.getNumber({e.key, e.key_mark, &v}, lo, hi);
}

ConfigNode Parser::deepNode(const YAML::Node& n, Mark m, std::string_view where) {
  ConfigNode c = shallowNode(n, m);
  if (n.IsMap()) {
    // Keys must be strings and unique, as everywhere in the file.
    for (const Entry& e : anyFields(n, where).list)
      c.entries.push_back(ConfigEntry{e.key, e.key_mark, deepNode(e.value, e.value_mark, where)});
  } else if (n.IsSequence()) {
    for (const YAML::Node& item : n) c.items.push_back(deepNode(item, posOf(item, m), where));
  }
  return c;
}

namespace {

class Loader : public Parser {
 public:
  Loader(const std::string& text, const std::string& path) : Parser(text, path) {
    cfg_.path = path;
    std::string dir = std::filesystem::path(path).parent_path().string();
    cfg_.dir = dir.empty() ? "." : dir;
    cfg_.yaml = text;
  }

  LoadResult run() {
    try {
      load();
    } catch (const YAML::ParserException& e) {
      error(toMark(e.mark), "YAML syntax error: " + e.msg);
    } catch (const YAML::Exception& e) {
      error(toMark(e.mark), "YAML error: " + e.msg);
    } catch (const std::exception& e) {
      error({}, std::string("internal error while loading config: ") + e.what());
    }
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return before(a.mark, b.mark);
    });
    if (truncated_)
      errors_.push_back({path_, Mark{}, "too many errors; stopping after " + std::to_string(kMaxErrors)});
    LoadResult result;
    if (errors_.empty()) {
      result.config = std::move(cfg_);
    } else {
      result.partial = std::move(cfg_);
    }
    result.errors = std::move(errors_);
    return result;
  }

 private:
  // ---- sections

  // Counts nodes as the loader will visit them (aliases expanded), stopping past `budget`, so
  // an alias bomb ("billion laughs") is refused instead of exhausting memory. Also bounds depth.
  static bool withinBudget(const YAML::Node& n, size_t* budget, int depth) {
    if (*budget == 0 || depth > 128) return false;
    --*budget;
    if (n.IsMap()) {
      for (auto it = n.begin(); it != n.end(); ++it)
        if (!withinBudget(it->first, budget, depth + 1) || !withinBudget(it->second, budget, depth + 1))
          return false;
    } else if (n.IsSequence()) {
      for (auto it = n.begin(); it != n.end(); ++it)
        if (!withinBudget(*it, budget, depth + 1)) return false;
    }
    return true;
  }

  static constexpr size_t kMaxNodes = 1000000;

  void load() {
    std::vector<YAML::Node> docs = YAML::LoadAll(text_);
    for (const auto& d : docs) {
      size_t budget = kMaxNodes;
      if (!withinBudget(d, &budget, 0)) {
        error(Mark{1, 1}, "config too large: more than " + std::to_string(kMaxNodes) +
                              " YAML nodes (after alias expansion) or nesting deeper than 128");
        return;
      }
    }
    for (size_t i = 1; i < docs.size(); ++i)
      if (!docs[i].IsNull()) error(toMark(docs[i].Mark()), "only one YAML document is allowed");
    if (docs.empty() || docs[0].IsNull()) {
      finishRender();
      return;
    }
    const YAML::Node& root = docs[0];
    if (!root.IsMap()) {
      error(posOf(root, {1, 1}), "expected a mapping at the top level, got " + describe(root));
      return;
    }
    Entries top = fields(root, "at the top level", {"runtime", "admin", "listeners", "clusters"});
    for (const Entry& e : top.list) {
      if (e.key == "runtime") runtime(e);
      if (e.key == "admin") admin(e);
      if (e.key == "listeners") list(e, "listener", &Loader::listener);
      if (e.key == "clusters") list(e, "cluster", &Loader::cluster);
    }
    crossChecks();
    if (errors_.empty()) finishRender();
  }

  void runtime(const Entry& e) {
    if (!isMap(e, true)) return;
    Entries f = fields(e.value, "in runtime",
                       {"workers", "drain_timeout", "drain_delay", "log_level", "max_connections", "watch_config",
                        "user", "group", "log_format", "log_file", "io"});
    RuntimeConfig& r = cfg_.runtime;
    r.mark = e.key_mark;
    if (auto* x = f.get("io")) {
      r.io_mark = x->value_mark;
      if (auto v = getEnum(*x, {"auto", "epoll", "io_uring"})) r.io = *v;
    }
    if (auto* x = f.get("workers")) {
      r.workers_mark = x->value_mark;
      if (auto v = getUint(*x, 0, 1024)) r.workers = static_cast<uint32_t>(*v);
    }
    if (auto* x = f.get("watch_config"))
      if (auto v = getBool(*x)) r.watch_config = *v;
    if (auto* x = f.get("drain_timeout"))
      if (auto v = getDuration(*x, false)) r.drain_timeout = *v;
    if (auto* x = f.get("drain_delay"))
      if (auto v = getDuration(*x, false)) r.drain_delay = *v;
    if (auto* x = f.get("log_level"))
      if (auto v = getEnum(*x, {"trace", "debug", "info", "warn", "error"}))
        r.log_level = *parseLogLevel(*v);
    if (auto* x = f.get("max_connections"))
      if (auto v = getUint(*x, 0, UINT64_MAX)) r.max_connections = *v;
    if (auto* x = f.get("log_format"))
      if (auto v = getEnum(*x, {"text", "json"}))
        r.log_format = *v == "json" ? RuntimeConfig::LogFormat::kJson : RuntimeConfig::LogFormat::kText;
    if (auto* x = f.get("log_file")) {
      r.log_file_mark = x->value_mark;
      if (auto v = getPath(*x)) {
        r.log_file = *v;
        const std::string dir = std::filesystem::path(*v).parent_path().string();
        struct stat st {};
        if (v->back() == '/')
          error(x->value_mark, "bad log_file " + quote(*v) + ": a file name, not a directory");
        else if (::stat(dir.empty() ? "." : dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
          error(x->value_mark, "bad log_file " + quote(*v) + ": directory " + quote(dir) + " does not exist");
      }
    }
    if (auto* x = f.get("user")) {
      r.user_mark = x->value_mark;
      if (auto v = getString(*x)) {
        r.user = *v;
        if (::getpwnam(v->c_str()) == nullptr) error(x->value_mark, "unknown user " + quote(*v) + " (runtime.user)");
      }
    }
    if (auto* x = f.get("group")) {
      r.group_mark = x->value_mark;
      if (f.get("user") == nullptr) error(x->key_mark, "'group' needs 'user'");
      if (auto v = getString(*x)) {
        r.group = *v;
        if (::getgrnam(v->c_str()) == nullptr) error(x->value_mark, "unknown group " + quote(*v) + " (runtime.group)");
      }
    }
  }

  void admin(const Entry& e) {
    if (!isMap(e, true)) return;
    AdminConfig& a = cfg_.admin.emplace();
    a.address = *parseAddress("127.0.0.1:9901");
    a.mark = e.key_mark;
    a.address.mark = e.key_mark;
    Entries f = fields(e.value, "in admin", {"address", "token_file", "allow_config_push"});
    if (auto* x = f.get("address"))
      if (auto v = getAddress(*x, 0)) a.address = *v;
    if (auto* x = f.get("token_file"))
      if (auto v = getPath(*x)) {
        a.token_file = *v;
        checkReadable(*x, *v);
      }
    if (auto* x = f.get("allow_config_push"))
      if (auto v = getBool(*x)) a.allow_config_push = *v;
  }

  using ItemFn = void (Loader::*)(const Entry&);
  void list(const Entry& e, const std::string& what, ItemFn fn) {
    if (e.value.IsNull()) return;  // "listeners:" with nothing = none
    if (!isList(e)) return;
    for (const YAML::Node& item : e.value) (this->*fn)(itemEntry(item, e.value_mark, what));
  }

  void listener(const Entry& item) {
    if (!isMap(item)) return;
    constexpr std::string_view kWhere = "in listener";
    Entries f = fields(item.value, kWhere,
                       {"name", "address", "proxy_protocol", "proxy_protocol_timeout",
                        "max_connections", "max_connections_per_ip", "per_connection_buffer_limit_kb", "tls", "http",
                        "tcp"});
    ListenerConfig l;
    l.mark = item.value_mark;
    if (auto* x = need(f, "name", item, kWhere)) {
      l.name_mark = x->value_mark;
      if (auto v = getName(*x, "listener")) l.name = *v;
    }
    if (auto* x = need(f, "address", item, kWhere))
      if (auto v = getAddress(*x, 0)) l.address = *v;
    if (auto* x = f.get("proxy_protocol"))
      if (auto v = getBool(*x)) l.proxy_protocol = *v;
    if (auto* x = f.get("proxy_protocol_timeout"))
      if (auto v = getDuration(*x, false)) l.proxy_protocol_timeout = *v;
    if (auto* x = f.get("max_connections"))
      if (auto v = getUint(*x, 0, UINT64_MAX)) l.max_connections = *v;
    if (auto* x = f.get("max_connections_per_ip"))
      if (auto v = getUint(*x, 0, 16777215)) l.max_connections_per_ip = *v;
    if (auto* x = f.get("per_connection_buffer_limit_kb"))
      if (auto v = getUint(*x, 1, 1048576)) l.buffer_limit_kb = static_cast<uint32_t>(*v);

    const Entry* http_e = f.get("http");
    const Entry* tcp_e = f.get("tcp");
    if (http_e != nullptr && tcp_e != nullptr) {
      const Entry* later = before(http_e->key_mark, tcp_e->key_mark) ? tcp_e : http_e;
      error(later->key_mark, "listener has both 'http' and 'tcp' (use exactly one)");
    } else if (http_e == nullptr && tcp_e == nullptr) {
      error(l.mark, "listener needs one of 'http' or 'tcp'");
    }
    if (auto* x = f.get("tls")) parseListenerTls(*this, *x, l.tls.emplace());
    if (http_e != nullptr) http(*http_e, l);
    if (tcp_e != nullptr) tcp(*tcp_e, l);
    cfg_.listeners.push_back(std::move(l));
  }

  void http(const Entry& e, ListenerConfig& l) { parseHttp(*this, e, l.http.emplace()); }

  void tcp(const Entry& e, ListenerConfig& l) {
    TcpProxyConfig& t = l.tcp.emplace();
    if (!isMap(e)) return;
    constexpr std::string_view kWhere = "in tcp";
    Entries f = fields(e.value, kWhere, {"cluster", "idle_timeout", "sni_routes", "client_hello_timeout", "splice"});
    if (auto* x = f.get("splice"))
      if (auto v = getBool(*x)) t.splice = *v;
    const Entry* routes = f.get("sni_routes");
    const Entry* cluster = routes != nullptr ? f.get("cluster") : need(f, "cluster", e, kWhere);
    if (cluster != nullptr) {
      t.cluster_mark = cluster->value_mark;
      if (auto v = getString(*cluster)) t.cluster = *v;
    }
    if (auto* x = f.get("idle_timeout"))
      if (auto v = getDuration(*x, false)) t.idle_timeout = *v;
    if (auto* x = f.get("client_hello_timeout")) {
      if (routes == nullptr) error(x->key_mark, "'client_hello_timeout' needs 'sni_routes'");
      if (auto v = getDuration(*x, false)) t.client_hello_timeout = *v;
    }
    if (routes != nullptr && isList(*routes)) {
      if (routes->value.size() == 0) error(routes->value_mark, "'sni_routes' must not be empty");
      for (const YAML::Node& node : routes->value) {
        Entry item = itemEntry(node, routes->value_mark, "sni route");
        if (!isMap(item)) continue;
        constexpr std::string_view kRoute = "in sni route";
        Entries rf = fields(item.value, kRoute, {"server_names", "cluster"});
        SniRouteConfig& r = t.sni_routes.emplace_back();
        r.mark = item.value_mark;
        if (auto* x = need(rf, "server_names", item, kRoute); x != nullptr && isList(*x)) {
          if (x->value.size() == 0) error(x->value_mark, "'server_names' must not be empty");
          for (const YAML::Node& n : x->value) {
            Entry ne = itemEntry(n, x->value_mark, "server name");
            auto v = getString(ne);
            if (!v) continue;
            std::string name = lower(*v);
            std::string_view host = name.rfind("*.", 0) == 0 ? std::string_view(name).substr(2) : name;
            if (host.empty() || host.find('*') != std::string_view::npos || !isHostAndPort(host) ||
                host.find(':') != std::string_view::npos)
              error(ne.value_mark, "bad server name " + quote(*v) + " (use a host name or *.suffix)");
            else
              r.server_names.push_back(std::move(name));
          }
        }
        if (auto* x = need(rf, "cluster", item, kRoute)) {
          r.cluster_mark = x->value_mark;
          if (auto v = getString(*x)) r.cluster = *v;
        }
      }
    }
  }

  void cluster(const Entry& item) { parseCluster(*this, item, cfg_.clusters); }

  // Checks across sections: unique names and addresses, cluster references.
  void crossChecks() {
    std::set<std::string> names;
    for (const auto& l : cfg_.listeners)
      if (!l.name.empty() && !names.insert(l.name).second)
        error(l.name_mark, "duplicate listener name " + quote(l.name));
    names.clear();
    for (const auto& c : cfg_.clusters)
      if (!c.name.empty() && !names.insert(c.name).second)
        error(c.name_mark, "duplicate cluster name " + quote(c.name));

    std::vector<std::pair<std::string, const ListenerConfig*>> bound;
    for (const auto& l : cfg_.listeners) {
      if (l.address.host.empty() || l.address.port == 0) continue;
      std::string key = canonicalAddress(l.address);
      auto it = std::find_if(bound.begin(), bound.end(), [&](const auto& b) { return b.first == key; });
      if (it != bound.end())
        error(l.address.mark, "duplicate listener address " + quote(l.address.text) +
                                  " (also used by listener " + quote(it->second->name) + ")");
      else
        bound.emplace_back(key, &l);
    }

    for (const auto& l : cfg_.listeners)
      if (l.tcp && !l.tcp->cluster.empty() && cfg_.findCluster(l.tcp->cluster) == nullptr)
        error(l.tcp->cluster_mark, "unknown cluster " + quote(l.tcp->cluster));
    for (const auto& l : cfg_.listeners) {
      if (!l.tcp) continue;
      std::set<std::string> seen;
      for (const auto& r : l.tcp->sni_routes) {
        if (!r.cluster.empty() && cfg_.findCluster(r.cluster) == nullptr)
          error(r.cluster_mark, "unknown cluster " + quote(r.cluster));
        for (const auto& n : r.server_names)
          if (!seen.insert(n).second) error(r.mark, "server name " + quote(n) + " is in two sni_routes");
      }
    }
    checkHttpReferences(*this, cfg_);
  }

  // GET /config renders the text when asked (render.h): a reload of a big config does not
  // pay for two more YAML parses.
  void finishRender() {}

  Config cfg_;
};

}  // namespace
}  // namespace internal

LoadResult loadConfigString(const std::string& yaml, const std::string& path) {
  return internal::Loader(yaml, path).run();
}

LoadResult loadConfigFile(const std::string& path) {
  std::string text;
  int err = 0;
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    err = errno;
  } else {
    char buf[65536];
    size_t n;
    errno = 0;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    if (std::ferror(f)) err = errno != 0 ? errno : EIO;
    std::fclose(f);
  }
  if (err != 0) {
    LoadResult r;
    r.errors.push_back({path, Mark{}, std::string("cannot read config file: ") + std::strerror(err)});
    return r;
  }
  return loadConfigString(text, path);
}

}  // namespace ferry::config
