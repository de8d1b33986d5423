// The wsgate command line and how its settings are resolved:
// flag > environment (the seeds' names) > config file `server:` section > default.
// Pure functions, so every precedence rule and every error is unit-tested without a process.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "wsgate/v1/config.pb.h"

namespace wsgate::controlplane {

// What the command line said; unset optionals were not given.
struct CliFlags {
  std::string config_path;                    // --config; empty: the built-in demo configuration
  std::string check_config_path;              // --check-config; non-empty: validate and exit
  std::string state_dir;                      // --state-dir; empty: gRPC changes are not persisted
  std::optional<std::string> store_url;       // --store-url
  std::optional<std::string> listen_address;  // --listen
  std::optional<std::string> grpc_listen_address;  // --grpc-listen
  std::optional<int> port;                         // --port
  std::optional<int> admin_port;                   // --admin-port
  std::optional<int> grpc_port;                    // --grpc-port
  std::optional<int> workers;                      // --workers
  std::optional<int64_t> max_connections;          // --max-connections
  std::optional<double> shutdown_grace_seconds;    // --shutdown-grace
  std::optional<int64_t> drain_close_rate;         // --drain-close-rate
  std::string log_format = "text";                 // --log-format: text | json
  std::string log_level;                           // --log-level; empty: WSGATE_LOG_LEVEL, info
  std::optional<std::string> admin_token_file;     // --admin-token-file
  std::optional<std::string> admin_ui_dir;         // --admin-ui-dir
  std::optional<std::string> control_tls_cert;     // --control-tls-cert
  std::optional<std::string> control_tls_key;      // --control-tls-key
  std::optional<std::string> control_client_ca;    // --control-client-ca
  std::optional<std::string> role;                 // --role: all | controlplane | dataplane
  std::optional<std::string> control_plane;        // --control-plane HOST:PORT
  std::optional<std::string> dataplane_id;         // --dataplane-id
  std::optional<std::string> dataplane_token_file;  // --dataplane-token-file
  std::optional<std::string> control_plane_ca;      // --control-plane-ca
};

struct CliParseResult {
  std::optional<CliFlags> flags;  // nullopt: exit now with exit_code (help, version, bad flags)
  int exit_code = 0;
};

// Parses argv with CLI11. Prints help, the version or the error itself. Bad flags exit with 2.
CliParseResult ParseCommandLine(int argc, char** argv, const std::string& version);

// The process settings after precedence is applied.
struct Settings {
  std::string listen_address = "0.0.0.0";
  uint16_t port = 8080;
  uint16_t admin_port = 8081;
  uint16_t grpc_port = 50051;
  std::string grpc_listen_address = "0.0.0.0";
  int workers = 1;
  // Process-wide cap on open client connections; 0: from the open-files limit.
  int64_t max_connections = 0;
  double shutdown_grace_seconds = 30;
  // Client connections closed per second after SIGTERM (0: all at once at the grace's end):
  // --drain-close-rate > WSGATE_DRAIN_CLOSE_RATE > server.drain_close_rate > 1000.
  int64_t drain_close_rate = 1000;
  // Config store shared by control-plane replicas: --store-url > WSGATE_STORE_URL > none (the
  // state file or memory). Checked here (a usage error), connected to by the gateway.
  std::string store_url;
  // Message bus: REDIS_URL > server.redis_url > empty (in-memory). Parsed by the data plane.
  std::string redis_url;
  // Bearer tokens with roles for gRPC and the admin API: --admin-token-file >
  // WSGATE_ADMIN_TOKEN_FILE > none (open).
  std::string admin_token_file;
  // The admin UI's built files: --admin-ui-dir > WSGATE_ADMIN_UI_DIR > "" (the admin-ui folder
  // beside the binary).
  std::string admin_ui_dir;
  // TLS on the gRPC and admin ports, each: flag > environment (WSGATE_CONTROL_TLS_CERT, ..._KEY,
  // WSGATE_CONTROL_CLIENT_CA) > server.control_tls_* > none (plaintext). Cert and key come
  // together; a client CA (mutual TLS) needs them. The *_source fields name where each value
  // came from, for the errors of loading the files.
  std::string control_tls_cert;
  std::string control_tls_key;
  std::string control_client_ca;
  std::string control_tls_cert_source;
  std::string control_tls_key_source;
  std::string control_client_ca_source;
  // Liveness of pubsub connections (seed 004's names): a ping every WS_PING_INTERVAL_SECS
  // (default 30), a close without a pong within WS_PING_TIMEOUT_SECS (default 10). Seconds,
  // fractions allowed, 0 disables; a value that is not a number in [0, 86400] keeps the default
  // and adds a warning.
  std::chrono::milliseconds ws_ping_interval{30000};
  std::chrono::milliseconds ws_ping_timeout{10000};
  // Seed 003's WEBSOCKET_DEBUG: "true", "1" or "yes" (any case) logs every event of the
  // http_bridge and external_client kinds; anything else is off.
  bool websocket_debug = false;
  // Split deployment (controlplane/sync): --role > WSGATE_ROLE > "all" (both planes in this
  // process). A data plane needs --control-plane (> WSGATE_CONTROL_PLANE), HOST:PORT of the control
  // plane's gRPC port; its id is --dataplane-id > WSGATE_DATAPLANE_ID > "" (the caller makes it
  // host name:data port); the token it presents is the one line of --dataplane-token-file >
  // WSGATE_DATAPLANE_TOKEN_FILE > none.
  std::string role = "all";
  std::string control_plane;
  std::string dataplane_id;
  std::string dataplane_token_file;
  // A data plane's trust for its control plane's certificate: --control-plane-ca >
  // WSGATE_CONTROL_PLANE_CA; empty: the stream is plaintext.
  std::string control_plane_ca;
  // Values that were ignored for their default, one message each naming the variable; the
  // caller logs them (these functions log nothing).
  std::vector<std::string> warnings;
};

// Returns the value of an environment variable, nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;
EnvLookup ProcessEnvironment();

// Errors are INVALID_ARGUMENT naming the flag, variable or field: "PORT: not a port number (abc)".
// `default_workers` is used when nothing sets the worker count (the number of cores).
absl::StatusOr<Settings> ResolveSettings(const CliFlags& flags, const wsgate::v1::Server& server,
                                         const EnvLookup& env, int default_workers);

}  // namespace wsgate::controlplane
