import ImgConvCore

/// A file or folder holding named tensors: an `.npz` archive, a folder of `.npy` files, an HDF5
/// file or an IDX pair. Every tensor reads as NPY would hold it: a header (descr, shape) and a
/// stream of its C-order, little-endian data bytes, whatever the storage.
public protocol TensorContainer: AnyObject {
    var path: String { get }
    /// `npz`, `npy`, `h5` or `idx`.
    var formatName: String { get }
    var tensorNames: [String] { get }
    /// Opens a tensor: its validated header and a stream of exactly its data bytes.
    /// - Throws: `.corruptInput` naming the file and member, `.notFound` when it is absent.
    func open(_ name: String) throws -> (NPYHeader, ByteStream)
    /// The file name a tensor is stored under (for messages).
    func storageName(_ name: String) -> String
    /// Where imgconv puts the manifest of this container.
    var manifestPath: String { get }
    /// The class names the container holds itself; nil when it has none (IDX).
    /// - Throws: `.corruptInput` when they are stored but cannot be read.
    func classNames() throws -> [String]?
    /// A manifest stored inside the container (HDF5's `imgconv_manifest` attribute), else nil.
    func embeddedManifest() throws -> [UInt8]?
    /// How a tensor is stored, for `inspect` (`stored`, `deflate`, `shuffle+gzip(4)`, `gzip file`...).
    func compression(of name: String) throws -> String
}

extension TensorContainer {
    public func classNames() throws -> [String]? {
        guard tensorNames.contains("classNames") else { return nil }
        let (header, stream) = try open("classNames")
        guard header.shape.count == 1 else {
            throw ImgConvError(.corruptInput, path: path, "\(storageName("classNames")): shape \(header.shape) is not 1-D")
        }
        guard header.descr.hasPrefix("<U") else {
            throw ImgConvError(.unsupported, path: path, "\(storageName("classNames")): dtype '\(header.descr)' is not a numpy str array")
        }
        let bytes = try stream.read(count: try dataLength(header, path: path, label: storageName("classNames")))
        return decodeUnicodeArray(bytes, descr: header.descr, count: header.shape[0])
    }

    public func embeddedManifest() throws -> [UInt8]? { nil }

    public func compression(of name: String) throws -> String { "none" }
}

/// The names in a folder (not starting with `.`), sorted.
public func listFolder(_ path: String) -> [String] {
    guard let dir = opendir(path) else { return [] }
    defer { closedir(dir) }
    var names: [String] = []
    while let e = readdir(dir) {
        let name = direntName(e)
        if !name.hasPrefix(".") { names.append(name) }
    }
    return names.sorted()
}

/// Reads the NPY header at the start of a stream.
func readHeader(from stream: ByteStream, path: String) throws -> NPYHeader {
    try readHeaderAndLength(from: stream, path: path).header
}

/// Opens the data of an NPY file or member of `size` bytes: its header, checked against the bytes
/// that back it (before anything is allocated from it), and a stream of exactly its data.
func openNPY(_ stream: ByteStream, size: Int, path: String, label: String) throws -> (NPYHeader, ByteStream) {
    let (header, headerBytes) = try readHeaderAndLength(from: stream, path: path)
    let length = try dataLength(header, path: path, label: label)
    guard size - headerBytes == length else {
        throw ImgConvError(.corruptInput, path: path, "\(label): data is \(max(0, size - headerBytes)) bytes, its header (\(header.descr) \(header.shape)) needs \(length)")
    }
    return (header, ExactLengthStream(stream, length: length, label: label, path: path))
}

/// Reads the NPY header at the start of a stream, and how many bytes it took.
func readHeaderAndLength(from stream: ByteStream, path: String) throws -> (header: NPYHeader, bytes: Int) {
    var bytes = try stream.read(count: 10)
    guard bytes.count == 10 else { throw ImgConvError(.corruptInput, path: path, "NPY header: truncated (\(bytes.count) bytes)") }
    let lengthSize = bytes[6] == 1 ? 2 : 4
    if lengthSize == 4 { bytes += try stream.read(count: 2) }
    guard bytes.count == 8 + lengthSize else { throw ImgConvError(.corruptInput, path: path, "NPY header: truncated") }
    var length = 0
    for k in 0..<lengthSize { length |= Int(bytes[8 + k]) << (8 * k) }
    guard length <= NPYHeader.maxHeaderLength else {
        throw ImgConvError(.corruptInput, path: path, "NPY header: header length \(length) is over \(NPYHeader.maxHeaderLength)")
    }
    bytes += try stream.read(count: length)
    return (try NPYHeader.parse(bytes, path: path).0, bytes.count)
}

/// Limits a stream to `length` bytes and reports a short stream as corrupt.
final class ExactLengthStream: ByteStream {
    private let base: ByteStream
    private var left: Int
    private let label: String
    private let length: Int
    private let path: String?

    init(_ base: ByteStream, length: Int, label: String, path: String? = nil) {
        self.base = base
        left = length
        self.length = length
        self.label = label
        self.path = path
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard left > 0 else {
            // Drain the base so its end checks (CRC) run, and refuse trailing data.
            var probe = [UInt8](repeating: 0, count: 1)
            let extra = try probe.withUnsafeMutableBytes { try base.read(into: $0) }
            if extra > 0 { throw ImgConvError(.corruptInput, path: path, "\(label): more data than its shape holds") }
            return 0
        }
        let n = try base.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(buffer.count, left)]))
        if n == 0 { throw ImgConvError(.corruptInput, path: path, "\(label): data is \(length - left) bytes, its header needs \(length)") }
        left -= n
        return n
    }

    func borrow(_ count: Int) throws -> UnsafeRawBufferPointer? {
        guard left > 0 else {
            // As `read`: the base must end here too (its own checks run), else there is extra data.
            guard let tail = try base.borrow(1) else { return nil }
            if tail.count > 0 { throw ImgConvError(.corruptInput, path: path, "\(label): more data than its shape holds") }
            return tail
        }
        let want = min(count, left)
        guard let lent = try base.borrow(want) else { return nil }
        if lent.count < want {
            throw ImgConvError(.corruptInput, path: path, "\(label): data is \(length - left + lent.count) bytes, its header needs \(length)")
        }
        left -= want
        return lent
    }
}

func dataLength(_ header: NPYHeader, path: String, label: String) throws -> Int {
    let itemSize: Int
    if let dtype = DType(npyDescr: header.descr) {
        itemSize = dtype.byteSize
    } else if header.descr.hasPrefix("<U"), let n = Int(header.descr.dropFirst(2)), n > 0 {
        // 4 bytes a character; a width whose items would not fit in an Int is a damaged header.
        let (bytes, overflow) = n.multipliedReportingOverflow(by: 4)
        guard !overflow else {
            throw ImgConvError(.corruptInput, path: path, "\(label): dtype '\(header.descr)' has items too large to hold")
        }
        itemSize = bytes
    } else {
        throw ImgConvError(.unsupported, path: path, "\(label): dtype '\(header.descr)' is not one imgconv reads")
    }
    guard !header.fortranOrder else { throw ImgConvError(.unsupported, path: path, "\(label): fortran_order arrays are not supported") }
    guard let total = checkedByteCount(header.shape, elementSize: itemSize) else {
        throw ImgConvError(.corruptInput, path: path, "\(label): shape \(header.shape) overflows")
    }
    return total
}

public final class NPZReader: TensorContainer {
    public let path: String
    let zip: ZipReader
    public var formatName: String { "npz" }
    public var manifestPath: String { path + ".manifest.json" }

    public func compression(of name: String) throws -> String {
        guard let member = zip.member(named: storageName(name)) else { return "none" }
        return member.method == 8 ? "deflate" : "stored"
    }

    public init(path: String) throws {
        self.path = path
        zip = try ZipReader(path: path)
    }

    /// The `.npy` members, by name without `.npy`. Other members (a README, numpy's own
    /// non-array entries) are not tensors: every command leaves them alone, as `numpy.load` does.
    public var tensorNames: [String] {
        zip.members.filter { $0.name.hasSuffix(".npy") }.map { String($0.name.dropLast(4)) }
    }

    public func storageName(_ name: String) -> String { name + ".npy" }

    public func open(_ name: String) throws -> (NPYHeader, ByteStream) {
        let memberName = storageName(name)
        guard let member = zip.member(named: memberName) else {
            throw ImgConvError(.corruptInput, path: path, "member '\(memberName)' is missing")
        }
        let stream = try zip.open(member)
        let label = "member '\(memberName)'"
        do {
            return try openNPY(stream, size: member.size, path: path, label: label)
        } catch let e as ImgConvError {
            throw e.message.hasPrefix("member") ? e : ImgConvError(e.code, path: path, "\(label): \(e.message)")
        }
    }
}

public final class NPYDirectoryReader: TensorContainer {
    public let path: String
    public var formatName: String { "npy" }
    public var manifestPath: String { path + "/manifest.json" }
    public let tensorNames: [String]
    /// Every `.npy` file, opened with the folder: a commit into the folder later on does not
    /// change what this reader reads.
    private let files: [String: ReadOnlyFile]

    public init(directory: String) throws {
        path = directory
        var names: [String] = [], files: [String: ReadOnlyFile] = [:]
        for entry in listFolder(directory) where entry.hasSuffix(".npy") {
            let name = String(entry.dropLast(4))
            names.append(name)
            files[name] = try ReadOnlyFile(path: directory + "/" + entry)
        }
        tensorNames = names
        self.files = files
    }

    public func storageName(_ name: String) -> String { name + ".npy" }

    public func open(_ name: String) throws -> (NPYHeader, ByteStream) {
        guard let file = files[name] else {
            throw ImgConvError(.notFound, path: path + "/" + storageName(name), "does not exist")
        }
        let stream = FileRegionStream(file: file, offset: 0, length: file.size, mapped: true)
        return try openNPY(stream, size: file.size, path: file.path, label: storageName(name))
    }
}
#if canImport(Glibc)
import Glibc
#endif

/// A single `.npy` file: one tensor, named after the file.
public final class NPYFileReader: TensorContainer {
    public let path: String
    public let name: String
    public var formatName: String { "npy" }
    public var manifestPath: String { path + ".manifest.json" }

    /// Opened with the reader (see `NPYDirectoryReader.files`).
    private let file: ReadOnlyFile

    public init(path: String) throws {
        self.path = path
        let base = path.split(separator: "/").last.map(String.init) ?? path
        name = base.hasSuffix(".npy") ? String(base.dropLast(4)) : base
        file = try ReadOnlyFile(path: path)
    }

    public var tensorNames: [String] { [name] }

    public func storageName(_ name: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }

    public func open(_ name: String) throws -> (NPYHeader, ByteStream) {
        guard name == self.name else { throw ImgConvError(.notFound, path: path, "holds no tensor '\(name)'") }
        let stream = FileRegionStream(file: file, offset: 0, length: file.size, mapped: true)
        return try openNPY(stream, size: file.size, path: path, label: storageName(name))
    }
}
