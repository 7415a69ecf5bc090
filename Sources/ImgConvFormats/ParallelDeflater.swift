import CZlib
import ImgConvCore

/// A raw deflate stream compressed on several threads, the way pigz does it: the input is cut into
/// fixed 1 MiB chunks, each compressed on its own with the previous chunk's last 32 KiB as preset
/// dictionary and ended with a sync flush (an empty stored block, so the next chunk starts on a
/// byte boundary); the last chunk ends the stream. The pieces are joined in order into one valid
/// stream. Chunk boundaries depend only on the data, so the output is the same for any number of
/// threads.
final class ParallelDeflater {
    static let chunkSize = 1 << 20
    static let window = 32 << 10

    private let level: Int32
    private let work: OrderedWork<[UInt8]>
    private var pending: [UInt8] = []
    private var dictionary: [UInt8] = []

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
        let chunk = pending, dict = dictionary, level = self.level
        dictionary = Array(chunk.suffix(Self.window))
        pending.removeAll(keepingCapacity: true)
        try work.submit({ try Self.compress(chunk, dictionary: dict, last: last, level: level) }, deliver: sink)
    }

    private static func compress(_ chunk: [UInt8], dictionary: [UInt8], last: Bool, level: Int32) throws -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(&stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw ImgConvError(.internal, "zlib: deflateInit2 failed")
        }
        defer { deflateEnd(&stream) }
        if !dictionary.isEmpty {
            _ = dictionary.withUnsafeBufferPointer { deflateSetDictionary(&stream, $0.baseAddress, UInt32($0.count)) }
        }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(chunk.count))) + 64)
        let produced: Int = try chunk.withUnsafeBufferPointer { input in
            try out.withUnsafeMutableBufferPointer { output in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = UInt32(input.count)
                stream.next_out = output.baseAddress
                stream.avail_out = UInt32(output.count)
                let rc = deflate(&stream, last ? Z_FINISH : Z_SYNC_FLUSH)
                guard rc == (last ? Z_STREAM_END : Z_OK), stream.avail_in == 0 else {
                    throw ImgConvError(.internal, "zlib: deflate failed (\(rc))")
                }
                return output.count - Int(stream.avail_out)
            }
        }
        out.removeSubrange(produced...)
        return out
    }
}
