#include "testutil/thread_nice.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace kindling::testutil {

std::vector<int> ThreadNiceValues(pid_t pid) {
  std::vector<int> values;
  std::error_code ec;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "stat");
    std::string stat;
    std::getline(in, stat);
    const std::size_t close = stat.rfind(')');  // the name may hold spaces
    if (close == std::string::npos || close + 2 > stat.size()) continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string field;
    // After the name: the state is field 3, the nice value field 19.
    for (int i = 3; i <= 19 && fields >> field; ++i) {
      if (i == 19) values.push_back(std::stoi(field));
    }
  }
  return values;
}

}  // namespace kindling::testutil
