// System libraries opened at first use (dlopen) rather than when imgconv starts, each once per
// process: libhdf5 here, libavif and libheif in heif_shim.c. The library found must be the ABI
// the headers here describe: its version is checked before anything else is called.
#include "imc_shims.h"
#include <dlfcn.h>
#include <stdio.h>
#if __has_include(<hdf5/serial/H5public.h>)
#include <hdf5/serial/H5public.h>
#else
#include <H5public.h>
#endif

void *imc_open_library(imc_lazy_library *lib, const char *package, const char *const *sonames, size_t count,
                       int flags, int (*accept)(void *handle, char *found, size_t found_len)) {
    char found[64] = "", first_error[120] = "";
    for (size_t i = 0; i < count; i++) {
        void *h = dlopen(sonames[i], flags);
        if (!h) {
            const char *e = dlerror();
            if (i == 0 && e) snprintf(first_error, sizeof first_error, "%s", e);
            continue;
        }
        if (accept(h, found, sizeof found)) return h;
        dlclose(h);
    }
    if (*found) snprintf(lib->error, sizeof lib->error, "%s is version %s, not the one imgconv was built with", sonames[0], found);
    else snprintf(lib->error, sizeof lib->error, "cannot open it (%s): %s", package, first_error);
    return NULL;
}

// libhdf5 must be the major.minor release the headers describe.
static int accept_hdf5(void *h, char *found, size_t found_len) {
    // Before any call that starts the library (H5get_libversion does): no clean-up at exit (see
    // HDF5Thread.loop in ImgConvFormats/HDF5.swift).
    int (*dont_atexit)(void) = (int (*)(void))dlsym(h, "H5dont_atexit");
    if (dont_atexit) dont_atexit();
    int (*version)(unsigned *, unsigned *, unsigned *) = (int (*)(unsigned *, unsigned *, unsigned *))dlsym(h, "H5get_libversion");
    unsigned major = 0, minor = 0, release = 0;
    if (!version || version(&major, &minor, &release) < 0) return 0;
    snprintf(found, found_len, "%u.%u.%u", major, minor, release);
    return major == H5_VERS_MAJOR && minor == H5_VERS_MINOR;
}

static imc_lazy_library hdf5_library = {PTHREAD_ONCE_INIT, 0, ""};

// Into the global scope: CHDF5/shim.h finds each function and identifier variable by name there.
static void load_hdf5(void) {
    static const char *const sonames[] = {"libhdf5_serial.so.103", "libhdf5.so.103", "libhdf5_serial.so", "libhdf5.so"};
    if (imc_open_library(&hdf5_library, "Debian: libhdf5-103-1", sonames, sizeof sonames / sizeof *sonames,
                         RTLD_NOW | RTLD_GLOBAL, accept_hdf5))
        hdf5_library.ok = 1;
}

int imc_h5_load(char *err, size_t errlen) {
    pthread_once(&hdf5_library.once, load_hdf5);
    if (!hdf5_library.ok && err && errlen) snprintf(err, errlen, "libhdf5: %s", hdf5_library.error);
    return hdf5_library.ok ? 0 : -1;
}
