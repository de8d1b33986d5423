// RouteService, InventoryService, health and reflection through a real grpc::Server on an
// ephemeral port, a real ConfigStore and the generated stubs over a real channel.
#include <gmock/gmock.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/security/credentials.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "controlplane/config/config_store.h"
#include "controlplane/grpc/grpc_server.h"
#include "controlplane/grpc/inventory_service.h"
#include "controlplane/grpc/route_service.h"
#include "dataplane/data_plane.h"
#include "dataplane/stats/route_stats.h"
#include "wsgate/v1/inventory_service.grpc.pb.h"
#include "wsgate/v1/route_service.grpc.pb.h"

namespace wsgate::controlplane {
namespace {

using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

// The data plane as the inventory sees it: only applied_version() and workers() are read.
class FakeDataPlane final : public dataplane::DataPlane {
 public:
  uint16_t port() const override { return 0; }
  int workers() const override { return 3; }
  void ApplySnapshot(dataplane::SnapshotPtr) override {}
  uint64_t applied_version() const override { return applied; }
  void StopAccepting() override {}
  void CloseAll(uint16_t, const std::string&) override {}
  void Stop(std::chrono::steady_clock::time_point) override {}

  uint64_t applied = 11;
};

wsgate::v1::Route EchoRoute(const std::string& name, const std::string& path) {
  wsgate::v1::Route r;
  r.set_name(name);
  r.set_path(path);
  r.mutable_echo();
  return r;
}

std::chrono::system_clock::time_point Deadline() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

class GrpcServicesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    wsgate::v1::Config config;
    *config.add_routes() = EchoRoute("echo", "/echo");
    auto store = ConfigStore::Open(config, "", &stats_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    store_->SetListener([this](dataplane::SnapshotPtr s) { published_version_ = s->version; });

    route_service_ = std::make_unique<RouteServiceImpl>(store_.get());
    inventory_service_ =
        std::make_unique<InventoryServiceImpl>(store_.get(), &data_plane_, &stats_, "9.9.9");
    GrpcServerOptions options;
    options.listen_address = "127.0.0.1";
    options.port = 0;
    auto server = GrpcServer::Start(options, {route_service_.get(), inventory_service_.get()});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    ASSERT_NE(server_->port(), 0);

    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    routes_ = wsgate::v1::RouteService::NewStub(channel_);
    inventory_ = wsgate::v1::InventoryService::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
  }

  grpc::Status Put(const wsgate::v1::PutRouteRequest& req, wsgate::v1::PutRouteResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    return routes_->PutRoute(&ctx, req, resp);
  }
  grpc::Status Put(const wsgate::v1::Route& route, wsgate::v1::PutRouteResponse* resp) {
    wsgate::v1::PutRouteRequest req;
    *req.mutable_route() = route;
    return Put(req, resp);
  }
  grpc::Status Get(const std::string& name, wsgate::v1::Route* out) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    wsgate::v1::GetRouteRequest req;
    req.set_name(name);
    return routes_->GetRoute(&ctx, req, out);
  }
  wsgate::v1::ListRoutesResponse List() {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    wsgate::v1::ListRoutesResponse resp;
    grpc::Status s = routes_->ListRoutes(&ctx, {}, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }
  grpc::Status Delete(const std::string& name, std::optional<uint64_t> expected,
                      wsgate::v1::DeleteRouteResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(Deadline());
    wsgate::v1::DeleteRouteRequest req;
    req.set_name(name);
    if (expected) req.set_expected_version(*expected);
    return routes_->DeleteRoute(&ctx, req, resp);
  }
  std::vector<std::string> Names() {
    std::vector<std::string> names;
    const wsgate::v1::ListRoutesResponse list = List();
    for (const auto& r : list.routes()) names.push_back(r.name());
    return names;
  }

  // One raw call through a generic stub (for services we have no generated stubs for).
  // Returns the serialized response, or "" with `status` set.
  std::string RawUnary(const std::string& method, const std::string& request, grpc::Status* status);
  std::string RawBidiOne(const std::string& method, const std::string& request,
                         grpc::Status* status);

  dataplane::StatsRegistry stats_{2};
  std::unique_ptr<ConfigStore> store_;
  uint64_t published_version_ = 0;
  FakeDataPlane data_plane_;
  std::unique_ptr<RouteServiceImpl> route_service_;
  std::unique_ptr<InventoryServiceImpl> inventory_service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<wsgate::v1::RouteService::Stub> routes_;
  std::unique_ptr<wsgate::v1::InventoryService::Stub> inventory_;
};

bool Await(grpc::CompletionQueue* cq, void* tag) {
  void* got = nullptr;
  bool ok = false;
  const auto st = cq->AsyncNext(&got, &ok, Deadline());
  return st == grpc::CompletionQueue::GOT_EVENT && got == tag && ok;
}

grpc::ByteBuffer ToBuffer(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

std::string FromBuffer(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices)
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

std::string GrpcServicesTest::RawUnary(const std::string& method, const std::string& request,
                                       grpc::Status* status) {
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  const grpc::ByteBuffer req = ToBuffer(request);
  auto call = stub.PrepareUnaryCall(&ctx, method, req, &cq);
  call->StartCall();
  grpc::ByteBuffer resp;
  int tag = 1;
  call->Finish(&resp, status, &tag);
  EXPECT_TRUE(Await(&cq, &tag));
  cq.Shutdown();
  return status->ok() ? FromBuffer(resp) : "";
}

std::string GrpcServicesTest::RawBidiOne(const std::string& method, const std::string& request,
                                         grpc::Status* status) {
  grpc::GenericStub stub(channel_);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  auto call = stub.PrepareCall(&ctx, method, &cq);
  int start = 1, write = 2, done = 3, read = 4, finish = 5;
  call->StartCall(&start);
  EXPECT_TRUE(Await(&cq, &start));
  call->Write(ToBuffer(request), &write);
  EXPECT_TRUE(Await(&cq, &write));
  call->WritesDone(&done);
  EXPECT_TRUE(Await(&cq, &done));
  grpc::ByteBuffer resp;
  call->Read(&resp, &read);
  const bool got = Await(&cq, &read);
  call->Finish(status, &finish);
  EXPECT_TRUE(Await(&cq, &finish));
  cq.Shutdown();
  return got ? FromBuffer(resp) : "";
}

TEST_F(GrpcServicesTest, ListRoutesReturnsTheStoreAndItsVersion) {
  const wsgate::v1::ListRoutesResponse resp = List();
  ASSERT_EQ(resp.routes_size(), 1);
  EXPECT_EQ(resp.routes(0).name(), "echo");
  EXPECT_EQ(resp.routes(0).path(), "/echo");
  EXPECT_EQ(resp.config_version(), store_->version());
}

TEST_F(GrpcServicesTest, PutGetListDelete) {
  wsgate::v1::PutRouteResponse put;
  ASSERT_TRUE(Put(EchoRoute("added", "/added/{id}"), &put).ok());
  EXPECT_TRUE(put.created());
  EXPECT_EQ(put.route().name(), "added");
  EXPECT_EQ(put.route().version(), put.config_version());
  EXPECT_EQ(put.config_version(), store_->version());
  EXPECT_EQ(published_version_, put.config_version());  // handed to the data plane

  wsgate::v1::Route got;
  ASSERT_TRUE(Get("added", &got).ok());
  EXPECT_EQ(got.path(), "/added/{id}");
  EXPECT_TRUE(got.has_echo());
  EXPECT_THAT(Names(), UnorderedElementsAre("echo", "added"));

  // Replace without a version check.
  ASSERT_TRUE(Put(EchoRoute("added", "/added2"), &put).ok());
  EXPECT_FALSE(put.created());
  ASSERT_TRUE(Get("added", &got).ok());
  EXPECT_EQ(got.path(), "/added2");

  wsgate::v1::DeleteRouteResponse del;
  ASSERT_TRUE(Delete("added", std::nullopt, &del).ok());
  EXPECT_GT(del.config_version(), put.config_version());
  EXPECT_EQ(published_version_, del.config_version());
  EXPECT_EQ(Get("added", &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(Names(), UnorderedElementsAre("echo"));
}

TEST_F(GrpcServicesTest, PutWithoutRouteIsInvalidArgument) {
  wsgate::v1::PutRouteResponse put;
  const grpc::Status s = Put(wsgate::v1::PutRouteRequest(), &put);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "route: required");
}

TEST_F(GrpcServicesTest, InvalidRoutesAreRefusedNamingTheField) {
  const uint64_t version = store_->version();
  struct Case {
    wsgate::v1::Route route;
    std::string field;
  };
  std::vector<Case> cases;
  cases.push_back({EchoRoute("bad", "no-slash"), "route.path"});
  cases.push_back({EchoRoute("", "/x"), "route.name"});
  cases.push_back({EchoRoute("dup", "/echo"), "route.path"});  // same path as "echo"
  {
    wsgate::v1::Route r = EchoRoute("bad", "/bad");
    r.clear_echo();
    r.mutable_websocket()->add_upstreams("http://127.0.0.1:1/");
    cases.push_back({r, "route.websocket.upstreams[0]"});
  }
  {
    wsgate::v1::Route r = EchoRoute("bad", "/bad");
    r.clear_echo();
    cases.push_back({r, "route.kind"});
  }
  for (const Case& c : cases) {
    wsgate::v1::PutRouteResponse put;
    const grpc::Status s = Put(c.route, &put);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.field;
    EXPECT_THAT(s.error_message(), HasSubstr(c.field));
  }
  EXPECT_EQ(store_->version(), version);  // nothing applied
  EXPECT_THAT(Names(), UnorderedElementsAre("echo"));
}

TEST_F(GrpcServicesTest, ExpectedVersionMismatchIsFailedPrecondition) {
  wsgate::v1::PutRouteRequest req;
  *req.mutable_route() = EchoRoute("v", "/v");
  req.set_expected_version(0);  // must not exist yet
  wsgate::v1::PutRouteResponse created;
  ASSERT_TRUE(Put(req, &created).ok());

  wsgate::v1::PutRouteResponse put;
  EXPECT_EQ(Put(req, &put).error_code(), grpc::StatusCode::FAILED_PRECONDITION);  // exists now
  req.set_expected_version(created.route().version() + 5);
  EXPECT_EQ(Put(req, &put).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  req.set_expected_version(created.route().version());
  req.mutable_route()->set_path("/v2");
  ASSERT_TRUE(Put(req, &put).ok());
  EXPECT_FALSE(put.created());
  EXPECT_GT(put.route().version(), created.route().version());

  wsgate::v1::DeleteRouteResponse del;
  EXPECT_EQ(Delete("v", created.route().version(), &del).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(Delete("v", put.route().version(), &del).ok());
}

TEST_F(GrpcServicesTest, MissingRoutesAreNotFound) {
  wsgate::v1::Route got;
  grpc::Status s = Get("nope", &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(s.error_message(), HasSubstr("nope"));
  wsgate::v1::DeleteRouteResponse del;
  EXPECT_EQ(Delete("nope", std::nullopt, &del).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServicesTest, EmptyNamesAreInvalidArgument) {
  wsgate::v1::Route got;
  grpc::Status s = Get("", &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "name: required");
  wsgate::v1::DeleteRouteResponse del;
  s = Delete("", std::nullopt, &del);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "name: required");
}

TEST_F(GrpcServicesTest, InventoryCountsConnectionsByRoute) {
  dataplane::RouteStats* echo = stats_.ForRoute("echo");
  echo->ForWorker(0).connections_active.Add(1);
  echo->ForWorker(1).connections_active.Add(1);
  for (int i = 0; i < 3; ++i)
    echo->ForWorker(i % 2).CountOutcome(dataplane::ConnectionOutcome::kAccepted);
  echo->ForWorker(0).CountOutcome(dataplane::ConnectionOutcome::kRejected);
  // A deleted route still holding a connection is reported; one with none is not.
  stats_.ForRoute("gone-busy")->ForWorker(1).connections_active.Add(1);
  stats_.ForRoute("gone-idle")->ForWorker(1).CountOutcome(dataplane::ConnectionOutcome::kAccepted);

  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  wsgate::v1::Inventory inv;
  ASSERT_TRUE(inventory_->GetInventory(&ctx, {}, &inv).ok());
  EXPECT_EQ(inv.config_version(), 11u);  // what the data plane applied, not the store's
  EXPECT_EQ(inv.workers(), 3u);
  EXPECT_EQ(inv.build_version(), "9.9.9");
  EXPECT_EQ(inv.active_connections(), 3u);
  ASSERT_EQ(inv.routes_size(), 2);
  EXPECT_EQ(inv.routes(0).route(), "echo");
  EXPECT_EQ(inv.routes(0).active_connections(), 2u);
  EXPECT_EQ(inv.routes(0).total_connections(), 3u);
  EXPECT_EQ(inv.routes(1).route(), "gone-busy");
  EXPECT_EQ(inv.routes(1).active_connections(), 1u);
}

TEST_F(GrpcServicesTest, ReflectionListsOurServices) {
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty. Debian ships no
  // reflection client headers, so the request is encoded by hand; the service names appear
  // verbatim in the response's ServiceResponse.name fields.
  grpc::Status status;
  const std::string resp =
      RawBidiOne("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                 std::string("\x3a\x00", 2), &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_THAT(resp, HasSubstr("wsgate.v1.RouteService"));
  EXPECT_THAT(resp, HasSubstr("wsgate.v1.InventoryService"));
  EXPECT_THAT(resp, HasSubstr("grpc.health.v1.Health"));
}

TEST_F(GrpcServicesTest, HealthIsServingUntilShutdownStarts) {
  // HealthCheckRequest{} (service "" = the whole server) -> HealthCheckResponse{status}.
  grpc::Status status;
  EXPECT_EQ(RawUnary("/grpc.health.v1.Health/Check", "", &status), std::string("\x08\x01", 2));
  ASSERT_TRUE(status.ok()) << status.error_message();
  server_->SetServing(false);
  EXPECT_EQ(RawUnary("/grpc.health.v1.Health/Check", "", &status), std::string("\x08\x02", 2));
  server_->SetServing(true);
  EXPECT_EQ(RawUnary("/grpc.health.v1.Health/Check", "", &status), std::string("\x08\x01", 2));
}

TEST_F(GrpcServicesTest, PortInUseIsAnErrorNamingThePort) {
  GrpcServerOptions options;
  options.listen_address = "127.0.0.1";
  options.port = server_->port();
  auto second = GrpcServer::Start(options, {});
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr("grpc port " + std::to_string(server_->port())));
}

TEST_F(GrpcServicesTest, AfterShutdownCallsFail) {
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  grpc::ClientContext ctx;
  ctx.set_deadline(Deadline());
  wsgate::v1::ListRoutesResponse resp;
  EXPECT_EQ(routes_->ListRoutes(&ctx, {}, &resp).error_code(), grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace wsgate::controlplane
