#include "dataplane/relay/ws_handshake.h"
