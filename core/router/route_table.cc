#include "core/router/route_table.h"

#include "core/upstream/cluster.h"

#include <re2/re2.h>
#include <re2/set.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace ferry::core::router {
namespace {

using config::HeaderMatcherConfig;
using config::RouteMatchConfig;

constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StrMap = std::unordered_map<std::string, V, StrHash, std::equal_to<>>;

inline char lowerChar(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string lowerCopy(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lowerChar(c);
  return out;
}

// Port and one trailing '.' removed; not lower-cased.
std::string_view stripHost(std::string_view h) {
  if (!h.empty() && h[0] == '[') {
    size_t e = h.find(']');
    if (e != std::string_view::npos) return h.substr(0, e + 1);
    return h;
  }
  size_t c = h.find(':');
  if (c != std::string_view::npos && h.find(':', c + 1) == std::string_view::npos) h = h.substr(0, c);
  if (!h.empty() && h.back() == '.') h.remove_suffix(1);
  return h;
}

// Lower-cases into `buf` (or `spill` if it does not fit) only when needed.
std::string_view canonical(std::string_view host, char* buf, size_t cap, std::string* spill) {
  std::string_view h = stripHost(host);
  bool upper = false;
  for (char c : h)
    if (c >= 'A' && c <= 'Z') {
      upper = true;
      break;
    }
  if (!upper) return h;
  char* out = buf;
  if (h.size() > cap) {
    spill->resize(h.size());
    out = spill->data();
  }
  for (size_t i = 0; i < h.size(); ++i) out[i] = lowerChar(h[i]);
  return std::string_view(out, h.size());
}

std::unique_ptr<re2::RE2> compileRegex(const std::string& pattern, std::string* error) {
  re2::RE2::Options opts;
  opts.set_log_errors(false);
  auto re = std::make_unique<re2::RE2>(pattern, opts);
  if (!re->ok()) {
    *error = re->error();
    return nullptr;
  }
  return re;
}

struct HeaderMatcher {
  enum class Source { kHeader, kHost, kMethod };
  Source source = Source::kHeader;
  std::string name;  // lower-case
  HeaderMatcherConfig::Kind kind = HeaderMatcherConfig::Kind::kPresent;
  std::string value;
  std::unique_ptr<re2::RE2> re;

  bool test(std::string_view v) const {
    switch (kind) {
      case HeaderMatcherConfig::Kind::kPresent: return true;
      case HeaderMatcherConfig::Kind::kExact: return v == value;
      case HeaderMatcherConfig::Kind::kPrefix: return v.substr(0, value.size()) == value;
      case HeaderMatcherConfig::Kind::kRegex: return re2::RE2::FullMatch(v, *re);
    }
    return false;
  }

  bool matches(std::string_view host, std::string_view method,
               const http::HeaderMap& headers) const {
    if (source == Source::kHost) return !host.empty() && test(host);
    if (source == Source::kMethod) return test(method);
    const std::string* first = nullptr;
    bool repeated = false;
    std::string joined;  // only for a repeated header
    for (const auto& e : headers.entries()) {
      if (!http::HeaderMap::equalsIgnoreCase(e.name, name)) continue;
      if (!first) {
        first = &e.value;
        if (kind == HeaderMatcherConfig::Kind::kPresent) return true;
        continue;
      }
      if (!repeated) {
        repeated = true;
        joined = *first;
      }
      joined += ',';
      joined += e.value;
    }
    if (!first) return false;
    return test(repeated ? std::string_view(joined) : std::string_view(*first));
  }
};

struct CompiledRoute {
  Route route;
  bool unconditional = true;          // no methods, no header matchers
  std::unique_ptr<re2::RE2> path_re;  // kRegex only
  std::vector<HeaderMatcher> headers;

  // Everything but the path condition.
  bool conditions(std::string_view host, std::string_view method,
                  const http::HeaderMap& headers_in) const {
    if (unconditional) return true;
    const auto& methods = route.config->match.methods;
    if (!methods.empty() &&
        std::find(methods.begin(), methods.end(), method) == methods.end())
      return false;
    for (const auto& h : headers)
      if (!h.matches(host, method, headers_in)) return false;
    return true;
  }
};

// A range of route indices (ascending) in a VirtualHost's flat `lists` array.
struct Span {
  uint32_t begin = 0;
  uint32_t size = 0;
};

// Radix trie over the prefix strings, used while building. Each node lists (ascending) the
// routes whose prefix ends exactly there.
class TrieBuilder {
 public:
  struct Node {
    std::string label;  // edge from the parent
    std::vector<std::pair<char, uint32_t>> children;
    std::vector<uint32_t> routes;
  };

  void insert(std::string_view key, uint32_t route) {
    uint32_t node = 0;
    size_t pos = 0;
    while (true) {
      if (pos == key.size()) {
        nodes_[node].routes.push_back(route);
        return;
      }
      auto& kids = nodes_[node].children;
      auto it = std::find_if(kids.begin(), kids.end(),
                             [&](const auto& k) { return k.first == key[pos]; });
      if (it == kids.end()) {
        uint32_t n = newNode(std::string(key.substr(pos)));
        nodes_[n].routes.push_back(route);
        nodes_[node].children.emplace_back(key[pos], n);
        return;
      }
      uint32_t child = it->second;
      std::string_view label = nodes_[child].label;
      std::string_view rest = key.substr(pos);
      size_t common = 0;
      while (common < label.size() && common < rest.size() && label[common] == rest[common])
        ++common;
      if (common < label.size()) {  // split the edge: node -> mid -> child
        uint32_t mid = newNode(std::string(label.substr(0, common)));
        nodes_[child].label.erase(0, common);
        nodes_[mid].children.emplace_back(nodes_[child].label[0], child);
        for (auto& k : nodes_[node].children)
          if (k.second == child) k.second = mid;
        child = mid;
      }
      node = child;
      pos += common;
    }
  }

  const std::vector<Node>& nodes() const { return nodes_; }

 private:
  uint32_t newNode(std::string label) {
    nodes_.push_back(Node{std::move(label), {}, {}});
    return static_cast<uint32_t>(nodes_.size() - 1);
  }
  std::vector<Node> nodes_{1};
};

// The same trie, flattened for lookups: nodes in breadth-first order so that the children of a
// node are adjacent (sorted by first byte) and their labels are adjacent in one string.
class PrefixTrie {
 public:
  // `lists` receives the route lists.
  void build(const TrieBuilder& b, std::vector<uint32_t>* lists) {
    const auto& in = b.nodes();
    nodes_.clear();
    labels_.clear();
    std::vector<uint32_t> src{0};  // flat index -> builder index
    nodes_.push_back(Node{});
    for (size_t f = 0; f < src.size(); ++f) {
      const auto& bn = in[src[f]];
      auto kids = bn.children;
      std::sort(kids.begin(), kids.end());
      nodes_[f].first_child = static_cast<uint32_t>(nodes_.size());
      nodes_[f].n_children = static_cast<uint32_t>(kids.size());
      nodes_[f].routes.begin = static_cast<uint32_t>(lists->size());
      nodes_[f].routes.size = static_cast<uint32_t>(bn.routes.size());
      lists->insert(lists->end(), bn.routes.begin(), bn.routes.end());
      for (const auto& k : kids) {
        Node n;
        const auto& label = in[k.second].label;
        n.first = k.first;
        n.label_off = static_cast<uint32_t>(labels_.size());
        n.label_len = static_cast<uint32_t>(label.size());
        labels_ += label;
        nodes_.push_back(n);
        src.push_back(k.second);
      }
    }
    // Subtree minima, children before parents (reverse breadth-first order).
    for (size_t f = nodes_.size(); f-- > 0;) {
      auto& n = nodes_[f];
      n.min = n.routes.size ? (*lists)[n.routes.begin] : kNone;
      for (uint32_t c = 0; c < n.n_children; ++c)
        n.min = std::min(n.min, nodes_[n.first_child + c].min);
    }
  }

  // Calls f(span) for every node whose key is a prefix of `path`, shortest first, while its
  // subtree may still hold a route index below *best (f lowers *best).
  template <class F>
  void walk(std::string_view path, const uint32_t* best, F&& f) const {
    if (nodes_.empty()) return;
    uint32_t n = 0;
    size_t pos = 0;
    while (true) {
      const Node& node = nodes_[n];
      if (node.min >= *best) return;
      if (node.routes.size) f(node.routes);
      if (pos == path.size() || node.n_children == 0) return;
      const char c = path[pos];
      const Node* lo = &nodes_[node.first_child];
      const Node* hi = lo + node.n_children;
      const Node* it =
          std::lower_bound(lo, hi, c, [](const Node& k, char ch) { return k.first < ch; });
      if (it == hi || it->first != c) return;
      if (path.size() - pos < it->label_len ||
          std::string_view(labels_).substr(it->label_off, it->label_len) !=
              path.substr(pos, it->label_len))
        return;
      pos += it->label_len;
      n = static_cast<uint32_t>(it - nodes_.data());
    }
  }

 private:
  struct Node {
    uint32_t first_child = 0;
    uint32_t n_children = 0;
    uint32_t label_off = 0;
    uint32_t label_len = 0;
    Span routes;
    uint32_t min = kNone;
    char first = 0;
  };
  std::vector<Node> nodes_;
  std::string labels_;
};

// Below this many regex routes they are tried one by one; from it on, through one RE2::Set.
constexpr size_t kRegexSetThreshold = 4;

struct VirtualHost {
  const config::VirtualHostConfig* config = nullptr;
  std::vector<CompiledRoute> routes;
  std::vector<uint32_t> lists;  // route-index lists that Spans point into
  StrMap<Span> exact;           // path -> routes with that exact path
  PrefixTrie prefixes;
  std::vector<uint32_t> regexes;    // route indices, ascending
  std::unique_ptr<re2::RE2::Set> regex_set;  // pattern k = routes[regexes[k]]

  const Route* match(std::string_view host, std::string_view method, std::string_view path,
                     const http::HeaderMap& headers) const {
    uint32_t best = kNone;
    auto consider = [&](Span s) {
      const uint32_t* begin = lists.data() + s.begin;
      for (const uint32_t* i = begin; i != begin + s.size; ++i) {
        if (*i >= best) return;
        if (routes[*i].conditions(host, method, headers)) {
          best = *i;
          return;
        }
      }
    };
    if (!exact.empty()) {
      auto it = exact.find(path);
      if (it != exact.end()) consider(it->second);
    }
    prefixes.walk(path, &best, consider);
    if (!regexes.empty() && regexes.front() < best) matchRegexes(host, method, path, headers, &best);
    return best == kNone ? nullptr : &routes[best].route;
  }

  void matchRegexes(std::string_view host, std::string_view method, std::string_view path,
                    const http::HeaderMap& headers, uint32_t* best) const {
    if (regex_set) {
      thread_local std::vector<int> hits;
      re2::RE2::Set::ErrorInfo info{};
      if (regex_set->Match(path, &hits, &info)) {
        std::sort(hits.begin(), hits.end());  // pattern order == route order
        for (int k : hits) {
          uint32_t i = regexes[static_cast<size_t>(k)];
          if (i >= *best) return;
          if (routes[i].conditions(host, method, headers)) {
            *best = i;
            return;
          }
        }
        return;
      }
      if (info.kind == re2::RE2::Set::kNoError) return;  // no regex matched
      // The set's DFA ran out of memory: fall back to one regex at a time.
    }
    for (uint32_t i : regexes) {
      if (i >= *best) return;
      const auto& r = routes[i];
      if (re2::RE2::FullMatch(path, *r.path_re) && r.conditions(host, method, headers)) {
        *best = i;
        return;
      }
    }
  }
};

std::string where(const config::VirtualHostConfig& vh, size_t route, const config::Mark& mark) {
  std::string s = "virtual host '" + vh.name + "' route " + std::to_string(route + 1);
  if (mark.line > 0)
    s += " (line " + std::to_string(mark.line) + ":" + std::to_string(mark.col) + ")";
  return s;
}

}  // namespace

struct RouteTable::Impl {
  std::shared_ptr<const config::HttpConfig> http;
  std::vector<VirtualHost> vhosts;
  StrMap<uint32_t> exact_domains;
  StrMap<uint32_t> suffix_domains;  // "*.a.com" stored as ".a.com"
  std::vector<size_t> suffix_lengths;  // distinct, longest first
  StrMap<uint32_t> prefix_domains;  // "foo.*" stored as "foo."
  std::vector<size_t> prefix_lengths;
  uint32_t any = kNone;

  const VirtualHost* findHost(std::string_view raw) const {
    char buf[256];
    std::string spill;
    std::string_view h = canonical(raw, buf, sizeof buf, &spill);
    if (!exact_domains.empty()) {
      auto it = exact_domains.find(h);
      if (it != exact_domains.end()) return &vhosts[it->second];
    }
    for (size_t len : suffix_lengths) {
      if (len >= h.size()) continue;
      auto it = suffix_domains.find(h.substr(h.size() - len));
      if (it != suffix_domains.end()) return &vhosts[it->second];
    }
    for (size_t len : prefix_lengths) {
      if (len >= h.size()) continue;
      auto it = prefix_domains.find(h.substr(0, len));
      if (it != prefix_domains.end()) return &vhosts[it->second];
    }
    return any == kNone ? nullptr : &vhosts[any];
  }
};

RouteTable::RouteTable(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RouteTable::~RouteTable() = default;

std::shared_ptr<const RouteTable> RouteTable::build(const config::HttpConfig& http, std::string* error,
                                                    const ClusterResolver& clusters, StatsStore* stats,
                                                    const std::string& listener) {
  return build(std::make_shared<const config::HttpConfig>(http), error, clusters, stats, listener);
}

std::shared_ptr<const RouteTable> RouteTable::build(std::shared_ptr<const config::HttpConfig> http,
                                                    std::string* error, const ClusterResolver& clusters,
                                                    StatsStore* stats, const std::string& listener) {
  auto impl = std::make_unique<Impl>();
  impl->http = std::move(http);
  std::string errors;
  auto fail = [&](const std::string& msg) {
    if (!errors.empty()) errors += '\n';
    errors += msg;
  };

  const auto& vhs = impl->http->virtual_hosts;
  impl->vhosts.resize(vhs.size());
  for (size_t v = 0; v < vhs.size(); ++v) {
    const auto& vc = vhs[v];
    auto& vh = impl->vhosts[v];
    vh.config = &vc;
    const auto index = static_cast<uint32_t>(v);
    for (const auto& d : vc.domains) {
      std::string dom = lowerCopy(d);
      if (dom == "*") {
        if (impl->any == kNone) impl->any = index;
      } else if (dom.size() > 1 && dom.front() == '*') {
        impl->suffix_domains.emplace(dom.substr(1), index);
      } else if (dom.size() > 1 && dom.back() == '*') {
        impl->prefix_domains.emplace(dom.substr(0, dom.size() - 1), index);
      } else {
        impl->exact_domains.emplace(std::move(dom), index);
      }
    }

    vh.routes.resize(vc.routes.size());
    TrieBuilder trie;
    std::vector<std::pair<std::string_view, uint32_t>> exact;  // (path, route), route order
    for (size_t r = 0; r < vc.routes.size(); ++r) {
      const auto& rc = vc.routes[r];
      auto& cr = vh.routes[r];
      const auto ri = static_cast<uint32_t>(r);
      cr.route.config = &rc;
      if (stats != nullptr && !rc.name.empty()) {
        auto& rs = cr.route.stats;
        rs.enabled = true;
        for (int cls = 1; cls <= 5; ++cls)
          rs.rq_by_class[cls] = stats->counter("ferry_route_requests_total",
                                               {{"listener", listener}, {"route", rc.name}, {"code", std::to_string(cls) + "xx"}},
                                               "HTTP responses of a named route, by status class.");
        rs.duration = stats->histogram("ferry_route_request_duration_seconds", {{"listener", listener}, {"route", rc.name}},
                                       latencyBounds(), "Time from the request head to the end of the response, per named route.");
      }
      if (rc.route) {
        auto resolve = [&](const std::string& name) { return clusters ? clusters(name) : nullptr; };
        if (rc.route->weighted_clusters.empty()) {
          cr.route.clusters.push_back(resolve(rc.route->cluster));
        } else {
          for (const auto& w : rc.route->weighted_clusters) cr.route.clusters.push_back(resolve(w.cluster));
        }
      }
      cr.unconditional = rc.match.methods.empty() && rc.match.headers.empty();
      switch (rc.match.kind) {
        case RouteMatchConfig::Kind::kPath: exact.emplace_back(rc.match.value, ri); break;
        case RouteMatchConfig::Kind::kPrefix: trie.insert(rc.match.value, ri); break;
        case RouteMatchConfig::Kind::kRegex: {
          std::string err;
          cr.path_re = compileRegex(rc.match.value, &err);
          if (!cr.path_re)
            fail(where(vc, r, rc.match.mark) + ": bad regex '" + rc.match.value + "': " + err);
          vh.regexes.push_back(ri);
          break;
        }
      }
      for (const auto& hc : rc.match.headers) {
        HeaderMatcher m;
        m.name = lowerCopy(hc.name);
        if (m.name == "host" || m.name == ":authority")
          m.source = HeaderMatcher::Source::kHost;
        else if (m.name == ":method")
          m.source = HeaderMatcher::Source::kMethod;
        m.kind = hc.kind;
        m.value = hc.value;
        if (hc.kind == HeaderMatcherConfig::Kind::kRegex) {
          std::string err;
          m.re = compileRegex(hc.value, &err);
          if (!m.re) {
            fail(where(vc, r, hc.mark) + ": header '" + hc.name + "': bad regex '" + hc.value +
                 "': " + err);
            continue;
          }
        }
        cr.headers.push_back(std::move(m));
      }
    }
    // Exact paths: group by path (stable, so each list stays in route order).
    std::stable_sort(exact.begin(), exact.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 0; i < exact.size();) {
      Span span{static_cast<uint32_t>(vh.lists.size()), 0};
      size_t j = i;
      for (; j < exact.size() && exact[j].first == exact[i].first; ++j)
        vh.lists.push_back(exact[j].second);
      span.size = static_cast<uint32_t>(j - i);
      vh.exact.emplace(std::string(exact[i].first), span);
      i = j;
    }
    vh.prefixes.build(trie, &vh.lists);
    if (vh.regexes.size() >= kRegexSetThreshold && errors.empty()) {
      re2::RE2::Options opts;
      opts.set_log_errors(false);
      auto set = std::make_unique<re2::RE2::Set>(opts, re2::RE2::ANCHOR_BOTH);
      bool ok = true;
      for (uint32_t i : vh.regexes) ok = ok && set->Add(vc.routes[i].match.value, nullptr) >= 0;
      // If the set cannot be built (it compiles to one program), routes are scanned instead.
      if (ok && set->Compile()) vh.regex_set = std::move(set);
    }
  }

  auto lengths = [](const StrMap<uint32_t>& m) {
    std::vector<size_t> out;
    for (const auto& [k, _] : m) out.push_back(k.size());
    std::sort(out.begin(), out.end(), std::greater<>());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  };
  impl->suffix_lengths = lengths(impl->suffix_domains);
  impl->prefix_lengths = lengths(impl->prefix_domains);

  if (!errors.empty()) {
    if (error) *error = std::move(errors);
    return nullptr;
  }
  return std::shared_ptr<const RouteTable>(new RouteTable(std::move(impl)));
}

RouteTable::Match RouteTable::find(std::string_view host, std::string_view method,
                                   std::string_view path, const http::HeaderMap& headers) const {
  Match m;
  const VirtualHost* vh = impl_->findHost(host);
  if (!vh) return m;
  m.virtual_host = vh->config;
  m.route = vh->match(host, method, path, headers);
  return m;
}

const config::VirtualHostConfig* RouteTable::matchVirtualHost(std::string_view host) const {
  const VirtualHost* vh = impl_->findHost(host);
  return vh ? vh->config : nullptr;
}

const config::HttpConfig& RouteTable::config() const { return *impl_->http; }

const upstream::Cluster* Route::pickCluster(uint64_t random) const {
  if (clusters.size() <= 1) return clusters.empty() ? nullptr : clusters.front().get();
  // The same walk as pickWeighted, over the resolved clusters (same order as the config).
  const auto& w = config->route->weighted_clusters;
  uint64_t total = 0;
  for (const auto& c : w) total += c.weight;
  if (total == 0) return clusters.front().get();
  uint64_t r = random % total;
  for (size_t i = 0; i < w.size(); ++i) {
    if (r < w[i].weight) return clusters[i].get();
    r -= w[i].weight;
  }
  return clusters.back().get();
}

const std::string& pickWeighted(const config::RouteActionConfig& a, uint64_t random) {
  const auto& w = a.weighted_clusters;
  if (w.empty()) return a.cluster;
  uint64_t total = 0;
  for (const auto& c : w) total += c.weight;
  if (total == 0) return w.front().cluster;
  uint64_t r = random % total;
  for (const auto& c : w) {
    if (r < c.weight) return c.cluster;
    r -= c.weight;
  }
  return w.back().cluster;  // unreachable
}

std::string canonicalHost(std::string_view host) { return lowerCopy(stripHost(host)); }

}  // namespace ferry::core::router
