// What the configuration subcommands share: opening the database, naming keys, errors.
#include "cli/config_cmds.h"

#include <cstdio>

#include "base/io.h"
#include "cli/client.h"

namespace pinata::cli {

Result<DbState> read_db_state(const Paths& paths) {
  DbState state;
  auto store = db::Store::open(db::database_path(paths.home));
  if (!store && store.error().kind() != ErrorKind::kNotFound) return fail(store.error());
  if (store) {
    TRY_ASSIGN(auto head, store->head());
    if (head) {
      state.head = *head;
      TRY_ASSIGN(state.files, store->read_tree(db::kDriverDir, *head));
    }
    state.store = std::move(*store);
  }
  state.values = db::resolve_values(state.files);
  return state;
}

Result<db::Store> open_db_for_write(const Paths& paths) {
  auto made = make_dirs(paths.home, 0700);
  if (!made) {
    return fail(ErrorKind::kIo, "cannot create " + paths.home + " (" + made.error().message() +
                                    "); set PINATA_HOME to a writable directory");
  }
  return db::Store::open_or_init(db::database_path(paths.home), db::seed_files());
}

int report(const Error& e) {
  std::fprintf(stderr, "pinata: %s\n", e.message().c_str());
  return kExitFailure;
}

int refuse(const Error& e) {
  std::fprintf(stderr, "pinata: %s\n", e.message().c_str());
  return kExitUsage;
}

const db::KeySpec* key_or_report(const std::string& name) {
  const db::KeySpec* k = db::find_key(name);
  if (!k) std::fprintf(stderr, "pinata: %s\n", db::unknown_key_message(name).c_str());
  return k;
}

void print_warnings(const db::Values& values, const db::KeySpec* only) {
  for (const auto& w : values.warnings) {
    if (only && w.find(only->full_path() + " ") != 0) continue;
    std::fprintf(stderr, "pinata: warning: %s\n", w.c_str());
  }
}

std::string one_line(const std::string& value) {
  constexpr size_t kMax = 60;
  size_t lines = 1;
  for (char c : value) lines += c == '\n';
  if (lines == 1 && value.size() <= kMax) return value;
  if (lines == 1) return value.substr(0, kMax - 3) + "...";
  return "(" + std::to_string(lines) + " lines)";
}

}  // namespace pinata::cli
