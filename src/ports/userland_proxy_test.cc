// The userland-proxy hook run as dockerd runs it: a child process with the write end of a pipe
// on fd 3, stopped with SIGINT. The host has no 9p client in its kernel, so the hook's requests
// to the port tree cannot be made here against the real tree (tree_test.cc and host_test.cc
// speak the same requests through the 9P test client); what is tested is the argument
// parsing, the fd-3 protocol, the local proxying, and the hook's refusal of anything but "OK"
// from a ctl (a plain file here).
#include "ports/userland_proxy.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <thread>

#include "base/io.h"
#include "ports/relay.h"

extern char** environ;

namespace pinata::ports {
namespace {

using namespace std::chrono_literals;

Result<ProxyArgs> parse(std::vector<std::string> args) {
  std::vector<char*> argv;
  std::string name = "pinata-proxy";
  argv.push_back(name.data());
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return parse_proxy_args(static_cast<int>(argv.size() - 1), argv.data());
}

TEST(ProxyArgs, ParsesDockerdsCommandLine) {
  auto a = parse({"-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip",
                  "172.17.0.2", "-container-port", "80"});

  ASSERT_TRUE(a.has_value()) << a.error().message();
  EXPECT_EQ(a->proto, Proto::kTcp);
  EXPECT_EQ(a->host_ip, "0.0.0.0");
  EXPECT_EQ(a->host_port, 8080);
  EXPECT_EQ(a->container_ip, "172.17.0.2");
  EXPECT_EQ(a->container_port, 80);
  EXPECT_EQ(format_spec(spec_for(*a).value()), "tcp:0.0.0.0:8080:tcp:172.17.0.2:80");
}

TEST(ProxyArgs, AcceptsGoFlagSpellings) {
  auto a = parse({"--proto=udp", "-host-ip=::", "--host-port", "53", "-container-ip=fd00::2",
                  "-container-port=5353"});

  ASSERT_TRUE(a.has_value()) << a.error().message();
  EXPECT_EQ(a->proto, Proto::kUdp);
  EXPECT_EQ(a->host_ip, "::");
  EXPECT_FALSE(spec_for(*a).has_value());  // IPv6: forwarded inside the VM only
}

TEST(ProxyArgs, RejectsBadArguments) {
  std::vector<std::vector<std::string>> bad = {
      {"-bogus", "1"},
      {"-proto", "sctp", "-host-ip", "0.0.0.0", "-host-port", "1", "-container-ip", "1.2.3.4",
       "-container-port", "1"},
      {"-host-ip", "0.0.0.0", "-host-port", "1", "-container-ip", "1.2.3.4"},
      {"-host-ip", "0.0.0.0", "-host-port", "0", "-container-ip", "1.2.3.4", "-container-port",
       "1"},
      {"-host-ip", "localhost", "-host-port", "1", "-container-ip", "1.2.3.4", "-container-port",
       "1"},
      {"-host-ip", "0.0.0.0", "-host-port", "1", "-container-ip", "1.2.3.4", "-container-port"},
      {"stray"},
  };
  for (const auto& args : bad) EXPECT_FALSE(parse(args).has_value()) << args[0];
}

// The hook as a child process, as dockerd starts it.
struct Proxy {
  pid_t pid = -1;
  UniqueFd status;  // read end of fd 3

  Proxy() = default;
  Proxy(Proxy&& o) noexcept : pid(std::exchange(o.pid, -1)), status(std::move(o.status)) {}

  static Proxy spawn(std::vector<std::string> args, const std::string& port_dir) {
    Proxy p;
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 3);
    std::vector<char*> argv;
    std::string path = PINATA_PROXY_PATH;
    argv.push_back(path.data());
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string env = "PINATA_PORT_DIR=" + port_dir;
    std::vector<char*> envp = {env.data(), nullptr};
    EXPECT_EQ(posix_spawn(&p.pid, path.c_str(), &actions, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    p.status = UniqueFd(fds[0]);
    return p;
  }
  // What the hook wrote on fd 3 until it closed it (dockerd waits 16 s).
  std::string read_status() {
    std::string out;
    char buf[512];
    for (;;) {
      struct pollfd p = {status.get(), POLLIN, 0};
      if (::poll(&p, 1, 16000) <= 0) return out + "<timeout>";
      ssize_t n = ::read(status.get(), buf, sizeof buf);
      if (n <= 0) return out;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  int wait() {
    int st = 0;
    ::waitpid(pid, &st, 0);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  ~Proxy() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

uint16_t bound_port(int fd) { return SocketAddress::local_of(fd)->port(); }

std::vector<std::string> tcp_args(uint16_t host_port, uint16_t container_port,
                                  const std::string& proto = "tcp") {
  return {"-proto",        proto,       "-host-ip",        "127.0.0.1",
          "-host-port",    std::to_string(host_port), "-container-ip", "127.0.0.1",
          "-container-port", std::to_string(container_port)};
}

uint16_t free_port(int type) {
  auto s = listen_on(type == SOCK_STREAM ? Proto::kTcp : Proto::kUdp,
                     SocketAddress::ipv4({0x7f000001, 0}));
  return bound_port(s->get());
}

TEST(UserlandProxy, ReportsReadyProxiesLocallyAndExitsCleanlyOnSigint) {
  auto container = listen_on(Proto::kTcp, SocketAddress::ipv4({0x7f000001, 0}));
  ASSERT_TRUE(container.has_value());
  uint16_t port = free_port(SOCK_STREAM);
  auto proxy = Proxy::spawn(tcp_args(port, bound_port(container->get())), "/nonexistent");

  EXPECT_EQ(proxy.read_status(), "0\n");
  auto client = connect_tcp(SocketAddress::ipv4({0x7f000001, port}), 2000ms);
  ASSERT_TRUE(client.has_value()) << client.error().message();
  UniqueFd server(::accept4(container->get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server);
  ASSERT_TRUE(write_all(client->get(), "through the proxy"));
  char buf[64];
  ssize_t n = ::recv(server.get(), buf, sizeof buf, 0);
  ::kill(proxy.pid, SIGINT);
  int code = proxy.wait();

  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))), "through the proxy");
  EXPECT_EQ(code, 0);
  EXPECT_TRUE(listen_on(Proto::kTcp, SocketAddress::ipv4({0x7f000001, port})).has_value());
}

TEST(UserlandProxy, RelaysUdpLocally) {
  auto container = listen_on(Proto::kUdp, SocketAddress::ipv4({0x7f000001, 0}));
  ASSERT_TRUE(container.has_value());
  uint16_t port = free_port(SOCK_DGRAM);
  auto proxy = Proxy::spawn(tcp_args(port, bound_port(container->get()), "udp"), "/nonexistent");
  ASSERT_EQ(proxy.read_status(), "0\n");
  auto client = connect_udp(SocketAddress::ipv4({0x7f000001, port}));
  ASSERT_TRUE(client.has_value());

  ASSERT_EQ(::send(client->get(), "ping", 4, 0), 4);
  char buf[64];
  sockaddr_storage from;
  socklen_t len = sizeof from;
  struct pollfd p = {container->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  ssize_t n = ::recvfrom(container->get(), buf, sizeof buf, 0,
                         reinterpret_cast<sockaddr*>(&from), &len);
  ASSERT_EQ(n, 4);
  ASSERT_EQ(::sendto(container->get(), "pong", 4, 0, reinterpret_cast<sockaddr*>(&from), len), 4);
  struct pollfd q = {client->get(), POLLIN, 0};
  ASSERT_EQ(::poll(&q, 1, 5000), 1);
  n = ::recv(client->get(), buf, sizeof buf, 0);

  EXPECT_EQ(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))), "pong");
}

TEST(UserlandProxy, PortInUseIsReportedOnFd3) {
  auto busy = listen_on(Proto::kTcp, SocketAddress::ipv4({0x7f000001, 0}));
  ASSERT_TRUE(busy.has_value());
  uint16_t port = bound_port(busy->get());
  auto proxy = Proxy::spawn(tcp_args(port, 80), "/nonexistent");

  std::string status = proxy.read_status();
  int code = proxy.wait();

  EXPECT_EQ(status, "1\nbind 127.0.0.1:" + std::to_string(port) + ": Address already in use");
  EXPECT_EQ(code, 1);
}

TEST(UserlandProxy, BadArgumentsAreReportedOnFd3) {
  auto proxy = Proxy::spawn({"-bogus", "1"}, "/nonexistent");

  std::string status = proxy.read_status();
  int code = proxy.wait();

  EXPECT_EQ(status.rfind("1\nflag provided but not defined: -bogus", 0), 0u) << status;
  EXPECT_EQ(code, 2);
}

TEST(UserlandProxy, WritesTheSpecToCtlAndRefusesAnythingButOk) {
  char tmpl[] = "/tmp/ports-proxy-test-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  std::string dir = tmpl;
  uint16_t port = free_port(SOCK_STREAM);
  std::string spec = "tcp:127.0.0.1:" + std::to_string(port) + ":tcp:127.0.0.1:80";
  // A plain directory and file stand in for the tree: the "reply" read back is the spec itself.
  ASSERT_EQ(::mkdir((dir + "/" + spec).c_str(), 0755), 0);
  ASSERT_TRUE(write_file_atomic(dir + "/" + spec + "/ctl", ""));
  auto proxy = Proxy::spawn(tcp_args(port, 80), dir);

  std::string status = proxy.read_status();
  int code = proxy.wait();
  auto written = read_file(dir + "/" + spec + "/ctl");

  EXPECT_EQ(status.rfind("1\nunexpected reply from " + dir + "/" + spec + "/ctl", 0), 0u)
      << status;
  EXPECT_EQ(code, 1);
  EXPECT_EQ(written.value(), spec);
  EXPECT_TRUE(listen_on(Proto::kTcp, SocketAddress::ipv4({0x7f000001, port})).has_value());
  (void)std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace pinata::ports
