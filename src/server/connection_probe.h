// Notices a client that went away while its request waits for the engine, so the request can be
// cancelled without writing to the socket. cpp-httplib does not expose the connection's socket to
// handlers; it is found by its (local, remote) address pair among the process's descriptors.
#pragma once

#include <string>

namespace plm::server {

// The socket descriptor of the TCP connection with these endpoints, or -1.
int FindConnectionSocket(const std::string& local_addr, int local_port,
                         const std::string& remote_addr, int remote_port);

// True when the peer of connected socket `fd` has closed or reset the connection.
bool PeerClosed(int fd);

}  // namespace plm::server
