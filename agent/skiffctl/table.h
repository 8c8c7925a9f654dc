#pragma once

// Column-aligned plain-text tables for skiffctl's default output.

#include <ostream>
#include <string>
#include <vector>

namespace skiff::skiffctl {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Columns separated by at least two spaces; the last column is not padded.
  void Print(std::ostream& out) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace skiff::skiffctl
