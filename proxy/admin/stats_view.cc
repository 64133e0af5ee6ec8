#include "proxy/admin/stats_view.h"

#include <re2/re2.h>

#include <map>
#include <utility>
#include <variant>
#include <vector>

#include "config/values.h"

namespace ferry::proxy {
namespace {

using config::jsonString;

bool matches(const re2::RE2* filter, std::string_view name) {
  return filter == nullptr || re2::RE2::PartialMatch(re2::StringPiece(name.data(), name.size()), *filter);
}

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// A sample value as a JSON number; null for what JSON cannot hold (NaN, +Inf).
std::string jsonNumber(std::string_view v) {
  if (v.empty()) return "null";
  size_t i = v[0] == '-' ? 1 : 0;
  if (i >= v.size() || v[i] < '0' || v[i] > '9') return "null";
  for (char c : v.substr(i))
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) return "null";
  return std::string(v);
}

struct Sample {
  std::string_view name;
  std::vector<std::pair<std::string, std::string>> labels;  // unescaped
  std::string_view value;
};

// name{k="v",...} value [timestamp]; false when the line is not a sample.
bool parseSample(std::string_view line, Sample* s) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  if (i == 0 || i == line.size()) return false;
  s->name = line.substr(0, i);
  s->labels.clear();
  if (line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      size_t eq = line.find('=', i);
      if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') return false;
      std::string key(line.substr(i, eq - i));
      std::string val;
      size_t j = eq + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\' && j + 1 < line.size()) {
          ++j;
          val.push_back(line[j] == 'n' ? '\n' : line[j]);
        } else {
          val.push_back(line[j]);
        }
      }
      if (j >= line.size()) return false;
      s->labels.emplace_back(std::move(key), std::move(val));
      i = j + 1;
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  while (i < line.size() && line[i] == ' ') ++i;
  size_t end = line.find(' ', i);
  s->value = line.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i);
  return !s->value.empty();
}

std::string labelsJson(const std::vector<std::pair<std::string, std::string>>& labels) {
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (k == "le") continue;
    out += (first ? "" : ",") + jsonString(k) + ":" + jsonString(v);
    first = false;
  }
  return out + "}";
}

struct Histogram {
  std::string name, labels;
  std::string buckets;  // JSON objects, comma-separated
  std::string sum = "0", count = "0";
};

}  // namespace

std::string filterStatsLines(std::string_view plain, const re2::RE2* filter) {
  std::string out;
  size_t pos = 0;
  while (pos < plain.size()) {
    size_t eol = plain.find('\n', pos);
    std::string_view line = plain.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? plain.size() : eol + 1;
    size_t end = line.find_first_of("{:");
    if (line.empty() || !matches(filter, line.substr(0, end))) continue;
    out.append(line);
    out.push_back('\n');
  }
  return out;
}

std::string statsJson(std::string_view text, const re2::RE2* filter, int64_t time_ms) {
  std::map<std::string, std::string, std::less<>> types;
  // Entries in order of appearance: a plain sample's JSON, or a histogram being assembled.
  std::vector<std::variant<std::string, Histogram>> entries;
  std::map<std::string, size_t, std::less<>> histograms;  // name + labels -> entries index
  Sample s;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (line.rfind("# TYPE ", 0) == 0) {
      std::string_view rest = line.substr(7);
      size_t sp = rest.find(' ');
      if (sp != std::string_view::npos) types[std::string(rest.substr(0, sp))] = std::string(rest.substr(sp + 1));
      continue;
    }
    if (line.empty() || line[0] == '#' || !parseSample(line, &s)) continue;
    std::string_view family = s.name;
    std::string_view part;
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (!endsWith(s.name, suffix)) continue;
      std::string_view base = s.name.substr(0, s.name.size() - suffix.size());
      auto t = types.find(base);
      if (t != types.end() && t->second == "histogram") {
        family = base;
        part = suffix;
      }
      break;
    }
    if (!matches(filter, family)) continue;
    if (part.empty()) {
      auto t = types.find(s.name);
      std::string type = t == types.end() ? "untyped" : t->second;
      entries.emplace_back("{\"name\":" + jsonString(std::string(s.name)) + ",\"type\":\"" + type +
                           "\",\"labels\":" + labelsJson(s.labels) + ",\"value\":" + jsonNumber(s.value) + "}");
      continue;
    }
    std::string labels = labelsJson(s.labels);
    std::string key = std::string(family) + labels;
    auto it = histograms.find(key);
    if (it == histograms.end()) {
      it = histograms.emplace(key, entries.size()).first;
      entries.emplace_back(Histogram{std::string(family), labels, "", "0", "0"});
    }
    Histogram& h = std::get<Histogram>(entries[it->second]);
    if (part == "_bucket") {
      std::string le;
      for (const auto& [k, v] : s.labels)
        if (k == "le") le = v;
      if (!h.buckets.empty()) h.buckets += ",";
      h.buckets += "{\"le\":" + jsonString(le) + ",\"count\":" + jsonNumber(s.value) + "}";
    } else if (part == "_sum") {
      h.sum = jsonNumber(s.value);
    } else {
      h.count = jsonNumber(s.value);
    }
  }
  std::string out = "{\"time_ms\":" + std::to_string(time_ms) + ",\"stats\":[";
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i) out += ",\n";
    if (const auto* plain = std::get_if<std::string>(&entries[i])) {
      out += *plain;
    } else {
      const auto& h = std::get<Histogram>(entries[i]);
      out += "{\"name\":" + jsonString(h.name) + ",\"type\":\"histogram\",\"labels\":" + h.labels + ",\"buckets\":[" +
             h.buckets + "],\"sum\":" + h.sum + ",\"count\":" + h.count + "}";
    }
  }
  return out + "]}\n";
}

bool percentDecode(std::string_view in, std::string* out) {
  out->clear();
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int a = hex(in[i + 1]), b = hex(in[i + 2]);
    if (a < 0 || b < 0) return false;
    out->push_back(static_cast<char>(a * 16 + b));
    i += 2;
  }
  return true;
}

}  // namespace ferry::proxy
