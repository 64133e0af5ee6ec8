// `ferry --reload -c FILE`: asks the running ferry to reload (POST /reload on the admin address
// the file names, with its bearer token), waits for the answer and prints it. For systemd's
// ExecReload and scripts: the exit code says whether the new config was applied. Blocking;
// runs in the command-line process, not in the server.
#pragma once

#include <string>

#include "config/model.h"

namespace ferry::proxy {

// The bearer token in admin.token_file as the server and this client read it: the file's text
// without trailing newlines and spaces; "" when it cannot be read or is empty.
std::string readAdminToken(const std::string& path);

// 0 when the running ferry applied the config, 1 when it rejected it (its errors printed to
// stderr) or could not be reached.
int requestReload(const config::Config& cfg);

}  // namespace ferry::proxy
