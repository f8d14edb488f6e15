#include "db/settings_view.h"

namespace pinata::db {

DbSettings settings_from_files(const Files& files) {
  Values v = resolve_values(files);
  DbSettings s;
  s.hypervisor = v["hypervisor"];
  s.memory_gib = std::stoi(v["memory"]);  // validated: an integer in range
  s.ncpu = std::stoi(v["ncpu"]);
  s.daemon_json = v["daemon"];
  s.hostname = v["hostname"];
  s.sysctl_conf = v["sysctl"];
  const std::string& regs = v["insecure-registry"];
  size_t pos = 0;
  while (pos < regs.size()) {
    size_t end = regs.find(',', pos);
    if (end == std::string::npos) end = regs.size();
    if (end > pos) s.insecure_registries.push_back(regs.substr(pos, end - pos));
    pos = end + 1;
  }
  s.network = v["network"];
  s.external_bind = v["external-bind"] == "true";
  s.slirp_docker = v["slirp/docker"];
  s.slirp_host = v["slirp/host"];
  s.filesystem = v["filesystem"];
  s.expose_docker_socket = v["expose-docker-socket"] == "true";
  s.proxy_verbose = v["proxy-verbose"] == "true";
  s.on_sleep = v["on-sleep"];
  s.warnings = v.warnings;
  if (auto consistent = check_consistency(v); !consistent) {
    // Both addresses fall back together: a pair that cannot work is not half-used.
    s.warnings.push_back(consistent.error().message() + "; using the defaults for both");
    s.slirp_docker = find_key("slirp/docker")->default_value;
    s.slirp_host = find_key("slirp/host")->default_value;
  }
  return s;
}

Result<DbSettings> read_settings(const Store& store, const std::optional<std::string>& at) {
  std::optional<std::string> commit = at;
  if (!commit) {
    TRY_ASSIGN(commit, store.head());
  }
  Files files;
  if (commit) {
    TRY_ASSIGN(files, store.read_tree(kDriverDir, *commit));
  }
  DbSettings s = settings_from_files(files);
  s.head = commit.value_or("");
  return s;
}

Result<DbSettings> read_settings_at_home(const std::string& pinata_home) {
  auto store = Store::open(database_path(pinata_home));
  if (!store) {
    if (store.error().kind() == ErrorKind::kNotFound) return settings_from_files({});
    return fail(store.error());
  }
  return read_settings(*store);
}

}  // namespace pinata::db
