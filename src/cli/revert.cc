// pinata revert COMMIT: one new commit that puts back what COMMIT changed, for the schema's
// keys. A key changed again since is a conflict: nothing is written.
#include <cstdio>

#include "cli/client.h"
#include "cli/config_cmds.h"

namespace pinata::cli {

int cmd_revert(const Paths& paths, const std::vector<std::string>& args) {
  if (args.size() != 1 || (!args[0].empty() && args[0][0] == '-')) {
    return usage_error("revert takes one COMMIT (an id from 'pinata history')");
  }
  auto store = db::Store::open(db::database_path(paths.home));
  if (!store) {
    if (store.error().kind() == ErrorKind::kNotFound) {
      std::fprintf(stderr, "pinata: no configuration database yet (%s): nothing to revert\n",
                   db::database_path(paths.home).c_str());
      return kExitFailure;
    }
    return report(store.error());
  }
  struct Reverted {
    std::string name, value, was;
  };
  std::vector<Reverted> reverted;
  bool refused = false;
  auto check = [&](const db::Files& base, const db::Files& result) -> Status {
    reverted.clear();
    db::Values before = db::resolve_values(base);
    db::Values after = db::resolve_values(result);
    for (const auto& k : db::schema()) {
      auto b = base.find(k.full_path());
      auto r = result.find(k.full_path());
      bool same =
          (b == base.end()) == (r == result.end()) && (b == base.end() || b->second == r->second);
      if (same) continue;
      if (r != result.end()) {
        auto ok = db::normalize(k, db::decode_value(r->second));
        if (!ok) {
          refused = true;
          return fail(ErrorKind::kInvalidInput, "cannot revert " + args[0] +
                                                    ": it would restore an invalid " + k.name +
                                                    " (" + ok.error().message() + ")");
        }
      }
      reverted.push_back({k.name, after[k.name], before[k.name]});
    }
    if (auto ok = db::check_consistency(after); !ok && db::check_consistency(before)) {
      refused = true;
      return fail(ok.error());
    }
    return {};
  };
  auto result = store->revert(args[0], db::is_schema_path, check);
  if (!result) {
    const Error& e = result.error();
    bool bad_input = !db::is_conflict(e) &&
                     (e.kind() == ErrorKind::kInvalidInput || e.kind() == ErrorKind::kNotFound);
    return refused || bad_input ? refuse(e) : report(e);
  }
  if (!result->created) {
    std::printf("the changes of %s are already undone: unchanged\n", args[0].c_str());
    return kExitOk;
  }
  for (const auto& r : reverted) {
    std::printf("%s = %s (was %s)\n", r.name.c_str(),
                r.value.empty() ? "\"\"" : one_line(r.value).c_str(),
                r.was.empty() ? "\"\"" : one_line(r.was).c_str());
  }
  auto info = store->describe(result->id);
  std::printf("committed %s: %s\n", result->id.substr(0, 8).c_str(),
              info ? info->summary.c_str() : "revert");
  return kExitOk;
}

}  // namespace pinata::cli
