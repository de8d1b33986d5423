// FUZZ_CHECK: an invariant of a fuzz target. Unlike assert() it is never compiled out (the normal
// build is RelWithDebInfo, with NDEBUG): a failed check prints and aborts, which libFuzzer reports
// as a crash and the replay test as a failure.
#pragma once

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                   \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
      std::abort();                                                                        \
    }                                                                                      \
  } while (0)
