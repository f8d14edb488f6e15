// pinata list [--json] [--all]: each user-facing setting with its value, its parameters, a
// description and its options, in the seed's format:
//
//   *  hypervisor = qemu (memory=2, ncpu=2)
//      The hypervisor that runs the Docker VM, ...
//    >  native: pinata's own KVM microVM (not yet supported on Linux)
//    >  qemu: qemu-system-x86_64, ...
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli/client.h"
#include "cli/config_cmds.h"
#include "db/json.h"

namespace pinata::cli {
namespace {

constexpr size_t kWidth = 78;

// `text` wrapped to kWidth, the first line after `first`, the others after `rest`.
std::string wrap(const std::string& text, const std::string& first, const std::string& rest) {
  std::string out = first;
  size_t col = first.size();
  bool line_empty = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string::npos) end = text.size();
    std::string word = text.substr(pos, end - pos);
    pos = end + 1;
    if (word.empty()) continue;
    if (!line_empty && col + 1 + word.size() > kWidth) {
      out += "\n" + rest;
      col = rest.size();
      line_empty = true;
    }
    if (!line_empty) {
      out += ' ';
      col++;
    }
    out += word;
    col += word.size();
    line_empty = false;
  }
  return out + "\n";
}

std::string shown(const std::string& value) { return value.empty() ? "\"\"" : one_line(value); }

bool styled_output() {
  const char* term = std::getenv("TERM");
  return ::isatty(STDOUT_FILENO) && !std::getenv("NO_COLOR") && term &&
         std::strcmp(term, "dumb") != 0;
}

void print_text(const std::vector<const db::KeySpec*>& keys, const db::Values& values) {
  bool bold = styled_output();
  std::string out;
  for (const db::KeySpec* k : keys) {
    std::string head = "*  " + k->name + " = " + shown(values[k->name]);
    if (!k->params.empty()) {
      std::string params;
      for (const auto& p : k->params) {
        if (!params.empty()) params += ", ";
        params += p + "=" + shown(values[p]);
      }
      head += " (" + params + ")";
    }
    out += bold ? "\033[1m" + head + "\033[0m\n" : head + "\n";
    out += wrap(k->description, "   ", "   ");
    for (const auto& o : k->options) {
      std::string text = o.description;
      if (!o.supported) text += "; " + o.refusal;
      out += wrap(o.value + ": " + text, " >  ", "    ");
    }
  }
  std::fputs(out.c_str(), stdout);
}

void print_json(const std::vector<const db::KeySpec*>& keys, const db::Values& values) {
  using db::json_quote;
  std::string out = "[\n";
  for (size_t i = 0; i < keys.size(); i++) {
    const db::KeySpec& k = *keys[i];
    std::string params;
    for (const auto& p : k.params) {
      if (!params.empty()) params += ", ";
      params += json_quote(p) + ": " + json_quote(values[p]);
    }
    std::string options;
    for (const auto& o : k.options) {
      if (!options.empty()) options += ", ";
      options += "{\"value\": " + json_quote(o.value) +
                 ", \"description\": " + json_quote(o.description) +
                 ", \"supported\": " + (o.supported ? "true" : "false") +
                 (o.supported ? "" : ", \"refusal\": " + json_quote(o.refusal)) + "}";
    }
    out += "  {\"key\": " + json_quote(k.name) + ", \"path\": " + json_quote(k.full_path()) +
           ", \"value\": " + json_quote(values[k.name]) +
           ", \"default\": " + json_quote(k.default_value) + ", \"params\": {" + params +
           "}, \"description\": " + json_quote(k.description) + ", \"options\": [" + options +
           "], \"internal\": " + (k.visibility == db::Visibility::kInternal ? "true" : "false") +
           ", \"read_only\": " + (k.access == db::Access::kReadOnly ? "true" : "false") + "}";
    out += i + 1 < keys.size() ? ",\n" : "\n";
  }
  out += "]\n";
  std::fputs(out.c_str(), stdout);
}

}  // namespace

int cmd_list(const Paths& paths, const std::vector<std::string>& args) {
  bool json = false;
  bool all = false;
  for (const auto& a : args) {
    if (a == "--json") {
      json = true;
    } else if (a == "--all") {
      all = true;
    } else {
      return usage_error("list: expected [--json] [--all], got '" + a + "'");
    }
  }
  auto state = read_db_state(paths);
  if (!state) return report(state.error());
  print_warnings(state->values);
  std::vector<const db::KeySpec*> keys;
  for (const auto& k : db::schema()) {
    if (!k.param_of.empty()) continue;  // shown with the key it is a parameter of
    if (!all && k.visibility == db::Visibility::kInternal) continue;
    keys.push_back(&k);
  }
  if (json) {
    print_json(keys, state->values);
  } else {
    print_text(keys, state->values);
  }
  return kExitOk;
}

}  // namespace pinata::cli
