// The wsgate binary. All of the composition lives in gateway.cc, where it can be read (and
// tested) as a library.
#include "controlplane/main/gateway.h"

int main(int argc, char** argv) { return wsgate::controlplane::RunWsgate(argc, argv); }
