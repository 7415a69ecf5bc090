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
    /// (as Pillow's `resize` after `convert`), then the depth (8-bit samples times 257, exact).
    public func conform(_ image: PixelBuffer) -> [UInt8] {
        var img = ColorConverter.convert(image, toChannels: channels)
        if img.width != width || img.height != height {
            img = Resizer.resize(img, width: width, height: height)
        }
        if img.depth == .eight && depth == .sixteen {
            var wide = [UInt8](repeating: 0, count: img.bytes.count * 2)
            img.bytes.withUnsafeBytes { src in
                wide.withUnsafeMutableBytes { dst in
                    let d = dst.bindMemory(to: UInt16.self)
                    for (i, v) in src.enumerated() { d[i] = UInt16(v) &* 257 }
                }
            }
            return wide
        }
        precondition(img.depth == depth, "narrowing is not planned")
        return img.bytes
    }
}
