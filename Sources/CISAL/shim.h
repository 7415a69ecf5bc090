// CRC-32 for ZIP members from Intel's ISA-L (Debian 12: 2.30): crc32_gzip_refl picks at run time
// the widest carry-less-multiply loop the CPU has (VPCLMULQDQ on AVX-512 machines).
#include <isa-l/crc.h>
