// Views of the stats for the admin API: GET /stats?filter=REGEX (plain lines whose metric name
// matches) and GET /stats?format=json (for the dashboard and scripts). Both read the text the
// StatsStore renders, so they show exactly what /stats and /metrics show. Main thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace ferry::proxy {

// The lines of StatsStore::plain() ("name{labels}: value") whose metric name (the text before
// '{' or ':') `filter` matches anywhere (RE2 partial match). A null filter keeps every line.
std::string filterStatsLines(std::string_view plain, const re2::RE2* filter);

// StatsStore::prometheus() text as JSON:
//   {"time_ms":N,"stats":[
//     {"name":"ferry_x_total","type":"counter","labels":{"listener":"web"},"value":3},
//     {"name":"ferry_y_seconds","type":"histogram","labels":{...},
//      "buckets":[{"le":"0.005","count":2},...,{"le":"+Inf","count":9}],"sum":0.012,"count":9}]}
// Bucket counts are cumulative, as in Prometheus. `filter` (partial match) applies to the
// family name (a histogram's name without _bucket/_sum/_count). `time_ms`: the server's clock
// (unix ms) when the values were read, so a reader can turn two reads into rates.
std::string statsJson(std::string_view prometheus, const re2::RE2* filter, int64_t time_ms);

// Percent-decodes a query parameter value (%XX; '+' stays '+', as a regex needs it).
// False when a '%' is not followed by two hex digits.
bool percentDecode(std::string_view in, std::string* out);

}  // namespace ferry::proxy
