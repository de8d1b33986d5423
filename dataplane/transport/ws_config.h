// websocketpp configurations of the data plane: one for the server endpoint (client legs) and one
// for the client endpoint (upstream legs). Every item of FIELD-NOTES' websocketpp section is
// applied here; see dataplane/README.md for the reasoning behind each choice.
//
// Only the transport includes websocketpp or Asio headers.
#pragma once

#include <cstddef>
#include <type_traits>
#include <websocketpp/client.hpp>
#include <websocketpp/concurrency/none.hpp>
#include <websocketpp/config/core.hpp>
#include <websocketpp/config/core_client.hpp>
#include <websocketpp/extensions/permessage_deflate/disabled.hpp>
#include <websocketpp/http/response.hpp>
#include <websocketpp/logger/basic.hpp>
#include <websocketpp/message_buffer/alloc.hpp>
#include <websocketpp/message_buffer/message.hpp>
#include <websocketpp/processors/hybi13.hpp>
#include <websocketpp/server.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>

#include "dataplane/transport/recycling_msg_manager.h"
#include "dataplane/transport/secure_rng.h"

namespace wsgate::dataplane::transport {

// websocketpp's HTTP response with one fix: a request its parser refuses (HTTP/1.0, no Host, a
// bad header line) is answered with the parser exception's message as the reason phrase, and
// those messages are empty ("HTTP/1.1 400 \r\n"). An empty phrase becomes the standard one.
class HttpResponse : public websocketpp::http::parser::response {
 public:
  using base = websocketpp::http::parser::response;
  void set_status(websocketpp::http::status_code::value code) { base::set_status(code); }
  void set_status(websocketpp::http::status_code::value code, const std::string& msg) {
    base::set_status(code, msg.empty() ? websocketpp::http::status_code::get_string(code) : msg);
  }
};

// Settings shared by both roles. `Base` is websocketpp's core (server) or core_client config; we
// keep its HTTP parser, and both roles use the same message type so that a message read on one
// leg can be sent on the other unchanged.
template <typename Base, typename Rng, bool kParseExtensions>
struct WsConfig : public Base {
  using type = WsConfig;
  using base = Base;

  // Each endpoint is owned by exactly one worker thread: no locks inside websocketpp.
  using concurrency_type = websocketpp::concurrency::none;
  static const bool enable_multithreading = false;

  using request_type = typename base::request_type;
  using response_type = HttpResponse;
  // Messages are recycled per thread instead of allocated per frame (recycling_msg_manager.h).
  using message_type = websocketpp::message_buffer::message<RecyclingMsgManager>;
  using con_msg_manager_type = RecyclingMsgManager<message_type>;
  using endpoint_msg_manager_type =
      websocketpp::message_buffer::alloc::endpoint_msg_manager<con_msg_manager_type>;

  // Logging compiled out (the defaults log frame headers); the runtime channels are cleared too.
  using alog_type = websocketpp::log::basic<concurrency_type, websocketpp::log::alevel>;
  using elog_type = websocketpp::log::basic<concurrency_type, websocketpp::log::elevel>;
  static const websocketpp::log::level alog_level = websocketpp::log::alevel::none;
  static const websocketpp::log::level elog_level = websocketpp::log::elevel::none;

  using rng_type = Rng;

  struct transport_config : public base::transport_config {
    using concurrency_type = websocketpp::concurrency::none;
    using alog_type = typename type::alog_type;
    using elog_type = typename type::elog_type;
    using request_type = typename type::request_type;
    using response_type = typename type::response_type;
    using socket_type = websocketpp::transport::asio::basic_socket::endpoint;
    static const bool enable_multithreading = false;
    // Upper bounds only: the proxy arms its own per-route connect timer (connect_timeout), which
    // normally fires first. If a route allows longer than these, websocketpp's timeout surfaces
    // as a fail with transport::error::timeout, which the proxy also maps to 504.
    static const long timeout_dns_resolve = 10000;
    static const long timeout_connect = 10000;
  };
  using transport_type = websocketpp::transport::asio::endpoint<transport_config>;

  // 4 KiB instead of 16 KiB: the buffer is inline in every connection and a proxied connection
  // has two of them. Large messages are still read in one pass per 4 KiB chunk, which costs a
  // few more read calls per 64 KiB message but saves 24 KiB per proxied pair at idle.
  static const size_t connection_read_buffer_size = 4096;

  // permessage-deflate costs ~185 KiB of zlib state per leg: off, by using websocketpp's
  // `disabled` implementation below. The client must still parse the extensions header:
  // websocketpp 0.8.2's client fails every handshake with "extension negotiation failed" when
  // enable_extensions is false (processors/hybi13.hpp negotiate_extensions_helper).
  static const bool enable_extensions = kParseExtensions;
  struct permessage_deflate_config {
    using request_type = typename base::request_type;
    static const bool allow_disabling_context_takeover = true;
    static const uint8_t minimum_outgoing_window_bits = 8;
  };
  using permessage_deflate_type =
      websocketpp::extensions::permessage_deflate::disabled<permessage_deflate_config>;
};

// The server never masks, so it needs no generator.
using ServerConfig =
    WsConfig<websocketpp::config::core, websocketpp::config::core::rng_type, false>;
using ClientConfig = WsConfig<websocketpp::config::core_client, SecureRandom32, true>;

static_assert(std::is_same_v<ServerConfig::message_type, ClientConfig::message_type>,
              "both legs must share one message type so messages can be forwarded as-is");

using ServerEndpoint = websocketpp::server<ServerConfig>;
using ClientEndpoint = websocketpp::client<ClientConfig>;
using ServerConnectionPtr = ServerEndpoint::connection_ptr;
using ClientConnectionPtr = ClientEndpoint::connection_ptr;
using MessagePtr = ServerConfig::message_type::ptr;

}  // namespace wsgate::dataplane::transport

// RFC 6455 section 5.2 on the frames clients send to websocketpp-served routes: a length in more
// bytes than needed, or a 64-bit length with its most significant bit set, is a protocol error
// (close 1002). websocketpp 0.8.2 closes the first with 1011 (its non_minimal_encoding error has
// no close code of its own) and lets the second through to its size check (1009). This
// specialization of its header check, seen by every translation unit that includes this header
// before anything instantiates it, answers both with protocol_violation, i.e. 1002.
template <>
inline websocketpp::lib::error_code
websocketpp::processor::hybi13<wsgate::dataplane::transport::ServerConfig>::
    validate_incoming_extended_header(websocketpp::frame::basic_header h,
                                      websocketpp::frame::extended_header e) const {
  const uint8_t basic_size = frame::get_basic_size(h);
  const uint64_t payload_size = frame::get_payload_size(h, e);
  if (basic_size == frame::payload_size_code_16bit &&
      payload_size <= frame::limits::payload_size_basic) {
    return make_error_code(error::protocol_violation);
  }
  if (basic_size == frame::payload_size_code_64bit &&
      (payload_size <= frame::limits::payload_size_extended || (payload_size >> 63) != 0)) {
    return make_error_code(error::protocol_violation);
  }
  if (sizeof(size_t) == 4 && (payload_size >> 32)) {
    return make_error_code(error::requires_64bit);
  }
  return lib::error_code();
}
