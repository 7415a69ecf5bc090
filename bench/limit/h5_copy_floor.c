/* h5_copy_floor: libhdf5's own floor for `imgconv merge --materialize` of HDF5 parts (issue 15).
 *
 * usage: h5_copy_floor [-p] [-w] [-q] OUT.h5 PART.h5...   copy the parts' /trainXs into OUT.h5
 *        h5_copy_floor -r [-p] [-q] PART.h5...            only read the parts' chunks (no output)
 *   -r  read only: every chunk of every part read into the buffer, nothing written, so that the
 *       read's share of the copy shows
 *   -p  read each chunk with pread at the address libhdf5 gives (H5Dget_chunk_info_by_coord)
 *       rather than with H5Dread_chunk
 *   -w  early writeback, which imgconv's HDF5 writer does not do (its .npy/.npz writer does): a
 *       second descriptor of the output asks the kernel to start writing back every 8 MiB the file
 *       has grown by (sync_file_range SYNC_FILE_RANGE_WRITE), so that the disk write overlaps the
 *       copy rather than following it in close and fsync
 *   -q  no summary line
 *
 * What it does, and nothing more: opens every part and checks that its /trainXs is chunked, has
 * no filters, holds whole items per chunk and has the first part's type, item shape and chunk
 * shape (a part other than the last must fill its last chunk); creates a temporary file beside
 * OUT with what imgconv's HDF5 writer sets (file creation: no object modification times; access:
 * format versions 1.8 to 1.10; the dataset /trainXs with the parts' chunk shape, 0 items,
 * extendible along its first axis, no modification times); then, part after part in order, reads
 * each chunk as stored (H5Dread_chunk, or pread with -p) into one reused buffer and writes it as a
 * whole chunk (H5Dwrite_chunk), growing the dataset once per batch of about 4 MiB of chunks (one
 * H5Dset_extent, the batches of imgconv's writer: max(1, 4 MiB / chunk bytes) chunks, counted over
 * the whole output, not per part); closes the file, fsyncs it (as imgconv's commit) and renames it
 * to OUT. It prints the bytes copied and the seconds of each phase and in all.
 *
 * What imgconv's merge does besides, and this probe leaves out: hashing every image (XXH3) and the
 * labels, the labels dataset, the class names and the manifest (an attribute and a JSON file), the
 * checks of each part's manifest and checksum, and reading the images as hyperslabs (H5Dread)
 * rather than as raw chunks. Single thread: libhdf5 (Debian's serial build) is not thread-safe.
 *
 * Nothing in a part is trusted: a chunk whose stored size is not the chunk's size, that was stored
 * through a filter, or (-p) whose address and size do not lie inside the file is an error naming
 * the part; every error is one line, the exit status 1, and no file is left behind.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DATASET "/trainXs"
#define BATCH_BYTES ((size_t)4 << 20) /* imgconv's HDF5Writer.chunksPerBatch: about 4 MiB */
#define MAX_RANK 32
#define WRITEBACK_STEP ((off_t)8 << 20) /* imgconv's AtomicOutputFile.writebackStep */

static char *tmp_path; /* the temporary output, removed on failure */

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void fail(const char *path, const char *fmt, ...) {
  char msg[1024]; va_list ap; va_start(ap, fmt); vsnprintf(msg, sizeof msg, fmt, ap); va_end(ap);
  if (tmp_path) unlink(tmp_path);
  if (path) fprintf(stderr, "h5_copy_floor: %s: %s\n", path, msg); else fprintf(stderr, "h5_copy_floor: %s\n", msg);
  exit(1);
}

typedef struct {
  const char *path;
  hid_t file, dset;
  int fd;          /* -p: the part opened for pread */
  off_t file_size; /* -p: every chunk must lie inside it */
  hsize_t n;       /* items (the first axis) */
} part_t;

static int rank;                 /* the first part's, which the others must have */
static hsize_t item_dims[MAX_RANK], chunk_dims[MAX_RANK];
static hid_t dtype = -1;
static size_t chunk_bytes;

static const char *dims_text(const hsize_t *d, int r, char *buf, size_t cap) {
  size_t k = 0;
  k += snprintf(buf + k, cap - k, "(");
  for (int i = 0; i < r && k < cap; i++) k += snprintf(buf + k, cap - k, i ? ", %llu" : "%llu", (unsigned long long)d[i]);
  if (k < cap) snprintf(buf + k, cap - k, r == 1 ? ",)" : ")");
  return buf;
}

/* Opens a part and checks its /trainXs against the first part's (or takes it as the reference). */
static void open_part(part_t *p, int first, int last, int use_pread) {
  p->file = H5Fopen(p->path, H5F_ACC_RDONLY, H5P_DEFAULT);
  if (p->file < 0) fail(p->path, "cannot open it as an HDF5 file");
  p->dset = H5Dopen2(p->file, DATASET, H5P_DEFAULT);
  if (p->dset < 0) fail(p->path, "has no dataset " DATASET);
  hid_t space = H5Dget_space(p->dset), dcpl = H5Dget_create_plist(p->dset), type = H5Dget_type(p->dset);
  if (space < 0 || dcpl < 0 || type < 0) fail(p->path, "cannot read the dataspace, type or creation properties of " DATASET);
  int r = H5Sget_simple_extent_ndims(space);
  if (r < 1 || r > MAX_RANK) fail(p->path, DATASET " has rank %d (1 to %d taken)", r, MAX_RANK);
  hsize_t dims[MAX_RANK], cdims[MAX_RANK];
  if (H5Sget_simple_extent_dims(space, dims, NULL) < 0) fail(p->path, "cannot read the shape of " DATASET);
  if (H5Pget_layout(dcpl) != H5D_CHUNKED) fail(p->path, DATASET " is not chunked (the probe copies chunks)");
  if (H5Pget_chunk(dcpl, r, cdims) != r) fail(p->path, "cannot read the chunk shape of " DATASET);
  int nfilters = H5Pget_nfilters(dcpl);
  if (nfilters != 0) fail(p->path, DATASET " has %d filter(s) (compressed): the probe copies stored chunks only", nfilters);
  size_t tsize = H5Tget_size(type);
  if (tsize == 0) fail(p->path, "cannot read the element type of " DATASET);
  char a[512], b[512];
  for (int i = 1; i < r; i++)
    if (cdims[i] != dims[i])
      fail(p->path, DATASET " has chunks %s for items %s: the probe copies whole items per chunk",
           dims_text(cdims, r, a, sizeof a), dims_text(dims + 1, r - 1, b, sizeof b));
  if (cdims[0] == 0) fail(p->path, DATASET " has a zero chunk dimension");
  if (first) {
    rank = r;
    memcpy(item_dims, dims, sizeof dims);
    memcpy(chunk_dims, cdims, sizeof cdims);
    dtype = H5Tcopy(type);
    if (dtype < 0) fail(p->path, "cannot copy the element type of " DATASET);
    unsigned long long cb = tsize;
    for (int i = 0; i < r; i++) {
      if (cdims[i] > (1ull << 32) / cb) fail(p->path, DATASET " has chunks over 4 GiB");
      cb *= cdims[i];
    }
    chunk_bytes = (size_t)cb;
  } else {
    if (r != rank) fail(p->path, DATASET " has rank %d where the first part's has %d", r, rank);
    for (int i = 1; i < r; i++)
      if (dims[i] != item_dims[i])
        fail(p->path, DATASET " holds items %s where the first part's holds %s",
             dims_text(dims + 1, r - 1, a, sizeof a), dims_text(item_dims + 1, r - 1, b, sizeof b));
    if (cdims[0] != chunk_dims[0])
      fail(p->path, DATASET " has chunks of %llu items where the first part's has %llu",
           (unsigned long long)cdims[0], (unsigned long long)chunk_dims[0]);
    if (H5Tequal(type, dtype) <= 0) fail(p->path, DATASET " has another element type than the first part's");
  }
  p->n = dims[0];
  if (!last && p->n % chunk_dims[0] != 0)
    fail(p->path, "%llu items do not fill its chunks of %llu: only the last part may end in a partial chunk",
         (unsigned long long)p->n, (unsigned long long)chunk_dims[0]);
  H5Tclose(type); H5Pclose(dcpl); H5Sclose(space);
  p->fd = -1;
  if (use_pread) {
    p->fd = open(p->path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (p->fd < 0 || fstat(p->fd, &st) != 0) fail(p->path, "cannot open it for reading: %s", strerror(errno));
    p->file_size = st.st_size;
  }
}

/* Reads the chunk at item `item` of a part into buf (chunk_bytes long), trusting nothing. */
static void read_chunk(part_t *p, hsize_t item, unsigned char *buf, int use_pread) {
  hsize_t off[MAX_RANK] = {0};
  off[0] = item;
  if (use_pread) {
    unsigned mask = 0; haddr_t addr = 0; hsize_t size = 0;
    if (H5Dget_chunk_info_by_coord(p->dset, off, &mask, &addr, &size) < 0 || addr == HADDR_UNDEF)
      fail(p->path, "no stored chunk at item %llu of " DATASET, (unsigned long long)item);
    if (mask != 0) fail(p->path, "the chunk at item %llu of " DATASET " was stored through a filter", (unsigned long long)item);
    if (size != chunk_bytes) fail(p->path, "the chunk at item %llu of " DATASET " holds %llu bytes, not %zu",
                                  (unsigned long long)item, (unsigned long long)size, chunk_bytes);
    if (addr > (haddr_t)p->file_size || (haddr_t)p->file_size - addr < size)
      fail(p->path, "the chunk at item %llu of " DATASET " lies past the end of the file", (unsigned long long)item);
    size_t done = 0;
    while (done < chunk_bytes) {
      ssize_t k = pread(p->fd, buf + done, chunk_bytes - done, (off_t)(addr + done));
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) fail(p->path, "cannot read the chunk at item %llu: %s", (unsigned long long)item, k < 0 ? strerror(errno) : "end of file");
      done += (size_t)k;
    }
    return;
  }
  hsize_t size = 0;
  if (H5Dget_chunk_storage_size(p->dset, off, &size) < 0 || size == 0)
    fail(p->path, "no stored chunk at item %llu of " DATASET, (unsigned long long)item);
  if (size != chunk_bytes) fail(p->path, "the chunk at item %llu of " DATASET " holds %llu bytes, not %zu",
                                (unsigned long long)item, (unsigned long long)size, chunk_bytes);
  uint32_t filters = 0;
  if (H5Dread_chunk(p->dset, H5P_DEFAULT, off, &filters, buf) < 0)
    fail(p->path, "cannot read the chunk at item %llu of " DATASET, (unsigned long long)item);
  if (filters != 0) fail(p->path, "the chunk at item %llu of " DATASET " was stored through a filter", (unsigned long long)item);
}

static void close_part(part_t *p) {
  H5Dclose(p->dset);
  if (H5Fclose(p->file) < 0) fail(p->path, "cannot close it");
  if (p->fd >= 0) close(p->fd);
}

int main(int argc, char **argv) {
  int read_only = 0, use_pread = 0, writeback = 0, quiet = 0, opt;
  while ((opt = getopt(argc, argv, "rpwq")) != -1) {
    switch (opt) {
      case 'r': read_only = 1; break;
      case 'p': use_pread = 1; break;
      case 'w': writeback = 1; break;
      case 'q': quiet = 1; break;
      default: fail(NULL, "usage: h5_copy_floor [-p] [-w] [-q] OUT.h5 PART.h5... | h5_copy_floor -r [-p] [-q] PART.h5...");
    }
  }
  const char *out = read_only ? NULL : (optind < argc ? argv[optind++] : NULL);
  int nparts = argc - optind;
  if ((!read_only && !out) || nparts < 1)
    fail(NULL, "usage: h5_copy_floor [-p] [-w] [-q] OUT.h5 PART.h5... | h5_copy_floor -r [-p] [-q] PART.h5...");
  if (read_only && writeback) fail(NULL, "-w asks for the output's early writeback: there is no output with -r");
  double t0 = now();
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are reported here, one line each */

  /* Every part opened and checked before anything is written. */
  part_t *parts = calloc((size_t)nparts, sizeof *parts);
  if (!parts) fail(NULL, "out of memory");
  hsize_t total = 0;
  for (int i = 0; i < nparts; i++) {
    parts[i].path = argv[optind + i];
    open_part(&parts[i], i == 0, i == nparts - 1, use_pread);
    total += parts[i].n;
  }
  unsigned char *buf = malloc(chunk_bytes);
  if (!buf) fail(NULL, "out of memory (a chunk of %zu bytes)", chunk_bytes);
  const hsize_t rows = chunk_dims[0];
  size_t batch_chunks = BATCH_BYTES / chunk_bytes;
  if (batch_chunks < 1) batch_chunks = 1;
  const hsize_t batch_items = batch_chunks * rows;

  /* The output: a temporary file beside OUT, as imgconv's writer creates it. */
  hid_t ofile = -1, odset = -1;
  if (!read_only) {
    const char *slash = strrchr(out, '/');
    size_t dirlen = slash ? (size_t)(slash - out) + 1 : 0;
    tmp_path = malloc(strlen(out) + 64);
    if (!tmp_path) fail(NULL, "out of memory");
    snprintf(tmp_path, strlen(out) + 64, "%.*s.%s.floor-%d.tmp", (int)dirlen, out, out + dirlen, (int)getpid());
    int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644); /* claim the name */
    if (fd < 0) { char *t = tmp_path; tmp_path = NULL; fail(t, "cannot create the output: %s", strerror(errno)); }
    close(fd);
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fcpl < 0 || fapl < 0 || H5Pset_obj_track_times(fcpl, 0) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_V18, H5F_LIBVER_V110) < 0)
      fail(out, "cannot set the file's properties");
    ofile = H5Fcreate(tmp_path, H5F_ACC_TRUNC, fcpl, fapl);
    if (ofile < 0) fail(out, "cannot create the HDF5 file");
    H5Pclose(fcpl); H5Pclose(fapl);
    hsize_t dims[MAX_RANK], maxdims[MAX_RANK];
    memcpy(dims, item_dims, sizeof dims); memcpy(maxdims, item_dims, sizeof maxdims);
    dims[0] = 0; maxdims[0] = H5S_UNLIMITED;
    hid_t space = H5Screate_simple(rank, dims, maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk_dims) < 0 || H5Pset_obj_track_times(dcpl, 0) < 0)
      fail(out, "cannot set the properties of " DATASET);
    odset = H5Dcreate2(ofile, DATASET, dtype, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (odset < 0) fail(out, "cannot create the dataset " DATASET);
    H5Pclose(dcpl); H5Sclose(space);
  }
  int wfd = -1; /* -w: the output's second descriptor, for sync_file_range */
  off_t wb_start = 0;
  size_t syncs = 0;
  if (writeback && (wfd = open(tmp_path, O_RDONLY | O_CLOEXEC)) < 0) fail(out, "cannot open the output for writeback: %s", strerror(errno));
  double t_open = now();

  /* The copy (or the read alone): part after part, chunk after chunk, in order. */
  hsize_t written = 0, extent = 0, ext_dims[MAX_RANK];
  size_t nchunks = 0, extents = 0;
  memcpy(ext_dims, item_dims, sizeof ext_dims);
  for (int i = 0; i < nparts; i++) {
    part_t *p = &parts[i];
    for (hsize_t item = 0; item < p->n; item += rows) {
      read_chunk(p, item, buf, use_pread);
      hsize_t count = p->n - item < rows ? p->n - item : rows;
      if (!read_only) {
        if (written >= extent) { /* a new batch: grow the dataset once for all of it */
          extent = total - extent < batch_items ? total : extent + batch_items;
          ext_dims[0] = extent;
          if (H5Dset_extent(odset, ext_dims) < 0) fail(out, "cannot extend " DATASET " to %llu items", (unsigned long long)extent);
          extents++;
        }
        hsize_t off[MAX_RANK] = {0};
        off[0] = written;
        if (H5Dwrite_chunk(odset, H5P_DEFAULT, 0, off, chunk_bytes, buf) < 0)
          fail(out, "cannot write the chunk at item %llu of " DATASET, (unsigned long long)written);
        struct stat st;
        if (wfd >= 0 && fstat(wfd, &st) == 0 && st.st_size - wb_start >= WRITEBACK_STEP) {
          off_t to = st.st_size - st.st_size % WRITEBACK_STEP;
          sync_file_range(wfd, wb_start, to - wb_start, SYNC_FILE_RANGE_WRITE);
          wb_start = to;
          syncs++;
        }
      }
      written += count;
      nchunks++;
    }
    close_part(p);
  }
  double t_copy = now();
  double t_close = t_copy, t_end = t_copy;
  off_t out_size = 0;
  if (!read_only) {
    if (H5Dclose(odset) < 0 || H5Fclose(ofile) < 0) fail(out, "cannot close the HDF5 file");
    if (wfd >= 0) close(wfd);
    t_close = now();
    int fd = open(tmp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0) fail(out, "cannot sync the finished file: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0) out_size = st.st_size;
    close(fd);
    if (rename(tmp_path, out) != 0) fail(out, "cannot move the finished file into place: %s", strerror(errno));
    tmp_path = NULL;
    t_end = now();
  }
  H5Tclose(dtype);
  free(buf); free(parts);
  double bytes = (double)nchunks * (double)chunk_bytes;
  if (!quiet) {
    char cd[512];
    if (read_only)
      printf("h5_copy_floor: read %zu chunks %s (%zu bytes each, %llu items, %.0f bytes) of %d parts with %s; "
             "open+check %.3f s, read %.3f s = %.0f MB/s, total %.3f s\n",
             nchunks, dims_text(chunk_dims, rank, cd, sizeof cd), chunk_bytes, (unsigned long long)written, bytes, nparts,
             use_pread ? "pread" : "H5Dread_chunk", t_open - t0, t_copy - t_open, bytes / 1e6 / (t_copy - t_open), t_end - t0);
    else
      printf("h5_copy_floor: copied %zu chunks %s (%zu bytes each, %llu items, %.0f bytes) of %d parts with %s -> %s "
             "(%lld bytes); %zu extends of %zu chunks, %zu writeback requests; open+check+create %.3f s, copy %.3f s, close %.3f s, "
             "fsync+rename %.3f s, total %.3f s = %.0f MB/s\n",
             nchunks, dims_text(chunk_dims, rank, cd, sizeof cd), chunk_bytes, (unsigned long long)written, bytes, nparts,
             use_pread ? "pread" : "H5Dread_chunk", out, (long long)out_size, extents, batch_chunks, syncs, t_open - t0,
             t_copy - t_open, t_close - t_copy, t_end - t_close, t_end - t0, bytes / 1e6 / (t_end - t0));
  }
  return 0;
}
