import ImgConvCore

/// Writes `trainXs.npy`, `trainYs.npy` and `classNames.npy` into one `.npz` (a ZIP archive that
/// `numpy.load` opens), streaming the images to disk as they arrive. `compress` deflates every
/// member (what `numpy.savez_compressed` does).
public final class NPZWriter: DatasetWriter {
    public let path: String
    public let compress: Bool
    public let level: Int32
    public var names = TensorNames()
    private var file: AtomicOutputFile?
    private var zip: ZipWriter?
    private var images: NPYMemberWriter?
    private var layout: TensorLayout?
    private var appended = 0
    private var firstHeaderLength = 0

    public init(path: String, compress: Bool = false, level: Int32 = 6) {
        self.path = path
        self.compress = compress
        self.level = level
    }

    public var manifestPath: String { path + ".manifest.json" }

    public func begin(images layout: TensorLayout, count: Int) throws {
        let file = try AtomicOutputFile(target: path)
        self.file = file
        let zip = ZipWriter(file: file)
        self.zip = zip
        self.layout = layout
        let header = NPYHeader(descr: layout.dtype.npyDescr, shape: layout.shape(count: count)).encoded()
        firstHeaderLength = header.count
        images = try NPYMemberWriter(zip: zip, name: names.images + ".npy", header: header, compressed: compress, level: level)
    }

    public func append(image: UnsafeRawBufferPointer) throws {
        try images!.write(image)
        appended += 1
    }

    public func finish(labels: [Int64], classNames: [String]) throws -> [Manifest.TensorRecord] {
        guard let zip, let images, let layout else { preconditionFailure("finish before begin") }
        precondition(labels.count == appended, "one label per image")
        let imagesHeader = NPYHeader(descr: layout.dtype.npyDescr, shape: layout.shape(count: appended))
        try images.finish(header: imagesHeader.encoded(length: firstHeaderLength))
        var records = [Manifest.TensorRecord(name: names.images, shape: imagesHeader.shape,
                                             dtype: layout.dtype.rawValue, sha256: images.dataHash.finish())]
        for (name, (header, data)) in [(names.labels, SmallArrays.labels(labels)),
                                       (names.classNames, SmallArrays.classNames(classNames))] {
            let member = try NPYMemberWriter(zip: zip, name: name + ".npy", header: header.encoded(), compressed: compress, level: level)
            try member.write(data)
            try member.finish(header: header.encoded())
            records.append(SmallArrays.record(name, header, data))
        }
        try zip.finish()
        return records
    }

    public func commit() throws { try file?.commit() }
    public func abort() { file?.abort() }
}

/// Writes the three arrays as separate `.npy` files in a folder (each memory-mappable with
/// `numpy.load(..., mmap_mode='r')`), and the manifest as `manifest.json` in the same folder.
public final class NPYDirectoryWriter: DatasetWriter {
    public let directory: String
    public var names = TensorNames()
    private var imagesFile: AtomicOutputFile?
    private var others: [AtomicOutputFile] = []
    private var layout: TensorLayout?
    private var hash = SHA256Stream()
    private var appended = 0
    private var headerLength = 0

    public init(directory: String) { self.directory = directory }

    public var manifestPath: String { directory + "/manifest.json" }

    public func begin(images layout: TensorLayout, count: Int) throws {
        if mkdir(directory, 0o755) != 0 && errno != EEXIST {
            throw ImgConvError(.io, path: directory, "cannot create the output folder: \(errnoText(errno))")
        }
        self.layout = layout
        let file = try AtomicOutputFile(target: directory + "/" + names.images + ".npy")
        imagesFile = file
        let header = NPYHeader(descr: layout.dtype.npyDescr, shape: layout.shape(count: count)).encoded()
        headerLength = header.count
        try file.write(header)
    }

    public func append(image: UnsafeRawBufferPointer) throws {
        hash.update(image)
        try imagesFile!.write(image)
        appended += 1
    }

    public func finish(labels: [Int64], classNames: [String]) throws -> [Manifest.TensorRecord] {
        guard let imagesFile, let layout else { preconditionFailure("finish before begin") }
        let header = NPYHeader(descr: layout.dtype.npyDescr, shape: layout.shape(count: appended))
        try imagesFile.patch(header.encoded(length: headerLength), at: 0)
        var records = [Manifest.TensorRecord(name: names.images, shape: header.shape,
                                             dtype: layout.dtype.rawValue, sha256: hash.finish())]
        for (name, (h, data)) in [(names.labels, SmallArrays.labels(labels)),
                                  (names.classNames, SmallArrays.classNames(classNames))] {
            let f = try AtomicOutputFile(target: directory + "/" + name + ".npy")
            others.append(f)
            try f.write(h.encoded())
            try f.write(data)
            records.append(SmallArrays.record(name, h, data))
        }
        return records
    }

    public func commit() throws {
        // Check every target first, so that one that cannot be replaced (a folder in the way)
        // fails the run before any file of the set is replaced.
        for f in [imagesFile].compactMap({ $0 }) + others {
            var st = stat()
            if lstat(f.targetPath, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR {
                throw ImgConvError(.io, path: f.targetPath, "cannot replace a folder with the output file")
            }
        }
        try imagesFile?.commit()
        for f in others { try f.commit() }
    }

    public func abort() {
        imagesFile?.abort()
        for f in others { f.abort() }
    }
}
#if canImport(Glibc)
import Glibc
#endif
