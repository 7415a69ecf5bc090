// libhdf5 is opened at first use (dlopen), not when imgconv starts: with libcurl and what it
// brings (GnuTLS, Kerberos, LDAP, SSH) it is about 30 of the libraries the binary would load,
// and loading them cost every run about 4 ms of CPU before its first image, and more from a cold
// disk, while most runs never touch HDF5. The HDF5 thread (ImgConvFormats/HDF5.swift) calls
// imc_h5_load (CShims/lazy_library.c) before any other HDF5 call; the library is opened into the
// global scope, where each function is found by name (imc_p_H5xxx) and each identifier macro's
// global variable too.
//
// HDF5's type and property-list identifiers are macros that expand to (H5open(), X_g), and its
// special sizes are casts; Swift imports neither. These accessors give them names Swift can call.
#if __has_include(<hdf5/serial/hdf5.h>)
#include <hdf5/serial/hdf5.h>
#else
#include <hdf5.h>
#endif
#include <dlfcn.h>
#include <stdio.h>
#ifndef RTLD_DEFAULT
#define RTLD_DEFAULT ((void *)0)
#endif

// The value of one of libhdf5's identifier variables (H5T_STD_U8LE_g, ...), after H5open as the
// macros do.
static inline hid_t imc_h5_identifier(const char *name) {
    herr_t (*open)(void) = (herr_t (*)(void))dlsym(RTLD_DEFAULT, "H5open");
    const hid_t *id = (const hid_t *)dlsym(RTLD_DEFAULT, name);
    if (!open || !id || open() < 0) return -1;
    return *id;
}

// The functions imgconv calls (ImgConvFormats/HDF5Library.swift gives them their names back).
#define IMC_H5_FUNCTION(name) \
    static inline __typeof__(&name) imc_p_##name(void) { return (__typeof__(&name))dlsym(RTLD_DEFAULT, #name); }
IMC_H5_FUNCTION(H5Aclose)
IMC_H5_FUNCTION(H5Acreate2)
IMC_H5_FUNCTION(H5Adelete)
IMC_H5_FUNCTION(H5Aexists)
IMC_H5_FUNCTION(H5Aget_space)
IMC_H5_FUNCTION(H5Aget_storage_size)
IMC_H5_FUNCTION(H5Aget_type)
IMC_H5_FUNCTION(H5Aopen)
IMC_H5_FUNCTION(H5Aread)
IMC_H5_FUNCTION(H5Awrite)
IMC_H5_FUNCTION(H5Dclose)
IMC_H5_FUNCTION(H5Dcreate2)
IMC_H5_FUNCTION(H5Dget_chunk_info_by_coord)
IMC_H5_FUNCTION(H5Dget_chunk_storage_size)
IMC_H5_FUNCTION(H5Dget_create_plist)
IMC_H5_FUNCTION(H5Dget_num_chunks)
IMC_H5_FUNCTION(H5Dget_space)
IMC_H5_FUNCTION(H5Dget_storage_size)
IMC_H5_FUNCTION(H5Dget_type)
IMC_H5_FUNCTION(H5Dopen2)
IMC_H5_FUNCTION(H5Dread)
IMC_H5_FUNCTION(H5Dread_chunk)
IMC_H5_FUNCTION(H5Dset_extent)
IMC_H5_FUNCTION(H5Dvlen_reclaim)
IMC_H5_FUNCTION(H5Dwrite)
IMC_H5_FUNCTION(H5Dwrite_chunk)
IMC_H5_FUNCTION(H5Eclear2)
IMC_H5_FUNCTION(H5Eget_msg)
IMC_H5_FUNCTION(H5Eset_auto2)
IMC_H5_FUNCTION(H5Ewalk2)
IMC_H5_FUNCTION(H5Fclose)
IMC_H5_FUNCTION(H5Fcreate)
IMC_H5_FUNCTION(H5Fopen)
IMC_H5_FUNCTION(H5Gget_info)
IMC_H5_FUNCTION(H5Iget_type)
IMC_H5_FUNCTION(H5Lget_info_by_idx)
IMC_H5_FUNCTION(H5Lget_name_by_idx)
IMC_H5_FUNCTION(H5Oclose)
IMC_H5_FUNCTION(H5Oopen)
IMC_H5_FUNCTION(H5Pclose)
IMC_H5_FUNCTION(H5Pcreate)
IMC_H5_FUNCTION(H5Pget_chunk)
IMC_H5_FUNCTION(H5Pget_external_count)
IMC_H5_FUNCTION(H5Pget_filter2)
IMC_H5_FUNCTION(H5Pget_layout)
IMC_H5_FUNCTION(H5Pget_nfilters)
IMC_H5_FUNCTION(H5Pget_virtual_count)
IMC_H5_FUNCTION(H5Pget_virtual_dsetname)
IMC_H5_FUNCTION(H5Pget_virtual_filename)
IMC_H5_FUNCTION(H5Pget_virtual_vspace)
IMC_H5_FUNCTION(H5Pset_chunk)
IMC_H5_FUNCTION(H5Pset_deflate)
IMC_H5_FUNCTION(H5Pset_libver_bounds)
IMC_H5_FUNCTION(H5Pset_obj_track_times)
IMC_H5_FUNCTION(H5Pset_shuffle)
IMC_H5_FUNCTION(H5Pset_virtual)
IMC_H5_FUNCTION(H5Pset_virtual_prefix)
IMC_H5_FUNCTION(H5Sclose)
IMC_H5_FUNCTION(H5Screate)
IMC_H5_FUNCTION(H5Screate_simple)
IMC_H5_FUNCTION(H5Sget_select_bounds)
IMC_H5_FUNCTION(H5Sget_simple_extent_dims)
IMC_H5_FUNCTION(H5Sget_simple_extent_ndims)
IMC_H5_FUNCTION(H5Sget_simple_extent_npoints)
IMC_H5_FUNCTION(H5Sselect_all)
IMC_H5_FUNCTION(H5Sselect_hyperslab)
IMC_H5_FUNCTION(H5Tclose)
IMC_H5_FUNCTION(H5Tcopy)
IMC_H5_FUNCTION(H5Tequal)
IMC_H5_FUNCTION(H5Tget_class)
IMC_H5_FUNCTION(H5Tget_sign)
IMC_H5_FUNCTION(H5Tget_size)
IMC_H5_FUNCTION(H5Tis_variable_str)
IMC_H5_FUNCTION(H5Tset_cset)
IMC_H5_FUNCTION(H5Tset_ebias)
IMC_H5_FUNCTION(H5Tset_fields)
IMC_H5_FUNCTION(H5Tset_size)
IMC_H5_FUNCTION(H5open)

static inline hid_t imc_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t imc_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t imc_h5s_all(void) { return H5S_ALL; }
static inline hsize_t imc_h5s_unlimited(void) { return H5S_UNLIMITED; }
static inline size_t imc_h5t_variable(void) { return H5T_VARIABLE; }

// Property-list classes (for H5Pcreate).
static inline hid_t imc_h5p_file_create(void) { return imc_h5_identifier("H5P_CLS_FILE_CREATE_ID_g"); }
static inline hid_t imc_h5p_file_access(void) { return imc_h5_identifier("H5P_CLS_FILE_ACCESS_ID_g"); }
static inline hid_t imc_h5p_dataset_create(void) { return imc_h5_identifier("H5P_CLS_DATASET_CREATE_ID_g"); }
static inline hid_t imc_h5p_dataset_access(void) { return imc_h5_identifier("H5P_CLS_DATASET_ACCESS_ID_g"); }

// Little-endian file and memory types of the tensors imgconv reads and writes.
static inline hid_t imc_h5t_native_uint8(void) { return imc_h5_identifier("H5T_NATIVE_UINT8_g"); }
static inline hid_t imc_h5t_std_u8le(void) { return imc_h5_identifier("H5T_STD_U8LE_g"); }
static inline hid_t imc_h5t_std_u16le(void) { return imc_h5_identifier("H5T_STD_U16LE_g"); }
static inline hid_t imc_h5t_std_u32le(void) { return imc_h5_identifier("H5T_STD_U32LE_g"); }
static inline hid_t imc_h5t_std_i8le(void) { return imc_h5_identifier("H5T_STD_I8LE_g"); }
static inline hid_t imc_h5t_std_i16le(void) { return imc_h5_identifier("H5T_STD_I16LE_g"); }
static inline hid_t imc_h5t_std_i32le(void) { return imc_h5_identifier("H5T_STD_I32LE_g"); }
static inline hid_t imc_h5t_std_i64le(void) { return imc_h5_identifier("H5T_STD_I64LE_g"); }
static inline hid_t imc_h5t_ieee_f32le(void) { return imc_h5_identifier("H5T_IEEE_F32LE_g"); }
static inline hid_t imc_h5t_ieee_f64le(void) { return imc_h5_identifier("H5T_IEEE_F64LE_g"); }
static inline hid_t imc_h5t_c_s1(void) { return imc_h5_identifier("H5T_C_S1_g"); }

// H5F_ACC_TRUNC and H5F_ACC_RDONLY without the H5check()/H5open() calls their macros make (the
// HDF5 thread has opened the library; the version is checked by imc_h5_load).
static inline unsigned imc_h5f_acc_trunc(void) { return 0x0002u; }
static inline unsigned imc_h5f_acc_rdonly(void) { return 0x0000u; }
