// pinata-proxy as a program of its own, for host tests and manual runs (in the guest the same
// code runs inside pinata-init, invoked as pinata-proxy).
#include "ports/userland_proxy.h"

int main(int argc, char** argv) { return pinata::ports::userland_proxy_main(argc, argv); }
