/* job_floor: the job's irreducible work as one whole process, the yardstick of issue 18.
 *
 * usage: job_floor [-t THREADS] [-p low|simple] [-w IMAGES] [-b IMAGES] [-r DEPTH] [-H] [-q] DIR OUT
 *   DIR   dataset root: DIR/CLASS/... (classes are the visible subfolders, files are found
 *         recursively under each; both in code-point (byte) order, names starting with '.' and
 *         __MACOSX left out, links followed: the order imgconv takes them in)
 *   OUT   the output: a .npy file, uint8, shape (N, H, W, C), the images' pixels in that order
 *   -t N  decode threads (default: the CPUs this process may run on, as imgconv's --jobs)
 *   -p    PNG through libpng's low-level API with imgconv's transforms (low, the default) or the
 *         simplified API (simple)
 *   -w N  images in flight (default as imgconv: about 16 MiB of pixels, at least 4 per thread,
 *         at most 1,024); -b N images a thread takes at a time (default as imgconv)
 *   -r N  read ahead: before a thread reads file i it asks the kernel to start reading the files
 *         up to i + N it has not asked for yet (open, posix_fadvise WILLNEED, close: what imgconv's
 *         ReadAhead does once it finds the inputs are not in the page cache); for cold runs
 *   -H    also the hashes the job must compute, with imgconv's libraries and on the same threads:
 *         each source file's SHA-256 (libcrypto) on the thread that read it, and on the writer
 *         thread the tensor's XXH3-128 (streaming, in imgconv's own build of it: the widest the
 *         CPU runs, Sources/CXXH3) and CRC-32 (ISA-L's crc32_gzip_refl, the .npz member's), over
 *         every run of pixels as it is written; the output is the same file
 *   -D    direct I/O, as imgconv writes its tensors: the .npy header padded to 4096 bytes
 *         (numpy reads it as any other), the ring 4096-aligned, and the 4096-byte blocks of each
 *         run written from it with O_DIRECT through a second descriptor (no copy, no page cache);
 *         a run's partial blocks at its ends through the page cache; a file system that refuses
 *         direct I/O gets everything through the page cache
 *   -q    no summary line
 *
 * What it does, and nothing more: lists the dataset; each thread takes the next batch of images,
 * reads each file (open, fstat, read, close) and decodes it with TurboJPEG (tjDecompress2,
 * TJFLAG_LIMITSCANS, as imgconv) or libpng straight into its place in a ring of decoded images;
 * the main thread writes the ring's finished runs in order (pwrite, no copy) into a temporary file
 * beside OUT, starts the disk write of every full 8 MiB written (sync_file_range
 * SYNC_FILE_RANGE_WRITE, as imgconv), and at the end fdatasyncs the file and renames it to OUT.
 * No hashing (unless -H), no manifest, no labels, no resize, no colour conversion: every image must have the
 * first image's width, height and channels (gray stays 1 channel, as imgconv's automatic colour
 * gives for an all-gray set), JPEG or 8-bit PNG only; anything else is an error naming the file.
 *
 * A program of its own rather than a mode of decode_bench: decode_bench preloads every file and
 * times passes inside one process, while this one is timed from outside, start to exit, in the
 * same rounds as imgconv (bench/run.sh), and shares none of that structure.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <imc_xxh3.h>
#include <isa-l/crc.h>
#include <openssl/sha.h>
#include <png.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <turbojpeg.h>
#include <unistd.h>

#define WRITEBACK_STEP (8u << 20) /* imgconv's AtomicOutputFile.writebackStep */

static char **paths;
static size_t npaths, pathcap;
static char *tmp_path; /* the temporary output, removed on failure */
static int png_simple = 0;
static int hashing = 0; /* -H */
static int W, H, C; /* every image's width, height, channels (from the first image) */
static size_t img_bytes;

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static void fail(const char *path, const char *fmt, ...) {
  char msg[1024]; va_list ap; va_start(ap, fmt); vsnprintf(msg, sizeof msg, fmt, ap); va_end(ap);
  if (tmp_path) unlink(tmp_path);
  if (path) fprintf(stderr, "job_floor: %s: %s\n", path, msg); else fprintf(stderr, "job_floor: %s\n", msg);
  exit(1);
}

static void *xmalloc(size_t n) { void *p = malloc(n ? n : 1); if (!p) fail(NULL, "out of memory"); return p; }

/* ------------------------------------------------------------------ listing */
typedef struct { char *name; unsigned char type; } entry_t;
static int cmp_entry(const void *a, const void *b) { return strcmp(((const entry_t *)a)->name, ((const entry_t *)b)->name); }
static int visible(const char *n) { return n[0] != '.' && strcmp(n, "__MACOSX") != 0; }

static entry_t *list_dir(const char *dir, size_t *n) {
  DIR *d = opendir(dir);
  if (!d) fail(dir, "cannot list folder: %s", strerror(errno));
  entry_t *v = NULL; size_t k = 0, cap = 0; struct dirent *e;
  while ((e = readdir(d))) {
    if (!visible(e->d_name)) continue;
    if (k == cap) { cap = cap ? 2 * cap : 64; v = realloc(v, cap * sizeof *v); if (!v) fail(NULL, "out of memory"); }
    v[k].name = strdup(e->d_name); v[k].type = e->d_type; k++;
  }
  closedir(d);
  qsort(v, k, sizeof *v, cmp_entry); /* strcmp on UTF-8 bytes = code-point order */
  *n = k; return v;
}

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = xmalloc(a + b + 2); memcpy(p, dir, a); p[a] = '/'; memcpy(p + a + 1, name, b + 1); return p;
}

static void add_path(char *p) {
  if (npaths == pathcap) { pathcap = pathcap ? 2 * pathcap : 4096; paths = realloc(paths, pathcap * sizeof *paths); if (!paths) fail(NULL, "out of memory"); }
  paths[npaths++] = p;
}

static void walk(const char *dir, int depth) {
  if (depth > 64) fail(dir, "folders nested more than 64 deep (a link loop?)");
  size_t n; entry_t *es = list_dir(dir, &n);
  for (size_t i = 0; i < n; i++) {
    char *p = join(dir, es[i].name);
    free(es[i].name);
    if (es[i].type == DT_REG) { add_path(p); continue; }
    struct stat st;
    if (stat(p, &st) != 0) fail(p, "cannot stat: %s", strerror(errno));
    if (S_ISDIR(st.st_mode)) { walk(p, depth + 1); free(p); }
    else if (S_ISREG(st.st_mode)) add_path(p);
    else free(p);
  }
  free(es);
}

static size_t list_dataset(const char *root) {
  size_t n, classes = 0; entry_t *es = list_dir(root, &n);
  for (size_t i = 0; i < n; i++) {
    char *p = join(root, es[i].name);
    struct stat st;
    if (es[i].type == DT_DIR || (es[i].type != DT_REG && stat(p, &st) == 0 && S_ISDIR(st.st_mode))) { walk(p, 1); classes++; }
    free(p); free(es[i].name);
  }
  free(es);
  return classes;
}

/* ------------------------------------------------------------------ reading */
/* Reads a whole file into *buf (grown as needed); returns its length, or -1 with err set. */
static long read_file(const char *path, unsigned char **buf, size_t *cap, char *err, size_t errlen) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { snprintf(err, errlen, "cannot open: %s", strerror(errno)); return -1; }
  struct stat st;
  if (fstat(fd, &st) != 0) { snprintf(err, errlen, "cannot stat: %s", strerror(errno)); close(fd); return -1; }
  size_t size = (size_t)st.st_size, got = 0;
  if (size > *cap) { free(*buf); *cap = size; *buf = malloc(size); if (!*buf) { *cap = 0; snprintf(err, errlen, "out of memory"); close(fd); return -1; } }
  while (got < size) {
    ssize_t r = read(fd, *buf + got, size - got);
    if (r < 0) { if (errno == EINTR) continue; snprintf(err, errlen, "read failed: %s", strerror(errno)); close(fd); return -1; }
    if (r == 0) { snprintf(err, errlen, "file shrank while being read"); close(fd); return -1; }
    got += (size_t)r;
  }
  close(fd);
  return (long)got;
}

/* ------------------------------------------------------------------ decoding */
typedef struct {
  tjhandle tj;
  png_bytep *rows; /* H row pointers */
} decoder_t;

static int is_jpeg(const unsigned char *b, size_t n) { return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF; }
static int is_png(const unsigned char *b, size_t n) { return n >= 8 && png_sig_cmp(b, 0, 8) == 0; }

static int check_shape(int w, int h, int c, char *err, size_t errlen) {
  if (w == W && h == H && c == C) return 0;
  snprintf(err, errlen, "is %dx%d with %d channel%s, not %dx%d with %d like the first image (the floor probe neither resizes nor converts)",
           w, h, c, c == 1 ? "" : "s", W, H, C);
  return -1;
}

/* JPEG: dst NULL reads the header into *w,*h,*c only. */
static int jpeg(tjhandle tj, const unsigned char *b, size_t n, unsigned char *dst, int *w, int *h, int *c, char *err, size_t errlen) {
  int ss, cs;
  if (tjDecompressHeader3(tj, b, n, w, h, &ss, &cs) != 0) { snprintf(err, errlen, "TurboJPEG: %s", tjGetErrorStr2(tj)); return -1; }
  if (cs == TJCS_CMYK || cs == TJCS_YCCK) { snprintf(err, errlen, "CMYK JPEG (the floor probe takes gray or RGB)"); return -1; }
  *c = cs == TJCS_GRAY ? 1 : 3;
  if (!dst) return 0;
  if (check_shape(*w, *h, *c, err, errlen)) return -1;
  if (tjDecompress2(tj, b, n, dst, W, 0, H, C == 1 ? TJPF_GRAY : TJPF_RGB, TJFLAG_LIMITSCANS) != 0) {
    snprintf(err, errlen, "TurboJPEG: %s", tjGetErrorStr2(tj)); return -1;
  }
  return 0;
}

typedef struct { const unsigned char *p; size_t left; char *err; size_t errlen; } png_src_t;
static void png_on_error(png_structp png, png_const_charp msg) {
  png_src_t *s = png_get_error_ptr(png);
  snprintf(s->err, s->errlen, "libpng: %s", msg);
  png_longjmp(png, 1);
}
static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }
static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  png_src_t *s = png_get_io_ptr(png);
  if (n > s->left) png_error(png, "Read Error: file is truncated");
  memcpy(out, s->p, n); s->p += n; s->left -= n;
}

/* PNG through the low-level API with the transforms imgconv's decoder sets (palette and tRNS
 * expanded, 1/2/4-bit gray widened); dst NULL reads the header only. */
static int png_low(decoder_t *d, const unsigned char *b, size_t n, unsigned char *dst, int *w, int *h, int *c, char *err, size_t errlen) {
  png_src_t src = {b, n, err, errlen};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
  if (!png) { snprintf(err, errlen, "out of memory"); return -1; }
  png_infop info = png_create_info_struct(png);
  if (!info) { png_destroy_read_struct(&png, NULL, NULL); snprintf(err, errlen, "out of memory"); return -1; }
  if (setjmp(png_jmpbuf(png))) { png_destroy_read_struct(&png, &info, NULL); return -1; }
  png_set_read_fn(png, &src, png_read_mem);
  png_set_chunk_malloc_max(png, 8u << 20);
  png_set_user_limits(png, 1000000, 1000000);
  png_read_info(png, info);
  png_uint_32 pw, ph; int depth, ctype, interlace;
  png_get_IHDR(png, info, &pw, &ph, &depth, &ctype, &interlace, NULL, NULL);
  if (depth == 16) png_error(png, "16-bit PNG (the floor probe takes 8-bit images)");
  if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
  png_read_update_info(png, info);
  *w = (int)pw; *h = (int)ph; *c = png_get_channels(png, info);
  if (dst) {
    if (check_shape(*w, *h, *c, err, errlen)) { png_destroy_read_struct(&png, &info, NULL); return -1; }
    for (int y = 0; y < H; y++) d->rows[y] = dst + (size_t)y * W * C;
    png_read_image(png, d->rows);
    png_read_end(png, NULL);
  }
  png_destroy_read_struct(&png, &info, NULL);
  return 0;
}

/* PNG through the simplified API: only files it gives without conversion (8-bit gray or RGB). */
static int png_simplified(const unsigned char *b, size_t n, unsigned char *dst, int *w, int *h, int *c, char *err, size_t errlen) {
  png_image img; memset(&img, 0, sizeof img); img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_memory(&img, b, n)) { snprintf(err, errlen, "libpng: %s", img.message); return -1; }
  *w = (int)img.width; *h = (int)img.height; *c = (img.format & PNG_FORMAT_FLAG_COLOR) ? 3 : 1;
  if (img.format & (PNG_FORMAT_FLAG_ALPHA | PNG_FORMAT_FLAG_LINEAR)) {
    png_image_free(&img); snprintf(err, errlen, "PNG with alpha or 16-bit samples (the floor probe's simplified path takes 8-bit gray or RGB)"); return -1;
  }
  if (!dst) { png_image_free(&img); return 0; }
  if (check_shape(*w, *h, *c, err, errlen)) { png_image_free(&img); return -1; }
  img.format = C == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  if (!png_image_finish_read(&img, NULL, dst, 0, NULL)) { snprintf(err, errlen, "libpng: %s", img.message); png_image_free(&img); return -1; }
  return 0;
}

static int decode(decoder_t *d, const unsigned char *b, size_t n, unsigned char *dst, int *w, int *h, int *c, char *err, size_t errlen) {
  if (is_jpeg(b, n)) return jpeg(d->tj, b, n, dst, w, h, c, err, errlen);
  if (is_png(b, n)) return png_simple ? png_simplified(b, n, dst, w, h, c, err, errlen) : png_low(d, b, n, dst, w, h, c, err, errlen);
  snprintf(err, errlen, "neither JPEG nor PNG (the floor probe decodes only these)");
  return -1;
}

/* ------------------------------------------------------------------ the ring */
/* Chunk k (images k*batch .. k*batch+batch-1) is decoded into ring slot k % ring_chunks; ready[slot]
 * holds k+1 once it is complete. Workers wait while the next chunk's slot still holds an unwritten
 * chunk; the writer waits for the chunk it is to write next. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t worker_cv = PTHREAD_COND_INITIALIZER, writer_cv = PTHREAD_COND_INITIALIZER;
static size_t batch, nchunks, ring_chunks, next_chunk, written_chunks;
static size_t *ready;
static size_t ahead_depth, ahead_hinted; /* -r: files [0, ahead_hinted) have been asked for */
static unsigned char *ring;
static unsigned char *source_digest_sum; /* -H: a byte of each source's SHA-256 */
static int failed, writer_waiting, workers_waiting;
static char fail_msg[2048];

static void set_failed(const char *path, const char *err) {
  pthread_mutex_lock(&mu);
  if (!failed) { failed = 1; snprintf(fail_msg, sizeof fail_msg, "%s: %s", path, err); }
  pthread_cond_broadcast(&worker_cv); pthread_cond_broadcast(&writer_cv);
  pthread_mutex_unlock(&mu);
}

/* Claims the files not yet asked for up to i + ahead_depth, then asks outside the lock. */
static void read_ahead(size_t i) {
  size_t to = i + ahead_depth < npaths ? i + ahead_depth : npaths;
  pthread_mutex_lock(&mu);
  size_t from = ahead_hinted > i ? ahead_hinted : i;
  if (to > from) ahead_hinted = to;
  pthread_mutex_unlock(&mu);
  for (size_t k = from; k < to; k++) {
    int fd = open(paths[k], O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    close(fd);
  }
}

static void *worker(void *arg) {
  (void)arg;
  decoder_t d = {tjInitDecompress(), xmalloc((size_t)H * sizeof(png_bytep))};
  unsigned char *buf = NULL; size_t cap = 0; char err[1024];
  if (!d.tj) { set_failed("TurboJPEG", "cannot create a decompressor"); return NULL; }
  for (;;) {
    pthread_mutex_lock(&mu);
    while (!failed && next_chunk < nchunks && next_chunk - written_chunks >= ring_chunks) {
      workers_waiting++; pthread_cond_wait(&worker_cv, &mu); workers_waiting--;
    }
    if (failed || next_chunk >= nchunks) { pthread_mutex_unlock(&mu); break; }
    size_t k = next_chunk++;
    pthread_mutex_unlock(&mu);
    size_t first = k * batch, end = first + batch < npaths ? first + batch : npaths;
    unsigned char *slot = ring + (k % ring_chunks) * batch * img_bytes;
    int ok = 1;
    for (size_t i = first; i < end && ok; i++) {
      int w, h, c;
      if (ahead_depth) read_ahead(i);
      long n = read_file(paths[i], &buf, &cap, err, sizeof err);
      if (n >= 0 && hashing) {
        unsigned char md[SHA256_DIGEST_LENGTH];
        SHA256(buf, (size_t)n, md);
        source_digest_sum[i] = md[0];  /* kept, so the hash is not optimized away */
      }
      if (n < 0 || decode(&d, buf, (size_t)n, slot + (i - first) * img_bytes, &w, &h, &c, err, sizeof err) != 0) {
        set_failed(paths[i], err); ok = 0;
      }
    }
    if (!ok) break;
    pthread_mutex_lock(&mu);
    ready[k % ring_chunks] = k + 1;
    if (writer_waiting && k == written_chunks) pthread_cond_signal(&writer_cv);
    pthread_mutex_unlock(&mu);
  }
  tjDestroy(d.tj); free(d.rows); free(buf);
  return NULL;
}

static void pwrite_all(int fd, const unsigned char *p, size_t n, off_t at, const char *out) {
  while (n) {
    ssize_t r = pwrite(fd, p, n, at);
    if (r < 0) { if (errno == EINTR) continue; fail(out, "write failed: %s", strerror(errno)); }
    p += r; n -= (size_t)r; at += r;
  }
}

/* -D: the O_DIRECT descriptor (-1: everything through the page cache). */
static int direct_fd = -1;
static size_t direct_bytes;

/* A run of the output: its whole 4096-byte blocks direct when their memory is aligned as their
 * place in the file is, the rest through the page cache. */
static void write_run(int fd, const unsigned char *p, size_t n, off_t at, const char *out) {
  off_t a = (at + 4095) & ~(off_t)4095, e = (at + (off_t)n) & ~(off_t)4095;
  if (direct_fd < 0 || e <= a || ((uintptr_t)(p + (a - at)) & 4095) != 0) { pwrite_all(fd, p, n, at, out); return; }
  if (a > at) pwrite_all(fd, p, (size_t)(a - at), at, out);
  const unsigned char *m = p + (a - at);
  size_t left = (size_t)(e - a);
  off_t o = a;
  while (left) {
    ssize_t r = pwrite(direct_fd, m, left, o);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EINVAL) { close(direct_fd); direct_fd = -1; pwrite_all(fd, m, left, o, out); break; }
    if (r < 0) fail(out, "write failed: %s", strerror(errno));
    m += r; left -= (size_t)r; o += r; direct_bytes += (size_t)r;
  }
  if (at + (off_t)n > e) pwrite_all(fd, p + (e - at), (size_t)(at + (off_t)n - e), e, out);
}

static int default_threads(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int main(int argc, char **argv) {
  int threads = default_threads(), quiet = 0, direct = 0, ch;
  const imc_xxh3_build *xxh3 = imc_xxh3_best();
  void *tensor_hash = NULL;
  uint32_t crc = 0;
  long want_window = 0, want_batch = 0;
  while ((ch = getopt(argc, argv, "t:p:w:b:r:HDq")) != -1) switch (ch) {
    case 't': threads = atoi(optarg); break;
    case 'p':
      if (!strcmp(optarg, "simple")) png_simple = 1; else if (!strcmp(optarg, "low")) png_simple = 0;
      else fail(NULL, "-p takes low or simple, not '%s'", optarg);
      break;
    case 'w': want_window = atol(optarg); break;
    case 'b': want_batch = atol(optarg); break;
    case 'r': ahead_depth = (size_t)atol(optarg); break;
    case 'H': hashing = 1; break;
    case 'D': direct = 1; break;
    case 'q': quiet = 1; break;
    default: fprintf(stderr, "usage: %s [-t threads] [-p low|simple] [-w images] [-b images] [-r depth] [-H] [-D] [-q] DIR OUT\n", argv[0]); return 2;
  }
  if (argc - optind != 2) { fprintf(stderr, "usage: %s [-t threads] [-p low|simple] [-w images] [-b images] [-r depth] [-H] [-D] [-q] DIR OUT\n", argv[0]); return 2; }
  if (threads < 1 || want_window < 0 || want_batch < 0) fail(NULL, "-t, -w and -b take positive numbers");
  const char *root = argv[optind], *out = argv[optind + 1];
  double t0 = now();

  struct stat rst;
  if (stat(root, &rst) != 0) fail(root, "dataset root does not exist (%s)", strerror(errno));
  if (!S_ISDIR(rst.st_mode)) fail(root, "dataset root is not a folder");
  size_t classes = list_dataset(root);
  if (npaths == 0) fail(root, "no files under the class folders");
  double t_list = now();

  /* The tensor's shape from the first image's header. */
  {
    decoder_t d = {tjInitDecompress(), NULL};
    unsigned char *buf = NULL; size_t cap = 0; char err[1024];
    long n = read_file(paths[0], &buf, &cap, err, sizeof err);
    if (n < 0 || decode(&d, buf, (size_t)n, NULL, &W, &H, &C, err, sizeof err) != 0) fail(paths[0], "%s", err);
    if (C != 1 && C != 3) fail(paths[0], "has %d channels (the floor probe takes gray or RGB)", C);
    tjDestroy(d.tj); free(buf);
  }
  img_bytes = (size_t)W * H * C;

  /* Images in flight and per turn: imgconv's pipelineFlow. */
  size_t window = want_window ? (size_t)want_window : (size_t)(16u << 20) / img_bytes;
  if (!want_window) { if (window < (size_t)threads * 4) window = (size_t)threads * 4; if (window > 1024) window = 1024; }
  batch = want_batch ? (size_t)want_batch : window / ((size_t)threads * 4);
  if (!want_batch && batch > 64) batch = 64;
  if (batch < 1) batch = 1;
  ring_chunks = window / batch; if (ring_chunks < 1) ring_chunks = 1;
  nchunks = (npaths + batch - 1) / batch;
  ring = aligned_alloc(4096, (ring_chunks * batch * img_bytes + 4095) / 4096 * 4096);
  if (!ring) fail(NULL, "out of memory");
  ready = calloc(ring_chunks, sizeof *ready);
  if (!ready) fail(NULL, "out of memory");
  if (hashing) {
    source_digest_sum = xmalloc(npaths);
    tensor_hash = xxh3->create();
    if (!tensor_hash) fail(NULL, "out of memory");
  }

  /* The temporary file beside OUT, with a .npy header (version 1.0). */
  const char *slash = strrchr(out, '/');
  size_t dirlen = slash ? (size_t)(slash - out) + 1 : 0;
  tmp_path = xmalloc(strlen(out) + 64);
  snprintf(tmp_path, strlen(out) + 64, "%.*s.%s.floor-%d.tmp", (int)dirlen, out, out + dirlen, (int)getpid());
  int fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) { char *t = tmp_path; tmp_path = NULL; fail(t, "cannot create the output: %s", strerror(errno)); }
  char dict[256];
  int dl = snprintf(dict, sizeof dict, "{'descr': '|u1', 'fortran_order': False, 'shape': (%zu, %d, %d, %d), }", npaths, H, W, C);
  size_t hdr = direct ? 4096 : ((size_t)10 + dl + 1 + 63) / 64 * 64;
  static unsigned char header[4096];
  memcpy(header, "\x93NUMPY\x01\x00", 8);
  header[8] = (unsigned char)((hdr - 10) & 0xFF); header[9] = (unsigned char)((hdr - 10) >> 8);
  memcpy(header + 10, dict, dl);
  memset(header + 10 + dl, ' ', hdr - 10 - dl - 1);
  header[hdr - 1] = '\n';
  pwrite_all(fd, header, hdr, 0, out);
  if (direct) direct_fd = open(tmp_path, O_WRONLY | O_DIRECT | O_CLOEXEC);   /* -1: page cache only */

  pthread_t *th = xmalloc(threads * sizeof *th);
  int started = 0;
  for (int t = 0; t < threads; t++) {
    if (pthread_create(&th[t], NULL, worker, NULL) != 0) break;
    started++;
  }
  if (!started) fail(NULL, "cannot start a thread");

  /* The writer: finished chunks in order, runs of consecutive ones in one pwrite. */
  size_t written = hdr, wb_start = 0, pwrites = 0;
  size_t w = 0;
  while (w < nchunks) {
    pthread_mutex_lock(&mu);
    while (!failed && ready[w % ring_chunks] != w + 1) { writer_waiting = 1; pthread_cond_wait(&writer_cv, &mu); writer_waiting = 0; }
    if (failed) { pthread_mutex_unlock(&mu); break; }
    size_t e = w + 1;
    while (e < nchunks && e % ring_chunks != 0 && ready[e % ring_chunks] == e + 1) e++;
    pthread_mutex_unlock(&mu);
    size_t first = w * batch, end = e * batch < npaths ? e * batch : npaths;
    size_t len = (end - first) * img_bytes;
    const unsigned char *run = ring + (w % ring_chunks) * batch * img_bytes;
    write_run(fd, run, len, (off_t)(hdr + first * img_bytes), out);
    if (hashing) {
      xxh3->update(tensor_hash, run, len);
      crc = crc32_gzip_refl(crc, (unsigned char *)run, len);
    }
    pwrites++;
    written = hdr + end * img_bytes;
    if (written - wb_start >= WRITEBACK_STEP) {
      size_t to = written - written % WRITEBACK_STEP;
      sync_file_range(fd, (off64_t)wb_start, (off64_t)(to - wb_start), SYNC_FILE_RANGE_WRITE);
      wb_start = to;
    }
    pthread_mutex_lock(&mu);
    written_chunks = e;
    if (workers_waiting) pthread_cond_broadcast(&worker_cv);
    pthread_mutex_unlock(&mu);
    w = e;
  }
  for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
  if (failed) { close(fd); fail(NULL, "%s", fail_msg); }
  double t_written = now();
  if (direct_fd >= 0) close(direct_fd);
  if (fdatasync(fd) != 0) { close(fd); fail(out, "fdatasync failed: %s", strerror(errno)); }
  close(fd);
  if (rename(tmp_path, out) != 0) fail(out, "cannot move the finished file into place: %s", strerror(errno));
  double t_end = now();
  if (hashing) {
    imc_xxh128 h = xxh3->digest(tensor_hash);
    unsigned sum = 0;
    for (size_t i = 0; i < npaths; i++) sum += source_digest_sum[i];
    if (!quiet) printf("job_floor: hashed: tensor XXH3-128 %016llx%016llx, CRC-32 %08x, sources' SHA-256 first bytes sum %u\n",
                       (unsigned long long)h.high64, (unsigned long long)h.low64, crc, sum);
    xxh3->destroy(tensor_hash);
  }
  if (!quiet)
    printf("job_floor: %zu images (%d, %d, %d) in %zu classes -> %s (%zu bytes); %d threads, window %zu images in "
           "batches of %zu, %zu pwrites (%zu bytes direct), png %s; list %.3f s, read+decode+write %.3f s, final sync+rename %.3f s, total %.3f s\n",
           npaths, H, W, C, classes, out, written, started, ring_chunks * batch, batch, pwrites, direct_bytes, png_simple ? "simplified" : "low-level",
           t_list - t0, t_written - t_list, t_end - t_written, t_end - t0);
  return 0;
}
