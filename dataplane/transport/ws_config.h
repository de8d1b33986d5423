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
#include <websocketpp/logger/basic.hpp>
#include <websocketpp/message_buffer/alloc.hpp>
#include <websocketpp/message_buffer/message.hpp>
#include <websocketpp/server.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>

#include "dataplane/transport/recycling_msg_manager.h"
#include "dataplane/transport/secure_rng.h"

namespace wsgate::dataplane::transport {

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
  using response_type = typename base::response_type;
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
