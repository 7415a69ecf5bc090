/// Sample type of a decoded image. The types are partly ordered by what holds what exactly:
/// uint8 < uint16 < float32 < float64 (uint8 widens to uint16 times 257; integers keep their
/// value in the others), uint16 < int32, uint16 < uint32, and every 32-bit integer is exact in
/// float64. `joined` gives the narrowest type that holds two others.
public enum SampleDepth: String, Sendable, CaseIterable, Codable {
    case eight, sixteen, float32
    /// 32-bit integer samples (TIFF), which float32 cannot hold beyond 2^24, and float64 ones.
    case uint32, int32, float64

    public var byteSize: Int {
        switch self {
        case .eight: return 1
        case .sixteen: return 2
        case .float32, .uint32, .int32: return 4
        case .float64: return 8
        }
    }

    public var dtype: DType {
        switch self {
        case .eight: return .uint8
        case .sixteen: return .uint16
        case .float32: return .float32
        case .uint32: return .uint32
        case .int32: return .int32
        case .float64: return .float64
        }
    }

    public var isFloatingPoint: Bool { self == .float32 || self == .float64 }

    public init?(dtype: DType) {
        guard let match = SampleDepth.allCases.first(where: { $0.dtype == dtype }) else { return nil }
        self = match
    }

    /// Whether every sample of `other` is held exactly by this type (after uint8's x257 widening
    /// to uint16; as a value in the other types).
    public func holds(_ other: SampleDepth) -> Bool {
        if self == other || other == .eight { return true }
        switch self {
        case .eight: return false
        case .sixteen: return false
        case .float32: return other == .sixteen
        case .uint32, .int32: return other == .sixteen
        case .float64: return true
        }
    }

    /// The narrowest type that holds both.
    public func joined(_ other: SampleDepth) -> SampleDepth {
        if holds(other) { return self }
        if other.holds(self) { return other }
        return .float64
    }
}

extension SampleDepth {
    /// The value of full intensity: 255, 65535, 1 for floats, and the 32-bit integers' maximum.
    public var unitMax: Double {
        switch self {
        case .eight: return 255
        case .sixteen: return 65535
        case .float32, .float64: return 1
        case .uint32: return Double(UInt32.max)
        case .int32: return Double(Int32.max)
        }
    }

    /// A colour given in 8-bit units (0-255) in this type's units (x257 for 16-bit, /255 for floats).
    public func fromEightBit(_ v: Double) -> Double { v * unitMax / 255 }

    /// One sample (native byte order) as a Double.
    public func value(in raw: UnsafeRawBufferPointer, at offset: Int) -> Double {
        dtype.value(in: raw, at: offset)
    }

    /// Stores a value as one sample (native byte order): integers rounded and clamped to the
    /// type's range.
    public func store(_ v: Double, in raw: UnsafeMutableRawBufferPointer, at offset: Int) {
        let i = v.isNaN ? 0 : Int64(max(min(v.rounded(), 9e18), -9e18))
        switch self {
        case .eight: raw.storeBytes(of: UInt8(clamping: i), toByteOffset: offset, as: UInt8.self)
        case .sixteen: raw.storeBytes(of: UInt16(clamping: i), toByteOffset: offset, as: UInt16.self)
        case .uint32: raw.storeBytes(of: UInt32(clamping: i), toByteOffset: offset, as: UInt32.self)
        case .int32: raw.storeBytes(of: Int32(clamping: i), toByteOffset: offset, as: Int32.self)
        case .float32: raw.storeBytes(of: Float(v), toByteOffset: offset, as: Float.self)
        case .float64: raw.storeBytes(of: v, toByteOffset: offset, as: Double.self)
        }
    }
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
