#include "controlplane/main/settings.h"

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controlplane/config/redis_store.h"
#include "dataplane/data_plane.h"

namespace wsgate::controlplane {

namespace {
constexpr int64_t kMaxDrainCloseRate = 1000000;
}  // namespace

CliParseResult ParseCommandLine(int argc, char** argv, const std::string& version) {
  CLI::App app("wsgate: a WebSocket gateway (data plane, admin HTTP and gRPC control plane)",
               "wsgate");
  CliFlags f;
  std::string listen, grpc_listen;
  int port = 0, admin_port = 0, grpc_port = 0, workers = 0;
  int64_t max_connections = 0;
  double grace = 0;

  app.set_version_flag("--version", "wsgate " + version);
  app.add_option("--config", f.config_path, "YAML configuration (the proto schema)")
      ->check(CLI::ExistingFile);
  app.add_option("--check-config", f.check_config_path,
                 "Validate a configuration file, print FILE: ok or the error, exit 0 or 1");
  app.add_option("--state-dir", f.state_dir,
                 "Where routes changed over gRPC are persisted (empty: not persisted)");
  std::string store_url;
  auto* o_store = app.add_option("--store-url", store_url,
                                 "redis://[:password@]host:port[/db]: keep routes in Redis, shared "
                                 "by control-plane replicas (env WSGATE_STORE_URL; not with "
                                 "--state-dir)");
  auto* o_listen = app.add_option("--listen", listen, "Data-plane listen address (env HOST)");
  auto* o_port = app.add_option("--port", port, "Data-plane port (env PORT), 0: any free port")
                     ->check(CLI::Range(0, 65535));
  auto* o_admin = app.add_option("--admin-port", admin_port, "Admin HTTP port (/metrics, /ready)")
                      ->check(CLI::Range(0, 65535));
  auto* o_grpc = app.add_option("--grpc-port", grpc_port, "gRPC control-plane port")
                     ->check(CLI::Range(0, 65535));
  auto* o_grpc_listen = app.add_option("--grpc-listen", grpc_listen, "gRPC listen address");
  auto* o_workers = app.add_option("--workers", workers,
                                   "Data-plane worker threads (default: "
                                   "number of cores)")
                        ->check(CLI::Range(1, 1024));
  auto* o_max_conns =
      app.add_option("--max-connections", max_connections,
                     "Open client connections the process accepts, 503 over it (default: from "
                     "the open-files limit)")
          ->check(CLI::Range(int64_t{1}, int64_t{100000000}));
  auto* o_grace = app.add_option("--shutdown-grace", grace,
                                 "Seconds clients get after SIGTERM before the 1001 close (env "
                                 "SHUTDOWN_GRACE_PERIOD_SECS)")
                      ->check(CLI::Range(0.0, 86400.0));
  int64_t drain_rate = 0;
  auto* o_drain_rate =
      app.add_option("--drain-close-rate", drain_rate,
                     "Client connections closed per second after SIGTERM, paced to end with the "
                     "grace period; 0: all at once (env WSGATE_DRAIN_CLOSE_RATE, default 1000)")
          ->check(CLI::Range(int64_t{0}, kMaxDrainCloseRate));
  app.add_option("--log-format", f.log_format, "text or json (one JSON object per line)")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", f.log_level,
                 "trace, debug, info, warn, error, critical, off (env WSGATE_LOG_LEVEL)");

  std::string token_file, ui_dir;
  auto* o_tokens = app.add_option("--admin-token-file", token_file,
                                  "'ROLE TOKEN' lines (admin, viewer): bearer tokens required on "
                                  "gRPC and the admin API (env WSGATE_ADMIN_TOKEN_FILE)");
  auto* o_ui = app.add_option("--admin-ui-dir", ui_dir,
                              "The admin UI's built files (env WSGATE_ADMIN_UI_DIR; default: "
                              "admin-ui beside the binary)");

  std::string tls_cert, tls_key, client_ca;
  auto* o_tls_cert = app.add_option("--control-tls-cert", tls_cert,
                                    "PEM certificate (chain) for TLS on the gRPC and admin ports "
                                    "(env WSGATE_CONTROL_TLS_CERT); needs --control-tls-key");
  auto* o_tls_key = app.add_option("--control-tls-key", tls_key,
                                   "PEM private key of --control-tls-cert (env "
                                   "WSGATE_CONTROL_TLS_KEY)");
  auto* o_client_ca = app.add_option("--control-client-ca", client_ca,
                                     "PEM CA file: the gRPC and admin ports require client "
                                     "certificates signed by it (mutual TLS; env "
                                     "WSGATE_CONTROL_CLIENT_CA)");

  std::string role, control_plane, dataplane_id, dataplane_token_file, control_plane_ca;
  auto* o_role = app.add_option("--role", role,
                                "all (both planes, the default), controlplane (config store, gRPC, "
                                "admin; no WebSocket listener) or dataplane (WebSocket listener "
                                "steered by --control-plane) (env WSGATE_ROLE)")
                     ->check(CLI::IsMember({"all", "controlplane", "dataplane"}));
  auto* o_cp = app.add_option("--control-plane", control_plane,
                              "HOST:PORT of the control plane's gRPC port; required with "
                              "--role=dataplane (env WSGATE_CONTROL_PLANE)");
  auto* o_dp_id = app.add_option("--dataplane-id", dataplane_id,
                                 "This data plane's id in the control plane's inventory (env "
                                 "WSGATE_DATAPLANE_ID; default host name:data port)");
  auto* o_dp_token = app.add_option("--dataplane-token-file", dataplane_token_file,
                                    "A file holding the one bearer token (role admin) this data "
                                    "plane presents to its control plane (env "
                                    "WSGATE_DATAPLANE_TOKEN_FILE)");
  auto* o_cp_ca = app.add_option("--control-plane-ca", control_plane_ca,
                                 "PEM CA file of the control plane's certificate: a data plane "
                                 "dials it over TLS (with --control-tls-cert/key as its client "
                                 "certificate for mutual TLS) (env WSGATE_CONTROL_PLANE_CA)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and --version are "errors" with exit code 0; everything else is a usage error.
    const int code = app.exit(e);
    return CliParseResult{std::nullopt, code == 0 ? 0 : 2};
  }
  if (o_store->count() > 0) f.store_url = store_url;
  if (o_listen->count() > 0) f.listen_address = listen;
  if (o_grpc_listen->count() > 0) f.grpc_listen_address = grpc_listen;
  if (o_port->count() > 0) f.port = port;
  if (o_admin->count() > 0) f.admin_port = admin_port;
  if (o_grpc->count() > 0) f.grpc_port = grpc_port;
  if (o_workers->count() > 0) f.workers = workers;
  if (o_max_conns->count() > 0) f.max_connections = max_connections;
  if (o_grace->count() > 0) f.shutdown_grace_seconds = grace;
  if (o_drain_rate->count() > 0) f.drain_close_rate = drain_rate;
  if (o_tokens->count() > 0) f.admin_token_file = token_file;
  if (o_ui->count() > 0) f.admin_ui_dir = ui_dir;
  if (o_tls_cert->count() > 0) f.control_tls_cert = tls_cert;
  if (o_tls_key->count() > 0) f.control_tls_key = tls_key;
  if (o_client_ca->count() > 0) f.control_client_ca = client_ca;
  if (o_role->count() > 0) f.role = role;
  if (o_cp->count() > 0) f.control_plane = control_plane;
  if (o_dp_id->count() > 0) f.dataplane_id = dataplane_id;
  if (o_dp_token->count() > 0) f.dataplane_token_file = dataplane_token_file;
  if (o_cp_ca->count() > 0) f.control_plane_ca = control_plane_ca;
  return CliParseResult{std::move(f), 0};
}

EnvLookup ProcessEnvironment() {
  return [](const char* name) -> std::optional<std::string> {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0') return std::nullopt;  // empty counts as unset, like the seeds
    return std::string(v);
  };
}

namespace {

absl::StatusOr<uint16_t> PortFrom(const std::string& source, int64_t value) {
  if (value < 0 || value > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": port out of range 0..65535 (got ", value, ")"));
  }
  return static_cast<uint16_t>(value);
}

absl::StatusOr<uint16_t> PortFromText(const std::string& source, const std::string& text) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not a port number (\"", text, "\")"));
  }
  return PortFrom(source, v);
}

absl::StatusOr<int64_t> DrainRateFrom(const std::string& source, int64_t v) {
  if (v < 0 || v > kMaxDrainCloseRate) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": want closes per second between 0 and ", kMaxDrainCloseRate, " (got ", v, ")"));
  }
  return v;
}

absl::StatusOr<double> GraceFromText(const std::string& source, const std::string& text) {
  double v = 0;
  if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || v < 0 || v > 86400) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": want a number of seconds between 0 and 86400 (got \"", text, "\")"));
  }
  return v;
}

// Seconds from the environment (fractions allowed, as strtod reads them); `fallback` when unset,
// and a warning in `warnings` when not a number in [0, 86400]. Unlike the settings above, a bad
// value does not stop the start: deployments set these from seed 004's .env, and a typo in a ping
// setting gets the default and a warning, not an outage.
std::chrono::milliseconds SecondsFromEnvironment(const EnvLookup& env, const char* name,
                                                 double fallback,
                                                 std::vector<std::string>* warnings) {
  double secs = fallback;
  if (std::optional<std::string> v = env(name); v && !v->empty()) {
    char* end = nullptr;
    double parsed = std::strtod(v->c_str(), &end);
    if (end != nullptr && *end == '\0' && parsed >= 0 && parsed <= 86400) {
      secs = parsed;
    } else {
      warnings->push_back(absl::StrCat(
          name, ": '", *v, "' is not a number of seconds between 0 and 86400; using ", fallback));
    }
  }
  return std::chrono::milliseconds(static_cast<int64_t>(secs * 1000));
}

// One control-plane TLS file: flag > environment > server.<field> > none, and where it came from.
absl::Status ControlTlsFile(const std::optional<std::string>& flag, const char* flag_name,
                            const EnvLookup& env, const char* env_name,
                            const std::string& config_value, const char* config_field,
                            std::string* value, std::string* source) {
  if (flag) {
    if (flag->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(flag_name, ": must not be empty"));
    }
    *value = *flag;
    *source = flag_name;
  } else if (auto v = env(env_name)) {
    *value = *v;
    *source = env_name;
  } else if (!config_value.empty()) {
    *value = config_value;
    *source = config_field;
  }
  return absl::OkStatus();
}

bool TrueFromEnvironment(const EnvLookup& env, const char* name) {
  std::optional<std::string> v = env(name);
  if (!v) return false;
  std::string s = *v;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s == "true" || s == "1" || s == "yes";
}

// flag > environment, with the flag's or the variable's name for the errors.
std::optional<std::pair<std::string, std::string>> FlagOrEnv(const std::optional<std::string>& flag,
                                                             const char* flag_name,
                                                             const EnvLookup& env,
                                                             const char* env_name) {
  if (flag) return std::make_pair(*flag, std::string(flag_name));
  if (auto v = env(env_name)) return std::make_pair(*v, std::string(env_name));
  return std::nullopt;
}

absl::Status ResolveRole(const CliFlags& flags, const EnvLookup& env, Settings* s) {
  if (auto role = FlagOrEnv(flags.role, "--role", env, "WSGATE_ROLE")) {
    if (role->first != "all" && role->first != "controlplane" && role->first != "dataplane") {
      return absl::InvalidArgumentError(absl::StrCat(
          role->second, ": want all, controlplane or dataplane (got \"", role->first, "\")"));
    }
    s->role = role->first;
  }
  auto cp = FlagOrEnv(flags.control_plane, "--control-plane", env, "WSGATE_CONTROL_PLANE");
  if (s->role == "dataplane") {
    if (!cp || cp->first.empty()) {
      return absl::InvalidArgumentError(
          "--control-plane: required with --role=dataplane (HOST:PORT of the control plane's "
          "gRPC port; env WSGATE_CONTROL_PLANE)");
    }
    const size_t colon = cp->first.rfind(':');
    int64_t port = 0;
    if (colon == std::string::npos || colon == 0 ||
        !absl::SimpleAtoi(cp->first.substr(colon + 1), &port) || port < 1 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          cp->second, ": want HOST:PORT with a port in 1..65535 (got \"", cp->first, "\")"));
    }
    s->control_plane = cp->first;
  } else if (cp) {
    return absl::InvalidArgumentError(
        absl::StrCat(cp->second, ": only meaningful with --role=dataplane"));
  }
  if (auto id = FlagOrEnv(flags.dataplane_id, "--dataplane-id", env, "WSGATE_DATAPLANE_ID")) {
    if (id->first.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(id->second, ": must not be empty"));
    }
    s->dataplane_id = id->first;
  }
  if (auto t = FlagOrEnv(flags.dataplane_token_file, "--dataplane-token-file", env,
                         "WSGATE_DATAPLANE_TOKEN_FILE")) {
    if (t->first.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(t->second, ": must not be empty"));
    }
    s->dataplane_token_file = t->first;
  }
  if (auto ca = FlagOrEnv(flags.control_plane_ca, "--control-plane-ca", env,
                          "WSGATE_CONTROL_PLANE_CA")) {
    if (s->role != "dataplane") {
      return absl::InvalidArgumentError(
          absl::StrCat(ca->second, ": only meaningful with --role=dataplane"));
    }
    if (ca->first.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(ca->second, ": must not be empty"));
    }
    s->control_plane_ca = ca->first;
  }
  return absl::OkStatus();
}

// --store-url > WSGATE_STORE_URL; either excludes --state-dir (two sources of truth for the
// routes would silently disagree).
absl::Status ResolveStoreUrl(const CliFlags& flags, const EnvLookup& env, std::string* out) {
  std::string source = "--store-url";
  if (flags.store_url) {
    if (flags.store_url->empty()) {
      return absl::InvalidArgumentError("--store-url: must not be empty");
    }
    *out = *flags.store_url;
  } else if (auto v = env("WSGATE_STORE_URL")) {
    *out = *v;
    source = "WSGATE_STORE_URL";
  } else {
    return absl::OkStatus();
  }
  if (!flags.state_dir.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, " and --state-dir are mutually exclusive: the routes live in one store"));
  }
  return CheckStoreUrl(*out, source);
}

}  // namespace

absl::StatusOr<Settings> ResolveSettings(const CliFlags& flags, const wsgate::v1::Server& server,
                                         const EnvLookup& env, int default_workers) {
  Settings s;

  // Data-plane listen address: --listen > HOST > server.listen_address > 0.0.0.0.
  if (flags.listen_address) {
    if (flags.listen_address->empty()) {
      return absl::InvalidArgumentError("--listen: must not be empty");
    }
    s.listen_address = *flags.listen_address;
  } else if (auto host = env("HOST")) {
    s.listen_address = *host;
  } else if (!server.listen_address().empty()) {
    s.listen_address = server.listen_address();
  }

  // Refused here, naming where it came from, rather than by the data plane at start.
  const char* listen_source = flags.listen_address ? "--listen"
                              : env("HOST")        ? "HOST"
                                                   : "server.listen_address";
  if (absl::Status a = dataplane::CheckListenAddress(s.listen_address); !a.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(listen_source, ": ", a.message()));
  }

  // Data-plane port: --port > PORT > server.port > 8080.
  if (flags.port) {
    absl::StatusOr<uint16_t> p = PortFrom("--port", *flags.port);
    if (!p.ok()) return p.status();
    s.port = *p;
  } else if (auto env_port = env("PORT")) {
    absl::StatusOr<uint16_t> p = PortFromText("PORT", *env_port);
    if (!p.ok()) return p.status();
    s.port = *p;
  } else if (server.port() != 0) {
    absl::StatusOr<uint16_t> p = PortFrom("server.port", server.port());
    if (!p.ok()) return p.status();
    s.port = *p;
  }

  // Admin and gRPC ports have no seed environment names: flag > config > default.
  if (flags.admin_port) {
    absl::StatusOr<uint16_t> p = PortFrom("--admin-port", *flags.admin_port);
    if (!p.ok()) return p.status();
    s.admin_port = *p;
  } else if (server.admin_port() != 0) {
    absl::StatusOr<uint16_t> p = PortFrom("server.admin_port", server.admin_port());
    if (!p.ok()) return p.status();
    s.admin_port = *p;
  }
  if (flags.grpc_port) {
    absl::StatusOr<uint16_t> p = PortFrom("--grpc-port", *flags.grpc_port);
    if (!p.ok()) return p.status();
    s.grpc_port = *p;
  } else if (server.grpc_port() != 0) {
    absl::StatusOr<uint16_t> p = PortFrom("server.grpc_port", server.grpc_port());
    if (!p.ok()) return p.status();
    s.grpc_port = *p;
  }
  if (flags.grpc_listen_address) {
    if (flags.grpc_listen_address->empty()) {
      return absl::InvalidArgumentError("--grpc-listen: must not be empty");
    }
    s.grpc_listen_address = *flags.grpc_listen_address;
  }

  // Workers: --workers > server.workers > number of cores.
  if (flags.workers) {
    if (*flags.workers < 1 || *flags.workers > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("--workers: must be between 1 and 1024 (got ", *flags.workers, ")"));
    }
    s.workers = *flags.workers;
  } else if (server.workers() != 0) {
    if (server.workers() > 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("server.workers: must be between 1 and 1024 (got ", server.workers(), ")"));
    }
    s.workers = static_cast<int>(server.workers());
  } else {
    s.workers = default_workers < 1 ? 1 : default_workers;
  }

  // Connection cap: --max-connections > server.max_connections > from the open-files limit.
  if (flags.max_connections) {
    s.max_connections = *flags.max_connections;
  } else if (server.max_connections() != 0) {
    if (server.max_connections() > 100000000) {
      return absl::InvalidArgumentError(absl::StrCat(
          "server.max_connections: must be at most 100000000 (got ", server.max_connections(),
          ")"));
    }
    s.max_connections = static_cast<int64_t>(server.max_connections());
  }

  // Grace: --shutdown-grace > SHUTDOWN_GRACE_PERIOD_SECS > server.shutdown_grace_ms > 30 s.
  if (flags.shutdown_grace_seconds) {
    const double g = *flags.shutdown_grace_seconds;
    if (!std::isfinite(g) || g < 0 || g > 86400) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--shutdown-grace: want a number of seconds between 0 and 86400 (got ", g, ")"));
    }
    s.shutdown_grace_seconds = g;
  } else if (auto env_grace = env("SHUTDOWN_GRACE_PERIOD_SECS")) {
    absl::StatusOr<double> g = GraceFromText("SHUTDOWN_GRACE_PERIOD_SECS", *env_grace);
    if (!g.ok()) return g.status();
    s.shutdown_grace_seconds = *g;
  } else if (server.shutdown_grace_ms() != 0) {
    s.shutdown_grace_seconds = server.shutdown_grace_ms() / 1000.0;
  }

  // Drain pace: --drain-close-rate > WSGATE_DRAIN_CLOSE_RATE > server.drain_close_rate > 1000.
  if (flags.drain_close_rate) {
    absl::StatusOr<int64_t> r = DrainRateFrom("--drain-close-rate", *flags.drain_close_rate);
    if (!r.ok()) return r.status();
    s.drain_close_rate = *r;
  } else if (auto env_rate = env("WSGATE_DRAIN_CLOSE_RATE")) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(*env_rate, &v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "WSGATE_DRAIN_CLOSE_RATE: not a whole number of closes per second (\"", *env_rate,
          "\")"));
    }
    absl::StatusOr<int64_t> r = DrainRateFrom("WSGATE_DRAIN_CLOSE_RATE", v);
    if (!r.ok()) return r.status();
    s.drain_close_rate = *r;
  } else if (server.has_drain_close_rate()) {
    absl::StatusOr<int64_t> r = DrainRateFrom("server.drain_close_rate", server.drain_close_rate());
    if (!r.ok()) return r.status();
    s.drain_close_rate = *r;
  }

  if (absl::Status st = ResolveStoreUrl(flags, env, &s.store_url); !st.ok()) return st;

  // Message bus (seed 004's name): REDIS_URL > server.redis_url > in-memory.
  const char* redis_source = "server.redis_url";
  if (auto env_redis = env("REDIS_URL"); env_redis && !env_redis->empty()) {
    s.redis_url = *env_redis;
    redis_source = "REDIS_URL";
  } else {
    s.redis_url = server.redis_url();
  }
  if (!s.redis_url.empty()) {
    if (absl::Status r = dataplane::CheckRedisUrl(s.redis_url); !r.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(redis_source, ": ", r.message()));
    }
  }

  // Admin tokens and UI files: flag > environment > none / beside the binary.
  if (flags.admin_token_file) {
    if (flags.admin_token_file->empty()) {
      return absl::InvalidArgumentError("--admin-token-file: must not be empty");
    }
    s.admin_token_file = *flags.admin_token_file;
  } else if (auto env_tokens = env("WSGATE_ADMIN_TOKEN_FILE")) {
    s.admin_token_file = *env_tokens;
  }
  if (flags.admin_ui_dir) {
    s.admin_ui_dir = *flags.admin_ui_dir;
  } else if (auto env_ui = env("WSGATE_ADMIN_UI_DIR")) {
    s.admin_ui_dir = *env_ui;
  }

  // Control-plane TLS: both files or neither; mutual TLS only on top of TLS.
  if (absl::Status t = ControlTlsFile(flags.control_tls_cert, "--control-tls-cert", env,
                                      "WSGATE_CONTROL_TLS_CERT", server.control_tls_cert(),
                                      "server.control_tls_cert", &s.control_tls_cert,
                                      &s.control_tls_cert_source);
      !t.ok()) {
    return t;
  }
  if (absl::Status t = ControlTlsFile(flags.control_tls_key, "--control-tls-key", env,
                                      "WSGATE_CONTROL_TLS_KEY", server.control_tls_key(),
                                      "server.control_tls_key", &s.control_tls_key,
                                      &s.control_tls_key_source);
      !t.ok()) {
    return t;
  }
  if (absl::Status t = ControlTlsFile(flags.control_client_ca, "--control-client-ca", env,
                                      "WSGATE_CONTROL_CLIENT_CA", server.control_client_ca(),
                                      "server.control_client_ca", &s.control_client_ca,
                                      &s.control_client_ca_source);
      !t.ok()) {
    return t;
  }
  if (s.control_tls_cert.empty() != s.control_tls_key.empty()) {
    return s.control_tls_cert.empty()
               ? absl::InvalidArgumentError(absl::StrCat(
                     s.control_tls_key_source,
                     ": a TLS key needs its certificate (--control-tls-cert)"))
               : absl::InvalidArgumentError(absl::StrCat(
                     s.control_tls_cert_source,
                     ": a TLS certificate needs its key (--control-tls-key)"));
  }
  if (!s.control_client_ca.empty() && s.control_tls_cert.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.control_client_ca_source,
                     ": mutual TLS needs --control-tls-cert and --control-tls-key"));
  }

  if (absl::Status r = ResolveRole(flags, env, &s); !r.ok()) return r;

  // Environment only (the seeds' names), read here so that the data plane reads none.
  s.ws_ping_interval = SecondsFromEnvironment(env, "WS_PING_INTERVAL_SECS", 30, &s.warnings);
  s.ws_ping_timeout = SecondsFromEnvironment(env, "WS_PING_TIMEOUT_SECS", 10, &s.warnings);
  s.websocket_debug = TrueFromEnvironment(env, "WEBSOCKET_DEBUG");
  return s;
}

}  // namespace wsgate::controlplane
