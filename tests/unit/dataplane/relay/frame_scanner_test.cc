// Filled in by the relay work (issue 6).
#include "dataplane/relay/frame_scanner.h"
