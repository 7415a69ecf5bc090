"""open(): any imgconv output as splits of memory-mapped images and labels."""

from __future__ import annotations

import json
import os
import re

import numpy as np

from ._formats import FormatError, Location, fail, idx_location, npy_location, npz_locations, npz_member_bytes

SPLITS = ("train", "val", "test")
# imgconv's pair names, then Keras's (np.savez of its dataset cache).
PAIR_NAMES = {
    "train": [("trainXs", "trainYs"), ("x_train", "y_train")],
    "val": [("valXs", "valYs"), ("x_val", "y_val")],
    "test": [("testXs", "testYs"), ("x_test", "y_test")],
}
IDX_PREFIX = {"train": "train", "val": "val", "test": "t10k"}
WINDOW_BYTES = 64 << 20


class MappedTensor:
    """A tensor stored as raw bytes in a file, read through a moving window of np.memmap.

    `array` maps the whole tensor (address space = its size, pages counted in RSS as they are
    touched); `rows(start, stop)` copies rows out of a window of at most WINDOW_BYTES that moves
    along the tensor and is unmapped when it moves, so reading every row keeps memory and address
    space flat, whatever the tensor's size."""

    def __init__(self, loc: Location):
        self.loc = loc
        self.shape = loc.shape
        self.dtype = loc.dtype
        self._array = None
        self._window = None
        self._wstart = 0
        row = loc.dtype.itemsize
        for d in loc.shape[1:]:
            row *= d
        self._row_bytes = row
        self._wrows = max(1, WINDOW_BYTES // row) if row else max(1, loc.shape[0] if loc.shape else 1)

    def __len__(self):
        return self.shape[0]

    def _check(self):
        if self.loc.unmappable:
            raise fail(self.loc.path, self.loc.unmappable)
        if len(self.shape) == 0:
            raise fail(self.loc.path, "a 0-dimensional tensor has no rows")
        if self.loc.fortran_order and len(self.shape) > 1:
            raise fail(self.loc.path, "Fortran-order tensors are not read by rows (imgconv never writes them)")

    @property
    def array(self) -> np.memmap:
        if self._array is None:
            self._check()
            self._array = np.memmap(self.loc.path, dtype=self.dtype, mode="r", offset=self.loc.offset,
                                    shape=self.shape, order="F" if self.loc.fortran_order else "C")
        return self._array

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as a new native-endian array."""
        self._check()
        n = self.shape[0]
        if not (0 <= start <= stop <= n):
            raise IndexError(f"rows {start}:{stop} out of range for {n} rows")
        out = np.empty((stop - start,) + tuple(self.shape[1:]), dtype=self.dtype.newbyteorder("="))
        pos = start
        while pos < stop:
            w = self._window_at(pos)
            take = min(stop, self._wstart + len(w)) - pos
            out[pos - start: pos - start + take] = w[pos - self._wstart: pos - self._wstart + take]
            pos += take
        return out

    def _window_at(self, i: int):
        w = self._window
        if w is not None and self._wstart <= i < self._wstart + len(w):
            return w
        self._window = None  # unmapped here: the last reference to the old window goes
        count = min(self._wrows, self.shape[0] - i)
        if self._row_bytes == 0:
            self._window = np.empty((count,) + tuple(self.shape[1:]), dtype=self.dtype)
        else:
            self._window = np.memmap(self.loc.path, dtype=self.dtype, mode="r",
                                     offset=self.loc.offset + i * self._row_bytes,
                                     shape=(count,) + tuple(self.shape[1:]))
        self._wstart = i
        return self._window

    def release(self):
        self._window = None
        self._array = None


class H5Tensor:
    """An HDF5 dataset, read lazily by h5py (a slice reads only its chunks)."""

    def __init__(self, dset):
        self.dset = dset
        self.shape = tuple(dset.shape)
        self.dtype = dset.dtype

    def __len__(self):
        return self.shape[0]

    @property
    def array(self):
        return self.dset

    def rows(self, start: int, stop: int) -> np.ndarray:
        n = self.shape[0]
        if not (0 <= start <= stop <= n):
            raise IndexError(f"rows {start}:{stop} out of range for {n} rows")
        return np.asarray(self.dset[start:stop])

    def release(self):
        pass


class Split:
    """One pair of images and labels.

    xs, ys      the tensors, mapped: np.memmap (HDF5: the h5py dataset, read lazily)
    len(split)  the number of images; split[i] -> (image, label), copies in native byte order
    iter(split) (image, label) in order, read about 16 MiB at a time
    batches(n)  (images, labels) arrays of up to n rows, in order, read through a moving window
    labels()    every label, loaded (small)
    layout      'nhwc', 'nchw' (the manifest's options.layout) or 'nhw' (IDX of 3 dimensions)
    onehot      True when labels are (N, classes) rows
    """

    def __init__(self, dataset: "Dataset", name: str, xs, ys, xs_name: str, ys_name: str):
        self.dataset, self.name = dataset, name
        self._xs, self._ys = xs, ys
        self.xs_name, self.ys_name = xs_name, ys_name
        where = dataset.path
        if len(xs.shape) < 1 or len(ys.shape) < 1:
            raise fail(where, f"{xs_name}/{ys_name}: images and labels need an N axis")
        if xs.shape[0] != ys.shape[0]:
            raise fail(where, f"{xs_name} holds {xs.shape[0]} images but {ys_name} {ys.shape[0]} labels")
        if len(xs.shape) == 3:
            self.layout = "nhw"
        elif len(xs.shape) == 4:
            self.layout = dataset.layout
        else:
            raise fail(where, f"{xs_name} has shape {tuple(xs.shape)}: images are (N, H, W) or 4-D")
        if len(ys.shape) == 2 and ys.shape[1] == 1:
            self.onehot = False  # Keras's (N, 1) label column
        elif len(ys.shape) == 2:
            self.onehot = True
        elif len(ys.shape) == 1:
            self.onehot = False
        else:
            raise fail(where, f"{ys_name} has shape {tuple(ys.shape)}: labels are (N,) or (N, classes)")

    @property
    def xs(self):
        return self._xs.array

    @property
    def ys(self):
        return self._ys.array

    @property
    def path(self) -> str:
        return self.dataset.path

    def __len__(self):
        return self._xs.shape[0]

    def _fix_labels(self, y):
        if not self.onehot and y.ndim == 2:
            y = y[:, 0]
        return y

    def __getitem__(self, i):
        n = len(self)
        i = int(i)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"image {i} out of range for split {self.name!r} of {n} images")
        return self._xs.rows(i, i + 1)[0], self._fix_labels(self._ys.rows(i, i + 1))[0]

    def batches(self, batch_size: int = 256, start: int = 0, stop: int | None = None):
        stop = len(self) if stop is None else stop
        for s in range(start, stop, batch_size):
            e = min(stop, s + batch_size)
            yield self._xs.rows(s, e), self._fix_labels(self._ys.rows(s, e))

    def read_rows(self, budget: int = 16 << 20) -> int:
        """How many images make about `budget` bytes (at least 1): what iteration reads at once."""
        row = self._xs.dtype.itemsize
        for d in self._xs.shape[1:]:
            row *= d
        return max(1, budget // row) if row else 1024

    def __iter__(self):
        for xb, yb in self.batches(self.read_rows()):
            for x, y in zip(xb, yb):
                yield x, y

    def labels(self) -> np.ndarray:
        return self._fix_labels(self._ys.rows(0, len(self)))

    def image_max(self) -> float:
        """What 1.0 stands for when images become floats in [0, 1]: 255 for uint8, 65535 for
        uint16, 1 for float images (kept as they are)."""
        dt = self._xs.dtype
        if dt.kind == "u":
            return float(np.iinfo(dt).max)
        if dt.kind == "f":
            return 1.0
        raise fail(self.path, f"{self.xs_name} of dtype {dt}: only unsigned and float images become [0, 1] floats")

    def to_torch(self, transform=None, **kw):
        from ._torch import to_torch
        return to_torch(self, transform, **kw)

    def to_tf(self, **kw):
        from ._tf import to_tf
        return to_tf(self, **kw)

    def __repr__(self):
        return (f"Split({self.name!r}, {len(self)} images, {self.xs_name} {tuple(self._xs.shape)} {self._xs.dtype}, "
                f"{self.ys_name} {tuple(self._ys.shape)} {self._ys.dtype})")


class Dataset:
    """What open() returns.

    format       'npz', 'npy', 'h5' or 'idx'
    splits       {name: Split} in the order train, val, test
    class_names  list of str
    manifest     the manifest as a dict (None when the output has none)
    dataset['train'] -> Split; iter(dataset) -> split names; close() / with-statement
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        self.manifest = None
        self.splits: dict[str, Split] = {}
        self.class_names: list[str] = []
        self.layout = "nhwc"
        self._h5 = None
        self._one_pair = False  # an IDX images file names one pair of a folder that may hold more
        p = self.path
        if not os.path.exists(p):
            raise FileNotFoundError(f"{p!r}: no such file or folder")
        if os.path.isdir(p):
            names = set(os.listdir(p))
            if any(n.endswith(".npy") for n in names):
                self._open_npy_dir(p)
            else:
                self._open_idx(p, None)
        else:
            with open(p, "rb") as f:
                magic = f.read(8)
            if magic.startswith(b"PK\x03\x04") or magic.startswith(b"PK\x05\x06"):
                self._open_npz(p)
            elif magic.startswith(b"\x89HDF\r\n\x1a\n"):
                self._open_h5(p)
            elif magic.startswith(b"\x93NUMPY"):
                raise fail(p, f"a single .npy file: open the folder that holds it ({os.path.dirname(p) or '.'})")
            elif magic[:2] == b"\x00\x00" or magic[:2] == b"\x1f\x8b":
                self._open_idx(os.path.dirname(p) or ".", p)
            else:
                raise fail(p, "not an imgconv output (neither .npz, .h5, IDX nor a folder of .npy files)")
        if not self.splits:
            raise fail(p, "holds no pair of images and labels (trainXs/trainYs, valXs/valYs, testXs/testYs, "
                          "x_train/y_train, x_test/y_test, IDX train-/val-/t10k- files)")
        listed = ((self.manifest or {}).get("summary") or {}).get("splits")
        if isinstance(listed, dict):
            for name, count in listed.items():
                if name not in self.splits:
                    if self._one_pair:
                        continue
                    raise fail(p, f"the manifest lists split {name!r}, which the output does not hold")
                if isinstance(count, int) and count != len(self.splits[name]):
                    raise fail(p, f"split {name!r} holds {len(self.splits[name])} images, the manifest says {count}")
        if not self.class_names:
            self.class_names = self._names_from_labels()

    # -- formats -----------------------------------------------------------------------------------

    def _read_manifest(self, path):
        if os.path.isfile(path):
            try:
                with open(path, "rb") as f:
                    m = json.loads(f.read().decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise fail(path, f"manifest is not valid JSON ({e})") from None
            if not isinstance(m, dict):
                raise fail(path, "manifest is not a JSON object")
            self.manifest = m
            self.layout = ((m.get("options") or {}).get("layout") or "nhwc")
            if self.layout not in ("nhwc", "nchw"):
                raise fail(path, f"manifest options.layout {self.layout!r} is neither nhwc nor nchw")

    def _names_from_manifest(self):
        classes = (self.manifest or {}).get("classes")
        if isinstance(classes, list) and classes:
            try:
                return [str(c["name"]) for c in sorted(classes, key=lambda c: c["index"])]
            except (KeyError, TypeError):
                raise fail(self.path, "manifest classes must hold index and name") from None
        return []

    def _names_from_labels(self):
        top = -1
        for s in self.splits.values():
            if len(s) == 0:
                continue
            if s.onehot:
                top = max(top, s._ys.shape[1] - 1)
            else:
                top = max(top, int(s.labels().max()))
        return [str(i) for i in range(top + 1)]

    @staticmethod
    def _class_names_array(arr, where):
        if arr.dtype.kind == "U":
            return [str(x) for x in arr.reshape(-1)]
        if arr.dtype.kind == "S":
            return [x.decode("utf-8") for x in arr.reshape(-1)]
        raise fail(where, f"classNames of dtype {arr.dtype}: expected a str array")

    def _pairs(self, tensors: dict, make):
        for split in SPLITS:
            for xn, yn in PAIR_NAMES[split]:
                if xn in tensors and yn in tensors:
                    self.splits[split] = Split(self, split, make(tensors[xn]), make(tensors[yn]), xn, yn)
                    break

    def _open_npz(self, p):
        self.format = "npz"
        self._read_manifest(p + ".manifest.json")
        locs = npz_locations(p)
        self._pairs(locs, MappedTensor)
        if "classNames" in locs:
            import io
            arr = np.load(io.BytesIO(npz_member_bytes(p, "classNames.npy")), allow_pickle=False)
            self.class_names = self._class_names_array(arr, f"{p}:classNames.npy")
        else:
            self.class_names = self._names_from_manifest()

    def _open_npy_dir(self, p):
        self.format = "npy"
        self._read_manifest(os.path.join(p, "manifest.json"))
        locs = {n[:-4]: npy_location(os.path.join(p, n)) for n in sorted(os.listdir(p)) if n.endswith(".npy")}
        self._pairs(locs, MappedTensor)
        if "classNames" in locs:
            arr = np.load(os.path.join(p, "classNames.npy"), allow_pickle=False)
            self.class_names = self._class_names_array(arr, os.path.join(p, "classNames.npy"))
        else:
            self.class_names = self._names_from_manifest()

    def _open_h5(self, p):
        self.format = "h5"
        try:
            import h5py
        except ImportError:
            raise fail(p, "reading HDF5 needs h5py (pip install h5py)") from None
        self._read_manifest(p + ".manifest.json")
        try:
            self._h5 = h5py.File(p, "r")
        except OSError as e:
            raise fail(p, f"h5py cannot open it ({e})") from None
        f = self._h5
        if self.manifest is None and "imgconv_manifest" in f.attrs:
            raw = f.attrs["imgconv_manifest"]
            m = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
            if isinstance(m, dict):
                self.manifest = m
                self.layout = (m.get("options") or {}).get("layout") or "nhwc"
        tensors = {k: f[k] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        self._pairs(tensors, H5Tensor)
        if "classNames" in f.attrs:
            names = f.attrs["classNames"]
            self.class_names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in np.ravel(names)]
        else:
            self.class_names = self._names_from_manifest()

    def _open_idx(self, folder, images_file):
        self.format = "idx"
        self._read_manifest(os.path.join(folder, "manifest.json"))
        files = sorted(os.listdir(folder))
        pat = re.compile(r"^(?P<prefix>.+)-(?P<kind>images|labels)-idx(?P<nd>\d)-(?P<type>ubyte|sbyte|short|int|float|double)(?P<gz>\.gz)?$")
        found = {}
        for n in files:
            m = pat.match(n)
            if m:
                found.setdefault((m["prefix"], m["kind"]), []).append(n)
        chosen = None
        if images_file is not None:
            m = pat.match(os.path.basename(images_file))
            if not m or m["kind"] != "images":
                raise fail(images_file, "an IDX images file is named PREFIX-images-idxN-TYPE[.gz]")
            chosen = m["prefix"]
            self._one_pair = True
        if chosen is not None:
            # the pair the file names: its split by MNIST's prefixes, else train (a --prefix pair)
            plan = [(next((s for s in SPLITS if IDX_PREFIX[s] == chosen), "train"), chosen)]
        else:
            plan = [(s, IDX_PREFIX[s]) for s in SPLITS if any((IDX_PREFIX[s], k) in found for k in ("images", "labels"))]
            if not plan:
                others = sorted({p for p, _ in found})
                if len(others) > 1:
                    raise fail(folder, f"several IDX pairs of other prefixes ({', '.join(others)}): open the images file of one")
                plan = [("train", p) for p in others]
        for split, prefix in plan:
            imgs, labs = found.get((prefix, "images")), found.get((prefix, "labels"))
            for kind, got in (("images", imgs), ("labels", labs)):
                if not got:
                    raise fail(folder, f"IDX {prefix}- files: no {kind} file beside the other one")
                if len(got) > 1:
                    raise fail(folder, f"IDX {prefix}- files: several {kind} files ({', '.join(got)})")
            xl = idx_location(os.path.join(folder, imgs[0]))
            yl = idx_location(os.path.join(folder, labs[0]))
            self.splits[split] = Split(self, split, MappedTensor(xl), MappedTensor(yl), imgs[0], labs[0])
        self.class_names = self._names_from_manifest()
        self.path = folder if images_file is None else images_file

    # -- access ------------------------------------------------------------------------------------

    def __getitem__(self, name) -> Split:
        try:
            return self.splits[name]
        except KeyError:
            raise KeyError(f"{self.path!r} has no split {name!r} (it holds {', '.join(self.splits)})") from None

    def __iter__(self):
        return iter(self.splits)

    def __len__(self):
        return len(self.splits)

    def close(self):
        for s in self.splits.values():
            s._xs.release()
            s._ys.release()
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"Dataset({self.path!r}, {self.format}, splits {list(self.splits)}, {len(self.class_names)} classes)"


def open_output(path) -> Dataset:
    """Any imgconv output: an .npz, a folder of .npy files, an .h5, an IDX folder or images file."""
    return Dataset(path)
