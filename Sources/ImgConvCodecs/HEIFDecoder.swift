import CShims
import ImgConvCore

/// AVIF through libavif and HEIF/HEIC through libheif, the primary image (or an AVIF
/// sequence's first frame) only, read as the reference readers read them: Pillow's AVIF plugin
/// (libavif's YUV to RGB conversion, `irot`/`imir` reported as an EXIF orientation and applied
/// with it, `clap` not applied, the file's own EXIF orientation ignored) and pillow-heif
/// (libheif applies `irot`, `imir` and `clap`; EXIF orientation ignored). Gray images are one
/// channel, gray with alpha RGBA. 10- and 12-bit images are uint16 with their values in the top
/// bits (value << 6 or << 4, as pillow-heif's I;16), or narrowed to 8 bits in the decoder, as the
/// references narrow them, when `narrowHighDepth` (`--dtype uint8`).
public struct HEIFDecoder: ImageDecoder {
    public let avif: Bool
    public let limits: DecodeLimits
    public let narrowHighDepth: Bool

    public init(avif: Bool, limits: DecodeLimits, narrowHighDepth: Bool = false) {
        self.avif = avif
        self.limits = limits
        self.narrowHighDepth = narrowHighDepth
    }

    private var library: String { avif ? "libavif" : "libheif" }

    /// Opens libavif and libheif now. They are otherwise opened at the first AVIF or HEIF file,
    /// which maps their codecs' ~40 MiB of address space after `MemoryCeiling` measured it.
    public static func preloadLibraries() {
        imc_heif_preload()
    }

    /// The container's description. libavif's own size limit is left at its default here, so that
    /// an image over --max-pixels is refused by `DecodeLimits` (as too large, not as damaged); the
    /// decode sets it to --max-pixels.
    private func info(_ data: [UInt8]) throws -> imc_heif_info {
        var info = imc_heif_info()
        let maxPixels: UInt32 = 0
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { buf in
                avif ? imc_avif_read_info(buf.baseAddress, buf.count, maxPixels, &info, e, n)
                     : imc_heif_read_info(buf.baseAddress, buf.count, &info, e, n)
            }
        }
        guard rc == 0 else { throw ImgConvError.library(library, message ?? unknownCError) }
        return info
    }

    /// 16-bit output: 10/12-bit images, unless narrowed (gray HEIF stays 16-bit, as pillow-heif).
    private func sixteen(_ i: imc_heif_info) -> Bool {
        i.bit_depth > 8 && (!narrowHighDepth || (!avif && i.channels == 1))
    }

    public func readHeader(_ data: [UInt8]) throws -> ImageHeader {
        let i = try info(data)
        guard [1, 3, 4].contains(i.channels), (8...16).contains(i.bit_depth), (1...8).contains(i.orientation) else {
            throw ImgConvError(.unsupported, "\(avif ? "AVIF" : "HEIF") with \(i.channels) channels of \(i.bit_depth) bits is not supported")
        }
        return ImageHeader(width: Int(i.width), height: Int(i.height), channels: Int(i.channels),
                           depth: sixteen(i) ? .sixteen : .eight, orientation: Int(i.orientation))
    }

    public func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer {
        var i = try info(data)  // what the decode must match (the C side checks it again)
        guard Int(i.width) == header.width, Int(i.height) == header.height, Int(i.channels) == header.channels,
              (sixteen(i) ? SampleDepth.sixteen : .eight) == header.depth else {
            throw ImgConvError(.corruptInput, "image differs from its header")
        }
        try limits.check(width: header.width, height: header.height, channels: header.channels, depth: header.depth)
        let size = header.width * header.height * header.channels * header.depth.byteSize
        var pixels = [UInt8](repeating: 0, count: size)
        let out16: Int32 = header.depth == .sixteen ? 1 : 0
        let maxPixels = UInt32(clamping: limits.maxPixels)
        let (rc, message) = withCErrorBuffer { e, n in
            data.withUnsafeBufferPointer { src in
                pixels.withUnsafeMutableBufferPointer { dst in
                    avif ? imc_avif_decode(src.baseAddress, src.count, maxPixels, out16, dst.baseAddress, dst.count, &i, e, n)
                         : imc_heif_decode(src.baseAddress, src.count, out16, dst.baseAddress, dst.count, &i, e, n)
                }
            }
        }
        guard rc == 0 else { throw ImgConvError.library(library, message ?? unknownCError) }
        return PixelBuffer(width: header.width, height: header.height, channels: header.channels,
                           depth: header.depth, bytes: pixels)
    }
}
