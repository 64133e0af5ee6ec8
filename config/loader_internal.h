// Internal to the config loader: what loader.cc and the loader_*.cc files share. Not for any
// other file (it pulls in yaml-cpp, which stays inside config/). Main-thread only, like the
// loader.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/loader.h"
#include "config/model.h"
#include "config/node_reader.h"

namespace ferry::config::internal {

using Keys = std::initializer_list<std::string_view>;

bool before(Mark a, Mark b);
std::string quote(std::string_view s);
std::string join(Keys options);                     // "a, b, c"
bool contains(Keys options, std::string_view s);
// A plain scalar, or one explicitly tagged with this core type ("!!int 3"); not "quoted".
bool isPlainOr(const YAML::Node& n, std::string_view core_type);
// "a mapping", "a list", "'text'", for "expected X, got Y".
std::string describe(const YAML::Node& n);

// One key/value of a mapping (or one list item, with key naming what it is).
struct Entry {
  std::string key;
  YAML::Node value;
  Mark key_mark;
  Mark value_mark;
};

struct Entries {
  std::vector<Entry> list;  // in document order
  const Entry* get(std::string_view key) const {
    for (const auto& e : list)
      if (e.key == key) return &e;
    return nullptr;
  }
};

// Error collection and typed values. Each getter reports its own error (at the value) and
// returns false/nullopt; nothing throws.
class Parser {
 public:
  Parser(const std::string& text, const std::string& path) : text_(text), path_(path) {}

  void error(Mark m, std::string message);

  // A node's position. yaml-cpp gives an empty value ("key:" and nothing) the position of
  // whatever comes next, so such a value uses `fallback` (the key's position) instead.
  Mark posOf(const YAML::Node& n, Mark fallback) const;
  Entry itemEntry(const YAML::Node& n, Mark fallback, std::string what) const;

  // The entries of a mapping whose keys are in `allowed`; unknown and duplicate keys are
  // reported (at the key) and left out. `where` ends messages: "in listener".
  Entries fields(const YAML::Node& map, std::string_view where, Keys allowed);
  // The same for a mapping whose keys are free strings (header names): duplicates only.
  Entries anyFields(const YAML::Node& map, std::string_view where);

  const Entry* need(const Entries& f, std::string_view key, const Entry& parent,
                    std::string_view where);
  // The first of `keys` present in `f`; each later one is an error at its key ("X has both
  // 'a' and 'b'"), and none at all is an error at `parent` when `required`.
  const Entry* oneOf(const Entries& f, Keys keys, const Entry& parent, std::string_view what,
                     bool required);
  void typeError(const Entry& e, std::string_view expected);

  bool isMap(const Entry& e, bool null_ok = false);
  bool isList(const Entry& e);
  std::optional<std::string> getString(const Entry& e);  // non-empty scalar
  std::optional<bool> getBool(const Entry& e);
  std::optional<uint64_t> getUint(const Entry& e, uint64_t lo, uint64_t hi);
  std::optional<Duration> getDuration(const Entry& e, bool positive);
  std::optional<Address> getAddress(const Entry& e, int min_port);
  std::optional<std::string> getEnum(const Entry& e, Keys options);
  std::optional<std::string> getName(const Entry& e, std::string_view what);
  // A file path, resolved against the config file's directory.
  std::optional<std::string> getPath(const Entry& e);
  // Reports (at the value) a path that cannot be opened for reading or is not a regular file.
  void checkReadable(const Entry& e, const std::string& path);
  // A plain number lo..hi, fractions allowed ("12.5"); no sign, exponent or quotes.
  std::optional<double> getNumber(const Entry& e, double lo, double hi);
  // The whole value as plain data (a block its owner parses later): keys are checked for
  // being strings and unique (`where` ends those messages).
  ConfigNode deepNode(const YAML::Node& n, Mark m, std::string_view where);

 protected:
  bool writtenNull(int pos) const;
  Entries walk(const YAML::Node& map, std::string_view where, const Keys* allowed);

  const std::string& text_;
  const std::string& path_;
  std::vector<ConfigError> errors_;
  bool truncated_ = false;  // more errors than kMaxErrors were found
  // Typed values are read the same way as in a filter's own config (node_reader.h).
  NodeReader reader_{[this](Mark m, std::string message) { error(m, std::move(message)); }};
};

// Text checks shared by the loader's files (defined in loader_http.cc).
bool isToken(std::string_view s);        // RFC 9110 token: header names, methods, cookie names
std::string lower(std::string_view s);   // ASCII lower case
bool isHostName(std::string_view s);     // dot-separated labels of letters, digits and '-'
bool isHostAndPort(std::string_view s);  // a host name or "[v6]", optionally with ":port"
bool isPathText(std::string_view s);     // what a normalised path holds: no query, fragment, space
std::string headerNameHint();            // "(use letters, digits and ...)" for a bad header name

// loader_http.cc: `hash_on` (of a cluster or a route): exactly one of {header: NAME},
// {cookie: NAME}, {query: NAME}, {source_ip: true}. Errors are reported; the result holds
// what could be read.
HashOnConfig parseHashOn(Parser& p, const Entry& e);
// loader_cluster.cc: one item of `clusters`, appended to `out` (nothing when it is not a map).
void parseCluster(Parser& p, const Entry& item, std::vector<ClusterConfig>& out);

// loader_tls.cc: a listener's `tls` block (termination) and a cluster's (origination).
void parseListenerTls(Parser& p, const Entry& e, TlsConfig& out);
void parseUpstreamTls(Parser& p, const Entry& e, UpstreamTlsConfig& out);

// loader_http.cc: the `http` block of a listener, into `out`.
void parseHttp(Parser& p, const Entry& e, HttpConfig& out);
// Checks that need every cluster: each route's cluster must exist.
void checkHttpReferences(Parser& p, const Config& cfg);

// Names that must be unique within one listener's http block.
struct HttpNames {
  std::map<std::string, std::string> domains;  // domain -> its virtual host
  std::set<std::string> virtual_hosts;
  std::set<std::string> routes;
};
// loader_routes.cc: one item of `virtual_hosts` with its routes, appended to h.virtual_hosts.
// h's filters are read before (filter_overrides must name one of them).
void parseVirtualHost(Parser& p, const Entry& item, HttpConfig& h, HttpNames& names);

}  // namespace ferry::config::internal
