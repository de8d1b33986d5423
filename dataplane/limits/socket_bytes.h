// The kernel's count of bytes sent on a TCP socket: how the idle timeout sees traffic that route
// kinds send to the client without going through the worker. Its own file because
// <linux/tcp.h> (which has tcpi_bytes_sent) cannot be included next to <netinet/tcp.h> (Asio).
#pragma once

#include <cstdint>

namespace wsgate::dataplane::limits {

// Payload bytes sent on `fd` (TCP_INFO tcpi_bytes_sent, Linux >= 4.19); 0 when unknown.
uint64_t TcpBytesSent(int fd);

}  // namespace wsgate::dataplane::limits
