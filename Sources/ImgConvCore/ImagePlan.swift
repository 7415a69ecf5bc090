import FoundationEssentials
import Glibc

/// How an image is brought to the target size.
public enum ResizeFit: String, Sendable, CaseIterable, Codable {
    /// Scale both axes to the target (aspect ratio not kept), as `Image.resize`.
    case stretch
    /// Scale to cover the target, then cut the centre, as Pillow's `ImageOps.fit`.
    case crop
    /// Scale to fit inside the target, then centre on the pad colour, as `ImageOps.pad`.
    case pad
}

/// Memory order of each image in the tensor.
public enum ImageLayout: String, Sendable, CaseIterable, Codable {
    case nhwc, nchw
}

/// Float output normalisation: `(value / scale - mean) / std` per channel.
public struct Normalization: Sendable, Equatable, Codable {
    /// Divide by the input's maximum (255 or 65535) first.
    public var unitScale: Bool
    public var mean: [Float]?
    public var std: [Float]?
    public init(unitScale: Bool = false, mean: [Float]? = nil, std: [Float]? = nil) {
        self.unitScale = unitScale
        self.mean = mean
        self.std = std
    }
    public var isIdentity: Bool { !unitScale && mean == nil && std == nil }
}

/// The one shape and element type every image of a tensor is brought to, and how.
public struct ImagePlan: Sendable, Equatable, Codable {
    public var width: Int
    public var height: Int
    public var channels: Int
    /// Sample type images are conformed in (uint8, uint16, float32; uint32, int32, float64).
    public var depth: SampleDepth
    public var fit: ResizeFit = .stretch
    public var filter: ResizeFilter = .bilinear
    /// Pad colour for `.pad`, in 8-bit units (scaled for 16-bit), RGBA.
    public var padColor: [Double] = [0, 0, 0, 0]
    /// Composite images with alpha on this colour (8-bit units, RGB) before dropping alpha.
    public var background: [Double]?
    /// The element type written (float16 only as a float output); nil = `depth.dtype`.
    public var outputDType: DType?
    public var normalization = Normalization()
    public var layout: ImageLayout = .nhwc

    public init(width: Int, height: Int, channels: Int, depth: SampleDepth) {
        self.width = width
        self.height = height
        self.channels = channels
        self.depth = depth
    }

    /// The element type of the image tensor.
    public var dtype: DType { outputDType ?? depth.dtype }
    public var bytesPerImage: Int { width * height * channels * dtype.byteSize }
    /// Shape of one image in the tensor.
    public var shape: [Int] { layout == .nchw ? [channels, height, width] : [height, width, channels] }

    /// Brings a decoded image to this plan and encodes it: channels first (as Pillow's `convert`,
    /// or alpha composited on the background), then the size (as Pillow's `resize`/`fit`/`pad`
    /// after `convert`), then the sample type (widening is exact: uint8 x257 to uint16, integers
    /// keep their value in the wider types; uint16 to uint8 divides by 257 with rounding; 32-bit
    /// integers and float64 asked as float32 round), then normalisation, float16 and the layout.
    /// - Throws: `.unsupported` for float data planned as integers (no range to scale from), or
    ///   32-bit integers planned as a narrower integer type.
    public func conform(_ image: PixelBuffer) throws -> [UInt8] {
        var img = image
        if let background, img.hasAlpha, channels != 4 {
            img = ColorConverter.composite(img, on: background)
        }
        img = ColorConverter.convert(img, toChannels: channels)
        img = resized(img)
        var samples = try Self.convertSamples(img.bytes, from: img.depth, to: depth)
        if !normalization.isIdentity || dtype == .float16 {
            samples = encodeFloat(samples, sourceDepth: image.depth)
        }
        if layout == .nchw {
            samples = Self.toPlanar(samples, pixels: width * height, channels: channels, elementSize: dtype.byteSize)
        }
        return samples
    }

    private func resized(_ img: PixelBuffer) -> PixelBuffer {
        if img.width == width && img.height == height { return img }
        switch fit {
        case .stretch:
            return Resizer.resize(img, width: width, height: height, filter: filter)
        case .crop:
            // ImageOps.fit with centring (0.5, 0.5) and no bleed.
            let liveRatio = Double(img.width) / Double(img.height)
            let outRatio = Double(width) / Double(height)
            var cw = Double(img.width), ch = Double(img.height)
            if liveRatio != outRatio {
                if liveRatio >= outRatio { cw = outRatio * Double(img.height) } else { ch = Double(img.width) / outRatio }
            }
            let left = (Double(img.width) - cw) * 0.5, top = (Double(img.height) - ch) * 0.5
            let box = ResizeBox(x0: Float(left), y0: Float(top), x1: Float(left + cw), y1: Float(top + ch))
            return Resizer.resize(img, width: width, height: height, filter: filter, box: box)
        case .pad:
            // ImageOps.contain, then pasted centred (Python's round: half to even).
            var (w, h) = (width, height)
            let imRatio = Double(img.width) / Double(img.height)
            let destRatio = Double(width) / Double(height)
            if imRatio != destRatio {
                if imRatio > destRatio {
                    h = Int((Double(img.height) / Double(img.width) * Double(width)).rounded(.toNearestOrEven))
                } else {
                    w = Int((Double(img.width) / Double(img.height) * Double(height)).rounded(.toNearestOrEven))
                }
            }
            let inner = Resizer.resize(img, width: max(w, 1), height: max(h, 1), filter: filter)
            if inner.width == width && inner.height == height { return inner }
            let x = inner.width != width ? Int((Double(width - inner.width) * 0.5).rounded(.toNearestOrEven)) : 0
            let y = inner.width != width ? 0 : Int((Double(height - inner.height) * 0.5).rounded(.toNearestOrEven))
            return ColorConverter.paste(inner, onto: ColorConverter.filled(width: width, height: height, channels: img.channels,
                                                                         depth: img.depth, color: padColor), x: x, y: y)
        }
    }

    /// Float encoding of conformed samples: normalisation, then float32 or float16.
    private func encodeFloat(_ samples: [UInt8], sourceDepth: SampleDepth) -> [UInt8] {
        let count = samples.count / depth.byteSize
        var values = [Float](repeating: 0, count: count)
        samples.withUnsafeBytes { raw in
            switch depth {
            case .eight: for i in 0..<count { values[i] = Float(raw[i]) }
            case .sixteen: let s = raw.bindMemory(to: UInt16.self); for i in 0..<count { values[i] = Float(s[i]) }
            case .float32: let s = raw.bindMemory(to: Float.self); for i in 0..<count { values[i] = s[i] }
            case .uint32, .int32, .float64:
                for i in 0..<count { values[i] = Float(depth.value(in: raw, at: i * depth.byteSize)) }
            }
        }
        if !normalization.isIdentity {
            let divisor: Float = normalization.unitScale ? (sourceDepth == .sixteen ? 65535 : sourceDepth == .eight ? 255 : 1) : 1
            for i in 0..<count {
                let c = i % channels
                var v = values[i] / divisor
                if let m = normalization.mean { v -= m[c] }
                if let s = normalization.std { v /= s[c] }
                values[i] = v
            }
        }
        if dtype == .float16 {
            var out = [UInt8](repeating: 0, count: count * 2)
            out.withUnsafeMutableBytes { d in
                let h = d.bindMemory(to: UInt16.self)
                for i in 0..<count { h[i] = Float16(values[i]).bitPattern }
            }
            return out
        }
        return values.withUnsafeBytes { Array($0) }
    }

    /// HWC to CHW.
    static func toPlanar(_ bytes: [UInt8], pixels: Int, channels: Int, elementSize: Int) -> [UInt8] {
        if channels == 1 { return bytes }
        var out = [UInt8](repeating: 0, count: bytes.count)
        bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                for p in 0..<pixels {
                    for c in 0..<channels {
                        (dst.baseAddress! + (c * pixels + p) * elementSize)
                            .copyMemory(from: src.baseAddress! + (p * channels + c) * elementSize, byteCount: elementSize)
                    }
                }
            }
        }
        return out
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
                case (.eight, .uint32), (.sixteen, .uint32), (.eight, .int32), (.sixteen, .int32), (_, .float64),
                     (.uint32, .float32), (.int32, .float32), (.float64, .float32):
                    // Values kept: exact, but for 32-bit integers and float64 asked as float32
                    // (--dtype float32), which round to the nearest float32.
                    let raw = UnsafeRawBufferPointer(src)
                    for i in 0..<count {
                        to.store(from.value(in: raw, at: i * from.byteSize), in: dst, at: i * to.byteSize)
                    }
                default:
                    let what = from.isFloatingPoint ? "floating-point samples" : "\(from.dtype.rawValue) samples"
                    throw ImgConvError(.unsupported, "\(what) cannot be stored as \(to.dtype.rawValue) (use --dtype auto)")
                }
            }
        }
        return out
    }
}
