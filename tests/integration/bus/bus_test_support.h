// Test helpers for the message bus: worker threads with their own io_contexts, a recording
// subscriber, and a real redis-server started on a free port (plus redis-cli as an independent
// client).
#pragma once

#include <sys/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "dataplane/bus/message_bus.h"

namespace wsgate::dataplane::bus::testing {

using namespace std::chrono_literals;

// Polls `pred` until it holds or `timeout` passes. For state the test is not told about (a
// server-side count, a counter); never a substitute for waiting on a result we are handed.
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s);

// N threads, each running its own io_context: the data plane's worker model in miniature.
class WorkerThreads {
 public:
  explicit WorkerThreads(int n);
  ~WorkerThreads();  // stops and joins
  void StopAndJoin();
  std::vector<boost::asio::any_io_executor> executors();
  // Runs fn on worker w and waits for it to finish.
  void RunOn(int w, const std::function<void()>& fn);

 private:
  struct Worker {
    boost::asio::io_context ioc{1};
    boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{
        ioc.get_executor()};
    std::thread thread;
  };
  std::vector<std::unique_ptr<Worker>> workers_;
};

// Records what it receives (OnMessage runs on a worker; the test reads from its own thread).
class RecordingSubscriber : public Subscriber {
 public:
  void OnMessage(const BusMessagePtr& message) override;
  std::vector<BusMessagePtr> messages() const;
  size_t count() const;
  // Waits until OnMessage has finished for at least n messages (false on timeout).
  bool WaitForCount(size_t n, std::chrono::milliseconds timeout = 20s) const;
  // The thread OnMessage ran on last.
  std::thread::id last_thread() const;
  // Called (on the worker) after recording, if set before subscribing.
  std::function<void(const BusMessagePtr&)> on_message;

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<BusMessagePtr> messages_;
  size_t handled_ = 0;  // OnMessage calls that have returned (bar the final unlock)
  std::thread::id last_thread_;
};

// A one-shot result a callback fills in on a worker and the test waits for.
template <typename T>
class Promise {
 public:
  void Set(T v) {
    std::lock_guard<std::mutex> lock(mu_);
    value_ = std::make_unique<T>(std::move(v));
    ++times_;
    cv_.notify_all();
  }
  // Waits for the value; nullptr on timeout.
  const T* Wait(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [this] { return value_ != nullptr; });
    return value_.get();
  }
  int times() const {
    std::lock_guard<std::mutex> lock(mu_);
    return times_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<T> value_;
  int times_ = 0;
};

// Subscribes on worker w (from the worker's thread) and waits for the completion.
absl::Status SubscribeAndWait(MessageBus& bus, WorkerThreads& workers, int w,
                              const std::string& channel, Subscriber* s,
                              SubscribeOptions options = {});
void UnsubscribeOn(MessageBus& bus, WorkerThreads& workers, int w, const std::string& channel,
                   Subscriber* s);

// A free TCP port on 127.0.0.1 (bound to port 0, then released).
uint16_t FreePort();

// A redis-server child process on 127.0.0.1:port, no persistence.
class RedisServer {
 public:
  explicit RedisServer(uint16_t port = 0, std::vector<std::string> extra_args = {});
  ~RedisServer();  // SIGTERM + wait
  // Starts the server and waits until it answers PING. False if it does not within 10 s.
  bool Start();
  // SIGKILL + wait: Redis vanishes without closing anything gracefully.
  void Kill();
  // SIGSTOP / SIGCONT: Redis keeps its connections but answers nothing.
  void Pause();
  void Resume();
  uint16_t port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  // Runs redis-cli with these arguments (each shell-quoted) and returns its stdout, trimmed.
  std::string Cli(const std::vector<std::string>& args) const;
  // PUBSUB NUMSUB channel, as an integer (-1 if redis-cli failed).
  int NumSub(const std::string& channel) const;

 private:
  uint16_t port_;
  std::vector<std::string> extra_args_;
  pid_t pid_ = -1;
};

}  // namespace wsgate::dataplane::bus::testing
