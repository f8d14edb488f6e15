#include "ports/userland_proxy.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "base/io.h"
#include "ports/relay.h"

namespace pinata::ports {
namespace {

constexpr long kV9fsMagic = 0x01021997;
constexpr int kStatusFd = 3;
// docker-proxy's UDP flows expire after 90 s (UDPConnTrackTimeout); the same here.
constexpr std::chrono::milliseconds kLocalUdpIdle{90'000};
// Linux's own SYN retries take about 127 s; docker-proxy's dial waits as long.
constexpr std::chrono::milliseconds kLocalConnectTimeout{127'000};

// dockerd's end of the pipe on fd 3. Without it (run by hand) the outcome goes to stderr.
class StatusPipe {
 public:
  StatusPipe() : open_(::fcntl(kStatusFd, F_GETFD) != -1) {}

  void ready() {
    // One write: dockerd reads 2 bytes and expects exactly "0\n".
    if (open_) {
      (void)!::write(kStatusFd, "0\n", 2);
      ::close(kStatusFd);
      open_ = false;
    } else {
      std::fprintf(stderr, "pinata-proxy: ready\n");
    }
  }
  void failed(const std::string& message) {
    std::fprintf(stderr, "pinata-proxy: %s\n", message.c_str());
    if (open_) {
      std::string out = "1\n" + message;
      (void)write_all(kStatusFd, out);
      ::close(kStatusFd);  // dockerd reads the message until EOF
      open_ = false;
    }
  }

 private:
  bool open_;
};

// Asks the host for `spec` through the port tree in `dir`. Returns the open ctl (the forward
// lives while it is open), nullopt if the host side is not there, or the host's refusal.
Result<std::optional<UniqueFd>> request_host_forward(const std::string& dir, const ForwardSpec& spec,
                                                     bool require_9p) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    std::fprintf(stderr, "pinata-proxy: %s is missing: forwarding inside the VM only\n",
                 dir.c_str());
    return std::optional<UniqueFd>();
  }
  struct statfs fs;
  if (require_9p && (::statfs(dir.c_str(), &fs) != 0 || fs.f_type != kV9fsMagic)) {
    std::fprintf(stderr,
                 "pinata-proxy: %s is not the host's port tree (not mounted): forwarding inside "
                 "the VM only\n",
                 dir.c_str());
    return std::optional<UniqueFd>();
  }
  const std::string name = format_spec(spec);
  const std::string path = path_join(dir, name);
  // EEXIST: the host decides (an active forward for the same spec fails its bind below).
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return fail_errno("mkdir " + path);
  const std::string ctl_path = path_join(path, "ctl");
  UniqueFd ctl(::open(ctl_path.c_str(), O_RDWR | O_CLOEXEC));
  if (!ctl) return fail_errno("open " + ctl_path);
  TRY(write_all(ctl.get(), name));
  char buf[512];
  ssize_t n;
  do {
    n = ::pread(ctl.get(), buf, sizeof buf, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fail_errno("read " + ctl_path);
  std::string reply(buf, static_cast<size_t>(n));
  while (!reply.empty() && (reply.back() == '\n' || reply.back() == '\r')) reply.pop_back();
  if (reply.rfind("OK", 0) == 0) return std::optional<UniqueFd>(std::move(ctl));
  if (reply.rfind("ERROR ", 0) == 0) return fail(ErrorKind::kIo, reply.substr(6));
  return fail(ErrorKind::kInvalidInput, "unexpected reply from " + ctl_path + ": \"" +
                                            reply.substr(0, 80) + "\"");
}

}  // namespace

Result<ProxyArgs> parse_proxy_args(int argc, char** argv) {
  ProxyArgs args;
  bool have_host_ip = false, have_host_port = false, have_container_ip = false,
       have_container_port = false;
  for (int i = 1; i < argc; i++) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argc) return fail(ErrorKind::kInvalidInput, "unexpected argument " + std::string(argv[i + 1]));
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      return fail(ErrorKind::kInvalidInput, "unexpected argument \"" + std::string(arg) + "\"");
    }
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    std::string_view name = arg, value;
    bool has_value = false;
    if (size_t eq = arg.find('='); eq != std::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    const bool known = name == "proto" || name == "host-ip" || name == "host-port" ||
                       name == "container-ip" || name == "container-port";
    if (!known) {
      return fail(ErrorKind::kInvalidInput,
                  "flag provided but not defined: -" + std::string(name) +
                      " (accepted: -proto, -host-ip, -host-port, -container-ip, -container-port)");
    }
    if (!has_value) {
      if (i + 1 >= argc) {
        return fail(ErrorKind::kInvalidInput, "flag needs an argument: -" + std::string(name));
      }
      value = argv[++i];
    }
    if (name == "proto") {
      if (value == "sctp") return fail(ErrorKind::kUnsupported, "sctp ports are not supported");
      TRY_ASSIGN(args.proto, parse_proto(value));
    } else if (name == "host-ip") {
      args.host_ip = value;
      have_host_ip = true;
    } else if (name == "host-port") {
      TRY_ASSIGN(args.host_port, parse_port(value));
      have_host_port = true;
    } else if (name == "container-ip") {
      args.container_ip = value;
      have_container_ip = true;
    } else {
      TRY_ASSIGN(args.container_port, parse_port(value));
      have_container_port = true;
    }
  }
  if (!have_host_ip || !have_host_port || !have_container_ip || !have_container_port) {
    return fail(ErrorKind::kInvalidInput,
                "-host-ip, -host-port, -container-ip and -container-port are required");
  }
  TRY(SocketAddress::parse(args.host_ip, args.host_port));
  TRY(SocketAddress::parse(args.container_ip, args.container_port));
  return args;
}

Result<ForwardSpec> spec_for(const ProxyArgs& args) {
  auto host_ip = parse_ipv4(args.host_ip);
  auto container_ip = parse_ipv4(args.container_ip);
  if (!host_ip || !container_ip) {
    return fail(ErrorKind::kUnsupported, "the host forwards IPv4 bindings only");
  }
  return ForwardSpec{args.proto, {*host_ip, args.host_port}, {*container_ip, args.container_port}};
}

int userland_proxy_main(int argc, char** argv) {
  // Block the stop signals before any thread starts (threads inherit the mask), so that only
  // the sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  ::pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  StatusPipe status;
  auto args = parse_proxy_args(argc, argv);
  if (!args) {
    status.failed(args.error().message());
    return 2;
  }
  auto host = SocketAddress::parse(args->host_ip, args->host_port);
  auto container = SocketAddress::parse(args->container_ip, args->container_port);

  // 1. docker-proxy's own job: listen in the VM.
  auto listener = listen_on(args->proto, *host);
  if (!listener) {
    status.failed(listener.error().message());
    return 1;
  }
  // 2. The host's listener.
  UniqueFd ctl;
  if (auto spec = spec_for(*args)) {
    const char* env = std::getenv("PINATA_PORT_DIR");
    std::string dir = env && *env ? env : kDefaultPortDir;
    auto requested = request_host_forward(dir, *spec, !(env && *env));
    if (!requested) {
      status.failed(requested.error().message());
      return 1;
    }
    if (*requested) ctl = std::move(**requested);
  }
  // 3. Relay, report, wait.
  RelayLimits limits;
  limits.udp_idle = kLocalUdpIdle;
  std::unique_ptr<StreamAcceptor> tcp;
  std::unique_ptr<UdpRelay> udp;
  const std::string name = "proxy " + host->to_string();
  SocketAddress to = *container;
  if (args->proto == Proto::kTcp) {
    auto started = start_tcp_relay(
        std::move(*listener), [to] { return connect_tcp(to, kLocalConnectTimeout); }, name,
        limits);
    if (!started) {
      status.failed(started.error().message());
      return 1;
    }
    tcp = std::move(*started);
  } else {
    auto open = [to](const SocketAddress&) -> Result<UdpFlow> {
      TRY_ASSIGN(UniqueFd fd, connect_udp(to));
      return UdpFlow{std::move(fd), FlowFraming::kDatagram};
    };
    auto started = UdpRelay::start(std::move(*listener), open, name, limits);
    if (!started) {
      status.failed(started.error().message());
      return 1;
    }
    udp = std::move(*started);
  }
  status.ready();
  int sig = 0;
  while (::sigwait(&stop, &sig) != 0) {
  }
  tcp.reset();
  udp.reset();
  ctl.reset();  // the host stops its forward
  return 0;
}

}  // namespace pinata::ports
