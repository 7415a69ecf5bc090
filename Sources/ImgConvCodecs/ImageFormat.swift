import ImgConvCore

/// Image formats recognised from their first bytes (never from the file name).
public enum ImageFormat: String, Sendable, CaseIterable {
    case png, jpeg, tiff
    case gif, bmp, webp, avif, heif, jpeg2000, ico, psd

    /// Formats with a decoder (`Decoders.decoder(for:)`); the others are recognised so they can
    /// be reported by name ("unsupported format: BMP") and skipped.
    public var isDecodable: Bool {
        switch self {
        case .png: return true
        case .jpeg: return true
        case .tiff: return true
        case .avif, .heif, .bmp, .gif, .webp: return true
        default: return false
        }
    }

    /// Identifies a format from the first bytes of a file (64 are enough), or nil.
    public static func sniff(_ b: ArraySlice<UInt8>) -> ImageFormat? {
        // Compared in place: this runs once per file, and small files make its cost count.
        let head = b.prefix(64)
        func starts<S: Sequence<UInt8>>(_ sig: S, at offset: Int = 0) -> Bool {
            head.dropFirst(offset).starts(with: sig)
        }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] as [UInt8]) { return .png }
        if starts([0xFF, 0xD8, 0xFF] as [UInt8]) { return .jpeg }
        let a = Array(head)
        if starts([0x49, 0x49, 0x2A, 0x00] as [UInt8]) || starts([0x4D, 0x4D, 0x00, 0x2A] as [UInt8])
            || starts([0x49, 0x49, 0x2B, 0x00] as [UInt8]) || starts([0x4D, 0x4D, 0x00, 0x2B] as [UInt8]) { return .tiff }
        if starts("GIF87a".utf8) || starts("GIF89a".utf8) { return .gif }
        if starts("BM".utf8) && a.count >= 14 { return .bmp }
        if starts("RIFF".utf8) && starts("WEBP".utf8, at: 8) { return .webp }
        // ISO base media files: the major brand says AVIF (`avif`, `avis`) or HEIF (`heic`,
        // `heix`, `mif1`...); a file whose brand is neither is not an image.
        if starts("ftyp".utf8, at: 4) {
            let boxEnd = min(a.count, Int(a[0]) << 24 | Int(a[1]) << 16 | Int(a[2]) << 8 | Int(a[3]))
            // The major brand (8) and the compatible ones (16 on; 12 is the minor version).
            let brands = stride(from: 8, to: boxEnd - 3, by: 4).filter { $0 != 12 }
                .map { String(decoding: a[$0..<($0 + 4)], as: UTF8.self) }
            if brands.contains(where: { $0 == "avif" || $0 == "avis" }) { return .avif }
            let heif: Set = ["heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1"]
            return brands.contains(where: heif.contains) ? .heif : nil
        }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20] as [UInt8]) || starts([0xFF, 0x4F, 0xFF, 0x51] as [UInt8]) { return .jpeg2000 }
        if starts([0x00, 0x00, 0x01, 0x00] as [UInt8]) { return .ico }
        if starts("8BPS".utf8) { return .psd }
        if isBareDIB(a) { return .bmp }
        return nil
    }

    /// A DIB without the BMP file header (what Pillow's `DibImageFile` opens): a known info-header
    /// size, one plane, a BMP bit depth, a positive size and, in the longer headers, a known
    /// compression; 14 to 20 bytes of structure, looked for after every magic number.
    static func isBareDIB(_ a: [UInt8]) -> Bool {
        guard a.count >= 16 else { return false }
        func u16(_ i: Int) -> Int { Int(a[i]) | Int(a[i + 1]) << 8 }
        func u32(_ i: Int) -> UInt32 { UInt32(a[i]) | UInt32(a[i + 1]) << 8 | UInt32(a[i + 2]) << 16 | UInt32(a[i + 3]) << 24 }
        let size = u32(0)
        let depths = [1, 4, 8, 16, 24, 32]
        if size == 12 {
            return u16(4) > 0 && u16(6) > 0 && u16(8) == 1 && depths.contains(u16(10))
        }
        guard [16, 40, 52, 56, 64, 108, 124].contains(size), Int32(bitPattern: u32(4)) > 0, u32(8) != 0,
              u16(12) == 1, depths.contains(u16(14)) else { return false }
        return size == 16 || (a.count >= 20 && [0, 1, 2, 3, 6].contains(u32(16)))
    }
}

extension ImageFormat {
    /// Bytes a file may carry beyond its pixels (ICC profiles, EXIF and XMP, thumbnails) and
    /// the most read to find a header that is not near the start.
    public static let metadataAllowance = 64 << 20

    /// The largest file that can hold the image of `header`: four times its samples at the
    /// widest this format stores them (8 bytes for TIFF, 2 for PNG, 1 for JPEG, GIF and WebP), in
    /// up to 4 channels, with the padding of blocks and tiles up to 256 pixels, for every page
    /// (or animation frame); plus
    /// `metadataAllowance`. Stored deflate, JPEG at quality 100 and uncompressed strips stay
    /// well within it, so a larger file is not an image of this size and is not read.
    public func maxFileBytes(_ header: ImageHeader) -> Int {
        let sample = self == .tiff ? 8 : self == .png ? 2 : 1
        let samples = [header.width + 256, header.height + 256, 4, sample, 4, max(1, header.pages)]
            .reduce(1) { $0.multipliedReportingOverflow(by: $1).overflow ? Int.max / 2 : $0 * $1 }
        return min(Int.max / 2, samples) + Self.metadataAllowance
    }

    /// The end of the message about a file over `maxFileBytes`.
    public func tooLargeReason(_ header: ImageHeader) -> String {
        let pages = header.pages > 1 ? " of \(header.pages) \(self == .tiff ? "pages" : "frames")" : ""
        return "more than a \(header.width)x\(header.height) \(rawValue.uppercased())\(pages) can need (\(maxFileBytes(header)) bytes): not read"
    }
}

/// Limits a decoder checks against the header before it allocates anything.
public struct DecodeLimits: Sendable {
    /// Pillow raises its DecompressionBombError above twice `Image.MAX_IMAGE_PIXELS`.
    public static let defaultMaxPixels = 178_956_970
    public var maxPixels: Int
    /// Bytes one image's decode may need (a decoder's own buffer included): a quarter of the
    /// physical memory unless lowered (the fuzz targets lower it).
    public var maxBytes: Int
    public init(maxPixels: Int = DecodeLimits.defaultMaxPixels, maxBytes: Int = DecodeLimits.memoryBudget) {
        self.maxPixels = maxPixels
        self.maxBytes = maxBytes
    }

    /// A quarter of what the process may use when it starts (`MemoryCeiling`: the physical
    /// memory, the cgroup's `memory.max`, or what `ulimit -v` leaves, whichever is smallest).
    public static let memoryBudget: Int = MemoryCeiling.atStart.bytes / 4

    /// - Throws: `.limitExceeded` when the image is larger than allowed or its size overflows.
    public func check(width: Int, height: Int, channels: Int, depth: SampleDepth) throws {
        guard width > 0, height > 0 else {
            throw ImgConvError(.corruptInput, "image has no pixels (\(width)x\(height))")
        }
        let (pixels, overflow) = width.multipliedReportingOverflow(by: height)
        guard !overflow, pixels <= maxPixels,
              let bytes = checkedByteCount([pixels, channels], elementSize: depth.byteSize) else {
            throw ImgConvError(.limitExceeded, "\(width)x\(height) pixels is over the limit of \(maxPixels) pixels (--max-pixels)")
        }
        // Whatever --max-pixels allows, a decode must fit in memory (several buffers of this
        // size are alive at once): refuse rather than abort on a failed allocation.
        guard bytes <= maxBytes else {
            // Over a limit set on the process (ulimit -v, a cgroup) it is the host's fault, not the
            // file's: exit 71, never skipped. Over a quarter of the machine it is a bomb (65).
            let host = maxBytes == Self.memoryBudget && MemoryCeiling.atStart.source.isProcessLimit
            throw ImgConvError(host ? .resources : .limitExceeded, "\(width)x\(height) pixels need \(bytes) bytes, \(overBytes)")
        }
    }

    /// The end of a message about a decode that needs more than `maxBytes`.
    var overBytes: String {
        guard maxBytes == Self.memoryBudget else { return "more than the limit of \(maxBytes) bytes" }
        return "more than a quarter of \(MemoryCeiling.atStart.description)"
    }
}

/// One decoder per format: read the header first (so the caller can check limits and plan the
/// tensor), then decode the pixels.
public protocol ImageDecoder: Sendable {
    /// - Throws: `ImgConvError` (`.corruptInput`, `.unsupported`, `.limitExceeded`) without a path.
    func readHeader(_ data: [UInt8]) throws -> ImageHeader
    /// - Throws: as `readHeader`.
    func decode(_ data: [UInt8], header: ImageHeader) throws -> PixelBuffer
}

#if canImport(Glibc)
import Glibc
#endif
