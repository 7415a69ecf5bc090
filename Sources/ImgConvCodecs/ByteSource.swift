#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore

/// Bytes read at offsets, from a file through its descriptor or from bytes in memory: a container
/// whose structure lies across the file (RIFF chunks, GIF blocks) is walked the same way in the
/// header pass (the file, read only where the structure is) and when the file is in memory.
protocol ByteSource {
    var size: Int { get }
    /// Up to `count` bytes at `offset` (fewer at the end).
    /// - Throws: `.io` when reading fails.
    func bytes(_ count: Int, at offset: Int) throws -> [UInt8]
}

extension InputFile: ByteSource {
    func bytes(_ count: Int, at offset: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        guard offset < size, count > 0 else { return out }
        try read(min(count, size - offset), at: offset, appendingTo: &out)
        return out
    }
}

/// A file held in memory.
struct MemorySource: ByteSource {
    let data: [UInt8]
    var size: Int { data.count }
    func bytes(_ count: Int, at offset: Int) throws -> [UInt8] {
        guard offset >= 0, offset < data.count, count > 0 else { return [] }
        return Array(data[offset..<min(data.count, offset + count)])
    }
}

/// Sequential reads over a `ByteSource` through a buffer of 64 KiB: what a walk through a file of
/// many small blocks (GIF sub-blocks) reads one piece at a time.
final class SequentialReader {
    let source: ByteSource
    private(set) var offset: Int
    private var buffer: [UInt8] = []
    private var bufferStart = 0

    init(_ source: ByteSource, offset: Int = 0) {
        self.source = source
        self.offset = offset
    }

    /// Moves back `count` bytes (over bytes already read).
    func rewind(_ count: Int) { offset = max(0, offset - count) }

    /// Moves on `count` bytes without reading them.
    func skip(_ count: Int) throws { offset = min(source.size, offset + count) }

    /// Copies up to `count` bytes into `into` and moves on; returns how many were copied (fewer
    /// only at the end of the source).
    func read(into: UnsafeMutableRawPointer, count: Int) throws -> Int {
        var done = 0
        while done < count {
            let inBuffer = offset - bufferStart
            if inBuffer < 0 || inBuffer >= buffer.count {
                if offset >= source.size { break }
                buffer = try source.bytes(max(64 << 10, count - done), at: offset)
                bufferStart = offset
                if buffer.isEmpty { break }
                continue
            }
            let n = min(count - done, buffer.count - inBuffer)
            buffer.withUnsafeBytes { (into + done).copyMemory(from: $0.baseAddress! + inBuffer, byteCount: n) }
            done += n
            offset += n
        }
        return done
    }
}
