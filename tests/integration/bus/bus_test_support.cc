#include "tests/integration/bus/bus_test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cstdio>
#include <future>

namespace wsgate::dataplane::bus::testing {

bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(2ms);  // polling interval, not synchronisation
  }
  return true;
}

WorkerThreads::WorkerThreads(int n) {
  for (int i = 0; i < n; ++i) {
    auto w = std::make_unique<Worker>();
    Worker* raw = w.get();
    w->thread = std::thread([raw] { raw->ioc.run(); });
    workers_.push_back(std::move(w));
  }
}

WorkerThreads::~WorkerThreads() { StopAndJoin(); }

void WorkerThreads::StopAndJoin() {
  for (auto& w : workers_) {
    w->work.reset();
    w->ioc.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

std::vector<boost::asio::any_io_executor> WorkerThreads::executors() {
  std::vector<boost::asio::any_io_executor> out;
  for (auto& w : workers_) out.emplace_back(w->ioc.get_executor());
  return out;
}

void WorkerThreads::RunOn(int w, const std::function<void()>& fn) {
  std::promise<void> done;
  boost::asio::post(workers_[w]->ioc, [&] {
    fn();
    done.set_value();
  });
  done.get_future().wait();
}

void RecordingSubscriber::OnMessage(const BusMessagePtr& message) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    messages_.push_back(message);
    last_thread_ = std::this_thread::get_id();
  }
  if (on_message) on_message(message);
  // Counted and notified under the lock, as the very last thing: once a waiter sees the count it
  // may destroy this subscriber, so nothing of it may be touched afterwards.
  std::lock_guard<std::mutex> lock(mu_);
  ++handled_;
  cv_.notify_all();
}

std::vector<BusMessagePtr> RecordingSubscriber::messages() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

size_t RecordingSubscriber::count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_.size();
}

bool RecordingSubscriber::WaitForCount(size_t n, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return handled_ >= n; });
}

std::thread::id RecordingSubscriber::last_thread() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_thread_;
}

absl::Status SubscribeAndWait(MessageBus& bus, WorkerThreads& workers, int w,
                              const std::string& channel, Subscriber* s, SubscribeOptions options) {
  auto result = std::make_shared<Promise<absl::Status>>();
  workers.RunOn(w, [&] {
    bus.Subscribe(w, channel, s, options, [result](absl::Status st) { result->Set(st); });
  });
  const absl::Status* st = result->Wait(15s);
  if (st == nullptr) return absl::InternalError("test: no subscribe completion within 15 s");
  return *st;
}

void UnsubscribeOn(MessageBus& bus, WorkerThreads& workers, int w, const std::string& channel,
                   Subscriber* s) {
  workers.RunOn(w, [&] { bus.Unsubscribe(w, channel, s); });
}

uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

RedisServer::RedisServer(uint16_t port, std::vector<std::string> extra_args)
    : port_(port != 0 ? port : FreePort()), extra_args_(std::move(extra_args)) {}

RedisServer::~RedisServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
  }
}

bool RedisServer::Start() {
  std::vector<std::string> args = {
      "redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",  "--save", "",
      "--appendonly", "no",     "--daemonize",         "no",     "--loglevel", "warning"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // fork + exec rather than posix_spawn, for PR_SET_PDEATHSIG: if the test process dies (a
  // crash, a sanitizer abort), the server goes with it instead of lingering, holding the port
  // and the test's output pipe.
  pid_t parent = ::getpid();
  pid_ = ::fork();
  if (pid_ < 0) {
    pid_ = -1;
    return false;
  }
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDERR_FILENO);
    ::execvp("redis-server", argv.data());
    ::_exit(127);
  }
  std::vector<std::string> ping = {"PING"};
  for (const auto& a : extra_args_) {
    if (a == "--requirepass") ping = {"--no-auth-warning", "-a", extra_args_.back(), "PING"};
  }
  return WaitFor([&] { return Cli(ping) == "PONG"; }, 10s);
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::Pause() { ::kill(pid_, SIGSTOP); }
void RedisServer::Resume() { ::kill(pid_, SIGCONT); }

namespace {
std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}
}  // namespace

std::string RedisServer::Cli(const std::vector<std::string>& args) const {
  std::string cmd = "redis-cli -h 127.0.0.1 -p " + std::to_string(port_);
  for (const auto& a : args) cmd += " " + ShellQuote(a);
  cmd += " 2>/dev/null";
  FILE* f = ::popen(cmd.c_str(), "r");
  if (f == nullptr) return "";
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0) out.append(buf, n);
  ::pclose(f);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

int RedisServer::NumSub(const std::string& channel) const {
  // Raw output (stdout is a pipe): "<channel>\n<count>".
  std::string out = Cli({"PUBSUB", "NUMSUB", channel});
  size_t nl = out.rfind('\n');
  if (nl == std::string::npos) return -1;
  try {
    return std::stoi(out.substr(nl + 1));
  } catch (...) {
    return -1;
  }
}

}  // namespace wsgate::dataplane::bus::testing
