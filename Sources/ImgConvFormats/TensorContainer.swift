import ImgConvCore

/// A file or folder holding named NPY tensors: an `.npz` archive or a folder of `.npy` files.
public protocol TensorContainer: AnyObject {
    var path: String { get }
    var tensorNames: [String] { get }
    /// Opens a tensor: its validated header and a stream of exactly its data bytes.
    /// - Throws: `.corruptInput` naming the file and member, `.notFound` when it is absent.
    func open(_ name: String) throws -> (NPYHeader, ByteStream)
    /// The file name a tensor is stored under (for messages).
    func storageName(_ name: String) -> String
}

/// Opens `.npz` files and `.npy` folders.
public func openContainer(_ path: String) throws -> TensorContainer {
    var st = stat()
    guard stat(path, &st) == 0 else {
        throw ImgConvError(.notFound, path: path, "does not exist")
    }
    if (st.st_mode & S_IFMT) == S_IFDIR { return try NPYDirectoryReader(directory: path) }
    return try NPZReader(path: path)
}

/// Reads the NPY header at the start of a stream and returns it with the data length it implies.
func readHeader(from stream: ByteStream, path: String) throws -> NPYHeader {
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
    return try NPYHeader.parse(bytes, path: path).0
}

/// Limits a stream to `length` bytes and reports a short stream as corrupt.
final class ExactLengthStream: ByteStream {
    private let base: ByteStream
    private var left: Int
    private let label: String
    private let length: Int

    init(_ base: ByteStream, length: Int, label: String) {
        self.base = base
        left = length
        self.length = length
        self.label = label
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard left > 0 else {
            // Drain the base so its end checks (CRC) run, and refuse trailing data.
            var probe = [UInt8](repeating: 0, count: 1)
            let extra = try probe.withUnsafeMutableBytes { try base.read(into: $0) }
            if extra > 0 { throw ImgConvError(.corruptInput, "\(label): more data than its shape holds") }
            return 0
        }
        let n = try base.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<min(buffer.count, left)]))
        if n == 0 { throw ImgConvError(.corruptInput, "\(label): data is \(length - left) bytes, its header needs \(length)") }
        left -= n
        return n
    }
}

func dataLength(_ header: NPYHeader, path: String, label: String) throws -> Int {
    let itemSize: Int
    if let dtype = DType(npyDescr: header.descr) {
        itemSize = dtype.byteSize
    } else if header.descr.hasPrefix("<U"), let n = Int(header.descr.dropFirst(2)), n > 0 {
        itemSize = 4 * n
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

    public init(path: String) throws {
        self.path = path
        zip = try ZipReader(path: path)
    }

    public var tensorNames: [String] {
        zip.members.map { $0.name.hasSuffix(".npy") ? String($0.name.dropLast(4)) : $0.name }
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
            let header = try readHeader(from: stream, path: path)
            let length = try dataLength(header, path: path, label: label)
            return (header, ExactLengthStream(stream, length: length, label: label))
        } catch let e as ImgConvError {
            throw e.message.hasPrefix("member") ? e : ImgConvError(e.code, path: path, "\(label): \(e.message)")
        }
    }
}

public final class NPYDirectoryReader: TensorContainer {
    public let path: String

    public init(directory: String) throws { path = directory }

    public var tensorNames: [String] {
        (try? listNPY()) ?? []
    }

    private func listNPY() throws -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let e = readdir(dir) {
            let name = withUnsafePointer(to: e.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name.hasSuffix(".npy") && !name.hasPrefix(".") { names.append(String(name.dropLast(4))) }
        }
        return names.sorted()
    }

    public func storageName(_ name: String) -> String { name + ".npy" }

    public func open(_ name: String) throws -> (NPYHeader, ByteStream) {
        let filePath = path + "/" + storageName(name)
        let file = try ReadOnlyFile(path: filePath)
        let stream = FileRegionStream(file: file, offset: 0, length: file.size)
        let header = try readHeader(from: stream, path: filePath)
        let length = try dataLength(header, path: filePath, label: storageName(name))
        return (header, ExactLengthStream(stream, length: length, label: storageName(name)))
    }
}
#if canImport(Glibc)
import Glibc
#endif
