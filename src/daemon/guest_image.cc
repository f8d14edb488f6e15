#include "daemon/guest_image.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <memory>
#include <set>
#include <sstream>
#include <vector>

#include "base/fd.h"
#include "base/io.h"

namespace pinata {
namespace {

const char* const kRequired[] = {"vmlinux", "initrd.img", "root.img"};
constexpr const char* kRebuildHint = "; rebuild it with guest/build.sh (or ./setup.sh run)";

}  // namespace

Result<std::vector<ManifestEntry>> parse_manifest(const std::string& text) {
  std::vector<ManifestEntry> out;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    lineno++;
    if (line.empty()) continue;
    auto bad = [&](const std::string& why) {
      return fail(ErrorKind::kCorrupt, "MANIFEST line " + std::to_string(lineno) + ": " + why);
    };
    if (line.size() < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*')) {
      return bad("expected '<sha256>  <file>'");
    }
    ManifestEntry e{line.substr(0, 64), line.substr(66)};
    for (char c : e.sha256) {
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return bad("bad checksum");
    }
    if (e.name.empty() || e.name.find('/') != std::string::npos || e.name == "." ||
        e.name == "..") {
      return bad("bad file name '" + e.name + "'");
    }
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::string> sha256_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno(path);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return fail(ErrorKind::kInternal, "cannot initialise SHA-256");
  }
  ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read " + path);
    }
    if (n == 0) break;
    EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(n));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; i++) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

Result<GuestImage> verify_guest_image(const std::string& dir) {
  GuestImage img{dir, path_join(dir, "vmlinux"), path_join(dir, "initrd.img"),
                 path_join(dir, "root.img")};
  std::string manifest_path = path_join(dir, "MANIFEST");
  if (::access(dir.c_str(), F_OK) != 0) {
    return fail(ErrorKind::kNotFound, "no guest image at " + dir + std::string(kRebuildHint));
  }
  auto text = read_file(manifest_path, 1 << 20);
  if (!text) {
    return fail(ErrorKind::kCorrupt, "guest image at " + dir +
                                         " is incomplete (no MANIFEST)" + kRebuildHint);
  }
  auto entries = parse_manifest(*text);
  if (!entries) {
    return fail(ErrorKind::kCorrupt,
                "guest image at " + dir + ": " + entries.error().message() + kRebuildHint);
  }
  std::set<std::string> listed;
  for (const auto& e : *entries) listed.insert(e.name);
  for (const char* name : kRequired) {
    if (!listed.count(name)) {
      return fail(ErrorKind::kCorrupt, "guest image at " + dir + ": MANIFEST does not list " +
                                           name + kRebuildHint);
    }
  }
  for (const auto& e : *entries) {
    std::string path = path_join(dir, e.name);
    auto sum = sha256_file(path);
    if (!sum) {
      return fail(ErrorKind::kCorrupt, "guest image at " + dir + ": " + e.name +
                                           " is missing or unreadable (" +
                                           sum.error().message() + ")" + kRebuildHint);
    }
    if (*sum != e.sha256) {
      return fail(ErrorKind::kCorrupt, "guest image at " + dir + ": " + e.name +
                                           " is corrupt (checksum mismatch)" + kRebuildHint);
    }
  }
  return img;
}

}  // namespace pinata
