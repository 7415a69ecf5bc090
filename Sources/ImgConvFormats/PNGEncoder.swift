import CShims
import ImgConvCore

/// Encodes images as PNG through libpng (the C side, with its setjmp, is
/// `CShims/png_write_shim.c`). Output has no time or text chunks: the same pixels give the same
/// bytes.
public enum PNGEncoder {
    /// - Parameters:
    ///   - pixels: `height` rows of `width` pixels of `channels` interleaved samples (1 gray,
    ///     2 gray+alpha, 3 RGB, 4 RGBA), no padding; 16-bit samples little-endian.
    ///   - bitDepth: 8 or 16.
    /// - Throws: `.unsupported` for a layout PNG cannot hold, `.internal` when libpng fails.
    public static func encode(_ pixels: UnsafeRawBufferPointer, width: Int, height: Int, channels: Int,
                              bitDepth: Int, level: Int = 6) throws -> [UInt8] {
        guard (1...4).contains(channels), bitDepth == 8 || bitDepth == 16 else {
            throw ImgConvError(.unsupported, "PNG has no type for \(channels) channels of \(bitDepth) bits")
        }
        guard width > 0, height > 0, width <= Int(UInt32.max), height <= Int(UInt32.max) else {
            throw ImgConvError(.unsupported, "PNG cannot hold an image of \(height)x\(width)")
        }
        precondition(pixels.count == width * height * channels * bitDepth / 8, "pixel buffer size")
        var out: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let rc = imc_png_encode(pixels.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt32(width), UInt32(height),
                                Int32(channels), Int32(bitDepth), Int32(level), &out, &length, &message, message.count)
        guard rc == 0, let out else {
            throw ImgConvError(.internal, "libpng: \(stringFromCBuffer(message))")
        }
        defer { imc_png_free(out) }
        return Array(UnsafeBufferPointer(start: out, count: length))
    }
}
