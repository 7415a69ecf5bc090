import ImgConvCore
#if canImport(Glibc)
import Glibc
#endif

/// A forward-only source of bytes (a file region, or an inflated ZIP member).
public protocol ByteStream: AnyObject {
    /// Fills up to `buffer.count` bytes; returns 0 only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

extension ByteStream {
    /// Reads exactly `count` bytes, or fewer only when the stream ends first.
    public func read(count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = try out.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[done...])) }
            if n == 0 { break }
            done += n
        }
        if done < count { out.removeSubrange(done...) }
        return out
    }
}

/// An open file, read with `pread` so several streams can share it.
public final class ReadOnlyFile {
    public let path: String
    let fd: Int32
    public let size: Int

    /// - Throws: `.notFound` or `.io` naming the path.
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code = errno
            throw ImgConvError(code == ENOENT ? .notFound : .io, path: path, "cannot open: \(errnoText(code))")
        }
        var st = stat()
        guard fstat(fd, &st) == 0 else { close(fd); throw ImgConvError(.io, path: path, "cannot stat: \(errnoText(errno))") }
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// Reads `count` bytes at `offset`; fewer only at the end of the file.
    public func read(at offset: Int, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try read(at: offset, into: $0) }
        if n < count { out.removeSubrange(n...) }
        return out
    }

    public func read(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw ImgConvError(.io, path: path, "read failed: \(errnoText(errno))")
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// A region of a file as a stream.
final class FileRegionStream: ByteStream {
    private let file: ReadOnlyFile
    private var offset: Int
    private let end: Int

    init(file: ReadOnlyFile, offset: Int, length: Int) {
        self.file = file
        self.offset = offset
        end = offset + length
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let want = min(buffer.count, end - offset)
        guard want > 0 else { return 0 }
        let n = try file.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        offset += n
        return n
    }
}
