import CDeflate
import CZlib
import FoundationEssentials
import Glibc
import ImgConvCore

/// A raw deflate stream compressed on several threads, the way pigz does it: the input is cut into
/// fixed 1 MiB chunks, each compressed on its own and ended on a byte boundary with an empty
/// stored block (what zlib's sync flush writes), so the pieces, joined in order, are one valid
/// stream; the last chunk ends the stream. Chunk boundaries depend only on the data, so the
/// output is the same for any number of threads.
///
/// Chunks are compressed by libdeflate, about twice as fast as zlib at the same level and a
/// little smaller. libdeflate compresses whole buffers only: it always marks its last block
/// final. So each chunk but the last is then walked block by block with zlib's inflate
/// (`Z_BLOCK`), which tells where the final block's header begins; its BFINAL bit is cleared and
/// the sync marker appended.
final class ParallelDeflater {
    static let chunkSize = 1 << 20

    private let level: Int32
    private let work: OrderedWork<[UInt8]>
    private var pending: [UInt8] = []

    init(level: Int32, threads: Int) {
        self.level = level
        work = OrderedWork(limit: max(2, threads * 2))
        pending.reserveCapacity(Self.chunkSize)
    }

    /// Adds input; full chunks are handed to the threads, finished pieces go to `sink` in order.
    func feed(_ bytes: UnsafeRawBufferPointer, sink: ([UInt8]) throws -> Void) throws {
        var offset = 0
        while offset < bytes.count {
            let take = min(Self.chunkSize - pending.count, bytes.count - offset)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
            offset += take
            if pending.count == Self.chunkSize { try submit(last: false, sink: sink) }
        }
    }

    /// Compresses what is left as the final chunk and emits everything.
    func finish(sink: ([UInt8]) throws -> Void) throws {
        try submit(last: true, sink: sink)
        try work.finish(deliver: sink)
    }

    private func submit(last: Bool, sink: ([UInt8]) throws -> Void) throws {
        let chunk = pending, level = self.level
        pending = []
        pending.reserveCapacity(Self.chunkSize)
        try work.submit({ try Self.compress(chunk, last: last, level: level) }, deliver: sink)
    }

    static func compress(_ chunk: [UInt8], last: Bool, level: Int32) throws -> [UInt8] {
        let compressor = try deflateCompressors.take(level: level)
        defer { deflateCompressors.give(compressor, level: level) }
        let bound = libdeflate_deflate_compress_bound(compressor, chunk.count)
        try MemoryCeiling.reserve(bound + 5, for: "compressing a chunk")
        var out = [UInt8](repeating: 0, count: bound + 5)
        let produced = chunk.withUnsafeBytes { input in
            out.withUnsafeMutableBytes { output in
                libdeflate_deflate_compress(compressor, input.baseAddress, input.count, output.baseAddress, bound)
            }
        }
        guard produced > 0 else { throw ImgConvError(.internal, "libdeflate: compression failed") }
        out.removeSubrange(produced...)
        if !last { try endWithoutFinalBlock(&out) }
        return out
    }

    /// Turns a complete raw deflate stream into one that continues: clears the final block's
    /// BFINAL bit and appends an empty stored block, so the next piece starts on a byte boundary.
    static func endWithoutFinalBlock(_ stream: inout [UInt8]) throws {
        var z = z_stream()
        let rc = inflateInit2_(&z, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            if rc == Z_MEM_ERROR { throw ImgConvError(.resources, "zlib: out of memory") }
            throw ImgConvError(.internal, "zlib: inflateInit2 failed")
        }
        defer { inflateEnd(&z) }
        var scratch = [UInt8](repeating: 0, count: 64 << 10)
        var finalHeaderBit = 0     // where the block being decoded began (bits from the start)
        var unusedBits = 0
        try stream.withUnsafeMutableBytes { input in
            z.next_in = input.baseAddress!.assumingMemoryBound(to: Bytef.self)
            z.avail_in = UInt32(input.count)
            try scratch.withUnsafeMutableBytes { out in
                while true {
                    z.next_out = out.baseAddress!.assumingMemoryBound(to: Bytef.self)
                    z.avail_out = UInt32(out.count)
                    let rc = inflate(&z, Z_BLOCK)
                    if rc == Z_STREAM_END { break }
                    guard rc == Z_OK else { throw ImgConvError(.internal, "zlib: cannot walk a compressed chunk (\(rc))") }
                    // Just after a block's end-of-block code (inflate stops there with Z_BLOCK;
                    // at the stream's end it has already skipped to a byte boundary).
                    if z.data_type & 128 != 0 {
                        if z.data_type & 64 == 0 {
                            finalHeaderBit = Int(z.total_in) * 8 - Int(z.data_type & 7)  // the next block begins
                        } else {
                            unusedBits = Int(z.data_type & 7)  // the final block ended
                        }
                    }
                }
            }
            guard Int(z.total_in) == input.count else {
                throw ImgConvError(.internal, "libdeflate: stream ends before its data (\(z.total_in) of \(input.count) bytes)")
            }
        }
        stream[finalHeaderBit >> 3] &= ~UInt8(1 << (finalHeaderBit & 7))
        // The padding bits after the end-of-block code are zero; an empty stored block's header
        // is three zero bits (BFINAL 0, type 00): in the padding when it has room, else one more byte.
        stream[stream.count - 1] &= UInt8(0xFF >> unusedBits)
        if unusedBits < 3 { stream.append(0) }
        stream += [0x00, 0x00, 0xFF, 0xFF]
    }
}

/// libdeflate compressors are large (their hash tables): each is made once and reused.
let deflateCompressors = CompressorPool()

/// Idle libdeflate compressors, by level, for the threads that compress chunks.
/// `@unchecked Sendable`: `idle` is read and written with `lock` held; a compressor taken from it
/// belongs to one thread until it is put back.
final class CompressorPool: @unchecked Sendable {
    private let lock = ThreadCondition()
    private var idle: [Int32: [OpaquePointer]] = [:]

    func take(level: Int32) throws -> OpaquePointer {
        lock.lock()
        let c = idle[level]?.popLast()
        lock.unlock()
        if let c { return c }
        // libdeflate fails only when malloc does: the machine is out of memory.
        guard let made = libdeflate_alloc_compressor(level) else {
            throw ImgConvError(.resources, "libdeflate: out of memory for a compressor (level \(level))")
        }
        return made
    }

    func give(_ c: OpaquePointer, level: Int32) {
        lock.lock()
        idle[level, default: []].append(c)
        lock.unlock()
    }
}

/// `data` as one zlib stream (what HDF5's deflate filter stores), by libdeflate at `level`.
func zlibCompress(_ data: [UInt8], level: Int32) throws -> [UInt8] {
    let compressor = try deflateCompressors.take(level: level)
    defer { deflateCompressors.give(compressor, level: level) }
    let bound = libdeflate_zlib_compress_bound(compressor, data.count)
    try MemoryCeiling.reserve(bound, for: "compressing a chunk")
    var out = [UInt8](repeating: 0, count: bound)
    let produced = data.withUnsafeBytes { src in
        out.withUnsafeMutableBytes { dst in libdeflate_zlib_compress(compressor, src.baseAddress, src.count, dst.baseAddress, bound) }
    }
    guard produced > 0 else { throw ImgConvError(.internal, "libdeflate: compression failed") }
    out.removeSubrange(produced...)
    return out
}
