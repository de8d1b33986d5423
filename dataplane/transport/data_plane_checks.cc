// CheckListenAddress and CheckRedisUrl (data_plane.h): pure checks with no transport, in a file
// of their own so that the configuration validator can be built without the transport (the
// config_yaml fuzz target of tests/fuzz compiles it standalone).
#include <boost/asio/ip/address.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "dataplane/bus/redis_url.h"
#include "dataplane/data_plane.h"

namespace wsgate::dataplane {

absl::Status CheckListenAddress(const std::string& address) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(address, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", address, "' is not an IP address (e.g. 0.0.0.0, 127.0.0.1, ::)"));
  }
  return absl::OkStatus();
}

absl::Status CheckRedisUrl(const std::string& url) {
  absl::StatusOr<bus::RedisEndpoint> endpoint = bus::ParseRedisUrl(url);
  if (endpoint.ok()) return absl::OkStatus();
  // The parser names the seed's variable; the caller names the setting the URL came from.
  std::string message(endpoint.status().message());
  constexpr char kPrefix[] = "REDIS_URL: ";
  if (message.rfind(kPrefix, 0) == 0) message.erase(0, sizeof(kPrefix) - 1);
  return absl::InvalidArgumentError(message);
}

}  // namespace wsgate::dataplane
