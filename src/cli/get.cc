// pinata get KEY: a setting's value at the head of the configuration database (its default
// when it was never set).
#include <cstdio>

#include "cli/client.h"
#include "cli/config_cmds.h"

namespace pinata::cli {

int cmd_get(const Paths& paths, const std::vector<std::string>& args) {
  if (args.size() != 1) return usage_error("get takes one KEY, e.g. 'pinata get memory'");
  const db::KeySpec* key = key_or_report(args[0]);
  if (!key) return kExitUsage;
  // Only this key's file is read (not the whole tree as list does).
  std::string value = key->default_value;
  auto store = db::Store::open(db::database_path(paths.home));
  if (!store && store.error().kind() != ErrorKind::kNotFound) return report(store.error());
  if (store) {
    auto stored = store->read(key->full_path());
    if (!stored) return report(stored.error());
    if (*stored) {
      db::Values values = db::resolve_values({{key->full_path(), **stored}});
      print_warnings(values, key);
      value = values[key->name];
    }
  }
  std::printf("%s\n", value.c_str());
  return kExitOk;
}

}  // namespace pinata::cli
