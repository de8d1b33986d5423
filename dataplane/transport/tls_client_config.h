// websocketpp client configuration for outbound wss:// connections (kind external_client): the
// worker's plain ClientConfig with a TLS socket. Same message type, logging, concurrency and
// generator settings as ClientConfig (ws_config.h), so everything said there holds here.
//
// Only the transport includes websocketpp or Asio headers.
#pragma once

#include <websocketpp/client.hpp>
#include <websocketpp/transport/asio/endpoint.hpp>
#include <websocketpp/transport/asio/security/tls.hpp>

#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport {

struct TlsClientConfig : public ClientConfig {
  using type = TlsClientConfig;
  struct transport_config : public ClientConfig::transport_config {
    using socket_type = websocketpp::transport::asio::tls_socket::endpoint;
  };
  using transport_type = websocketpp::transport::asio::endpoint<transport_config>;
};

using TlsClientEndpoint = websocketpp::client<TlsClientConfig>;
using TlsClientConnectionPtr = TlsClientEndpoint::connection_ptr;

static_assert(std::is_same_v<TlsClientConfig::message_type, ClientConfig::message_type>,
              "wss:// and ws:// legs deliver the same message type");

}  // namespace wsgate::dataplane::transport
