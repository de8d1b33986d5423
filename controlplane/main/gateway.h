// The wsgate process: composes the config store, the data plane, the admin server and the gRPC
// server, waits for SIGTERM/SIGINT and shuts them down in order. wsgate_main.cc only calls this.
#pragma once

namespace wsgate::controlplane {

// Runs wsgate with the given command line; returns the process exit code:
// 0 (clean shutdown, --check-config ok, --help, --version), 1 (--check-config found an error, or
// a start-up failure such as a port in use or a corrupt state file), 2 (bad flags or invalid
// configuration). Must be called on the main thread before any other thread exists: it blocks
// SIGTERM and SIGINT for the whole process and waits for them with sigwait.
int RunWsgate(int argc, char** argv);

}  // namespace wsgate::controlplane
