import CZlib
import ImgConvCore

/// zlib's CRC-32 (the one ZIP uses).
public struct CRC32 {
    public private(set) var value: UInt32 = 0
    public private(set) var length: Int = 0
    public init() {}
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        var p = base.assumingMemoryBound(to: UInt8.self)
        var left = bytes.count
        var crc = UInt(value)
        while left > 0 {
            let n = min(left, Int(UInt32.max >> 1))
            crc = crc32(crc, p, UInt32(n))
            p += n
            left -= n
        }
        value = UInt32(crc)
        length += bytes.count
    }
    public mutating func update(_ bytes: [UInt8]) { bytes.withUnsafeBytes { update($0) } }

    /// CRC of the concatenation a + b from their separate CRCs.
    public static func combine(_ a: UInt32, _ b: UInt32, lengthOfB: Int) -> UInt32 {
        UInt32(crc32_combine(UInt(a), UInt(b), lengthOfB))
    }
}

/// A raw deflate stream (no zlib or gzip framing), as ZIP members hold.
final class Deflater {
    private var stream = z_stream()
    private var out = [UInt8](repeating: 0, count: 1 << 16)
    private var finished = false

    init(level: Int32 = 6) throws {
        let rc = deflateInit2_(&stream, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY,
                               ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw ImgConvError(.internal, "zlib: deflateInit2 failed (\(rc))") }
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

/// Inflates a raw deflate stream piece by piece.
final class Inflater {
    private var stream = z_stream()
    private var out = [UInt8](repeating: 0, count: 1 << 16)
    private(set) var ended = false

    init() throws {
        let rc = inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else { throw ImgConvError(.internal, "zlib: inflateInit2 failed (\(rc))") }
    }
    deinit { inflateEnd(&stream) }

    /// Inflates `input`, passing output pieces to `sink`. Returns the number of input bytes used
    /// (less than given only when the stream ended).
    /// - Throws: a message for corrupt data (the caller adds the file and member).
    @discardableResult
    func feed(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        guard !ended, let base = input.baseAddress, input.count > 0 else { return 0 }
        stream.next_in = UnsafeMutablePointer(mutating: base.assumingMemoryBound(to: UInt8.self))
        stream.avail_in = UInt32(input.count)
        while stream.avail_in > 0 && !ended {
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
            if rc == Z_BUF_ERROR && produced == 0 { break }
        }
        return input.count - Int(stream.avail_in)
    }
}
