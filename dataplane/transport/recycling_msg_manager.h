// A websocketpp connection message manager that recycles message objects per thread.
//
// websocketpp's stock manager (message_buffer/alloc.hpp) make_shared's a new message for every
// frame it reads and reserves its payload: two allocations and two frees per message per hop,
// about a quarter of the worker's malloc traffic on the 64 B benchmark after FrameInPlace
// (bench/README.md, "Profile"). This manager keeps released messages, with their payload
// capacity, on a free list of the thread that released them and hands them out again, so a
// steady stream of messages costs one small allocation each (the shared_ptr control block).
//
// Bounds: at most kMaxPooled messages per thread, and only messages whose payload capacity is at
// most kMaxPooledCapacity (larger ones are freed): at most 1 MiB held per thread.
//
// Threads: every thread gets its own free list (thread_local); a message may be released on
// another thread than the one that took it (it then joins that thread's list). The list is freed
// when its thread exits; a message released after that, during the thread's exit, is deleted.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>
#include <websocketpp/frame.hpp>

namespace wsgate::dataplane::transport {

template <typename Message>
class RecyclingMsgManager {
 public:
  using type = RecyclingMsgManager<Message>;
  using ptr = std::shared_ptr<RecyclingMsgManager>;
  using weak_ptr = std::weak_ptr<RecyclingMsgManager>;
  using message_ptr = typename Message::ptr;

  static constexpr size_t kMaxPooled = 256;
  static constexpr size_t kMaxPooledCapacity = 4096;

  message_ptr get_message() { return Wrap(Take(), websocketpp::frame::opcode::text, 0); }

  message_ptr get_message(websocketpp::frame::opcode::value op, size_t size) {
    return Wrap(Take(), op, size);
  }

  // websocketpp 0.8.2 never calls message::recycle(); recycling happens in the deleter.
  bool recycle(Message*) { return false; }

 private:
  struct Pool {
    std::vector<Message*> free;
    ~Pool() {
      for (Message* m : free) delete m;
    }
  };
  // Frees the thread's pool at thread exit. The pointer and flag below are trivially
  // destructible, so they stay readable while other thread_local objects are destroyed.
  struct PoolOwner {
    ~PoolOwner() {
      delete pool_;
      pool_ = nullptr;
      exited_ = true;
    }
  };
  static inline thread_local Pool* pool_ = nullptr;
  static inline thread_local bool exited_ = false;
  static inline thread_local PoolOwner owner_;

  static Pool* ThreadPool() {
    if (pool_ == nullptr && !exited_) {
      (void)&owner_;  // constructs the owner on this thread, so that its destructor runs
      pool_ = new Pool;
    }
    return pool_;
  }

  static Message* Take() {
    Pool* pool = ThreadPool();
    if (pool == nullptr || pool->free.empty()) return new Message(ptr());
    Message* m = pool->free.back();
    pool->free.pop_back();
    return m;
  }

  static void Release(Message* m) {
    Pool* pool = pool_;
    if (pool == nullptr || pool->free.size() >= kMaxPooled ||
        m->get_raw_payload().capacity() > kMaxPooledCapacity) {
      delete m;
      return;
    }
    if (pool->free.capacity() == 0) pool->free.reserve(kMaxPooled);
    pool->free.push_back(m);
  }

  // Resets every field a reader or writer of a message sets (what message's constructor sets).
  static message_ptr Wrap(Message* m, websocketpp::frame::opcode::value op, size_t size) {
    m->set_opcode(op);
    m->set_prepared(false);
    m->set_fin(true);
    m->set_terminal(false);
    m->set_compressed(false);
    m->set_header(std::string());
    std::string& payload = m->get_raw_payload();
    payload.clear();
    if (size > payload.capacity()) payload.reserve(size);
    return message_ptr(m, &Release);
  }
};

}  // namespace wsgate::dataplane::transport
