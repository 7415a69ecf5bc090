// SHA-256 for source files, plans and pixel digests, from OpenSSL's libcrypto (Debian 12: 3.0).
// The one-call-per-state SHA256_* functions: no allocation and no algorithm fetch per digest,
// which EVP would add for every one of a dataset's small files. OpenSSL 3 marks them
// deprecated; they stay in 3.x.
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>
