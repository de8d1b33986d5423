#include "dataplane/kinds/fanout/shared_frame.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <websocketpp/processors/hybi13.hpp>

namespace wsgate::dataplane::transport {
namespace {

// What websocketpp's own send(payload, op) puts on the wire of a server connection.
std::string WebsocketppFrame(const std::string& payload, bool binary) {
  auto manager = std::make_shared<ServerConfig::con_msg_manager_type>();
  ServerConfig::rng_type rng;
  websocketpp::processor::hybi13<ServerConfig> processor(false, true, manager, rng);
  auto op = binary ? websocketpp::frame::opcode::binary : websocketpp::frame::opcode::text;
  MessagePtr in = manager->get_message(op, payload.size());
  in->append_payload(payload);
  in->set_compressed(true);  // as connection::send(string) asks; deflate is disabled
  MessagePtr out = manager->get_message();
  EXPECT_FALSE(processor.prepare_data_frame(in, out));
  return out->get_header() + out->get_payload();
}

std::string Wire(const MessagePtr& m) { return m->get_header() + m->get_payload(); }

TEST(PrepareServerFrame, SameBytesAsWebsocketppAtEveryLengthEncoding) {
  // 7-bit, 16-bit and 64-bit payload lengths, each at its edges.
  for (size_t n : {0, 1, 125, 126, 127, 65535, 65536, 70000}) {
    std::string text(n, 'a');
    std::string bytes(n, '\xff');
    MessagePtr t = PrepareServerFrame(text, false);
    MessagePtr b = PrepareServerFrame(bytes, true);
    ASSERT_TRUE(t && b) << n;
    EXPECT_TRUE(t->get_prepared());
    EXPECT_EQ(Wire(t), WebsocketppFrame(text, false)) << n;
    EXPECT_EQ(Wire(b), WebsocketppFrame(bytes, true)) << n;
  }
}

TEST(PrepareServerFrame, TextThatIsNotUtf8IsRefusedLikeWebsocketppDoes) {
  EXPECT_EQ(PrepareServerFrame("ok \xc3", false), nullptr);  // truncated sequence
  EXPECT_EQ(PrepareServerFrame("\xff", false), nullptr);
  EXPECT_NE(PrepareServerFrame("\xff", true), nullptr);  // binary: any bytes
  EXPECT_NE(PrepareServerFrame("caf\xc3\xa9", false), nullptr);
}

std::shared_ptr<const bus::BusMessage> Msg(std::string payload, bool binary = false) {
  auto m = std::make_shared<bus::BusMessage>();
  m->channel = "c";
  m->payload = std::move(payload);
  m->is_binary = binary;
  return m;
}

TEST(SharedFrames, OneFramePerMessageAndSliceNeverAStaleOne) {
  SharedFrames frames;
  auto a = Msg("envelope\nhello");
  MessagePtr first = frames.For(a, 9, false);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->get_payload(), "hello");
  EXPECT_EQ(frames.For(a, 9, false), first);  // the next subscriber: the same frame object
  EXPECT_EQ(frames.For(a, 0, false)->get_payload(), "envelope\nhello");  // another slice
  auto b = Msg("envelope\nhello");  // same bytes, another message: its own frame
  MessagePtr second = frames.For(b, 9, false);
  EXPECT_NE(second, first);
  EXPECT_EQ(second->get_payload(), "hello");
  // A message freed and a new one allocated (possibly at the same address) never gets the
  // frame of the old one.
  a.reset();
  b.reset();
  for (int i = 0; i < 100; ++i) {
    auto c = Msg("m" + std::to_string(i), i % 2 == 1);
    MessagePtr f = frames.For(c, 0, c->is_binary);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->get_payload(), "m" + std::to_string(i));
    EXPECT_EQ(f->get_opcode(), c->is_binary ? websocketpp::frame::opcode::binary
                                            : websocketpp::frame::opcode::text);
  }
}

}  // namespace
}  // namespace wsgate::dataplane::transport
