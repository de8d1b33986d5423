// The embedded default bus: one process, no Redis. Publish hands the message to the bus thread,
// which posts it once to every worker that has a subscriber of the channel.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <vector>

#include "dataplane/bus/message_bus.h"

namespace wsgate::dataplane::bus {

// `workers[w]` is the executor of worker w (its io_context's). Starts the bus thread; up() is
// true at once. GetAndDelete answers UNIMPLEMENTED: there is no key-value store without Redis.
std::unique_ptr<MessageBus> MakeInMemoryBus(std::vector<boost::asio::any_io_executor> workers);

}  // namespace wsgate::dataplane::bus
