// HttpClient against real local servers on 127.0.0.1:0 (plain and TLS). The client runs on the
// test thread's io_context, as it would on a worker's.
#include "dataplane/outbound/http_client.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "dataplane/protocol/http_bridge_codec.h"
#include "test_http_server.h"

namespace wsgate::dataplane::outbound {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using testing::TestHttpServer;

std::shared_ptr<OutboundRouteSettings> Route(std::vector<std::string> targets,
                                             std::vector<std::string> ranges) {
  auto policy = TargetPolicy::Create(targets, ranges);
  EXPECT_TRUE(policy.ok()) << policy.status();
  auto route = std::make_shared<OutboundRouteSettings>();
  route->policy = *std::move(policy);
  auto tls = MakeTlsContext({});
  EXPECT_TRUE(tls.ok());
  route->tls = *tls;
  return route;
}

// Loopback allowed explicitly: these tests talk to 127.0.0.1.
std::shared_ptr<OutboundRouteSettings> LocalRoute() {
  return Route({"http://127.0.0.1:*", "https://127.0.0.1:*", "https://localhost:*"}, {"loopback"});
}

class HttpClientTest : public ::testing::Test {
 protected:
  OutboundResult Fetch(const std::shared_ptr<const OutboundRouteSettings>& route,
                       OutboundRequest req) {
    std::optional<OutboundResult> result;
    client_.Send(route, std::move(req), [&](OutboundResult r) { result = std::move(r); });
    RunUntil([&] { return result.has_value(); });
    if (!result) return OutboundError{HttpClientError::kUpstreamTimeout, "test deadline", {}};
    return *std::move(result);
  }

  OutboundResult Get(const std::shared_ptr<const OutboundRouteSettings>& route,
                     const std::string& url) {
    OutboundRequest req;
    req.url = url;
    req.timeout = 10s;
    return Fetch(route, std::move(req));
  }

  // Runs the io_context until `done` holds, bounded so that a hang fails instead of blocking.
  template <class Pred>
  void RunUntil(Pred done) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (!done() && std::chrono::steady_clock::now() < deadline) {
      ioc_.restart();
      ioc_.run_one_for(100ms);
    }
    ASSERT_TRUE(done()) << "no completion within the test deadline";
  }

  static OutboundResponse Ok(const OutboundResult& r) {
    if (auto* e = std::get_if<OutboundError>(&r)) {
      ADD_FAILURE() << HttpClientErrorName(e->code) << ": " << e->message;
      return {};
    }
    return std::get<OutboundResponse>(r);
  }

  static OutboundError Err(const OutboundResult& r) {
    if (auto* e = std::get_if<OutboundError>(&r)) return *e;
    ADD_FAILURE() << "expected an error, got status " << std::get<OutboundResponse>(r).status_code;
    return {HttpClientError::kUpstreamUnreachable, "", {}};
  }

  std::string Url(const TestHttpServer& s, const std::string& path, const char* scheme = "http",
                  const char* host = "127.0.0.1") {
    return std::string(scheme) + "://" + host + ":" + std::to_string(s.port()) + path;
  }

  asio::io_context ioc_{1};
  HttpClient client_{ioc_, HttpClientOptions{}};
};

std::string Header(const OutboundResponse& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (strcasecmp(n.c_str(), name.c_str()) == 0) return v;
  }
  return "";
}

TEST_F(HttpClientTest, JsonTextBinaryAnd500) {
  TestHttpServer server;
  auto route = LocalRoute();
  auto json = Ok(Get(route, Url(server, "/json")));
  EXPECT_EQ(json.status_code, 200);
  EXPECT_EQ(json.body, R"({"ok":true,"n":[1,2,3]})");
  EXPECT_EQ(Header(json, "Content-Type"), "application/json");

  auto text = Ok(Get(route, Url(server, "/text")));
  EXPECT_EQ(text.body, "hello");
  auto bin = Ok(Get(route, Url(server, "/binary")));
  ASSERT_EQ(bin.body.size(), 256u);
  EXPECT_EQ(static_cast<unsigned char>(bin.body[255]), 255);
  // The codec turns it into the seed's answer.
  protocol::BridgeHttpResponse for_codec{bin.status_code, bin.headers, bin.body};
  EXPECT_NE(protocol::BuildBridgeResponse(for_codec, std::nullopt).find("\"base64\""),
            std::string::npos);

  auto err = Ok(Get(route, Url(server, "/status/500")));
  EXPECT_EQ(err.status_code, 500);
  EXPECT_EQ(err.body, "boom");
}

TEST_F(HttpClientTest, PostSendsJsonBodyAndHeaders) {
  TestHttpServer server;
  OutboundRequest req;
  req.method = protocol::HttpMethod::kPost;
  req.url = Url(server, "/echo?a=1");
  req.body = R"({"key":"value"})";
  req.has_body = true;
  req.headers = {{"Authorization", "Bearer t"}, {"X-Test", "yes"}};
  auto r = Ok(Fetch(LocalRoute(), req));
  EXPECT_EQ(r.status_code, 200);
  EXPECT_NE(r.body.find(R"("method":"POST")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("target":"/echo?a=1")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("content_type":"application/json")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("authorization":"Bearer t")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("x_test":"yes")"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find(R"("body_size":15)"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("\"host\":\"127.0.0.1:" + std::to_string(server.port())), std::string::npos)
      << r.body;
}

TEST_F(HttpClientTest, HeadHasNoBody) {
  TestHttpServer server;
  OutboundRequest req;
  req.method = protocol::HttpMethod::kHead;
  req.url = Url(server, "/json");
  auto r = Ok(Fetch(LocalRoute(), req));
  EXPECT_EQ(r.status_code, 200);
  EXPECT_TRUE(r.body.empty());
  // The connection is still usable after a HEAD (no body bytes were left behind).
  EXPECT_EQ(Ok(Get(LocalRoute(), Url(server, "/text"))).body, "hello");
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(HttpClientTest, KeepAliveReusesOneConnection) {
  TestHttpServer server;
  auto route = LocalRoute();
  for (int i = 0; i < 4; ++i) {
    auto r = Ok(Get(route, Url(server, "/json")));
    EXPECT_EQ(r.reused_connection, i > 0) << i;
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.requests(), 4);
  EXPECT_EQ(client_.connections_opened(), 1u);
  EXPECT_EQ(client_.connections_reused(), 3u);
  EXPECT_EQ(client_.idle_connections(), 1u);
  // Connection: close is honoured: the next request opens a new connection.
  EXPECT_EQ(Ok(Get(route, Url(server, "/close"))).body, "bye");
  EXPECT_EQ(client_.idle_connections(), 0u);
  EXPECT_EQ(Ok(Get(route, Url(server, "/text"))).body, "hello");
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(HttpClientTest, IdleConnectionExpires) {
  TestHttpServer server;
  HttpClientOptions options;
  options.idle_timeout = 50ms;
  HttpClient client(ioc_, options);
  std::optional<OutboundResult> result;
  OutboundRequest req;
  req.url = Url(server, "/json");
  client.Send(LocalRoute(), req, [&](OutboundResult r) { result = std::move(r); });
  RunUntil([&] { return result.has_value(); });
  EXPECT_EQ(client.idle_connections(), 1u);
  // The sweep closes it: wait for that, not for a fixed time.
  RunUntil([&] { return client.idle_connections() == 0; });
}

TEST_F(HttpClientTest, ServerClosedIdleConnectionIsNotReused) {
  auto route = LocalRoute();
  std::string url;
  {
    TestHttpServer first;
    url = Url(first, "/json");
    Ok(Get(route, url));
    EXPECT_EQ(client_.idle_connections(), 1u);
  }  // the server is gone: its kept-alive connection is closed
  auto e = Err(Get(route, url));
  EXPECT_EQ(e.code, HttpClientError::kUpstreamUnreachable) << e.message;
  EXPECT_EQ(client_.connections_reused(), 0u);
}

TEST_F(HttpClientTest, LoopbackRefusedUnlessAllowed) {
  TestHttpServer server;
  auto strict =
      Route({"http://127.0.0.1:*", "http://localhost:*", "http://[::ffff:127.0.0.1]:*"}, {});
  auto e = Err(Get(strict, Url(server, "/json")));
  EXPECT_EQ(e.code, HttpClientError::kTargetNotAllowed);
  EXPECT_EQ(e.refusal, RefusalReason::kLoopback);
  EXPECT_STREQ(HttpClientErrorName(e.code), "TARGET_NOT_ALLOWED");
  // A name that resolves to loopback is refused after resolution.
  e = Err(Get(strict, Url(server, "/json", "http", "localhost")));
  EXPECT_EQ(e.code, HttpClientError::kTargetNotAllowed) << e.message;
  EXPECT_EQ(e.refusal, RefusalReason::kLoopback);
  // The IPv4-mapped spelling of loopback too.
  e = Err(Get(strict, Url(server, "/json", "http", "[::ffff:127.0.0.1]")));
  EXPECT_EQ(e.refusal, RefusalReason::kLoopback);
  EXPECT_EQ(server.connections(), 0);
  // With loopback allowed, the same name works.
  EXPECT_EQ(Ok(Get(Route({"http://localhost:*"}, {"loopback"}),
                   Url(server, "/json", "http", "localhost")))
                .status_code,
            200);
}

TEST_F(HttpClientTest, NotOnTheAllowList) {
  TestHttpServer server;
  auto route = Route({"http://127.0.0.1:1/only"}, {"loopback"});
  auto e = Err(Get(route, Url(server, "/json")));
  EXPECT_EQ(e.code, HttpClientError::kTargetNotAllowed);
  EXPECT_EQ(e.refusal, RefusalReason::kHost);
  e = Err(Get(route, "http://user@127.0.0.1:1/only"));
  EXPECT_EQ(e.refusal, RefusalReason::kBadUrl);
  e = Err(Get(route, "ws://127.0.0.1:1/only"));
  EXPECT_EQ(e.refusal, RefusalReason::kScheme);
  EXPECT_EQ(server.connections(), 0);
}

TEST_F(HttpClientTest, TimeoutWhenUpstreamIsSlow) {
  TestHttpServer server;
  OutboundRequest req;
  req.url = Url(server, "/slow");
  req.timeout = 300ms;
  auto e = Err(Fetch(LocalRoute(), req));
  EXPECT_EQ(e.code, HttpClientError::kUpstreamTimeout) << e.message;
  EXPECT_STREQ(HttpClientErrorName(e.code), "UPSTREAM_TIMEOUT");
  EXPECT_EQ(client_.in_flight(), 0u);
}

TEST_F(HttpClientTest, UnreachableClosedPort) {
  uint16_t port;
  {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed again: nothing listens there now
  auto e = Err(Get(LocalRoute(), "http://127.0.0.1:" + std::to_string(port) + "/"));
  EXPECT_EQ(e.code, HttpClientError::kUpstreamUnreachable) << e.message;
  EXPECT_STREQ(HttpClientErrorName(e.code), "UPSTREAM_UNREACHABLE");
}

TEST_F(HttpClientTest, ResponseAndRequestSizeCaps) {
  TestHttpServer server;
  auto route = LocalRoute();
  route->max_response_bytes = 1 << 20;
  auto e = Err(Get(route, Url(server, "/huge")));
  EXPECT_EQ(e.code, HttpClientError::kResponseTooLarge) << e.message;
  EXPECT_STREQ(HttpClientErrorName(e.code), "RESPONSE_TOO_LARGE") << e.message;
  e = Err(Get(route, Url(server, "/huge/chunked")));
  EXPECT_EQ(e.code, HttpClientError::kResponseTooLarge) << e.message;
  route->max_response_bytes = 4 << 20;
  EXPECT_EQ(Ok(Get(route, Url(server, "/huge/chunked"))).body.size(), 2u << 20);
  EXPECT_EQ(Ok(Get(route, Url(server, "/huge"))).body.size(), 2u << 20);

  OutboundRequest big;
  big.method = protocol::HttpMethod::kPost;
  big.url = Url(server, "/echo");
  big.body = std::string((1 << 20) + 1, 'a');
  big.has_body = true;
  e = Err(Fetch(route, big));
  EXPECT_EQ(e.code, HttpClientError::kRequestTooLarge);
  EXPECT_EQ(server.requests(), 4);  // the oversized request never left
}

TEST_F(HttpClientTest, RedirectsReturnedUnlessFollowedThenEachHopChecked) {
  TestHttpServer server;
  auto route = LocalRoute();
  auto r = Ok(Get(route, Url(server, "/redirect/json")));
  EXPECT_EQ(r.status_code, 302);
  EXPECT_EQ(Header(r, "Location"), "/json");

  route->follow_redirects = true;
  r = Ok(Get(route, Url(server, "/redirect/json")));
  EXPECT_EQ(r.status_code, 200);
  EXPECT_EQ(r.redirects, 1);
  EXPECT_EQ(r.final_url, Url(server, "/json"));

  auto e = Err(Get(route, Url(server, "/redirect/away")));
  EXPECT_EQ(e.code, HttpClientError::kTargetNotAllowed);
  EXPECT_EQ(e.refusal, RefusalReason::kHost);

  // A loop stops after max_redirects and the last 3xx comes back.
  route->max_redirects = 3;
  r = Ok(Get(route, Url(server, "/redirect/loop")));
  EXPECT_EQ(r.status_code, 302);
  EXPECT_EQ(r.redirects, 3);
}

TEST_F(HttpClientTest, CancelAndDestroyNeverCallBack) {
  TestHttpServer server;
  bool called = false;
  OutboundRequest req;
  req.url = Url(server, "/slow");
  uint64_t id = client_.Send(LocalRoute(), req, [&](OutboundResult) { called = true; });
  EXPECT_EQ(client_.in_flight(), 1u);
  client_.Cancel(id);
  EXPECT_EQ(client_.in_flight(), 0u);
  {
    auto other = std::make_unique<HttpClient>(ioc_);
    other->Send(LocalRoute(), req, [&](OutboundResult) { called = true; });
    ioc_.poll();
  }
  // Let every aborted handler run: none may call back.
  ioc_.restart();
  ioc_.poll();
  EXPECT_FALSE(called);
}

// HTTPS with a CA generated for the test by the openssl CLI.
class HttpsTest : public HttpClientTest {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/wsgate-outbound-tls-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ + "/ext.cnf") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    std::string d = dir_;
    std::string cmd =
        "cd " + d +
        " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
        "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=wsgate-test-ca "
        "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
        ">/dev/null 2>&1 && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout leaf.key -out leaf.csr -subj /CN=localhost >/dev/null 2>&1 && openssl x509 -req "
        "-in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 "
        "-extfile ext.cnf >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  static std::shared_ptr<asio::ssl::context> ServerContext() {
    auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
    ctx->use_certificate_chain_file(dir_ + "/leaf.pem");
    ctx->use_private_key_file(dir_ + "/leaf.key", asio::ssl::context::pem);
    return ctx;
  }

  std::shared_ptr<OutboundRouteSettings> TlsRoute(TlsSettings settings) {
    auto route = LocalRoute();
    auto ctx = MakeTlsContext(settings);
    EXPECT_TRUE(ctx.ok()) << ctx.status();
    route->tls = *ctx;
    return route;
  }

  static inline std::string dir_;
};

TEST_F(HttpsTest, VerifiedWithTheRouteCaFile) {
  TestHttpServer server(ServerContext());
  auto route = TlsRoute({TlsSettings::Verify::kCaFile, dir_ + "/ca.pem"});
  auto r = Ok(Get(route, Url(server, "/json", "https")));
  EXPECT_EQ(r.status_code, 200);
  EXPECT_EQ(r.body, R"({"ok":true,"n":[1,2,3]})");
  // By name too (SNI + host name check against the DNS SAN), and kept alive per origin.
  r = Ok(Get(route, Url(server, "/text", "https", "localhost")));
  EXPECT_EQ(r.body, "hello");
  r = Ok(Get(route, Url(server, "/text", "https", "localhost")));
  EXPECT_TRUE(r.reused_connection);
}

TEST_F(HttpsTest, FailsAgainstTheSystemStore) {
  TestHttpServer server(ServerContext());
  auto route = TlsRoute({TlsSettings::Verify::kSystemStore, ""});
  auto e = Err(Get(route, Url(server, "/json", "https")));
  EXPECT_EQ(e.code, HttpClientError::kUpstreamUnreachable);
  EXPECT_NE(e.message.find("certificate verify failed"), std::string::npos) << e.message;
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(HttpsTest, FailsWithAnotherCaFile) {
  TestHttpServer server(ServerContext());
  // The leaf certificate is not a CA: nothing chains to it.
  auto route = TlsRoute({TlsSettings::Verify::kCaFile, dir_ + "/leaf.pem"});
  auto e = Err(Get(route, Url(server, "/json", "https")));
  EXPECT_EQ(e.code, HttpClientError::kUpstreamUnreachable) << e.message;
  EXPECT_EQ(server.requests(), 0);
}

TEST_F(HttpsTest, WorksWithVerificationOff) {
  TestHttpServer server(ServerContext());
  auto route = TlsRoute({TlsSettings::Verify::kOff, ""});
  EXPECT_EQ(Ok(Get(route, Url(server, "/json", "https"))).status_code, 200);
}

// Route changes build a context per outbound route: the system bundle must be parsed once per
// process, not once per route per change.
TEST_F(HttpsTest, SystemStoreContextIsSharedAndCaFileContextsAreNot) {
  auto a = MakeTlsContext({});
  auto b = MakeTlsContext({TlsSettings::Verify::kSystemStore, ""});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_TRUE(VerifiesPeer(**a));
  TlsSettings ca{TlsSettings::Verify::kCaFile, dir_ + "/ca.pem"};
  auto c = MakeTlsContext(ca);
  auto d = MakeTlsContext(ca);
  ASSERT_TRUE(c.ok() && d.ok()) << c.status();
  EXPECT_NE(c->get(), d->get());
  EXPECT_NE(c->get(), a->get());
}

TEST(TlsContext, MissingCaFileIsAnError) {
  EXPECT_FALSE(MakeTlsContext({TlsSettings::Verify::kCaFile, "/nonexistent/ca.pem"}).ok());
  EXPECT_FALSE(MakeTlsContext({TlsSettings::Verify::kCaFile, ""}).ok());
}

}  // namespace
}  // namespace wsgate::dataplane::outbound
