#if canImport(Glibc)
import Glibc
#endif

/// Bytes appended over a long run and read back once at the end, in order, with memory bounded
/// by `memoryLimit`: past it they go to an anonymous temporary file (opened with `O_TMPFILE` in
/// `directory`, so it has no name and disappears with the process however it ends). A converter
/// keeps the manifest's per-file entries here, so its memory does not grow with the dataset.
public final class SpillBuffer {
    private let directory: String
    private let memoryLimit: Int
    private var buffer: [UInt8] = []
    private var fd: Int32 = -1
    private var spilled = 0
    /// Bytes appended so far.
    public private(set) var byteCount = 0

    public init(directory: String, memoryLimit: Int = 256 << 10) {
        self.directory = directory
        self.memoryLimit = memoryLimit
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    /// - Throws: `ImgConvError` `.io` naming the folder when the temporary file cannot be made or written.
    public func append(_ bytes: [UInt8]) throws {
        buffer += bytes
        byteCount += bytes.count
        if buffer.count >= memoryLimit { try spill() }
    }

    /// Appends what `write` appends to the bytes it is given (written in place, no copy).
    public func append(writing write: (inout [UInt8]) -> Void) throws {
        let before = buffer.count
        write(&buffer)
        byteCount += buffer.count - before
        if buffer.count >= memoryLimit { try spill() }
    }

    /// Hands every byte appended, in order, to `sink` (in pieces of at most about `memoryLimit`).
    public func replay(_ sink: ([UInt8]) throws -> Void) throws {
        if spilled > 0 {
            var chunk = [UInt8](repeating: 0, count: min(spilled, max(memoryLimit, 1 << 16)))
            var offset = 0
            while offset < spilled {
                let want = min(chunk.count, spilled - offset)
                let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, want, off_t(offset)) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw ImgConvError(.io, path: directory, "cannot read back a temporary file: \(n < 0 ? errnoText(errno) : "it is shorter than written")")
                }
                try sink(n == chunk.count ? chunk : Array(chunk[..<n]))
                offset += n
            }
        }
        if !buffer.isEmpty { try sink(buffer) }
    }

    private func spill() throws {
        if fd < 0 {
            // O_TMPFILE (Linux): an unnamed file in the folder. Glibc's macro is not imported.
            let oTmpfile: Int32 = 0o20000000 | O_DIRECTORY
            fd = open(directory, oTmpfile | O_RDWR | O_CLOEXEC, 0o600)
            if fd < 0 {
                // File systems without O_TMPFILE: a named file, unlinked at once.
                var template = Array((directory + "/.imgconv-spill-XXXXXX").utf8CString)
                fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
                guard fd >= 0 else {
                    let code = errno
                    throw ImgConvError(systemErrorCode(code), path: directory, "cannot create a temporary file: \(errnoText(code))")
                }
                template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
            }
        }
        var done = 0
        try buffer.withUnsafeBytes { buf in
            while done < buf.count {
                let n = pwrite(fd, buf.baseAddress! + done, buf.count - done, off_t(spilled + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else {
                    throw ImgConvError(.io, path: directory, "cannot write a temporary file: \(errnoText(errno))")
                }
                done += n
            }
        }
        spilled += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }
}
