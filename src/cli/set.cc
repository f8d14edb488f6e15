// pinata set KEY VALUE [PARAM=VALUE ...]: validates every value, then writes them all in one
// commit on master ("set hypervisor=qemu memory=4 ncpu=2"). VALUE "-" is read from standard
// input and "@FILE" from a file. Values equal to the current ones make no commit.
#include <unistd.h>

#include <cstdio>
#include <set>

#include "base/io.h"
#include "cli/client.h"
#include "cli/config_cmds.h"
#include "daemon/settings.h"

namespace pinata::cli {
namespace {

struct Item {
  const db::KeySpec* key;
  std::string value;  // normalized
};

struct Applied {
  const db::KeySpec* key;
  std::string value;
  std::string was;
};

Result<std::string> raw_value(const std::string& arg, bool* stdin_used) {
  if (arg == "-") {
    if (*stdin_used)
      return fail(ErrorKind::kInvalidInput, "standard input ('-') can be read only once");
    *stdin_used = true;
    auto data = read_all(STDIN_FILENO, 1 << 20);
    if (!data) return fail(data.error().context("cannot read standard input"));
    return data;
  }
  if (arg.size() > 1 && arg[0] == '@') {
    auto data = read_file(arg.substr(1), 1 << 20);
    if (!data) return fail(ErrorKind::kInvalidInput, "cannot read " + data.error().message());
    return data;
  }
  return arg;
}

std::string label(const db::KeySpec& key, const std::string& value) {
  if (value.empty()) return key.name + "=\"\"";
  std::string shown = one_line(value);
  if (shown == value) return key.name + "=" + value;
  size_t lines = 1;
  for (char c : value) lines += c == '\n';
  return key.name + " (" +
         (lines > 1 ? std::to_string(lines) + " lines" : std::to_string(value.size()) + " bytes") +
         ")";
}

bool is_slirp_address(const db::KeySpec* k) {
  return k->name == "slirp/docker" || k->name == "slirp/host";
}

void host_notes(const std::vector<Applied>& applied) {
  for (const auto& a : applied) {
    if (a.key->name == "memory" && std::stoi(a.value) > host_memory_gib()) {
      std::fprintf(
          stderr,
          "pinata: note: this host has %d GiB of memory; the VM may not start with %s GiB\n",
          host_memory_gib(), a.value.c_str());
    }
    if (a.key->name == "ncpu" && std::stoi(a.value) > host_cpu_count()) {
      std::fprintf(stderr, "pinata: note: this host has %d CPUs; the VM gets %s virtual CPUs\n",
                   host_cpu_count(), a.value.c_str());
    }
  }
}

}  // namespace

int cmd_set(const Paths& paths, const std::vector<std::string>& args) {
  if (args.empty())
    return usage_error("set needs KEY VALUE [PARAM=VALUE ...], e.g. 'pinata set memory 4'");
  std::vector<std::pair<std::string, std::string>> pairs;
  size_t i = 0;
  if (args[0].find('=') != std::string::npos && !db::find_key(args[0])) {
    // pinata set memory=4 ncpu=2
  } else {
    if (args.size() < 2)
      return usage_error("set " + args[0] +
                         " needs a value: pinata set KEY VALUE [PARAM=VALUE ...]");
    pairs.emplace_back(args[0], args[1]);
    i = 2;
  }
  for (; i < args.size(); i++) {
    size_t eq = args[i].find('=');
    if (eq == std::string::npos || eq == 0) {
      return usage_error("set: expected PARAM=VALUE after the value, got '" + args[i] + "'");
    }
    pairs.emplace_back(args[i].substr(0, eq), args[i].substr(eq + 1));
  }

  // Everything is validated before the database is touched.
  std::vector<Item> items;
  std::set<const db::KeySpec*> seen;
  bool stdin_used = false;
  for (const auto& [name, arg] : pairs) {
    const db::KeySpec* key = key_or_report(name);
    if (!key) return kExitUsage;
    if (!seen.insert(key).second) return usage_error("set: " + key->name + " is given twice");
    auto raw = raw_value(arg, &stdin_used);
    if (!raw) return refuse(raw.error());
    auto value = db::normalize_for_set(*key, *raw);
    if (!value) return refuse(value.error());
    items.push_back({key, *value});
  }

  auto store = open_db_for_write(paths);
  if (!store) return report(store.error());
  std::vector<Applied> applied;
  std::vector<Applied> unchanged;
  bool refused = false;
  auto result = store->update(
      [&](const db::Files& base) -> Result<db::Change> {
        applied.clear();
        unchanged.clear();
        db::Values before = db::resolve_values(base);
        db::Values after = before;
        db::Change change;
        bool touches_pair = false;
        std::string message;
        for (const auto& item : items) {
          const std::string& was = before[item.key->name];
          bool stored_invalid =
              base.count(item.key->full_path()) && !before.stored.count(item.key->name);
          if (was == item.value && !stored_invalid) {
            unchanged.push_back({item.key, item.value, was});
            continue;
          }
          after.by_name[item.key->name] = item.value;
          change.puts[item.key->full_path()] = db::encode_value(item.value);
          applied.push_back({item.key, item.value, was});
          touches_pair |= is_slirp_address(item.key);
          message += (message.empty() ? "set " : " ") + label(*item.key, item.value);
        }
        if (auto ok = db::check_consistency(after);
            !ok && (touches_pair || db::check_consistency(before))) {
          refused = true;
          return fail(ok.error());
        }
        change.message = message;
        return change;
      },
      "set");
  if (!result) return refused ? refuse(result.error()) : report(result.error());
  for (const auto& u : unchanged) {
    std::printf("%s is already %s: unchanged\n", u.key->name.c_str(),
                u.value.empty() ? "\"\"" : one_line(u.value).c_str());
  }
  if (!result->created) return kExitOk;
  for (const auto& a : applied) {
    std::printf("%s = %s (was %s)\n", a.key->name.c_str(),
                a.value.empty() ? "\"\"" : one_line(a.value).c_str(),
                a.was.empty() ? "\"\"" : one_line(a.was).c_str());
  }
  std::printf("committed %s\n", result->id.substr(0, 8).c_str());
  host_notes(applied);
  return kExitOk;
}

}  // namespace pinata::cli
