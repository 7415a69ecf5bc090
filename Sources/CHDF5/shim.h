// HDF5's type and property-list identifiers are macros that expand to (H5open(), X_g), which Swift
// does not import. These accessors give them names Swift can call.
#include <hdf5.h>
static inline hid_t imc_h5p_default(void) { return H5P_DEFAULT; }
static inline hid_t imc_h5t_native_uint8(void) { return H5T_NATIVE_UINT8; }
static inline hid_t imc_h5t_std_i64le(void) { return H5T_STD_I64LE; }
static inline hid_t imc_h5t_c_s1(void) { return H5T_C_S1; }
static inline unsigned imc_h5f_acc_trunc(void) { return H5F_ACC_TRUNC; }
static inline unsigned imc_h5f_acc_rdonly(void) { return H5F_ACC_RDONLY; }
