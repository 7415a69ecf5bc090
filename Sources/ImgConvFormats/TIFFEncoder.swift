import CShims
import ImgConvCore

/// Encodes float32 images as TIFF through libtiff (the C side, with its per-file error handlers,
/// is `CShims/tiff_write_shim.c`): SampleFormat IEEEFP, 32 bits per sample, contiguous samples,
/// uncompressed, min-is-black (1-2 channels) or RGB (3-4), the last of 2 or 4 channels as
/// unassociated alpha. No time or software tags: the same pixels give the same bytes, and every
/// float (NaN payloads, infinities, negative zero, subnormals) is stored as its bits.
public enum TIFFEncoder {
    /// - Parameter pixels: `height` rows of `width` pixels of `channels` interleaved float32
    ///   samples (host order, little-endian), no padding.
    /// - Throws: `.unsupported` for a layout the writer does not take, `.internal` when libtiff fails.
    public static func encodeFloat32(_ pixels: UnsafeRawBufferPointer, width: Int, height: Int, channels: Int) throws -> [UInt8] {
        guard (1...4).contains(channels) else {
            throw ImgConvError(.unsupported, "the TIFF writer takes 1 to 4 channels, not \(channels)")
        }
        guard width > 0, height > 0, width <= Int(UInt32.max), height <= Int(UInt32.max) else {
            throw ImgConvError(.unsupported, "TIFF cannot hold an image of \(height)x\(width)")
        }
        precondition(pixels.count == width * height * channels * 4, "pixel buffer size")
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        // The C side copies each strip before libtiff sees it, so the pixels (possibly a
        // read-only mapping) are only read.
        let rc = imc_tiff_encode_float(pixels.baseAddress!.assumingMemoryBound(to: Float.self), UInt32(width), UInt32(height),
                                       Int32(channels), &out, &length, &message, message.count)
        guard rc == 0, let out else {
            throw ImgConvError(.internal, "libtiff: \(String(cString: message))")
        }
        defer { imc_tiff_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }
}
