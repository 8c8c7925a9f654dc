#include "sandbox/gen2/guest/init/options.h"

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace skiff::gen2::init {

bool ParseOptions(int argc, char** argv, Options* options, std::string* error) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--test") {
      options->test_mode = true;
    } else if (arg == "--test-network") {
      options->test_network = true;
    } else if (arg.substr(0, 10) == "--control=") {
      std::string_view value = arg.substr(10);
      if (value.substr(0, 5) == "unix:" && value.size() > 5) {
        options->control_path = std::string(value.substr(5));
        options->control_is_socket = true;
      } else if (value.substr(0, 3) == "fd:" && value.size() > 3) {
        char* end = nullptr;
        std::string number(value.substr(3));
        long fd = std::strtol(number.c_str(), &end, 10);
        if (*end != '\0' || fd < 0 || fd > 65535) {
          *error = "--control=fd:N: bad fd " + number;
          return false;
        }
        options->control_fd = static_cast<int>(fd);
      } else {
        *error = "--control: expected unix:PATH or fd:N, got " + std::string(value);
        return false;
      }
    } else if (arg.substr(0, 2) == "--") {
      *error = "unknown flag " + std::string(arg);
      return false;
    }
  }
  if (options->test_network && !options->test_mode) {
    *error = "--test-network needs --test (outside test mode the network step always runs)";
    return false;
  }
  return true;
}

}  // namespace skiff::gen2::init
