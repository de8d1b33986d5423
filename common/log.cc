#include "common/log.h"

#include <spdlog/formatter.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/text/redact.h"

namespace wsgate::common {
namespace {

constexpr char kLoggerName[] = "wsgate";

void AppendJsonEscaped(spdlog::string_view_t in, spdlog::memory_buf_t& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out.append(std::string_view("\\\""));
        break;
      case '\\':
        out.append(std::string_view("\\\\"));
        break;
      case '\n':
        out.append(std::string_view("\\n"));
        break;
      case '\r':
        out.append(std::string_view("\\r"));
        break;
      case '\t':
        out.append(std::string_view("\\t"));
        break;
      case '\b':
        out.append(std::string_view("\\b"));
        break;
      case '\f':
        out.append(std::string_view("\\f"));
        break;
      default:
        if (c < 0x20) {
          const char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
          out.append(esc, esc + 6);
        } else {
          // Bytes >= 0x80 pass through: messages are UTF-8, which JSON carries as is.
          out.push_back(ch);
        }
    }
  }
}

// One JSON object per line:
// {"ts":"2026-11-22T01:02:03.456Z","level":"info","logger":"wsgate","msg":"..."}
// A formatter rather than a pattern flag because the whole line, not one field, must be valid JSON.
class JsonLineFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const auto since_epoch = msg.time.time_since_epoch();
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch - secs).count();
    const std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char ts[40];
    const int n = std::snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                tm.tm_sec, static_cast<int>(millis));

    dest.append(std::string_view("{\"ts\":\""));
    dest.append(ts, ts + n);
    dest.append(std::string_view("\",\"level\":\""));
    const auto level = spdlog::level::to_string_view(msg.level);
    dest.append(level.data(), level.data() + level.size());
    dest.append(std::string_view("\",\"logger\":\""));
    AppendJsonEscaped(msg.logger_name, dest);
    dest.append(std::string_view("\",\"msg\":\""));
    AppendJsonEscaped(msg.payload, dest);
    dest.append(std::string_view("\"}\n"));
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonLineFormatter>();
  }
};

// Every line, whatever its level and whoever logs it, has its secrets replaced before the real
// formatter sees it (common/text/redact.h): tokens, credential headers and JWTs never reach a log.
class RedactingFormatter final : public spdlog::formatter {
 public:
  explicit RedactingFormatter(std::unique_ptr<spdlog::formatter> inner) : inner_(std::move(inner)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    const std::string redacted = text::RedactSecrets(payload);
    if (redacted == payload) {
      inner_->format(msg, dest);
      return;
    }
    spdlog::details::log_msg copy = msg;
    copy.payload = spdlog::string_view_t(redacted.data(), redacted.size());
    inner_->format(copy, dest);
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<RedactingFormatter>(inner_->clone());
  }

 private:
  std::unique_ptr<spdlog::formatter> inner_;
};

absl::StatusOr<spdlog::level::level_enum> ParseLevel(std::string_view level) {
  if (level == "trace") return spdlog::level::trace;
  if (level == "debug") return spdlog::level::debug;
  if (level == "info") return spdlog::level::info;
  if (level == "warn" || level == "warning") return spdlog::level::warn;
  if (level == "error" || level == "err") return spdlog::level::err;
  if (level == "critical") return spdlog::level::critical;
  if (level == "off") return spdlog::level::off;
  return absl::InvalidArgumentError(
      // Debian's Abseil has its own string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0): go through
      // std::string.
      absl::StrCat("unknown log level \"", std::string(level),
                   "\" (want trace, debug, info, warn, error, critical or off)"));
}

}  // namespace

absl::Status InitLogging(LogFormat format, std::string_view level) {
  // Precedence: the caller's level (a flag), then WSGATE_LOG_LEVEL, then info.
  std::string effective(level);
  std::string source = "--log-level";
  if (effective.empty()) {
    const char* env = std::getenv("WSGATE_LOG_LEVEL");
    if (env != nullptr && *env != '\0') {
      effective = env;
      source = "WSGATE_LOG_LEVEL";
    } else {
      effective = "info";
    }
  }
  absl::StatusOr<spdlog::level::level_enum> parsed = ParseLevel(effective);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", parsed.status().message()));
  }

  // stderr, unbuffered by the sink's own mutex: logs stay out of the way of --check-config's
  // stdout, and a crash loses nothing.
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  if (format == LogFormat::kJson) {
    sink->set_formatter(std::make_unique<RedactingFormatter>(std::make_unique<JsonLineFormatter>()));
  } else {
    sink->set_formatter(std::make_unique<RedactingFormatter>(
        std::make_unique<spdlog::pattern_formatter>("[%Y-%m-%d %H:%M:%S.%e] [%n] [%l] %v")));
  }
  auto logger = std::make_shared<spdlog::logger>(kLoggerName, std::move(sink));
  logger->set_level(*parsed);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace wsgate::common
