#include "dataplane/bus/asio_hiredis.h"

#include <hiredis/async.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <memory>

#include "absl/strings/str_cat.h"

namespace wsgate::dataplane::bus {
namespace {

// Shared with the pending wait handlers, so it outlives the context that hiredis frees.
class AsioRedisAdapter : public std::enable_shared_from_this<AsioRedisAdapter> {
 public:
  AsioRedisAdapter(boost::asio::io_context& ioc, redisAsyncContext* ac) : sd_(ioc), ac_(ac) {}

  boost::system::error_code Assign(int fd) {
    boost::system::error_code ec;
    sd_.assign(fd, ec);
    return ec;
  }

  void AddRead() {
    want_read_ = true;
    if (!reading_) ArmRead();
  }
  void DelRead() { want_read_ = false; }
  redisAsyncContext* context() const { return ac_; }
  void AddWrite() {
    want_write_ = true;
    if (!writing_) ArmWrite();
  }
  void DelWrite() { want_write_ = false; }
  void Cleanup() {
    ac_ = nullptr;
    want_read_ = want_write_ = false;
    // Cancels the outstanding waits (their handlers see operation_aborted) and leaves the fd to
    // hiredis, which closes it.
    if (sd_.is_open()) sd_.release();
  }

 private:
  void ArmRead() {
    if (ac_ == nullptr) return;
    reading_ = true;
    sd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                   [self = shared_from_this()](const boost::system::error_code& ec) {
                     self->reading_ = false;
                     if (ec == boost::asio::error::operation_aborted || self->ac_ == nullptr ||
                         !self->want_read_) {
                       return;
                     }
                     // May free the context (EOF, protocol error): Cleanup then clears ac_.
                     redisAsyncHandleRead(self->ac_);
                     if (self->ac_ != nullptr && self->want_read_ && !self->reading_) {
                       self->ArmRead();
                     }
                   });
  }
  void ArmWrite() {
    if (ac_ == nullptr) return;
    writing_ = true;
    sd_.async_wait(boost::asio::posix::stream_descriptor::wait_write,
                   [self = shared_from_this()](const boost::system::error_code& ec) {
                     self->writing_ = false;
                     if (ec == boost::asio::error::operation_aborted || self->ac_ == nullptr ||
                         !self->want_write_) {
                       return;
                     }
                     redisAsyncHandleWrite(self->ac_);
                     if (self->ac_ != nullptr && self->want_write_ && !self->writing_) {
                       self->ArmWrite();
                     }
                   });
  }

  boost::asio::posix::stream_descriptor sd_;
  redisAsyncContext* ac_;
  bool want_read_ = false;
  bool want_write_ = false;
  bool reading_ = false;  // a read wait is outstanding
  bool writing_ = false;
};

// ev.data: a heap-held shared_ptr, dropped by the cleanup hook.
using Holder = std::shared_ptr<AsioRedisAdapter>;
AsioRedisAdapter& Of(void* privdata) { return **static_cast<Holder*>(privdata); }

void HookAddRead(void* p) { Of(p).AddRead(); }
void HookDelRead(void* p) { Of(p).DelRead(); }
void HookAddWrite(void* p) { Of(p).AddWrite(); }
void HookDelWrite(void* p) { Of(p).DelWrite(); }
void HookCleanup(void* p) {
  auto* holder = static_cast<Holder*>(p);
  // Unhook first: some hiredis versions run the cleanup hook twice on an error disconnect
  // (once in the disconnect, once in the free), and no hook may run on a deleted holder.
  if (redisAsyncContext* ac = (*holder)->context()) {
    ac->ev.data = nullptr;
    ac->ev.addRead = nullptr;
    ac->ev.delRead = nullptr;
    ac->ev.addWrite = nullptr;
    ac->ev.delWrite = nullptr;
    ac->ev.cleanup = nullptr;
  }
  (*holder)->Cleanup();
  delete holder;
}

}  // namespace

absl::Status AttachAsio(redisAsyncContext* ac, boost::asio::io_context& ioc) {
  if (ac->ev.data != nullptr)
    return absl::FailedPreconditionError("hiredis context already attached");
  auto adapter = std::make_shared<AsioRedisAdapter>(ioc, ac);
  if (auto ec = adapter->Assign(ac->c.fd)) {
    return absl::InternalError(absl::StrCat("cannot watch the Redis socket: ", ec.message()));
  }
  ac->ev.data = new Holder(std::move(adapter));
  ac->ev.addRead = HookAddRead;
  ac->ev.delRead = HookDelRead;
  ac->ev.addWrite = HookAddWrite;
  ac->ev.delWrite = HookDelWrite;
  ac->ev.cleanup = HookCleanup;
  return absl::OkStatus();
}

}  // namespace wsgate::dataplane::bus
