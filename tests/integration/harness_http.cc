// Integration harness, HTTP: HttpResponse, parseHttpResponse, httpRequest, readHttpResponse,
// parsePrometheus and ferry's /metrics (metricValue, waitMetric).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "tests/integration/harness.h"
#include "tests/integration/harness_internal.h"

namespace ferry::testing {

using namespace detail;

namespace {

bool isXDigit(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[i])) !=
        std::tolower(static_cast<unsigned char>(prefix[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// The raw value (after the colon, untrimmed) of the first line of `headers` named `name`
// (case-insensitive); nullopt if there is none.
std::optional<std::string_view> findHeader(std::string_view headers, std::string_view name) {
  std::string_view h = headers;
  while (!h.empty()) {
    size_t e = h.find("\r\n");
    std::string_view line = h.substr(0, e);
    h = e == std::string_view::npos ? std::string_view() : h.substr(e + 2);
    size_t colon = line.find(':');
    if (colon == name.size() && startsWithNoCase(line, name)) return line.substr(colon + 1);
  }
  return std::nullopt;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// HTTP

std::string HttpResponse::header(std::string_view name) const {
  auto v = findHeader(headers, name);
  return v ? std::string(trim(*v)) : "";
}

bool HttpResponse::hasHeader(std::string_view name) const {
  return findHeader(headers, name).has_value();
}

namespace {

enum class Parse { kIncomplete, kComplete, kError };

// Decodes a chunked body starting at raw[pos]. kComplete when the terminating chunk and
// trailers have been read; `end` is then the offset just past them.
Parse decodeChunked(std::string_view raw, size_t pos, std::string& body, std::string& err, size_t& end) {
  body.clear();
  for (;;) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string_view::npos) return Parse::kIncomplete;
    std::string_view sz = raw.substr(pos, eol - pos);
    sz = sz.substr(0, sz.find(';'));
    sz = trim(sz);
    if (sz.empty() || sz.size() > 15 || !std::all_of(sz.begin(), sz.end(), isXDigit)) {
      err = "bad chunk size line: " + std::string(raw.substr(pos, eol - pos));
      return Parse::kError;
    }
    size_t n = std::stoul(std::string(sz), nullptr, 16);
    pos = eol + 2;
    if (n == 0) {
      // Trailers until an empty line.
      for (;;) {
        size_t e = raw.find("\r\n", pos);
        if (e == std::string_view::npos) return Parse::kIncomplete;
        if (e == pos) {
          end = e + 2;
          return Parse::kComplete;
        }
        pos = e + 2;
      }
    }
    if (raw.size() < pos + n + 2) return Parse::kIncomplete;
    body.append(raw.substr(pos, n));
    if (raw.substr(pos + n, 2) != "\r\n") {
      err = "chunk not followed by CRLF";
      return Parse::kError;
    }
    pos += n + 2;
  }
}

// `consumed` (when complete): the bytes of raw that the response took, interim responses
// included; what follows belongs to the next response on the connection.
Parse parseResponse(std::string_view raw, bool closed, bool head_request, HttpResponse& out,
                    size_t* consumed = nullptr) {
  out = HttpResponse{};
  size_t end_unused = 0;
  size_t& end = consumed ? *consumed : end_unused;
  size_t start = 0;
  for (;;) {
    size_t head_end = raw.find("\r\n\r\n", start);
    if (head_end == std::string_view::npos) {
      out.error = raw.size() == start ? "no response" : "incomplete response head";
      return closed ? Parse::kError : Parse::kIncomplete;
    }
    std::string_view head = raw.substr(start, head_end - start);
    size_t sl_end = head.find("\r\n");
    std::string_view status_line = head.substr(0, sl_end);
    // "HTTP/1.x NNN[ reason]"
    if (status_line.size() < 12 || status_line.substr(0, 7) != "HTTP/1." || status_line[8] != ' ' ||
        !std::isdigit(static_cast<unsigned char>(status_line[9])) ||
        !std::isdigit(static_cast<unsigned char>(status_line[10])) ||
        !std::isdigit(static_cast<unsigned char>(status_line[11])) ||
        (status_line.size() > 12 && status_line[12] != ' ')) {
      out.error = "bad status line: " + std::string(status_line);
      return Parse::kError;
    }
    int status = std::stoi(std::string(status_line.substr(9, 3)));
    std::string headers =
        sl_end == std::string_view::npos ? std::string() : std::string(head.substr(sl_end + 2));
    size_t body_start = head_end + 4;
    if (status >= 100 && status < 200 && status != 101) {  // interim response: skip
      start = body_start;
      continue;
    }
    HttpResponse r;
    r.status = status;
    r.headers = std::move(headers);
    std::string_view rest = raw.substr(body_start);
    if (head_request || status == 204 || status == 304 || status == 101) {
      end = body_start;
      out = std::move(r);
      return Parse::kComplete;
    }
    std::string te = r.header("Transfer-Encoding");
    std::transform(te.begin(), te.end(), te.begin(), ::tolower);
    if (te.find("chunked") != std::string::npos) {
      std::string err;
      Parse p = decodeChunked(raw, body_start, r.body, err, end);
      if (p == Parse::kError) {
        out.error = err;
        return p;
      }
      if (p == Parse::kIncomplete) {
        out.error = "incomplete chunked body";
        return closed ? Parse::kError : Parse::kIncomplete;
      }
      out = std::move(r);
      return Parse::kComplete;
    }
    if (r.hasHeader("Content-Length")) {
      std::string cl = r.header("Content-Length");
      if (cl.empty() || cl.size() > 18 || !std::all_of(cl.begin(), cl.end(), isDigit)) {
        out.error = "bad Content-Length: " + cl;
        return Parse::kError;
      }
      size_t n = std::stoull(cl);
      if (rest.size() < n) {
        out.error = "body shorter than Content-Length (" + std::to_string(rest.size()) + " < " +
                    cl + ")";
        return closed ? Parse::kError : Parse::kIncomplete;
      }
      r.body = std::string(rest.substr(0, n));
      end = body_start + n;
      out = std::move(r);
      return Parse::kComplete;
    }
    if (!closed) return Parse::kIncomplete;  // close-delimited body
    r.body = std::string(rest);
    end = raw.size();
    out = std::move(r);
    return Parse::kComplete;
  }
}

}  // namespace

HttpResponse parseHttpResponse(std::string_view raw, bool complete, bool head_request) {
  HttpResponse r;
  Parse p = parseResponse(raw, complete, head_request, r);
  if (p != Parse::kComplete) {
    std::string err = r.error.empty() ? "incomplete response" : r.error;
    r = HttpResponse{};
    r.error = err;
  }
  return r;
}

HttpResponse httpRequest(uint16_t port, const std::string& method, const std::string& path,
                         const std::string& body, const std::vector<std::string>& extra_headers,
                         ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  HttpResponse res;
  auto left = [&] { return ms(remainingMs(deadline)); };
  auto client = TcpClient::connect(port, left());
  if (!client) {
    res.error = "connect to 127.0.0.1:" + std::to_string(port) + " failed";
    return res;
  }
  bool has_host = false, has_conn = false, has_len = false, has_te = false;
  for (const auto& h : extra_headers) {
    has_host |= startsWithNoCase(h, "host:");
    has_conn |= startsWithNoCase(h, "connection:");
    has_len |= startsWithNoCase(h, "content-length:");
    has_te |= startsWithNoCase(h, "transfer-encoding:");
  }
  std::string req = method + " " + path + " HTTP/1.1\r\n";
  if (!has_host) req += "Host: 127.0.0.1:" + std::to_string(port) + "\r\n";
  if (!has_conn) req += "Connection: close\r\n";
  if (!has_len && !has_te &&
      (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH")) {
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  for (const auto& h : extra_headers) req += h + "\r\n";
  req += "\r\n";
  req += body;
  if (!client->sendAll(req, left())) {
    // The server may have answered and closed early (e.g. 413): still try to read a response.
  }
  std::string raw;
  const bool head = method == "HEAD";
  for (;;) {
    std::string chunk = client->recvSome(left());
    raw += chunk;
    bool closed = client->closedByPeer();
    HttpResponse r;
    Parse p = parseResponse(raw, closed, head, r);
    if (p == Parse::kComplete) return r;
    if (p == Parse::kError) {
      res.error = r.error;
      return res;
    }
    if (chunk.empty() && !closed) {  // deadline passed
      res.error = "timed out after " + std::to_string(timeout.count()) + " ms (" + r.error +
                  "); got " + std::to_string(raw.size()) + " bytes";
      return res;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Prometheus

namespace {

bool isNameStart(char c, bool colon_ok) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (colon_ok && c == ':');
}
bool isNameChar(char c, bool colon_ok) {
  return isNameStart(c, colon_ok) || std::isdigit(static_cast<unsigned char>(c));
}

std::optional<double> parseValue(std::string_view v) {
  if (v == "+Inf" || v == "Inf") return HUGE_VAL;
  if (v == "-Inf") return -HUGE_VAL;
  if (v == "NaN") return std::nan("");
  if (v.empty()) return std::nullopt;
  std::string s(v);
  // strtod also accepts "inf", "nan", hex floats: restrict to decimal syntax first.
  for (char c : s) {
    if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.' && c != 'e' && c != 'E' &&
        c != '+' && c != '-') {
      return std::nullopt;
    }
  }
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return d;
}

// Parses one sample line; returns {key, value} or nullopt.
std::optional<std::pair<std::string, double>> parseSample(std::string_view line) {
  size_t i = 0;
  if (i >= line.size() || !isNameStart(line[i], true)) return std::nullopt;
  while (i < line.size() && isNameChar(line[i], true)) ++i;
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      if (i >= line.size() || !isNameStart(line[i], false)) return std::nullopt;
      while (i < line.size() && isNameChar(line[i], false)) ++i;
      if (i >= line.size() || line[i] != '=') return std::nullopt;
      ++i;
      if (i >= line.size() || line[i] != '"') return std::nullopt;
      ++i;
      bool closed = false;
      while (i < line.size()) {
        char c = line[i];
        if (c == '\\') {
          if (i + 1 >= line.size()) return std::nullopt;
          char e = line[i + 1];
          if (e != '\\' && e != '"' && e != 'n') return std::nullopt;
          i += 2;
          continue;
        }
        ++i;
        if (c == '"') {
          closed = true;
          break;
        }
      }
      if (!closed) return std::nullopt;
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i < line.size() && line[i] == '}') {
        ++i;
        break;
      }
      return std::nullopt;
    }
  }
  std::string key(line.substr(0, i));
  if (i >= line.size() || (line[i] != ' ' && line[i] != '\t')) return std::nullopt;
  std::string_view rest = trim(line.substr(i));
  size_t sp = rest.find_first_of(" \t");
  std::string_view val = rest.substr(0, sp);
  auto v = parseValue(val);
  if (!v) return std::nullopt;
  if (sp != std::string_view::npos) {
    std::string_view ts = trim(rest.substr(sp));
    if (!ts.empty() && ts[0] == '-') ts.remove_prefix(1);
    if (ts.empty() || !std::all_of(ts.begin(), ts.end(), isDigit)) return std::nullopt;
  }
  return std::make_pair(std::move(key), *v);
}

}  // namespace

std::optional<std::map<std::string, double>> parsePrometheus(std::string_view text) {
  std::map<std::string, double> out;
  while (!text.empty()) {
    size_t e = text.find('\n');
    std::string_view line = text.substr(0, e);
    text = e == std::string_view::npos ? std::string_view() : text.substr(e + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::string_view t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    auto s = parseSample(t);
    if (!s) return std::nullopt;
    if (!out.emplace(std::move(s->first), s->second).second) return std::nullopt;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Responses on a kept-alive connection

HttpResponse readHttpResponse(TcpClient& c, bool head_request, ms timeout) {
  std::string raw;
  auto deadline = Clock::now() + timeout;
  // One parse per attempt. Pipelined responses can arrive in one read: the bytes past this
  // response go back to the client for the next call.
  HttpResponse r;
  auto parsed = [&](bool complete) {
    size_t used = 0;
    if (parseResponse(raw, complete, head_request, r, &used) != Parse::kComplete) return false;
    if (used < raw.size()) c.unread(std::string_view(raw).substr(used));
    return true;
  };
  while (Clock::now() < deadline) {
    if (parsed(false)) return r;
    std::string more = c.recvSome(100ms);
    if (more.empty() && c.closedByPeer()) break;
    raw += more;
  }
  if (parsed(true)) return r;
  return parseHttpResponse(raw, true, head_request);  // status 0 and the reason
}

// ---------------------------------------------------------------------------------------------
// ferry's /metrics

namespace {

// GET /metrics, parsed; nullopt if the answer is not a 200 with valid Prometheus text.
std::optional<std::map<std::string, double>> scrapeMetrics(uint16_t admin_port) {
  HttpResponse r = httpRequest(admin_port, "GET", "/metrics");
  if (r.status != 200) return std::nullopt;
  return parsePrometheus(r.body);
}

}  // namespace

double metricValue(uint16_t admin_port, const std::string& key) {
  auto m = scrapeMetrics(admin_port);
  if (!m) return kMetricUnreadable;
  auto it = m->find(key);
  return it == m->end() ? kMetricAbsent : it->second;
}

double metricValue(FerryProcess& f, const std::string& key) {
  return metricValue(f.adminPort(), key);
}

Counts outcomeCounts(FerryProcess& f, const std::string& name, const std::vector<std::string>& results,
                     const std::string& listener) {
  auto m = scrapeMetrics(f.adminPort());
  Counts out;
  for (const auto& r : results) {
    if (!m) {
      out.push_back(kMetricUnreadable);
      continue;
    }
    auto it = m->find(name + "{listener=\"" + listener + "\",result=\"" + r + "\"}");
    out.push_back(it == m->end() ? kMetricAbsent : it->second);
  }
  return out;
}

bool waitMetric(uint16_t admin_port, const std::string& key, double want, ms timeout) {
  const TimePoint deadline = Clock::now() + timeout;
  do {
    auto m = scrapeMetrics(admin_port);
    if (m) {
      auto it = m->find(key);
      if (it != m->end() && it->second == want) return true;
    }
  } while (Clock::now() < deadline);
  return false;
}

}  // namespace ferry::testing
