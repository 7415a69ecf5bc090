import CShims
import ImgConvCore

/// Encodes float32, float64, int32 and uint32 images as TIFF through libtiff (the C side, with its
/// per-file error handlers, is `CShims/tiff_write_shim.c`): SampleFormat IEEEFP, signed or
/// unsigned integer, 32 or 64 bits per sample, contiguous samples,
/// uncompressed, min-is-black (1-2 channels) or RGB (3-4), the last of 2 or 4 channels as
/// unassociated alpha. No time or software tags: the same pixels give the same bytes, and every
/// float (NaN payloads, infinities, negative zero, subnormals) is stored as its bits.
public enum TIFFEncoder {
    /// - Parameter pixels: `height` rows of `width` pixels of `channels` interleaved samples of
    ///   `dtype` (host order, little-endian), no padding.
    /// - Throws: `.unsupported` for a layout or type the writer does not take, `.internal` when
    ///   libtiff fails.
    public static func encode(_ pixels: UnsafeRawBufferPointer, dtype: DType, width: Int, height: Int, channels: Int) throws -> [UInt8] {
        let format: Int32
        switch dtype {
        case .float32, .float64: format = 3
        case .int32: format = 2
        case .uint32: format = 1
        default: throw ImgConvError(.unsupported, "the TIFF writer takes float32, float64, int32 and uint32, not \(dtype.rawValue)")
        }
        guard (1...4).contains(channels) else {
            throw ImgConvError(.unsupported, "the TIFF writer takes 1 to 4 channels, not \(channels)")
        }
        guard width > 0, height > 0, width <= Int(UInt32.max), height <= Int(UInt32.max) else {
            throw ImgConvError(.unsupported, "TIFF cannot hold an image of \(height)x\(width)")
        }
        precondition(pixels.count == width * height * channels * dtype.byteSize, "pixel buffer size")
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        // The C side copies each strip before libtiff sees it, so the pixels (possibly a
        // read-only mapping) are only read.
        let rc = imc_tiff_encode(pixels.baseAddress!, UInt32(width), UInt32(height), Int32(channels),
                                 Int32(dtype.byteSize * 8), format, &out, &length, &message, message.count)
        guard rc == 0, let out else {
            throw ImgConvError(.internal, "libtiff: \(stringFromCBuffer(message))")
        }
        defer { imc_tiff_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }
}
