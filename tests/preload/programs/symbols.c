/* Symbol resolution and forwarding, seen from a C program (no libstdc++ of its own). */
#include "symbol_checks.h"

int main(int argc, char** argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 2) return 2;
  run_symbol_checks(argv[1]);
  return finish();
}
