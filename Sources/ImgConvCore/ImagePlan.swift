/// The one shape and element type every image of a tensor is brought to.
public struct ImagePlan: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var depth: SampleDepth

    public init(width: Int, height: Int, channels: Int, depth: SampleDepth) {
        self.width = width
        self.height = height
        self.channels = channels
        self.depth = depth
    }

    public var bytesPerImage: Int { width * height * channels * depth.byteSize }
    public var shape: [Int] { [height, width, channels] }

    /// Brings a decoded image to this plan: channels first (as Pillow's `convert`), then the size
    /// (as Pillow's `resize` after `convert`), then the sample type. Widening is exact (uint8 times
    /// 257 to uint16; integers keep their value in float32); narrowing uint16 to uint8 divides by
    /// 257 with rounding (only when asked for with `--dtype uint8`).
    /// - Throws: `.unsupported` for float data planned as integers (no range to scale from).
    public func conform(_ image: PixelBuffer) throws -> [UInt8] {
        var img = ColorConverter.convert(image, toChannels: channels)
        if img.width != width || img.height != height {
            img = Resizer.resize(img, width: width, height: height)
        }
        return try Self.convertSamples(img.bytes, from: img.depth, to: depth)
    }

    /// Converts raw samples between sample types (see `conform`).
    public static func convertSamples(_ bytes: [UInt8], from: SampleDepth, to: SampleDepth) throws -> [UInt8] {
        if from == to { return bytes }
        let count = bytes.count / from.byteSize
        var out = [UInt8](repeating: 0, count: count * to.byteSize)
        try bytes.withUnsafeBytes { src in
            try out.withUnsafeMutableBytes { dst in
                switch (from, to) {
                case (.eight, .sixteen):
                    let d = dst.bindMemory(to: UInt16.self)
                    for (i, v) in src.enumerated() { d[i] = UInt16(v) &* 257 }
                case (.eight, .float32):
                    let d = dst.bindMemory(to: Float.self)
                    for (i, v) in src.enumerated() { d[i] = Float(v) }
                case (.sixteen, .float32):
                    let s = src.bindMemory(to: UInt16.self), d = dst.bindMemory(to: Float.self)
                    for i in 0..<count { d[i] = Float(s[i]) }
                case (.sixteen, .eight):
                    let s = src.bindMemory(to: UInt16.self), d = dst.bindMemory(to: UInt8.self)
                    for i in 0..<count { d[i] = UInt8((UInt32(s[i]) + 128) / 257) }
                default:
                    throw ImgConvError(.unsupported, "floating-point samples cannot be stored as \(to.dtype.rawValue) (use --dtype float32)")
                }
            }
        }
        return out
    }
}
