#define _GNU_SOURCE
#include "fuzz_support.h"
#include <sys/mman.h>

int fuzz_memfd(void) { return memfd_create("imgconv-fuzz", MFD_CLOEXEC); }
