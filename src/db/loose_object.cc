#include "db/loose_object.h"

#include <fcntl.h>
#include <zlib.h>

#include <charconv>

#include "base/io.h"

namespace pinata::db {
namespace {

tl::unexpected<Error> corrupt(const std::string& what) { return fail(ErrorKind::kCorrupt, what); }

}  // namespace

Status verify_loose_object(std::string_view compressed, size_t max_size) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return fail(ErrorKind::kInternal, "zlib initialization failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  z.avail_in = static_cast<uInt>(compressed.size());
  std::string header;
  bool in_header = true;
  size_t body = 0;
  unsigned char out[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = out;
    z.avail_out = sizeof out;
    rc = inflate(&z, Z_NO_FLUSH);
    size_t produced = sizeof out - z.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      if (rc == Z_BUF_ERROR) return corrupt("truncated (the zlib stream ends early)");
      return corrupt(std::string("not a valid zlib stream (") + (z.msg ? z.msg : "inflate failed") +
                     ")");
    }
    for (size_t i = 0; i < produced; i++) {
      if (!in_header) {
        body += produced - i;
        break;
      }
      if (out[i] == 0) {
        in_header = false;
        continue;
      }
      header.push_back(static_cast<char>(out[i]));
      if (header.size() > 32) {
        inflateEnd(&z);
        return corrupt("no object header");
      }
    }
    if (body > max_size) {
      inflateEnd(&z);
      return corrupt("larger than " + std::to_string(max_size >> 20) + " MiB");
    }
    if (rc != Z_STREAM_END && produced == 0 && z.avail_in == 0) {
      inflateEnd(&z);
      return corrupt("truncated (the zlib stream ends early)");
    }
  }
  size_t trailing = z.avail_in;
  inflateEnd(&z);
  if (trailing != 0) return corrupt("garbage after the zlib stream");
  if (in_header) return corrupt("no object header");
  size_t space = header.find(' ');
  std::string type = header.substr(0, space);
  if (space == std::string::npos ||
      (type != "commit" && type != "tree" && type != "blob" && type != "tag")) {
    return corrupt("bad object header");
  }
  std::string_view len = std::string_view(header).substr(space + 1);
  size_t declared = 0;
  auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), declared);
  if (len.empty() || ec != std::errc() || p != len.data() + len.size()) {
    return corrupt("bad object header");
  }
  if (declared != body) {
    return corrupt("its header says " + std::to_string(declared) + " bytes but it holds " +
                   std::to_string(body));
  }
  return {};
}

Status verify_loose_object_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return fail(ErrorKind::kNotFound, path);
    return fail_errno(path);
  }
  UniqueFd owned(fd);
  TRY_ASSIGN(std::string data, read_all(fd, kMaxLooseObjectSize));
  return verify_loose_object(data);
}

}  // namespace pinata::db
