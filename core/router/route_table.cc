#include "core/router/route_table.h"

#include <re2/re2.h>

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
    std::string joined;  // only for a repeated header
    for (const auto& e : headers.entries()) {
      if (!http::HeaderMap::equalsIgnoreCase(e.name, name)) continue;
      if (!first) {
        first = &e.value;
        if (kind == HeaderMatcherConfig::Kind::kPresent) return true;
      } else {
        if (joined.empty()) joined = *first;
        joined += ',';
        joined += e.value;
      }
    }
    if (!first) return false;
    return test(joined.empty() ? std::string_view(*first) : std::string_view(joined));
  }
};

struct CompiledRoute {
  const config::RouteConfig* config = nullptr;
  std::unique_ptr<re2::RE2> path_re;  // kRegex only
  std::vector<HeaderMatcher> headers;

  // Everything but the path condition.
  bool conditions(std::string_view host, std::string_view method,
                  const http::HeaderMap& headers_in) const {
    const auto& methods = config->match.methods;
    if (!methods.empty() &&
        std::find(methods.begin(), methods.end(), method) == methods.end())
      return false;
    for (const auto& h : headers)
      if (!h.matches(host, method, headers_in)) return false;
    return true;
  }
};

// Radix trie over the prefix strings. Each node lists (ascending) the routes whose prefix ends
// exactly there, and the lowest route index anywhere in its subtree (to stop walking early).
class PrefixTrie {
 public:
  bool empty() const { return nodes_.size() == 1 && nodes_[0].routes.empty(); }

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
      const std::string& label = nodes_[child].label;
      std::string_view rest = key.substr(pos);
      size_t common = 0;
      while (common < label.size() && common < rest.size() && label[common] == rest[common])
        ++common;
      if (common < label.size()) {  // split the edge: node -> mid -> child
        uint32_t mid = newNode(label.substr(0, common));
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

  // Sorts children and computes subtree minima. Call once after the last insert.
  void finish() {
    std::vector<uint32_t> order;  // pre-order
    std::vector<uint32_t> stack{0};
    while (!stack.empty()) {
      uint32_t n = stack.back();
      stack.pop_back();
      order.push_back(n);
      auto& node = nodes_[n];
      std::sort(node.children.begin(), node.children.end());
      for (const auto& k : node.children) stack.push_back(k.second);
    }
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      auto& node = nodes_[*it];
      node.min = node.routes.empty() ? kNone : node.routes.front();
      for (const auto& k : node.children) node.min = std::min(node.min, nodes_[k.second].min);
    }
  }

  // Calls f(routes) for every node whose key is a prefix of `path`, shortest first, while the
  // subtree may still hold an index below *best (f lowers *best).
  template <class F>
  void walk(std::string_view path, const uint32_t* best, F&& f) const {
    uint32_t n = 0;
    size_t pos = 0;
    while (true) {
      const Node& node = nodes_[n];
      if (node.min >= *best) return;
      if (!node.routes.empty()) f(node.routes);
      if (pos == path.size()) return;
      char c = path[pos];
      auto it = std::lower_bound(node.children.begin(), node.children.end(), c,
                                 [](const auto& k, char ch) { return k.first < ch; });
      if (it == node.children.end() || it->first != c) return;
      const Node& child = nodes_[it->second];
      if (path.compare(pos, child.label.size(), child.label) != 0) return;
      pos += child.label.size();
      n = it->second;
    }
  }

 private:
  struct Node {
    std::string label;  // edge from the parent
    std::vector<std::pair<char, uint32_t>> children;
    std::vector<uint32_t> routes;
    uint32_t min = kNone;
  };
  uint32_t newNode(std::string label) {
    nodes_.push_back(Node{std::move(label), {}, {}, kNone});
    return static_cast<uint32_t>(nodes_.size() - 1);
  }
  std::vector<Node> nodes_{1};
};

struct VirtualHost {
  const config::VirtualHostConfig* config = nullptr;
  std::vector<CompiledRoute> routes;
  StrMap<std::vector<uint32_t>> exact;  // path -> route indices, ascending
  PrefixTrie prefixes;
  std::vector<uint32_t> regexes;  // ascending

  const config::RouteConfig* match(std::string_view host, std::string_view method,
                                   std::string_view path, const http::HeaderMap& headers) const {
    uint32_t best = kNone;
    auto consider = [&](const std::vector<uint32_t>& list) {
      for (uint32_t i : list) {
        if (i >= best) return;
        if (routes[i].conditions(host, method, headers)) {
          best = i;
          return;
        }
      }
    };
    if (!exact.empty()) {
      auto it = exact.find(path);
      if (it != exact.end()) consider(it->second);
    }
    prefixes.walk(path, &best, consider);
    for (uint32_t i : regexes) {
      if (i >= best) break;
      const auto& r = routes[i];
      if (re2::RE2::FullMatch(path, *r.path_re) && r.conditions(host, method, headers)) {
        best = i;
        break;
      }
    }
    return best == kNone ? nullptr : routes[best].config;
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

std::shared_ptr<const RouteTable> RouteTable::build(const config::HttpConfig& http,
                                                    std::string* error) {
  return build(std::make_shared<const config::HttpConfig>(http), error);
}

std::shared_ptr<const RouteTable> RouteTable::build(
    std::shared_ptr<const config::HttpConfig> http, std::string* error) {
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
    for (size_t r = 0; r < vc.routes.size(); ++r) {
      const auto& rc = vc.routes[r];
      auto& cr = vh.routes[r];
      const auto ri = static_cast<uint32_t>(r);
      cr.config = &rc;
      switch (rc.match.kind) {
        case RouteMatchConfig::Kind::kPath: vh.exact[rc.match.value].push_back(ri); break;
        case RouteMatchConfig::Kind::kPrefix: vh.prefixes.insert(rc.match.value, ri); break;
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
    vh.prefixes.finish();
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
