#pragma once

// The generated /etc files of an instance (parent side: formats their contents).

#include <string>

namespace skiff::gen1 {

// "127.0.0.1 localhost", "::1 localhost ...", and "<instance_ip> <hostname>".
std::string HostsFileContent(const std::string& hostname, const std::string& instance_ip);
// "<hostname>\n"
std::string HostnameFileContent(const std::string& hostname);
// The host's resolver config without loopback nameservers (unreachable from the
// instance's netns): nameserver, search, domain and options lines of `host_resolv_conf`.
std::string ResolvConfContent(const std::string& host_resolv_conf);

}  // namespace skiff::gen1
