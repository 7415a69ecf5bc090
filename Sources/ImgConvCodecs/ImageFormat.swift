import ImgConvCore

/// Image formats recognised from their first bytes (never from the file name).
public enum ImageFormat: String, Sendable, CaseIterable {
    case png, jpeg, tiff
    // Recognised so they can be reported by name, not decoded.
    case gif, bmp, webp, heif, jpeg2000, ico, psd

    public var isDecodable: Bool { self == .png || self == .jpeg || self == .tiff }

    /// Identifies a format from the first bytes of a file (16 are enough), or nil.
    public static func sniff(_ b: ArraySlice<UInt8>) -> ImageFormat? {
        let a = Array(b.prefix(16))
        func starts(_ sig: [UInt8], at offset: Int = 0) -> Bool {
            a.count >= offset + sig.count && Array(a[offset..<offset + sig.count]) == sig
        }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if starts([0xFF, 0xD8, 0xFF]) { return .jpeg }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A])
            || starts([0x49, 0x49, 0x2B, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2B]) { return .tiff }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return .gif }
        if starts(Array("BM".utf8)) && a.count >= 14 { return .bmp }
        if starts(Array("RIFF".utf8)) && starts(Array("WEBP".utf8), at: 8) { return .webp }
        if starts(Array("ftyp".utf8), at: 4) { return .heif }
        if starts([0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20]) || starts([0xFF, 0x4F, 0xFF, 0x51]) { return .jpeg2000 }
        if starts([0x00, 0x00, 0x01, 0x00]) { return .ico }
        if starts(Array("8BPS".utf8)) { return .psd }
        return nil
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
