import ImgConvCore
#if canImport(Glibc)
import Glibc
#endif

/// A forward-only source of bytes (a file region, or an inflated ZIP member).
public protocol ByteStream: AnyObject {
    /// Fills up to `buffer.count` bytes; returns 0 only at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Lends the next `count` bytes in place, consumed as `read` would consume them: exactly
    /// `count`, fewer only at the end of the stream (none there). They stay valid until the next
    /// call on the stream. Nil when the stream cannot lend them (its bytes are not memory-mapped,
    /// or mapping failed): then nothing is consumed and the caller reads into its own buffer.
    func borrow(_ count: Int) throws -> UnsafeRawBufferPointer?
    /// Lends up to `count` bytes, a whole number of `unit`s (at least one unless the stream has
    /// ended: then none), as many as the stream holds in place at once; nil as for `borrow`.
    /// By default, `borrow(count)`.
    func borrow(upTo count: Int, unit: Int) throws -> UnsafeRawBufferPointer?
}

extension ByteStream {
    public func borrow(_ count: Int) throws -> UnsafeRawBufferPointer? { nil }
    public func borrow(upTo count: Int, unit: Int) throws -> UnsafeRawBufferPointer? { try borrow(count) }

    /// Hands the next `count` bytes (fewer only at the end, none there) to `body`: in place when
    /// the stream lends them (a stored `.npy` file or `.npz` member, memory-mapped), else read
    /// into `scratch` (grown as the bytes arrive, up to `count`: a count taken from a header never
    /// allocates more than the stream holds). The bytes are valid only inside `body`.
    public func next<R>(_ count: Int, scratch: inout [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        if let lent = try borrow(count) { return try body(lent) }
        var n = 0
        while n < count {
            if n == scratch.count { scratch.append(contentsOf: repeatElement(0, count: min(count - n, max(1 << 20, n)))) }
            let end = min(count, scratch.count)
            let got = try scratch.withUnsafeMutableBytes { try fill(UnsafeMutableRawBufferPointer(rebasing: $0[n..<end])) }
            n += got
            if n < end { break }
        }
        return try scratch.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    }

    /// Reads until `buffer` is full or the stream ends; returns the bytes read.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]))
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads exactly `count` bytes, or fewer only when the stream ends first.
    public func read(count: Int) throws -> [UInt8] {
        // The buffer grows as data arrives (1 MiB, then doubling): a header that declares more
        // than the stream holds never makes it allocate what is not there.
        var out: [UInt8] = []
        var done = 0
        while done < count {
            if done == out.count {
                out.append(contentsOf: repeatElement(0, count: min(count - done, max(1 << 20, done))))
            }
            let n = try out.withUnsafeMutableBytes { try read(into: UnsafeMutableRawBufferPointer(rebasing: $0[done...])) }
            if n == 0 { break }
            done += n
        }
        if done < out.count { out.removeSubrange(done...) }
        return out
    }
}

/// An open file, read with `pread` so several streams can share it.
public final class ReadOnlyFile {
    public let path: String
    let fd: Int32
    public let size: Int

    /// - Throws: as `openInputFile`: `.notFound` or `.unreadable` (not a regular file, no
    ///   permission) or `.io`, naming the path.
    public init(path: String) throws {
        self.path = path
        let (fd, st) = try openInputFile(path)
        self.fd = fd
        size = Int(st.st_size)
    }

    deinit { close(fd) }

    /// Reads `count` bytes at `offset`; fewer only at the end of the file.
    public func read(at offset: Int, count: Int) throws -> [UInt8] {
        let count = max(0, min(count, size - offset))   // never more than the file holds
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

/// A region of a file as a stream. A mapped region is read through a memory-mapped window
/// (`MappedWindow`) and lends its bytes in place; without mapping, or when mmap fails, it reads
/// with `pread`.
final class FileRegionStream: ByteStream {
    private let file: ReadOnlyFile
    private var offset: Int
    private let end: Int
    private let window: MappedWindow?

    init(file: ReadOnlyFile, offset: Int, length: Int, mapped: Bool = false,
         windowSize: Int = MappedWindow.windowSize, releaseStep: Int = MappedWindow.releaseStep) {
        self.file = file
        self.offset = offset
        end = offset + length
        window = mapped ? MappedWindow(file: file, limit: offset + length, windowSize: windowSize, releaseStep: releaseStep) : nil
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let want = min(buffer.count, end - offset)
        guard want > 0 else { return 0 }
        if let lent = window?.bytes(at: offset, count: want) {
            buffer.baseAddress!.copyMemory(from: lent.baseAddress!, byteCount: want)
            offset += want
            return want
        }
        let n = try file.read(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        offset += n
        return n
    }

    func borrow(_ count: Int) throws -> UnsafeRawBufferPointer? {
        guard let window else { return nil }
        let want = max(0, min(count, end - offset))
        guard want > 0 else { return window.failed ? nil : UnsafeRawBufferPointer(start: nil, count: 0) }
        guard let lent = window.bytes(at: offset, count: want) else { return nil }
        offset += want
        return lent
    }
}

/// Read-only views of a file region through `mmap`, one window at a time, so that a stored
/// tensor of any size is read without copying it through buffers while memory stays bounded:
/// a window covers at least `windowSize` bytes (more only when one request needs more), pages
/// the reader has passed are released every `releaseStep` bytes (`MADV_DONTNEED`: the resident
/// set counts touched mapped pages), and a window is unmapped when the next one is mapped.
/// When mmap fails, or the file no longer holds the bytes asked for (it shrank since it was
/// opened: a mapping past its end reads zeros or raises SIGBUS; checked with `fstat` on every
/// request), `bytes` returns nil for good and the stream reads with `pread`, which reports the
/// short file as an error.
final class MappedWindow {
    static let windowSize = 64 << 20
    static let releaseStep = 4 << 20
    private static let pageSize = max(4096, Int(sysconf(Int32(_SC_PAGESIZE))))

    private let file: ReadOnlyFile
    /// End of the region (never mapped past it).
    private let limit: Int
    private let windowSize: Int
    private let releaseStep: Int
    private var base: UnsafeMutableRawPointer?
    /// File offset and length of the current mapping.
    private var start = 0
    private var length = 0
    /// Bytes at the start of the mapping already released.
    private var released = 0
    private(set) var failed = false

    init(file: ReadOnlyFile, limit: Int, windowSize: Int = MappedWindow.windowSize, releaseStep: Int = MappedWindow.releaseStep) {
        self.file = file
        self.limit = limit
        self.windowSize = windowSize
        self.releaseStep = releaseStep
    }

    deinit { unmap() }

    /// `count` (> 0) bytes at `offset`, inside the region; valid until the next call.
    func bytes(at offset: Int, count: Int) -> UnsafeRawBufferPointer? {
        guard !failed, count > 0, offset >= 0, offset + count <= limit else { return nil }
        // The file must still hold them: past its end a mapping reads zeros or raises SIGBUS.
        var st = stat()
        guard fstat(file.fd, &st) == 0, Int(st.st_size) >= offset + count else {
            failed = true
            unmap()
            return nil
        }
        if base == nil || offset < start || offset + count > start + length {
            guard map(at: offset, count: count, fileSize: Int(st.st_size)) else { return nil }
        } else if offset - start - released >= releaseStep {
            // Everything before `offset` has been handed out and passed.
            let passed = (offset - start) / Self.pageSize * Self.pageSize
            if passed > released {
                _ = madvise(base! + released, passed - released, MADV_DONTNEED)
                released = passed
            }
        }
        return UnsafeRawBufferPointer(start: base! + (offset - start), count: count)
    }

    private func map(at offset: Int, count: Int, fileSize: Int) -> Bool {
        unmap()
        let aligned = offset / Self.pageSize * Self.pageSize
        let end = min(min(limit, fileSize), max(aligned + windowSize, offset + count))
        let mapped = mmap(nil, end - aligned, PROT_READ, MAP_PRIVATE, file.fd, off_t(aligned))
        guard let mapped, mapped != UnsafeMutableRawPointer(bitPattern: -1) else {
            failed = true
            return false
        }
        _ = madvise(mapped, end - aligned, MADV_SEQUENTIAL)
        base = mapped
        start = aligned
        length = end - aligned
        released = 0
        return true
    }

    private func unmap() {
        if let base { _ = munmap(base, length) }
        base = nil
        length = 0
    }
}
