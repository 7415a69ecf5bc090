import CDeflate
import CDeflateWalk
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
/// final. So each chunk but the last is then walked block by block (`imc_deflate_find_final`,
/// which decodes the codes without producing data) to find where the final block's header
/// begins; its BFINAL bit is cleared and the sync marker appended. A job takes two chunks, whose
/// walks go on together on one thread, one symbol of each in turn, so that each one's table
/// lookups overlap the other's: the two take about 70% of the time of one after the other.
final class ParallelDeflater {
    static let chunkSize = 1 << 20
    static let chunksPerJob = 2

    private let level: Int32
    private let work: OrderedWork<[[UInt8]]>
    private var pending: [UInt8] = []

    init(level: Int32, threads: Int) {
        self.level = level
        work = OrderedWork(limit: max(2, threads * 2))
        pending.reserveCapacity(Self.chunkSize * Self.chunksPerJob)
    }

    /// Adds input; full jobs are handed to the threads, finished pieces go to `sink` in order.
    func feed(_ bytes: UnsafeRawBufferPointer, sink: ([UInt8]) throws -> Void) throws {
        let jobSize = Self.chunkSize * Self.chunksPerJob
        var offset = 0
        while offset < bytes.count {
            let take = min(jobSize - pending.count, bytes.count - offset)
            pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + take)]))
            offset += take
            if pending.count == jobSize { try submit(endsStream: false, sink: sink) }
        }
    }

    /// Compresses what is left, the final chunk last, and emits everything.
    func finish(sink: ([UInt8]) throws -> Void) throws {
        try submit(endsStream: true, sink: sink)
        try work.finish { pieces in for piece in pieces { try sink(piece) } }
    }

    private func submit(endsStream: Bool, sink: ([UInt8]) throws -> Void) throws {
        let data = pending, level = self.level
        pending = []
        pending.reserveCapacity(Self.chunkSize * Self.chunksPerJob)
        try work.submit({ try Self.compress(data, endsStream: endsStream, level: level) }) { pieces in
            for piece in pieces { try sink(piece) }
        }
    }

    /// `data` cut into chunks and compressed, in order, as pieces of the stream: every chunk is
    /// left open but, with `endsStream`, the last (which may be empty), which ends the stream.
    static func compress(_ data: [UInt8], endsStream: Bool, level: Int32) throws -> [[UInt8]] {
        var streams = try stride(from: 0, to: max(data.count, 1), by: chunkSize).map { start in
            try data.withUnsafeBytes { try deflate(UnsafeRawBufferPointer(rebasing: $0[start..<min(start + chunkSize, data.count)]), level: level) }
        }
        let open = endsStream ? streams.count - 1 : streams.count
        var k = 0
        while k < open {
            let together = k + 1 < open
            let (first, second) = try finalBlocks(streams[k], together ? streams[k + 1] : nil)
            leaveOpen(&streams[k], first)
            if let second { leaveOpen(&streams[k + 1], second) }
            k += together ? 2 : 1
        }
        return streams
    }

    /// One chunk as a complete raw deflate stream, with room for the sync marker `leaveOpen` appends.
    static func deflate(_ chunk: UnsafeRawBufferPointer, level: Int32) throws -> [UInt8] {
        try deflateCompressors.compress(chunk, level: level, spare: 5,
                                        bound: libdeflate_deflate_compress_bound, with: libdeflate_deflate_compress)
    }

    /// Where one or two complete raw deflate streams' final blocks begin.
    static func finalBlocks(_ a: [UInt8], _ b: [UInt8]?) throws -> (imc_deflate_end, imc_deflate_end?) {
        var endA = imc_deflate_end(), endB = imc_deflate_end()
        let rc = a.withUnsafeBufferPointer { pa in
            guard let b else { return imc_deflate_find_final(pa.baseAddress, pa.count, &endA, nil, 0, nil) }
            return b.withUnsafeBufferPointer { pb in
                imc_deflate_find_final(pa.baseAddress, pa.count, &endA, pb.baseAddress, pb.count, &endB)
            }
        }
        if rc == -2 { throw ImgConvError(.resources, "out of memory for walking a compressed chunk") }
        guard rc == 0 else { throw ImgConvError(.internal, "libdeflate: a compressed chunk is not a complete deflate stream") }
        return (endA, b == nil ? nil : endB)
    }

    /// Turns a complete raw deflate stream into one that continues: clears the final block's
    /// BFINAL bit and appends an empty stored block, so the next piece starts on a byte boundary.
    static func leaveOpen(_ stream: inout [UInt8], _ end: imc_deflate_end) {
        let header = end.final_header_bit, padding = Int(end.padding_bits)
        stream[header >> 3] &= ~UInt8(1 << (header & 7))
        // The padding bits after the end-of-block code are zero; an empty stored block's header
        // is three zero bits (BFINAL 0, type 00): in the padding when it has room, else one more byte.
        stream[stream.count - 1] &= UInt8(0xFF >> padding)
        if padding < 3 { stream.append(0) }
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

    /// `input` compressed whole by one of the pool's compressors at `level`, in one of libdeflate's
    /// formats (its `bound` and compress functions: raw deflate or zlib), into an array with room
    /// for `spare` more bytes.
    func compress(_ input: UnsafeRawBufferPointer, level: Int32, spare: Int = 0,
                  bound: (OpaquePointer?, Int) -> Int,
                  with compress: (OpaquePointer?, UnsafeRawPointer?, Int, UnsafeMutableRawPointer?, Int) -> Int) throws -> [UInt8] {
        let compressor = try take(level: level)
        defer { give(compressor, level: level) }
        let limit = bound(compressor, input.count)
        try MemoryCeiling.reserve(limit + spare, for: "compressing a chunk")
        var produced = 0
        let out = [UInt8](unsafeUninitializedCapacity: limit + spare) { buffer, count in
            produced = compress(compressor, input.baseAddress, input.count, buffer.baseAddress, limit)
            count = produced
        }
        guard produced > 0 else { throw ImgConvError(.internal, "libdeflate: compression failed") }
        return out
    }
}

/// `data` as one zlib stream (what HDF5's deflate filter stores), by libdeflate at `level`.
func zlibCompress(_ data: [UInt8], level: Int32) throws -> [UInt8] {
    try data.withUnsafeBytes {
        try deflateCompressors.compress($0, level: level, bound: libdeflate_zlib_compress_bound, with: libdeflate_zlib_compress)
    }
}
