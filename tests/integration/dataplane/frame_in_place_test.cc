// FrameInPlace (dataplane/codec/frame_in_place.h) must put on the wire exactly what
// websocketpp's own hybi13::prepare_data_frame produces for the same message and masking key:
// same header bytes, same (masked) payload bytes, for every header length class.
#include "dataplane/codec/frame_in_place.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <websocketpp/processors/hybi13.hpp>

#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport {
namespace {

// A generator that returns one fixed key, so both framings use the same mask.
struct FixedKey {
  uint32_t operator()() { return 0xa1b2c3d4u; }
};

using TestClientConfig = WsConfig<websocketpp::config::core_client, FixedKey, true>;
using TestServerConfig = WsConfig<websocketpp::config::core, FixedKey, false>;
using Message = ServerConfig::message_type;
using Manager = ServerConfig::con_msg_manager_type;

std::string Payload(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7) % 26);
  return s;
}

template <typename Config>
void ExpectSameAsWebsocketpp(bool server, size_t size, websocketpp::frame::opcode::value op) {
  auto manager = std::make_shared<Manager>();
  FixedKey rng;
  websocketpp::processor::hybi13<Config> proc(false, server, manager, rng);

  Message::ptr in = manager->get_message(op, size);
  in->set_payload(Payload(size));
  Message::ptr expected = manager->get_message();
  ASSERT_FALSE(proc.prepare_data_frame(in, expected));

  Message::ptr mine = manager->get_message(op, size);
  mine->set_payload(Payload(size));
  FrameInPlace(*mine, /*masked=*/!server, rng());

  SCOPED_TRACE(testing::Message() << "server=" << server << " size=" << size << " op=" << op);
  EXPECT_TRUE(mine->get_prepared());
  EXPECT_EQ(mine->get_header(), expected->get_header());
  EXPECT_EQ(mine->get_payload(), expected->get_payload());
  if (!server) {
    // Masked for real: unmasking with the key gives the original payload back.
    EXPECT_TRUE(size == 0 || mine->get_payload() != Payload(size));
    std::string back = mine->get_payload();
    MaskInPlace(back.data(), back.size(), FixedKey()());
    EXPECT_EQ(back, Payload(size));
  }
}

TEST(FrameInPlaceTest, MatchesWebsocketppForEveryLengthClass) {
  for (size_t size : {0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 125, 126, 127, 1024, 65535, 65536,
                      70001}) {
    for (auto op : {websocketpp::frame::opcode::binary, websocketpp::frame::opcode::text}) {
      ExpectSameAsWebsocketpp<TestClientConfig>(false, size, op);
      ExpectSameAsWebsocketpp<TestServerConfig>(true, size, op);
    }
  }
}

TEST(FrameInPlaceTest, PreparedMessageIsLeftAlone) {
  auto manager = std::make_shared<Manager>();
  Message::ptr msg = manager->get_message(websocketpp::frame::opcode::binary, 64);
  msg->set_payload(Payload(64));
  FrameInPlace(*msg, true, 0x01020304u);
  const std::string header = msg->get_header();
  const std::string payload = msg->get_payload();
  // A second call (e.g. a message sent again from a held queue) must not mask it twice.
  FrameInPlace(*msg, true, 0x05060708u);
  EXPECT_EQ(msg->get_header(), header);
  EXPECT_EQ(msg->get_payload(), payload);
}

}  // namespace
}  // namespace wsgate::dataplane::transport
