// The admin dashboard (GET / on the admin address): proxy/dashboard/index.html, compiled into
// the binary at build time by proxy/dashboard/embed.py (no file is read at run time, nothing
// is fetched from elsewhere by the page).
#pragma once

#include <string_view>

namespace ferry::proxy {
extern const std::string_view kDashboardHtml;
}
