// The configuration database subcommands (pinata list|get|set|history|revert) and what they
// share. They open $PINATA_HOME/database directly, so they work whether pinatad runs or not
// (pinatad notices new commits on master by itself).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "daemon/paths.h"
#include "db/schema.h"
#include "db/store.h"

namespace pinata::cli {

int cmd_list(const Paths& paths, const std::vector<std::string>& args);
int cmd_get(const Paths& paths, const std::vector<std::string>& args);
int cmd_set(const Paths& paths, const std::vector<std::string>& args);
int cmd_history(const Paths& paths, const std::vector<std::string>& args);
int cmd_revert(const Paths& paths, const std::vector<std::string>& args);

// The database at its head: the files under the driver directory and every key's value.
struct DbState {
  std::optional<db::Store> store;  // nullopt when no database exists yet
  std::string head;
  db::Files files;
  db::Values values;
};

// Reads the database without creating it (all defaults when it does not exist).
Result<DbState> read_db_state(const Paths& paths);
// Opens the database, creating it with the schema's defaults on first use.
Result<db::Store> open_db_for_write(const Paths& paths);

// "pinata: <message>" on stderr. report: the database failed (kExitFailure); refuse: the
// user's key or value was not accepted (kExitUsage).
int report(const Error& e);
int refuse(const Error& e);
// A key by name, or nullptr after printing what is known.
const db::KeySpec* key_or_report(const std::string& name);
// Warnings about invalid stored values ("pinata: warning: ...") for `only` (or all).
void print_warnings(const db::Values& values, const db::KeySpec* only = nullptr);

// A value as shown on one line: itself when short and single-line, else a summary.
std::string one_line(const std::string& value);

}  // namespace pinata::cli
