/// Sample width of a decoded image.
public enum SampleDepth: Int, Sendable, Comparable {
    case eight = 8
    case sixteen = 16

    public var byteSize: Int { self == .eight ? 1 : 2 }
    public var dtype: DType { self == .eight ? .uint8 : .uint16 }
    public var maxValue: Int { self == .eight ? 255 : 65535 }
    public static func < (a: SampleDepth, b: SampleDepth) -> Bool { a.rawValue < b.rawValue }
}

/// What a decoder learns from a file's header, before any pixel is decoded.
public struct ImageHeader: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// Channels the decoder will produce: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.
    public var channels: Int
    public var depth: SampleDepth

    public init(width: Int, height: Int, channels: Int, depth: SampleDepth) {
        self.width = width
        self.height = height
        self.channels = channels
        self.depth = depth
    }

    public var isGray: Bool { channels <= 2 }
    public var hasAlpha: Bool { channels == 2 || channels == 4 }
}

/// Decoded pixels: rows of interleaved samples, no padding, 16-bit samples in host byte order.
public struct PixelBuffer: Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var depth: SampleDepth
    public var bytes: [UInt8]

    public init(width: Int, height: Int, channels: Int, depth: SampleDepth, bytes: [UInt8]) {
        precondition(bytes.count == width * height * channels * depth.byteSize, "pixel buffer size")
        self.width = width
        self.height = height
        self.channels = channels
        self.depth = depth
        self.bytes = bytes
    }

    public var header: ImageHeader { ImageHeader(width: width, height: height, channels: channels, depth: depth) }
}
