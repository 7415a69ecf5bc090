/// Sample type of a decoded image, ordered from narrowest to widest: every uint8 value is exact
/// in uint16 (times 257) and every uint16 value is exact in float32.
public enum SampleDepth: Int, Sendable, Comparable, CaseIterable, Codable {
    case eight = 8
    case sixteen = 16
    case float32 = 32

    public var byteSize: Int {
        switch self {
        case .eight: return 1
        case .sixteen: return 2
        case .float32: return 4
        }
    }

    public var dtype: DType {
        switch self {
        case .eight: return .uint8
        case .sixteen: return .uint16
        case .float32: return .float32
        }
    }

    public init?(dtype: DType) {
        guard let match = SampleDepth.allCases.first(where: { $0.dtype == dtype }) else { return nil }
        self = match
    }

    public static func < (a: SampleDepth, b: SampleDepth) -> Bool { a.rawValue < b.rawValue }
}

/// What a decoder learns from a file's header, before any pixel is decoded.
public struct ImageHeader: Sendable, Equatable {
    /// Stored size (before orientation).
    public var width: Int
    public var height: Int
    /// Channels the decoder will produce: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
    public var channels: Int
    public var depth: SampleDepth
    /// EXIF orientation to apply after decoding (1 = none).
    public var orientation: Int
    /// Pages (TIFF directories) in the file.
    public var pages: Int

    public init(width: Int, height: Int, channels: Int, depth: SampleDepth, orientation: Int = 1, pages: Int = 1) {
        self.width = width
        self.height = height
        self.channels = channels
        self.depth = depth
        self.orientation = orientation
        self.pages = pages
    }

    public var isGray: Bool { channels <= 2 }
    public var hasAlpha: Bool { channels == 2 || channels == 4 }
    /// Size once the orientation is applied.
    public var orientedWidth: Int { orientation >= 5 ? height : width }
    public var orientedHeight: Int { orientation >= 5 ? width : height }
}

/// Decoded pixels: rows of interleaved samples, no padding, 16-bit samples in host byte order.
public struct PixelBuffer: Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var depth: SampleDepth
    public var bytes: [UInt8]
    /// A problem the decoder recovered from (accepted only on request, e.g. a truncated JPEG).
    public var warning: String?

    public init(width: Int, height: Int, channels: Int, depth: SampleDepth, bytes: [UInt8]) {
        precondition(bytes.count == width * height * channels * depth.byteSize, "pixel buffer size")
        self.width = width
        self.height = height
        self.channels = channels
        self.depth = depth
        self.bytes = bytes
    }
}

extension PixelBuffer {
    /// Applies an EXIF orientation (1...8) so the image is upright, as Pillow's
    /// `ImageOps.exif_transpose` does. 5...8 swap width and height.
    public func oriented(_ orientation: Int) -> PixelBuffer {
        guard (2...8).contains(orientation) else { return self }
        let w = width, h = height
        let swap = orientation >= 5
        let ow = swap ? h : w, oh = swap ? w : h
        let px = channels * depth.byteSize
        var out = [UInt8](repeating: 0, count: bytes.count)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                for y in 0..<oh {
                    for x in 0..<ow {
                        // The stored pixel (sx, sy) that lands at (x, y).
                        let (sx, sy): (Int, Int)
                        switch orientation {
                        case 2: (sx, sy) = (w - 1 - x, y)
                        case 3: (sx, sy) = (w - 1 - x, h - 1 - y)
                        case 4: (sx, sy) = (x, h - 1 - y)
                        case 5: (sx, sy) = (y, x)
                        case 6: (sx, sy) = (y, h - 1 - x)
                        case 7: (sx, sy) = (w - 1 - y, h - 1 - x)
                        default: (sx, sy) = (w - 1 - y, x)
                        }
                        (dst.baseAddress! + (y * ow + x) * px).copyMemory(from: src.baseAddress! + (sy * w + sx) * px, byteCount: px)
                    }
                }
            }
        }
        var result = PixelBuffer(width: ow, height: oh, channels: channels, depth: depth, bytes: out)
        result.warning = warning
        return result
    }
}
