// Kind `room`'s REST on the data port: POST /api/clients and the chat page at "/".
#pragma once

#include <string_view>

#include "dataplane/kinds/fanout/fanout_kinds.h"

namespace wsgate::dataplane::transport {

// What FanoutKinds::HandleHttp serves (see there). False when `path` is neither.
bool HandleRoomHttp(FanoutKinds& kinds, const ServerConnectionPtr& con, std::string_view path,
                    bool root_free, const SnapshotPtr& snapshot);

}  // namespace wsgate::dataplane::transport
