// Crossing from another thread into every worker, in the manner of Seastar's map_reduce: run one
// function on each worker's own thread, and hand the answers back to the calling thread. Each
// worker answers in microseconds unless it is stopped or wedged; the caller then gets nullopt
// after `timeout` instead of hanging (a gRPC thread must never wait forever on the data plane).
//
// Threading: call it from any thread except a worker's (it would wait for itself). `map` runs
// on each worker thread and must not block; it may read and change that worker's state.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

#include "dataplane/transport/worker.h"

namespace wsgate::dataplane::transport {

inline constexpr std::chrono::seconds kWorkerAnswerTimeout{5};

// Every worker's `map(worker)`, in no particular order, or nullopt on timeout.
template <typename Map>
auto RunOnEveryWorker(const std::vector<std::unique_ptr<Worker>>& workers, Map map,
                      std::chrono::milliseconds timeout = kWorkerAnswerTimeout)
    -> std::optional<std::vector<std::invoke_result_t<Map&, Worker&>>> {
  using T = std::invoke_result_t<Map&, Worker&>;
  // Shared with the posted functions, so an answer that arrives after the caller gave up is
  // harmless.
  struct Answers {
    std::mutex mu;
    std::condition_variable cv;
    std::vector<T> values;
  };
  auto answers = std::make_shared<Answers>();
  auto shared_map = std::make_shared<Map>(std::move(map));
  for (const auto& worker : workers) {
    Worker* w = worker.get();
    w->Post([answers, shared_map, w] {
      T value = (*shared_map)(*w);
      {
        std::lock_guard<std::mutex> lock(answers->mu);
        answers->values.push_back(std::move(value));
      }
      answers->cv.notify_all();
    });
  }
  std::unique_lock<std::mutex> lock(answers->mu);
  const size_t expected = workers.size();
  if (!answers->cv.wait_for(lock, timeout,
                            [&] { return answers->values.size() == expected; })) {
    return std::nullopt;
  }
  return std::move(answers->values);
}

}  // namespace wsgate::dataplane::transport
