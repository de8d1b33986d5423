// Drives a hiredis async context from a Boost.Asio io_context: hiredis ships adapters for
// libevent, libuv, ae, ... but not for Asio.
//
// hiredis asks for read/write interest through five hooks (addRead, delRead, addWrite, delWrite,
// cleanup); the adapter maps each interest to a `stream_descriptor::async_wait` on the
// context's socket and calls redisAsyncHandleRead / redisAsyncHandleWrite when it fires, re-arming
// while the interest lasts. An async_wait re-registers the descriptor with epoll when it starts,
// so readiness left over from a previous event (e.g. more than one read's worth of replies) is
// reported at once rather than lost.
//
// Threading: everything runs on the thread of `ioc` (one thread), as hiredis is not thread-safe.
#pragma once

#include <boost/asio/io_context.hpp>

#include "absl/status/status.h"

struct redisAsyncContext;

namespace wsgate::dataplane::bus {

// Installs the hooks on `ac` (right after redisAsyncConnect, before setting the connect
// callback, which already asks for write interest). hiredis calls the cleanup hook when it frees
// the context; the adapter then gives the descriptor back without closing it (hiredis closes it)
// and cancels the waits it had started, whose handlers then do nothing.
absl::Status AttachAsio(redisAsyncContext* ac, boost::asio::io_context& ioc);

}  // namespace wsgate::dataplane::bus
