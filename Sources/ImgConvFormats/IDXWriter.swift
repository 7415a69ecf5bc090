#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore

/// Writes an MNIST-style IDX pair into a folder: `<prefix>-images-idx3-ubyte` (N, H, W) for one
/// channel, `<prefix>-images-idx4-ubyte` (N, H, W, C) otherwise, and `<prefix>-labels-idx1-ubyte`;
/// big-endian, optionally gzip-compressed (`.gz`). Class names go only to the manifest
/// (`manifest.json` in the folder): IDX has no place for them.
///
/// Type policy: IDX has uint8, int8, int16, int32, float32 and float64. uint16 images are
/// refused unless `uint16Target` names a wider type (int32 or float32, both exact). Labels are
/// uint8 for up to 256 classes, int16 up to 32,768, else int32; the last word of the file name
/// says which (`ubyte`, `short`, `int`).
///
/// Streaming: the header holds N, written as the planned count and rewritten at the end when
/// images were skipped. For plain files that is a 4-byte patch. A gzip stream cannot be patched,
/// so it is written in one pass with the planned N, and only when the final N differs is the
/// temporary `.gz` inflated and deflated again with the right header (no raw copy on disk, and
/// no second pass in the usual case where nothing is skipped).
public final class IDXWriter: DatasetWriter {
    public let directory: String
    /// File name prefix of the `train` part; `val` and `test` parts use `val` and `t10k`.
    public let prefix: String
    public var names = TensorNames()
    public var labelEncoding = LabelEncoding()
    private var outputs: [IDXFileOutput] = []
    private var madeFolders: [String] = []   // by this run, for `abort`
    public let gzip: Bool
    public let level: Int32
    /// What uint16 images become (IDX has no uint16): `.int32` or `.float32`; nil refuses them.
    public var uint16Target: DType?
    /// Told about outputs other readers may refuse (4-D images for torchvision).
    public var warn: (String) -> Void = { _ in }

    private var images: IDXFileOutput?
    private var sourceType: DType = .uint8
    private var storedType: IDXHeader.ElementType = .uint8
    private var itemDims: [Int] = []
    private var itemBytes = 0
    private var hash = BackgroundDigest()
    private var appended = 0
    private var scratch: [UInt8] = []

    public init(directory: String, prefix: String = "train", gzip: Bool = false, level: Int32 = 6) {
        self.directory = directory
        self.prefix = prefix
        self.gzip = gzip
        self.level = level
    }

    public var manifestPath: String { directory + "/manifest.json" }

    /// The file name of a tensor with this header: `<prefix>-<role>-idx<ndims>-<type word>[.gz]`.
    public static func fileName(prefix: String, role: String, header: IDXHeader, gzip: Bool) -> String {
        "\(prefix)-\(role)-idx\(header.dims.count)-\(header.type.fileNameWord)" + (gzip ? ".gz" : "")
    }

    /// The IDX type that holds images of `dtype`, or the reason there is none.
    public static func storedType(for dtype: DType, uint16Target: DType?) throws -> IDXHeader.ElementType {
        if dtype == .uint16 {
            guard let target = uint16Target, target == .int32 || target == .float32 else {
                throw ImgConvError(.unsupported, "IDX has no uint16 type: pass --dtype float32 (holds every uint16 value exactly)")
            }
            return IDXHeader.ElementType(dtype: target)!
        }
        if dtype == .uint32 {
            throw ImgConvError(.unsupported, "IDX has no uint32 type: pass --dtype float64 (holds every uint32 value exactly)")
        }
        guard let type = IDXHeader.ElementType(dtype: dtype) else {
            throw ImgConvError(.unsupported, "IDX cannot hold \(dtype.rawValue) (its types are uint8, int8, int16, int32, float32, float64)")
        }
        return type
    }

    public func begin(images layout: TensorLayout, count: Int) throws {
        do {
            sourceType = layout.dtype
            storedType = try Self.storedType(for: layout.dtype, uint16Target: uint16Target)
        } catch let e as ImgConvError {
            throw e.at(directory)
        }
        // One channel is left out, as MNIST files have it.
        itemDims = layout.itemShape
        if let axis = layout.channelAxis, axis < itemDims.count, itemDims[axis] == 1 { itemDims.remove(at: axis) }
        itemBytes = itemDims.reduce(storedType.dtype.byteSize, *)
        let dims = [count] + itemDims
        guard dims.count <= 255, dims.allSatisfy({ $0 >= 0 && $0 <= Int(UInt32.max) }) else {
            throw ImgConvError(.unsupported, path: directory, "IDX cannot hold a tensor of shape \(dimsText(dims)) (at most 255 dimensions of at most 4294967295)")
        }
        if dims.count > 3 {
            warn("IDX images of \(dims.count) dimensions (N, H, W, C): torchvision's MNIST reader takes at most 3; use --color gray for (N, H, W)")
        }
        madeFolders += try createFolders(directory)
        // Early, before any work: a pair no part of this run can have written (commit checks exactly).
        if outputs.isEmpty { try refuseOtherPairs(writing: [prefix, "val", "t10k"]) }
        let header = IDXHeader(type: storedType, dims: dims)
        let file = try IDXFileOutput(path: directory + "/" + Self.fileName(prefix: partPrefix, role: "images", header: header, gzip: gzip),
                                     header: header, gzip: gzip, level: level)
        images = file
        outputs.append(file)
        hash = BackgroundDigest()
        appended = 0
    }

    public func append(image: UnsafeRawBufferPointer) throws {
        guard let images else { preconditionFailure("append before begin") }
        if storedType.dtype == sourceType && storedType.dtype.byteSize == 1 {
            hash.update(image)
            try images.write(image)
        } else {
            // Little-endian bytes of the stored type (hashed, as the manifest records them),
            // then swapped to IDX's big-endian order.
            scratch.removeAll(keepingCapacity: true)
            if storedType.dtype == sourceType {
                scratch.append(contentsOf: image)
            } else {
                convertUInt16(image, to: storedType.dtype, into: &scratch)
            }
            try scratch.withUnsafeMutableBytes { buf in
                hash.update(UnsafeRawBufferPointer(buf))
                swapByteOrder(buf, elementSize: storedType.dtype.byteSize)
                try images.write(UnsafeRawBufferPointer(buf))
            }
        }
        appended += 1
    }

    /// uint16 samples to int32 or float32 (exact either way), little-endian.
    private func convertUInt16(_ image: UnsafeRawBufferPointer, to dtype: DType, into out: inout [UInt8]) {
        let count = image.count / 2
        out = [UInt8](repeating: 0, count: count * 4)
        out.withUnsafeMutableBytes { dst in
            for i in 0..<count {
                let v = image.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                let word = dtype == .float32 ? Float(v).bitPattern : UInt32(v)
                dst.storeBytes(of: word.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
            }
        }
    }

    /// The IDX type of the labels for this many classes.
    public static func labelType(classCount: Int) -> IDXHeader.ElementType {
        classCount <= 256 ? .uint8 : classCount <= 32768 ? .int16 : .int32
    }

    /// The file name prefix of the current part.
    var partPrefix: String {
        switch names.prefix {
        case "train": return prefix
        case "test": return "t10k"
        default: return names.prefix
        }
    }

    public func endPart(labels values: LabelColumn) throws -> [Manifest.TensorRecord] {
        guard let images else { preconditionFailure("endPart before begin") }
        precondition(values.count == appended, "one label per image")
        try images.finish(count: appended)
        self.images = nil
        var records = [Manifest.TensorRecord(name: names.images, shape: [appended] + itemDims,
                                             dtype: storedType.dtype.rawValue, digest: hash.finish().digest)]
        let type: IDXHeader.ElementType
        if let dtype = labelEncoding.dtype {
            guard let t = IDXHeader.ElementType(dtype: dtype) else {
                throw ImgConvError(.unsupported, path: directory, "IDX has no \(dtype.rawValue) labels (uint8, int16 or int32)")
            }
            type = t
        } else {
            type = labelEncoding.onehot ? .uint8 : Self.labelType(classCount: labelEncoding.classCount)
        }
        let (item, encoded) = try labelEncoding.encode(values, dtype: type.dtype)
        var data = encoded
        records.append(Manifest.TensorRecord(name: names.labels, shape: [values.count] + item, dtype: type.dtype.rawValue,
                                             digest: tensorDigest(data)))
        let header = IDXHeader(type: type, dims: [values.count] + item)
        let file = try IDXFileOutput(path: directory + "/" + Self.fileName(prefix: partPrefix, role: "labels", header: header, gzip: gzip),
                                     header: header, gzip: gzip, level: level)
        outputs.append(file)
        try data.withUnsafeMutableBytes { buf in
            swapByteOrder(buf, elementSize: type.dtype.byteSize)
            try file.write(UnsafeRawBufferPointer(buf))
        }
        try file.finish(count: values.count)
        return records
    }

    /// IDX has no place for class names: they are in the manifest only.
    public func finish(classNames: [String]) throws -> [Manifest.TensorRecord] { [] }

    public func startWriteback() throws {
        for f in outputs { try f.startWriteback() }
    }

    public func commit() throws {
        try refuseOtherPairs(writing: Set(outputs.compactMap { Self.pairPrefix(ofFileName: IDXReader.baseName($0.path)) }))
        // Every target first: one that cannot be replaced fails the run before any is replaced.
        for f in outputs { try checkOutputFileTarget(f.path) }
        for f in outputs { try f.commit() }
    }

    /// The folder, the manifest, and every entry named like a file of a pair this run may write
    /// (`<prefix>-`, `val-` or `t10k-` IDX names of any type): their exact names depend on the
    /// element types, known only once the images are planned.
    public func checkTargets() throws {
        try checkOutputFolderTarget(directory)
        try checkOutputFileTarget(manifestPath)
        let prefixes: Set<String> = [prefix, "val", "t10k"]
        for name in listFolder(directory) where Self.pairPrefix(ofFileName: name).map(prefixes.contains) == true {
            try checkOutputFileTarget(directory + "/" + name)
        }
    }

    /// The folder holds one `manifest.json`: replacing it while the folder keeps an IDX pair this
    /// run does not write (another `--prefix`) would leave that pair without its manifest (class
    /// names, checksums). Such a run is refused; nothing is replaced.
    private func refuseOtherPairs(writing prefixes: Set<String>) throws {
        var st = stat()
        guard stat(manifestPath, &st) == 0,
              let other = listFolder(directory).compactMap(Self.pairPrefix(ofFileName:)).filter({ !prefixes.contains($0) }).min()
        else { return }
        throw ImgConvError(.io, path: manifestPath, "is also the manifest of the '\(other)' IDX pair in this folder, which this run does not write; "
                           + "write into another folder, or convert both pairs in one run (split folders or --split)")
    }

    /// The prefix of an IDX file named as this writer names them (`<prefix>-images-idx3-ubyte`,
    /// `<prefix>-labels-idx1-short.gz`, ...), or nil for any other name.
    static func pairPrefix(ofFileName name: String) -> String? {
        var rest = Substring(name)
        if rest.hasSuffix(".gz") { rest = rest.dropLast(3) }
        guard let dash = rest.lastIndex(of: "-"),
              IDXHeader.ElementType.allCases.contains(where: { $0.fileNameWord == rest[rest.index(after: dash)...] }) else { return nil }
        rest = rest[..<dash]
        guard let idx = rest.ranges(of: "-idx").last,
              !rest[idx.upperBound...].isEmpty, rest[idx.upperBound...].allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        rest = rest[..<idx.lowerBound]
        for role in ["-images", "-labels"] where rest.hasSuffix(role) && rest.count > role.count {
            return String(rest.dropLast(role.count))
        }
        return nil
    }

    public func abort() {
        for f in outputs { f.abort() }
        outputs = []
        images = nil
        removeEmptyFolders(madeFolders)
        madeFolders = []
    }
}

/// One IDX file being written under a temporary name: the header with the planned leading
/// dimension, then the data, plain or through gzip; `finish(count:)` sets the final dimension.
final class IDXFileOutput {
    let path: String
    private var header: IDXHeader
    private let level: Int32
    private var file: AtomicOutputFile
    private var deflater: Deflater?

    init(path: String, header: IDXHeader, gzip: Bool, level: Int32) throws {
        self.path = path
        self.header = header
        self.level = level
        file = try AtomicOutputFile(target: path, directIO: directIOWanted(forBytes: header.dataLength ?? 0))
        deflater = gzip ? try Deflater(level: level, framing: .gzip) : nil
        try write(header.encoded())
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard let deflater else { return try file.write(bytes) }
        try deflater.feed(bytes, finish: false) { try file.write($0) }
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Ends the data and makes the header's leading dimension `count`.
    func finish(count: Int) throws {
        let planned = header.dims[0]
        header.dims[0] = count
        guard let deflater else {
            if count != planned { try file.patch(header.encoded(), at: 0) }
            return
        }
        try deflater.feed(UnsafeRawBufferPointer(start: nil, count: 0), finish: true) { try file.write($0) }
        self.deflater = nil
        guard count != planned else { return }
        // Rewrite the stream with the final header: inflate what was written, skip its header.
        try file.flush()
        let written = try ReadOnlyFile(path: file.temporaryPath)
        let source = try GzipInputStream(FileRegionStream(file: written, offset: 0, length: written.size))
        _ = try source.read(count: header.byteCount)
        let rewritten = try AtomicOutputFile(target: path, directIO: directIOWanted(forBytes: header.dataLength ?? 0))
        do {
            let d = try Deflater(level: level, framing: .gzip)
            try header.encoded().withUnsafeBytes { h in try d.feed(h, finish: false) { try rewritten.write($0) } }
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
                try buffer.withUnsafeBytes { b in
                    try d.feed(UnsafeRawBufferPointer(rebasing: b[0..<n]), finish: n == 0) { try rewritten.write($0) }
                }
                if n == 0 { break }
            }
        } catch {
            rewritten.abort()
            throw error
        }
        file.abort()
        file = rewritten
    }

    func startWriteback() throws { try file.startWriteback() }
    func commit() throws { try file.commit() }
    func abort() { file.abort() }
}
