// The README's custom-metrics example (the seed's Python example, for a C++ service), compiled and
// run by tests/capi: the lines between the README markers appear verbatim in README.md. Serves
// one "request" per line of stdin and prints "served <n> <bytes>" after each (after a first line,
// "ready"); exits at end of input.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

// README:begin
#include <rsrmem.h>  // installed with librsrmem.so; the program links nothing extra

std::string render(const std::string& path) {
  std::vector<std::string> rows(2000, "row of " + path);  // the work a request does
  return std::to_string(rows.size()) + " rows\r\n";
}

std::string custom_view(const std::string& path) {
  rsrmem::Scope scope("custom_view");  // this request's memory: rsr_request_memory_usage_mb

  // Track cache performance
  rsrmem::record_cache_operation("hit", "custom_cache");
  // A leak the service noticed itself
  rsrmem::record_memory_leak("session_registry", "medium");

  std::string response = render(path);
  response += rsrmem::memory_headers();  // X-RSR-Memory-Usage: <RSS bytes>\r\n...
  return response;
}
// README:end

int main() {
  std::string line;
  int served = 0;
  std::printf("ready\n");
  std::fflush(stdout);
  while (std::getline(std::cin, line)) {
    const std::string response = custom_view(line);
    std::printf("served %d %zu\n", ++served, response.size());
    std::fflush(stdout);
  }
  return 0;
}
