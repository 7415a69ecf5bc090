import CISAL
import CZlib
import ImgConvCore

/// The CRC-32 ZIP uses (zlib's `crc32` values), computed by ISA-L's `crc32_gzip_refl`: carry-less
/// multiply over 512-bit registers where the CPU has VPCLMULQDQ (28-30 GB/s here, libdeflate
/// 1.14's 14, zlib 1.2.13's about 6).
public struct CRC32 {
    public private(set) var value: UInt32 = 0
    public private(set) var length: Int = 0
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        // ISA-L takes a mutable pointer but only reads.
        value = crc32_gzip_refl(value, UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: UInt8.self)), UInt64(bytes.count))
        length += bytes.count
    }
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// CRC of the concatenation a + b from their separate CRCs.
    public static func combine(_ a: UInt32, _ b: UInt32, lengthOfB: Int) -> UInt32 {
        UInt32(crc32_combine(UInt(a), UInt(b), lengthOfB))
    }
}

/// zlib's `windowBits` values for the three framings imgconv meets.
enum DeflateFraming: Int32 {
    /// Raw deflate, as ZIP members hold.
    case raw = -15
    /// gzip (`.gz` files); zlib writes a header without name or time, so output is reproducible.
    case gzip = 31
}

/// A deflate stream, raw (no zlib or gzip framing) unless asked for gzip.
final class Deflater {
    private var stream = z_stream()
    private var out = [UInt8](repeating: 0, count: 1 << 16)
    private var finished = false

    init(level: Int32 = 6, framing: DeflateFraming = .raw) throws {
        let rc = deflateInit2_(&stream, level, Z_DEFLATED, framing.rawValue, 8, Z_DEFAULT_STRATEGY,
                               ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw ImgConvError(rc == Z_MEM_ERROR ? .resources : .internal, "zlib: deflateInit2 failed (\(rc == Z_MEM_ERROR ? "out of memory" : "\(rc)"))") }
    }
    deinit { deflateEnd(&stream) }

    /// Compresses `input` (or, with `finish`, ends the stream), passing output pieces to `sink`.
    func feed(_ input: UnsafeRawBufferPointer, finish: Bool, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var base = input.baseAddress?.assumingMemoryBound(to: UInt8.self)
        var left = input.count
        repeat {
            let chunk = min(left, Int(UInt32.max >> 1))
            stream.next_in = UnsafeMutablePointer(mutating: base)
            stream.avail_in = UInt32(chunk)
            let lastChunk = chunk == left
            let mode = finish && lastChunk ? Z_FINISH : Z_NO_FLUSH
            var rc: Int32
            repeat {
                rc = out.withUnsafeMutableBufferPointer { buf -> Int32 in
                    stream.next_out = buf.baseAddress
                    stream.avail_out = UInt32(buf.count)
                    return deflate(&stream, mode)
                }
                guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                    throw ImgConvError(.internal, "zlib: deflate failed (\(rc))")
                }
                let produced = out.count - Int(stream.avail_out)
                if produced > 0 { try out.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            } while stream.avail_out == 0 || (mode == Z_FINISH && rc != Z_STREAM_END)
            base = base.map { $0 + chunk }
            left -= chunk
        } while left > 0
    }
}

/// Inflates a deflate stream (raw unless asked for gzip) piece by piece.
final class Inflater {
    private var stream = z_stream()
    private var out = [UInt8](repeating: 0, count: 1 << 16)
    private(set) var ended = false

    init(framing: DeflateFraming = .raw) throws {
        let rc = inflateInit2_(&stream, framing.rawValue, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw ImgConvError(rc == Z_MEM_ERROR ? .resources : .internal, "zlib: inflateInit2 failed (\(rc == Z_MEM_ERROR ? "out of memory" : "\(rc)"))") }
    }
    deinit { inflateEnd(&stream) }

    /// Starts over for another stream of the same framing (a gzip file may hold several members).
    func reset() {
        inflateReset(&stream)
        ended = false
    }

    /// Inflates `input`, passing output pieces to `sink`, until the input is used, the stream
    /// ends, or `maxOutput` bytes have come out (so a highly compressed input never inflates more
    /// than that at once). Returns the number of input bytes used; the caller feeds the rest later.
    /// - Throws: a message for corrupt data (the caller adds the file and member).
    @discardableResult
    func feed(_ input: UnsafeRawBufferPointer, maxOutput: Int = .max, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        guard !ended, let base = input.baseAddress, input.count > 0 else { return 0 }
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(input.count)
        var total = 0
        while stream.avail_in > 0 && !ended && total < maxOutput {
            let rc = out.withUnsafeMutableBufferPointer { buf -> Int32 in
                stream.next_out = buf.baseAddress
                stream.avail_out = UInt32(buf.count)
                return inflate(&stream, Z_NO_FLUSH)
            }
            switch rc {
            case Z_OK, Z_BUF_ERROR: break
            case Z_STREAM_END: ended = true
            default:
                let msg = stream.msg.map { String(cString: $0) } ?? "code \(rc)"
                throw ImgConvError(.corruptInput, "deflate data is corrupt: \(msg)")
            }
            let produced = out.count - Int(stream.avail_out)
            if produced > 0 { try out.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) } }
            total += produced
            if rc == Z_BUF_ERROR && produced == 0 { break }
        }
        return input.count - Int(stream.avail_in)
    }
}

/// The inflated bytes of a gzip file (every member, as `gzip -d` reads them). Corrupt or
/// truncated data is a `.corruptInput` error without a path (the caller names the file).
final class GzipInputStream: ByteStream {
    private let base: ByteStream
    private let inflater: Inflater
    private var input = [UInt8](repeating: 0, count: 1 << 18)
    private var inputStart = 0
    private var inputEnd = 0
    private var pending: [UInt8] = []
    private var pendingStart = 0
    private var started = false

    init(_ base: ByteStream) throws {
        self.base = base
        inflater = try Inflater(framing: .gzip)
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while pendingStart >= pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingStart = 0
            if inputStart >= inputEnd {
                let n = try input.withUnsafeMutableBytes { try base.read(into: $0) }
                if n == 0 {
                    guard started && inflater.ended else { throw ImgConvError(.corruptInput, "gzip stream is truncated") }
                    return 0
                }
                inputStart = 0
                inputEnd = n
            }
            if inflater.ended {
                // Another member may follow; anything else is not gzip data.
                guard input[inputStart] == 0x1F else {
                    throw ImgConvError(.corruptInput, "\(inputEnd - inputStart)+ bytes of trailing data after the gzip stream")
                }
                inflater.reset()
            }
            started = true
            let (start, end) = (inputStart, inputEnd)
            let used = try input.withUnsafeBytes { buf in
                // At most 1 MiB out per step: a gzip bomb inflates no further than what is read.
                try inflater.feed(UnsafeRawBufferPointer(rebasing: buf[start..<end]), maxOutput: 1 << 20) { pending.append(contentsOf: $0) }
            }
            inputStart += used
        }
        let take = min(buffer.count, pending.count - pendingStart)
        pending.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + pendingStart, byteCount: take)
        }
        pendingStart += take
        return take
    }
}
