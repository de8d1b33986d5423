// One WebSocket frame per bus message and worker, shared by every room member / pubsub session
// of that worker that sends it.
//
// Why this is sound with websocketpp 0.8.2: `connection::send(message_ptr)` queues a message whose
// `get_prepared()` is true as it is (no `prepare_data_frame`, no copy), and the write path only
// reads its header and payload (write_frame gathers them into the socket's buffers, write_push
// counts the payload into get_buffered_amount()). A server frame is never masked, and the server
// config has permessage-deflate disabled (ws_config.h), so the frame's bytes are the same for
// every client: one prepared message can sit in many connections' send queues at once. It goes
// back to the recycling pool (recycling_msg_manager.h) when the last connection has written it.
// If a route ever negotiated permessage-deflate, its members would need their own frames (the
// compressor's state is per connection); FanoutClient::Send(string) is that per-member path.
//
// Threading: SharedFrames is per worker (FanoutKinds), used only on that worker's thread.
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>
#include <websocketpp/frame.hpp>
#include <websocketpp/utf8_validator.hpp>

#include "dataplane/bus/message_bus.h"
#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport {

// A finished server frame (header and payload, prepared) carrying `payload`: one copy of it.
// Null for a text payload that is not valid UTF-8, which websocketpp's own send refuses too.
inline MessagePtr PrepareServerFrame(std::string_view payload, bool binary) {
  namespace frame = websocketpp::frame;
  const frame::opcode::value op = binary ? frame::opcode::binary : frame::opcode::text;
  if (!binary) {
    websocketpp::utf8_validator::validator v;
    if (!v.decode(payload.begin(), payload.end()) || !v.complete()) return nullptr;
  }
  RecyclingMsgManager<ServerConfig::message_type> manager;  // stateless: per-thread pools
  MessagePtr msg = manager.get_message(op, payload.size());
  msg->get_raw_payload().assign(payload.data(), payload.size());
  frame::basic_header h(op, payload.size(), /*fin=*/true, /*mask=*/false);
  frame::extended_header e(payload.size());
  msg->set_header(frame::prepare_header(h, e));
  msg->set_prepared(true);
  return msg;
}

// The frame of the bus message being delivered: built for the first local subscriber that sends
// it, handed to the others. The bus delivers one message to all subscribers of a worker in one
// loop, so one slot is enough; a miss only costs a new frame, never a wrong one.
class SharedFrames {
 public:
  // The frame carrying m->payload from byte `offset` on (room broadcasts skip their envelope).
  MessagePtr For(const bus::BusMessagePtr& m, size_t offset, bool binary) {
    // Same control block, so the same message: the weak reference keeps the block's address from
    // being reused by a newer message, without keeping the payload alive.
    const bool same = !source_.owner_before(m) && !m.owner_before(source_);
    if (!same || offset != offset_ || binary != binary_) {
      source_ = m;
      offset_ = offset;
      binary_ = binary;
      frame_ = PrepareServerFrame(std::string_view(m->payload).substr(offset), binary);
    }
    return frame_;
  }

 private:
  std::weak_ptr<const bus::BusMessage> source_;
  size_t offset_ = 0;
  bool binary_ = false;
  MessagePtr frame_;  // the last frame, until the next message replaces it
};

}  // namespace wsgate::dataplane::transport
