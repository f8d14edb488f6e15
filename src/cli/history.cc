// pinata history [KEY] [-n N]: the commits on master (that changed KEY), newest first.
#include <cstdio>
#include <ctime>

#include "cli/client.h"
#include "cli/config_cmds.h"

namespace pinata::cli {

int cmd_history(const Paths& paths, const std::vector<std::string>& args) {
  std::optional<std::string> key_path;
  size_t limit = 20;
  for (size_t i = 0; i < args.size(); i++) {
    const std::string& a = args[i];
    if (a == "-n" || a == "--limit") {
      if (i + 1 >= args.size()) return usage_error("history: " + a + " needs a number (0 for all)");
      const std::string& n = args[++i];
      if (n.empty() || n.size() > 9 || n.find_first_not_of("0123456789") != std::string::npos) {
        return usage_error("history: " + a + " needs a number (0 for all), got '" + n + "'");
      }
      limit = std::stoul(n);
    } else if (!a.empty() && a[0] == '-') {
      return usage_error("history: expected [KEY] [-n N], got '" + a + "'");
    } else if (key_path) {
      return usage_error("history takes at most one KEY");
    } else {
      const db::KeySpec* key = key_or_report(a);
      if (!key) return kExitUsage;
      key_path = key->full_path();
    }
  }
  auto store = db::Store::open(db::database_path(paths.home));
  if (!store) {
    if (store.error().kind() == ErrorKind::kNotFound) return kExitOk;  // nothing set yet
    return report(store.error());
  }
  auto commits = store->history(key_path, limit);
  if (!commits) return report(commits.error());
  for (const auto& c : *commits) {
    std::time_t t = static_cast<std::time_t>(c.time);
    std::tm tm{};
    ::localtime_r(&t, &tm);
    char when[32];
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    std::printf("%s  %s  %s\n", c.id.substr(0, 8).c_str(), when, c.summary.c_str());
  }
  return kExitOk;
}

}  // namespace pinata::cli
