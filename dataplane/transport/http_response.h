// A plain HTTP answer on a data-port connection: the HTTP handler's responses, a refused
// handshake, the seeds' REST endpoints. websocketpp may throw while setting them (a connection
// that is already closing); that is logged, never propagated.
#pragma once

#include <spdlog/spdlog.h>

#include <exception>
#include <string>

#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport {

inline void RespondHttp(ServerEndpoint::connection_type& c, int status, const std::string& body,
                        const char* content_type = "text/plain; charset=utf-8") {
  try {
    c.set_status(static_cast<websocketpp::http::status_code::value>(status));
    c.set_body(body);
    c.replace_header("Content-Type", content_type);
  } catch (const std::exception& e) {
    spdlog::error("cannot set HTTP response {}: {}", status, e.what());
  }
}

}  // namespace wsgate::dataplane::transport
