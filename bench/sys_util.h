// Small Linux helpers shared by wsload and wsecho: clocks, socket options, /proc readers.
#ifndef WSGATE_BENCH_SYS_UTIL_H_
#define WSGATE_BENCH_SYS_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace wsbench {

// CLOCK_MONOTONIC in nanoseconds.
uint64_t MonotonicNs();

bool SetNonBlocking(int fd);
void SetNoDelay(int fd);

// CPU time (user + system) of a process from /proc/<pid>/stat, in seconds; -1 if unreadable.
double ProcessCpuSeconds(pid_t pid);
// VmRSS of a process from /proc/<pid>/status, in KiB; -1 if unreadable.
int64_t ProcessRssKib(pid_t pid);

// Sums over several processes (a proxy may be a master and workers); -1 if any is unreadable.
double TotalCpuSeconds(const std::vector<pid_t>& pids);
int64_t TotalRssKib(const std::vector<pid_t>& pids);

// CPU time used by this process so far, in seconds.
double SelfCpuSeconds();

// Parses "1,2,3" into pids; false on anything that is not a positive integer list.
bool ParsePidList(const std::string& text, std::vector<pid_t>* out);

// Escapes a string for a JSON string literal (without the quotes).
std::string JsonEscape(const std::string& s);

}  // namespace wsbench

#endif  // WSGATE_BENCH_SYS_UTIL_H_
