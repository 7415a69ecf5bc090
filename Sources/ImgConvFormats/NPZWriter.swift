import ImgConvCore

/// Writes `trainXs.npy`, `trainYs.npy` and `classNames.npy` into one `.npz` (a ZIP archive that
/// `numpy.load` opens), streaming the images to disk as they arrive. `compress` deflates every
/// member (what `numpy.savez_compressed` does).
public final class NPZWriter: DatasetWriter {
    public let path: String
    public let compress: Bool
    public let level: Int32
    /// Threads that deflate (`compress`); the output does not depend on it.
    public var threads = 1
    public var names = TensorNames()
    public var labelEncoding = LabelEncoding()
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
    public var outputFiles: [String] { [path, manifestPath] }

    public func checkTargets() throws {
        try checkOutputFileTarget(path)
        try checkOutputFileTarget(manifestPath)
    }

    public func begin(images layout: TensorLayout, count: Int) throws {
        if zip == nil {
            let file = try AtomicOutputFile(target: path, directIO: directIOWanted(count: count, bytesPerItem: layout.bytesPerItem))
            self.file = file
            zip = ZipWriter(file: file)
        }
        precondition(images == nil, "begin before endPart")
        self.layout = layout
        appended = 0
        let header = NPYHeader(descr: layout.dtype.npyDescr, shape: layout.shape(count: count)).encoded()
        firstHeaderLength = header.count
        images = try NPYMemberWriter(zip: zip!, name: names.images + ".npy", header: header, compressed: compress, level: level,
                                     threads: threads)
    }

    public func append(image: UnsafeRawBufferPointer) throws {
        try images!.write(image)
        appended += 1
    }

    public func append(images block: UnsafeRawBufferPointer, count: Int) throws {
        try images!.write(block)
        appended += count
    }

    public func append(image: [UInt8]) throws {
        try images!.write(owned: image)
        appended += 1
    }

    public func endPart(labels: LabelColumn) throws -> [Manifest.TensorRecord] {
        guard let images, let layout else { preconditionFailure("endPart before begin") }
        precondition(labels.count == appended, "one label per image")
        let imagesHeader = NPYHeader(descr: layout.dtype.npyDescr, shape: layout.shape(count: appended))
        try images.finish(header: imagesHeader.encoded(length: firstHeaderLength))
        self.images = nil
        // The labels are streamed too: one 64 KiB piece at a time.
        let (header, dtype) = SmallArrays.labelsHeader(labels, labelEncoding)
        let member = try NPYMemberWriter(zip: zip!, name: names.labels + ".npy", header: header.encoded(), compressed: compress, level: level)
        try labelEncoding.encode(labels, dtype: dtype) { try member.write($0) }
        try member.finish(header: header.encoded())
        return [Manifest.TensorRecord(name: names.images, shape: imagesHeader.shape, dtype: layout.dtype.rawValue,
                                      digest: images.dataDigest),
                Manifest.TensorRecord(name: names.labels, shape: header.shape, dtype: dtypeName(header.descr), digest: member.dataDigest)]
    }

    public func finish(classNames: [String]) throws -> [Manifest.TensorRecord] {
        let (header, data) = SmallArrays.classNames(classNames)
        try writeMember(names.classNames, header, data)
        try zip!.finish()
        return [SmallArrays.record(names.classNames, header, data)]
    }

    private func writeMember(_ name: String, _ header: NPYHeader, _ data: [UInt8]) throws {
        let member = try NPYMemberWriter(zip: zip!, name: name + ".npy", header: header.encoded(), compressed: compress, level: level)
        try member.write(data)
        try member.finish(header: header.encoded())
    }

    public func startWriteback() throws { try file?.startWriteback() }

    public func commit() throws { try file?.commit() }

    public func abort() {
        file?.abort()
        file = nil
        zip = nil
        images = nil
    }
}

/// Writes the three arrays as separate `.npy` files in a folder (each memory-mappable with
/// `numpy.load(..., mmap_mode='r')`), and the manifest as `manifest.json` in the same folder.
public final class NPYDirectoryWriter: DatasetWriter {
    public let directory: String
    public var names = TensorNames()
    public var labelEncoding = LabelEncoding()
    private var imagesFile: AtomicOutputFile?
    private var files: [AtomicOutputFile] = []
    private var madeFolders: [String] = []   // by this run, for `abort`
    private var layout: TensorLayout?
    private var hash = BackgroundDigest()
    private var appended = 0
    private var headerLength = 0

    public init(directory: String) { self.directory = directory }

    public var manifestPath: String { directory + "/manifest.json" }
    public var outputFiles: [String] {
        [manifestPath, directory + "/classNames.npy"]
            + SplitPlan.knownNames.flatMap { [directory + "/\($0)Xs.npy", directory + "/\($0)Ys.npy"] }
    }

    /// The folder, and every file a run may write in it: the pairs of each split imgconv knows,
    /// the class names and the manifest.
    public func checkTargets() throws {
        try checkOutputFolderTarget(directory)
        var files = [names.classNames]
        for split in SplitPlan.knownNames {
            let pair = TensorNames(prefix: split)
            files += [pair.images, pair.labels]
        }
        for name in files { try checkOutputFileTarget(directory + "/" + name + ".npy") }
        try checkOutputFileTarget(manifestPath)
    }

    public func begin(images layout: TensorLayout, count: Int) throws {
        madeFolders += try createFolders(directory)
        precondition(imagesFile == nil, "begin before endPart")
        self.layout = layout
        hash = BackgroundDigest()
        appended = 0
        let file = try AtomicOutputFile(target: directory + "/" + names.images + ".npy",
                                        directIO: directIOWanted(count: count, bytesPerItem: layout.bytesPerItem))
        imagesFile = file
        files.append(file)
        let header = NPYHeader(descr: layout.dtype.npyDescr, shape: layout.shape(count: count)).encoded()
        headerLength = header.count
        try file.write(header)
    }

    public func append(image: UnsafeRawBufferPointer) throws {
        try append(images: image, count: 1)
    }

    public func append(images block: UnsafeRawBufferPointer, count: Int) throws {
        try hash.update(block, alongside: { try imagesFile!.write(block) })
        appended += count
    }

    public func append(image: [UInt8]) throws {
        hash.update(owned: image)
        try imagesFile!.write(image)
        appended += 1
    }

    public func endPart(labels: LabelColumn) throws -> [Manifest.TensorRecord] {
        guard let imagesFile, let layout else { preconditionFailure("endPart before begin") }
        let header = NPYHeader(descr: layout.dtype.npyDescr, shape: layout.shape(count: appended))
        try imagesFile.patch(header.encoded(length: headerLength), at: 0)
        self.imagesFile = nil
        // The labels are streamed, as in the .npz: one 64 KiB piece at a time.
        let (h, dtype) = SmallArrays.labelsHeader(labels, labelEncoding)
        let f = try AtomicOutputFile(target: directory + "/" + names.labels + ".npy")
        files.append(f)
        try f.write(h.encoded())
        var digest = TensorHasher()
        try labelEncoding.encode(labels, dtype: dtype) { piece in
            digest.update(piece)
            try f.write(piece)
        }
        return [Manifest.TensorRecord(name: names.images, shape: header.shape, dtype: layout.dtype.rawValue, digest: hash.finish().digest),
                Manifest.TensorRecord(name: names.labels, shape: h.shape, dtype: dtypeName(h.descr), digest: digest.finish())]
    }

    public func finish(classNames: [String]) throws -> [Manifest.TensorRecord] {
        let (h, data) = SmallArrays.classNames(classNames)
        try writeFile(names.classNames, h, data)
        return [SmallArrays.record(names.classNames, h, data)]
    }

    private func writeFile(_ name: String, _ header: NPYHeader, _ data: [UInt8]) throws {
        let f = try AtomicOutputFile(target: directory + "/" + name + ".npy")
        files.append(f)
        try f.write(header.encoded())
        try f.write(data)
    }

    public func startWriteback() throws {
        for f in files { try f.startWriteback() }
    }

    public func commit() throws {
        // Check every target first, so that one that cannot be replaced (a folder, FIFO or
        // device in the way) fails the run before any file of the set is replaced.
        for f in files { try checkOutputFileTarget(f.targetPath) }
        for f in files { try f.commit() }
    }

    public func abort() {
        for f in files { f.abort() }
        files = []
        imagesFile = nil
        removeEmptyFolders(madeFolders)
        madeFolders = []
    }
}
#if canImport(Glibc)
import Glibc
#endif
