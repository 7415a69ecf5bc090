// HDF5's type and property-list identifiers are macros that expand to (H5open(), X_g), and its
// special sizes are casts; Swift imports neither. These accessors give them names Swift can call.
#include <hdf5.h>
static inline hid_t imc_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t imc_h5e_default(void) { return H5E_DEFAULT; }
static inline hid_t imc_h5s_all(void) { return H5S_ALL; }
static inline hsize_t imc_h5s_unlimited(void) { return H5S_UNLIMITED; }
static inline size_t imc_h5t_variable(void) { return H5T_VARIABLE; }

// Property-list classes (for H5Pcreate).
static inline hid_t imc_h5p_file_create(void) { return H5P_FILE_CREATE; }
static inline hid_t imc_h5p_file_access(void) { return H5P_FILE_ACCESS; }
static inline hid_t imc_h5p_dataset_create(void) { return H5P_DATASET_CREATE; }
static inline hid_t imc_h5p_dataset_access(void) { return H5P_DATASET_ACCESS; }

// Little-endian file and memory types of the tensors imgconv reads and writes.
static inline hid_t imc_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t imc_h5t_std_u8le(void) { return H5T_STD_U8LE; }
static inline hid_t imc_h5t_std_u16le(void) { return H5T_STD_U16LE; }
static inline hid_t imc_h5t_std_u32le(void) { return H5T_STD_U32LE; }
static inline hid_t imc_h5t_std_i8le(void) { return H5T_STD_I8LE; }
static inline hid_t imc_h5t_std_i16le(void) { return H5T_STD_I16LE; }
static inline hid_t imc_h5t_std_i32le(void) { return H5T_STD_I32LE; }
static inline hid_t imc_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t imc_h5t_ieee_f32le(void) { return H5T_IEEE_F32LE; }
static inline hid_t imc_h5t_ieee_f64le(void) { return H5T_IEEE_F64LE; }
static inline hid_t imc_h5t_c_s1(void) { return H5T_C_S1; }

static inline unsigned imc_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned imc_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
