#include "dataplane/transport/readiness_wait.h"

#include <utility>

namespace wsgate::dataplane::transport {

namespace {

// The socket's reactor registration lives in basic_socket's protected `impl_`: reached through
// a pointer to member named in a derived class (no object of that class is ever made).
struct SocketInternals : boost::asio::ip::tcp::socket {
  static auto& Of(boost::asio::ip::tcp::socket& socket) {
    return (socket.*(&SocketInternals::impl_)).get_implementation();
  }
};

}  // namespace

ReadinessWait::ReadinessWait()
    : reactor_op(boost::system::error_code(), &ReadinessWait::Perform,
                 &ReadinessWait::Complete) {}

void ReadinessWait::Arm(boost::asio::io_context& ioc, boost::asio::ip::tcp::socket& socket,
                        std::shared_ptr<void> keep, Callback callback, void* target) {
  keep_ = std::move(keep);
  callback_ = callback;
  target_ = target;
  ec_ = boost::system::error_code();
  bytes_transferred_ = 0;
  auto& impl = SocketInternals::Of(socket);
  auto& reactor = boost::asio::use_service<boost::asio::detail::reactor>(ioc);
  reactor.start_op(boost::asio::detail::reactor::read_op, impl.socket_, impl.reactor_data_, this,
                   /*is_continuation=*/false, /*allow_speculative=*/true);
}

void ReadinessWait::Complete(void* owner, boost::asio::detail::operation* base,
                             const boost::system::error_code&, std::size_t) {
  auto* self = static_cast<ReadinessWait*>(base);
  // Taken first: dropping it may free the object this wait is part of, so nothing below may
  // touch `self` after the callback.
  std::shared_ptr<void> keep = std::move(self->keep_);
  const boost::system::error_code ec = self->ec_;
  if (owner != nullptr) self->callback_(self->target_, ec);
  // owner == nullptr: the io_context is being destroyed; only `keep` is released.
}

}  // namespace wsgate::dataplane::transport
