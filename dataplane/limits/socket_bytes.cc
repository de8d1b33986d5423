#include "dataplane/limits/socket_bytes.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace wsgate::dataplane::limits {

uint64_t TcpBytesSent(int fd) {
  struct tcp_info info {};
  socklen_t len = sizeof(info);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return 0;
  if (len < offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof(info.tcpi_bytes_sent)) return 0;
  return info.tcpi_bytes_sent;
}

}  // namespace wsgate::dataplane::limits
