// RecyclingMsgManager (dataplane/transport/recycling_msg_manager.h): a released message comes back
// from the same thread's free list with every field reset, large payloads are not kept, and a
// message released on another thread (or after that thread exited) is handled safely.
#include "dataplane/transport/recycling_msg_manager.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>

#include "dataplane/transport/ws_config.h"

namespace wsgate::dataplane::transport {
namespace {

using Manager = ServerConfig::con_msg_manager_type;
using Message = ServerConfig::message_type;
namespace opcode = websocketpp::frame::opcode;

TEST(RecyclingMsgManagerTest, ReleasedMessageIsReusedWithEveryFieldReset) {
  auto manager = std::make_shared<Manager>();
  Message::ptr m = manager->get_message(opcode::binary, 64);
  Message* raw = m.get();
  m->set_payload(std::string(64, 'x'));
  m->set_header("hdr");
  m->set_prepared(true);
  m->set_fin(false);
  m->set_terminal(true);
  m->set_compressed(true);
  m.reset();

  Message::ptr again = manager->get_message(opcode::text, 16);
  EXPECT_EQ(again.get(), raw);  // recycled, not a new allocation
  EXPECT_EQ(again->get_opcode(), opcode::text);
  EXPECT_TRUE(again->get_payload().empty());
  EXPECT_GE(again->get_raw_payload().capacity(), 64u);  // the payload buffer was kept
  EXPECT_TRUE(again->get_header().empty());
  EXPECT_FALSE(again->get_prepared());
  EXPECT_TRUE(again->get_fin());
  EXPECT_FALSE(again->get_terminal());
  EXPECT_FALSE(again->get_compressed());
}

TEST(RecyclingMsgManagerTest, LargePayloadsAreNotKept) {
  auto manager = std::make_shared<Manager>();
  Message::ptr big = manager->get_message(opcode::binary, Manager::kMaxPooledCapacity + 1);
  big->set_payload(std::string(Manager::kMaxPooledCapacity + 1, 'y'));
  Message* raw = big.get();
  big.reset();
  Message::ptr next = manager->get_message(opcode::binary, 8);
  // Freed, so the free list could not hand it out again (the allocator may reuse the address,
  // but then the payload capacity is a fresh one).
  EXPECT_TRUE(next.get() != raw || next->get_raw_payload().capacity() <= Manager::kMaxPooledCapacity);
}

TEST(RecyclingMsgManagerTest, MessagesCrossThreadsAndOutliveTheirThread) {
  auto manager = std::make_shared<Manager>();
  Message::ptr from_thread;
  std::thread t([&] {
    from_thread = manager->get_message(opcode::binary, 32);
    from_thread->set_payload("made on another thread");
    // Recycled on this thread's list, which is freed when the thread exits.
    manager->get_message(opcode::binary, 32).reset();
  });
  t.join();
  EXPECT_EQ(from_thread->get_payload(), "made on another thread");
  from_thread.reset();  // joins this thread's list
  Message::ptr m = manager->get_message(opcode::binary, 8);
  EXPECT_NE(m, nullptr);
}

}  // namespace
}  // namespace wsgate::dataplane::transport
