// plm — command-line front end (placeholder until the CLI issue lands).
#include <cstdio>

int main() {
  std::puts("plm: not yet implemented");
  return 0;
}
