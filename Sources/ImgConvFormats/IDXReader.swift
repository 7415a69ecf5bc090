#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore

/// Reads an IDX pair (MNIST's format) as the tensors `trainXs` (the images file) and `trainYs`
/// (the labels file), plain or gzip-compressed. Data is served little-endian like every other
/// container. The labels file is the one given, or found by MNIST's naming (`images` -> `labels`,
/// `idx3`/`idx4` -> `idx1`, any type word, with or without `.gz`).
///
/// Both headers are validated when the pair is opened: magic, type, dimensions, the length of a
/// plain file against its dimensions, and the pairing (one label per image). A gzip file's length
/// is checked as its data streams.
public final class IDXReader: TensorContainer {
    public let path: String
    public let labelsPath: String?
    public let imagesHeader: IDXHeader
    public let labelsHeader: IDXHeader?
    public var formatName: String { "idx" }
    /// The two files, opened with the reader: a commit into the folder later on does not change
    /// what this reader reads.
    private let imagesFile: ReadOnlyFile
    private let labelsFile: ReadOnlyFile?

    /// - Throws: `.notFound` when a file is missing, `.corruptInput` naming the file, the field
    ///   and the value for a malformed header or a length that does not match it.
    public init(images: String, labels: String? = nil) throws {
        path = images
        let base = Self.baseName(images)
        if labels == nil && base.contains("labels") && !base.contains("images") {
            throw ImgConvError(.invalidArgument, path: images, "is an IDX labels file: name the images file (its labels file is found by name)")
        }
        (imagesHeader, imagesFile) = try Self.readHeader(images)
        labelsPath = labels ?? Self.labelsFile(forImages: images)
        if let labelsPath {
            let (header, file) = try Self.readHeader(labelsPath)
            labelsFile = file
            guard header.dims.count == 1 else {
                throw ImgConvError(.corruptInput, path: labelsPath, "IDX labels: \(header.dims.count) dimensions (\(dimsText(header.dims))), expected 1")
            }
            guard header.dims[0] == imagesHeader.dims[0] else {
                throw ImgConvError(.corruptInput, path: labelsPath,
                                   "IDX labels: \(header.dims[0]) labels for the \(imagesHeader.dims[0]) images of '\(images)'")
            }
            guard !header.type.dtype.isFloatingPoint else {
                throw ImgConvError(.corruptInput, path: labelsPath, "IDX labels: type \(header.type.dtype.rawValue) is not an integer type")
            }
            labelsHeader = header
        } else {
            labelsHeader = nil
            labelsFile = nil
        }
    }

    static func baseName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }

    /// The labels file that MNIST's naming pairs with an images file, if it exists.
    public static func labelsFile(forImages images: String) -> String? {
        let slash = images.lastIndex(of: "/")
        let dir = slash.map { String(images[...$0]) } ?? ""
        var base = baseName(images)
        guard base.contains("images") else { return nil }
        base = base.replacing("images", with: "labels")
        // idx2...idx9 -> idx1
        var chars = Array(base)
        if let r = base.firstRange(of: "idx") {
            let at = base.distance(from: base.startIndex, to: r.upperBound)
            if at < chars.count, chars[at].isNumber { chars[at] = "1" }
        }
        base = String(chars)
        var stem = base.hasSuffix(".gz") ? String(base.dropLast(3)) : base
        var candidates = [base, stem, stem + ".gz"]
        if let dash = stem.lastIndex(of: "-"),
           IDXHeader.ElementType.allCases.contains(where: { $0.fileNameWord == stem[stem.index(after: dash)...] }) {
            stem = String(stem[...dash])
            for type in IDXHeader.ElementType.allCases {
                candidates += [stem + type.fileNameWord, stem + type.fileNameWord + ".gz"]
            }
        }
        for name in candidates where name != baseName(images) {
            var st = stat()
            if stat(dir + name, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG { return dir + name }
        }
        return nil
    }

    /// The IDX images file in a folder: the one name with `images` and `idx`, or the one starting
    /// with `<prefix>-images`. Nil when there is none.
    /// - Throws: `.invalidArgument` when there are several and no prefix picks one.
    static func imagesFile(in folder: String, entries: [String], prefix: String?) throws -> String? {
        var found = entries.filter { $0.contains("images") && $0.contains("idx") }
        if let prefix { found = found.filter { $0.hasPrefix(prefix + "-images") } }
        guard found.count <= 1 else {
            throw ImgConvError(.invalidArgument, path: folder,
                               "holds several IDX images files (\(found.joined(separator: ", "))): name one, or pass --prefix")
        }
        return found.first
    }

    /// A stream of a file's bytes, inflated when it is gzip.
    static func openBytes(_ path: String) throws -> (ByteStream, ReadOnlyFile, gzip: Bool) {
        try openBytes(ReadOnlyFile(path: path))
    }

    /// The bytes of an open IDX file, inflated when it is gzipped.
    static func openBytes(_ file: ReadOnlyFile) throws -> (ByteStream, ReadOnlyFile, gzip: Bool) {
        let raw = FileRegionStream(file: file, offset: 0, length: file.size)
        let magic = try file.read(at: 0, count: 2)
        if magic == [0x1F, 0x8B] { return (try GzipInputStream(raw), file, true) }
        return (raw, file, false)
    }

    static func readHeader(_ path: String) throws -> (IDXHeader, ReadOnlyFile) {
        let (stream, file, gzip) = try openBytes(path)
        let header: IDXHeader
        do {
            header = try IDXHeader.read(from: stream, path: path)
        } catch let e as ImgConvError where e.path == nil {
            throw e.at(path)
        }
        if !gzip && file.size - header.byteCount != header.dataLength {
            throw header.lengthError(path: path, actual: file.size - header.byteCount)
        }
        return (header, file)
    }

    public var tensorNames: [String] { labelsPath == nil ? ["trainXs"] : ["trainXs", "trainYs"] }

    public var manifestPath: String {
        let slash = path.lastIndex(of: "/")
        return (slash.map { String(path[...$0]) } ?? "") + "manifest.json"
    }

    public func storageName(_ name: String) -> String {
        name == "trainYs" ? Self.baseName(labelsPath ?? "labels") : Self.baseName(path)
    }

    public func compression(of name: String) throws -> String {
        let file = name == "trainYs" ? labelsFile ?? imagesFile : imagesFile
        return try IDXReader.openBytes(file).gzip ? "gzip file" : "none"
    }

    public func open(_ name: String) throws -> (NPYHeader, ByteStream) {
        let file: ReadOnlyFile, header: IDXHeader
        switch name {
        case "trainXs": (file, header) = (imagesFile, imagesHeader)
        case "trainYs":
            guard let labelsFile, let labelsHeader else {
                throw ImgConvError(.notFound, path: path, "no IDX labels file found beside it (pass --labels-file FILE)")
            }
            (file, header) = (labelsFile, labelsHeader)
        default:
            throw ImgConvError(.notFound, path: path, "an IDX pair holds trainXs and trainYs, not '\(name)'")
        }
        let (stream, _, _) = try Self.openBytes(file)
        _ = try stream.read(count: header.byteCount)
        let npy = NPYHeader(descr: header.type.dtype.npyDescr, shape: header.dims)
        return (npy, IDXDataStream(stream, header: header, path: file.path))
    }
}

/// The data of an IDX file after its header: exactly as long as the dimensions say (a short or
/// long file is `.corruptInput` naming the file), converted to little-endian.
final class IDXDataStream: ByteStream {
    private let base: ByteStream
    private let header: IDXHeader
    private let path: String
    private let elementSize: Int
    private var left: Int
    private var staging = [UInt8](repeating: 0, count: 1 << 20)
    private var start = 0
    private var end = 0

    init(_ base: ByteStream, header: IDXHeader, path: String) {
        self.base = base
        self.header = header
        self.path = path
        elementSize = header.type.dtype.byteSize
        left = header.dataLength ?? 0
    }

    private func readBase(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        do {
            return try base.read(into: buffer)
        } catch let e as ImgConvError where e.path == nil {
            throw e.at(path)
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if start >= end {
            let total = header.dataLength ?? 0
            guard left > 0 else {
                // One byte past the end is enough to refuse: the rest is never read.
                var probe = [UInt8](repeating: 0, count: 1)
                let extra = try probe.withUnsafeMutableBytes { try readBase($0) }
                if extra > 0 { throw header.overLengthError(path: path) }
                return 0
            }
            let want = min(staging.count / elementSize * elementSize, left)
            var got = 0
            try staging.withUnsafeMutableBytes { buf in
                while got < want {
                    let n = try readBase(UnsafeMutableRawBufferPointer(rebasing: buf[got..<want]))
                    if n == 0 { throw header.lengthError(path: path, actual: total - left + got) }
                    got += n
                }
                swapByteOrder(UnsafeMutableRawBufferPointer(rebasing: buf[0..<got]), elementSize: elementSize)
            }
            left -= got
            start = 0
            end = got
        }
        let take = min(buffer.count, end - start)
        staging.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + start, byteCount: take)
        }
        start += take
        return take
    }
}

/// A folder of IDX pairs written as splits: `train-*` (or the only other prefix), `val-*` and
/// `t10k-*`, read as `trainXs`/`trainYs`, `valXs`/`valYs`, `testXs`/`testYs`.
public final class IDXSplitReader: TensorContainer {
    public let path: String
    private var pairs: [(prefix: String, reader: IDXReader)] = []
    public var formatName: String { "idx" }

    /// The splits of a folder, or nil when it does not hold several IDX pairs named as splits.
    public init?(folder: String, entries: [String]) throws {
        path = folder
        let images = entries.filter { $0.contains("-images-") && $0.contains("idx") }
        guard images.count > 1 else { return nil }
        for name in images {
            let filePrefix = String(name[..<name.firstRange(of: "-images-")!.lowerBound])
            let split: String
            switch filePrefix {
            case "t10k", "test": split = "test"
            case "val": split = "val"
            case "train": split = "train"
            default: return nil
            }
            guard !pairs.contains(where: { $0.prefix == split }) else { return nil }
            pairs.append((split, try IDXReader(images: folder + "/" + name)))
        }
        let order = ["train", "val", "test"]
        pairs.sort { order.firstIndex(of: $0.prefix)! < order.firstIndex(of: $1.prefix)! }
    }

    public var tensorNames: [String] { pairs.flatMap { [$0.prefix + "Xs", $0.prefix + "Ys"] } }
    public var manifestPath: String { path + "/manifest.json" }

    private func pair(_ name: String) throws -> (IDXReader, String) {
        let prefix = String(name.dropLast(2))
        guard let p = pairs.first(where: { $0.prefix == prefix }) else {
            throw ImgConvError(.notFound, path: path, "holds no IDX pair for '\(name)'")
        }
        return (p.reader, name.hasSuffix("Ys") ? "trainYs" : "trainXs")
    }

    public func storageName(_ name: String) -> String {
        guard let (reader, inner) = try? pair(name) else { return name }
        return reader.storageName(inner)
    }

    public func compression(of name: String) throws -> String {
        let (reader, inner) = try pair(name)
        return try reader.compression(of: inner)
    }

    public func open(_ name: String) throws -> (NPYHeader, ByteStream) {
        let (reader, inner) = try pair(name)
        return try reader.open(inner)
    }

    public func classNames() throws -> [String]? { nil }
    public func embeddedManifest() throws -> [UInt8]? { nil }
}
