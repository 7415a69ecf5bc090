import CPixels
/// Channel conversions between gray (1), gray+alpha (2), RGB (3) and RGBA (4), as Pillow's
/// `convert` does them: gray from RGB with the ITU-R 601-2 weights in Pillow's fixed point,
/// alpha dropped when the target has none, gray replicated, opaque alpha added.
public enum ColorConverter {
    public static func convert(_ image: PixelBuffer, toChannels target: Int) -> PixelBuffer {
        precondition([1, 3, 4].contains(target) || target == image.channels, "target channels")
        if image.channels == target { return image }
        var out = [UInt8](repeating: 0, count: image.width * image.height * target * image.depth.byteSize)
        let count = image.width * image.height
        image.bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                switch image.depth {
                case .eight where target == 1 && image.channels >= 3 && count > 0:
                    // The hot one (--color gray of colour photos): C, compiled twice (see CPixels).
                    imc_luma8(src.bindMemory(to: UInt8.self).baseAddress!, dst.bindMemory(to: UInt8.self).baseAddress!,
                              count, image.channels)
                case .eight where image.channels == 1 && count > 0:
                    imc_gray_expand8(src.bindMemory(to: UInt8.self).baseAddress!, dst.bindMemory(to: UInt8.self).baseAddress!,
                                     count, target)
                case .eight:
                    run(src.bindMemory(to: UInt8.self), dst.bindMemory(to: UInt8.self), count,
                        image.channels, target, opaque: 255)
                case .sixteen:
                    run(src.bindMemory(to: UInt16.self), dst.bindMemory(to: UInt16.self), count,
                        image.channels, target, opaque: 65535)
                case .float32:
                    run(src.bindMemory(to: Float.self), dst.bindMemory(to: Float.self), count,
                        image.channels, target, opaque: 1)
                case .uint32:
                    run(src.bindMemory(to: UInt32.self), dst.bindMemory(to: UInt32.self), count,
                        image.channels, target, opaque: .max)
                case .int32:
                    run(src.bindMemory(to: Int32.self), dst.bindMemory(to: Int32.self), count,
                        image.channels, target, opaque: .max)
                case .float64:
                    run(src.bindMemory(to: Double.self), dst.bindMemory(to: Double.self), count,
                        image.channels, target, opaque: 1)
                }
            }
        }
        return PixelBuffer(width: image.width, height: image.height, channels: target, depth: image.depth, bytes: out)
    }

    @inline(__always)
    static func luma<T: FixedWidthInteger & UnsignedInteger>(_ r: T, _ g: T, _ b: T) -> T {
        // L = R * 299/1000 + G * 587/1000 + B * 114/1000, in 16-bit fixed point with rounding.
        T(truncatingIfNeeded: (UInt64(r) * 19595 + UInt64(g) * 38470 + UInt64(b) * 7471 + 0x8000) >> 16)
    }

    /// Float data has no Pillow mode to follow: the same ITU-R 601-2 weights, in float.
    @inline(__always)
    static func luma(_ r: Float, _ g: Float, _ b: Float) -> Float {
        r * 0.299 + g * 0.587 + b * 0.114
    }

    private static func run<T: GraySample>(
        _ s: UnsafeBufferPointer<T>, _ d: UnsafeMutableBufferPointer<T>, _ count: Int,
        _ from: Int, _ to: Int, opaque: T
    ) {
        for i in 0..<count {
            let p = i * from
            let q = i * to
            switch (from, to) {
            case (2, 1):
                d[q] = s[p]
            case (3, 1), (4, 1):
                d[q] = T.gray(s[p], s[p + 1], s[p + 2])
            case (1, 3), (2, 3):
                d[q] = s[p]; d[q + 1] = s[p]; d[q + 2] = s[p]
            case (4, 3):
                d[q] = s[p]; d[q + 1] = s[p + 1]; d[q + 2] = s[p + 2]
            case (1, 4):
                d[q] = s[p]; d[q + 1] = s[p]; d[q + 2] = s[p]; d[q + 3] = opaque
            case (2, 4):
                d[q] = s[p]; d[q + 1] = s[p]; d[q + 2] = s[p]; d[q + 3] = s[p + 1]
            case (3, 4):
                d[q] = s[p]; d[q + 1] = s[p + 1]; d[q + 2] = s[p + 2]; d[q + 3] = opaque
            default:
                preconditionFailure("unsupported conversion \(from) -> \(to)")
            }
        }
    }
}

/// A sample type with its gray-from-RGB formula (specialised per type, no dynamic dispatch).
protocol GraySample {
    static func gray(_ r: Self, _ g: Self, _ b: Self) -> Self
}
extension UInt8: GraySample {
    static func gray(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> UInt8 { ColorConverter.luma(r, g, b) }
}
extension UInt16: GraySample {
    static func gray(_ r: UInt16, _ g: UInt16, _ b: UInt16) -> UInt16 { ColorConverter.luma(r, g, b) }
}
extension Float: GraySample {
    static func gray(_ r: Float, _ g: Float, _ b: Float) -> Float { ColorConverter.luma(r, g, b) }
}
extension UInt32: GraySample {
    static func gray(_ r: UInt32, _ g: UInt32, _ b: UInt32) -> UInt32 { ColorConverter.luma(r, g, b) }
}
/// Signed 32-bit samples (no Pillow mode to follow): the float64 weights, rounded.
extension Int32: GraySample {
    static func gray(_ r: Int32, _ g: Int32, _ b: Int32) -> Int32 {
        Int32((Double.gray(Double(r), Double(g), Double(b))).rounded())
    }
}
extension Double: GraySample {
    static func gray(_ r: Double, _ g: Double, _ b: Double) -> Double { r * 0.299 + g * 0.587 + b * 0.114 }
}

extension PixelBuffer {
    public var hasAlpha: Bool { channels == 2 || channels == 4 }
}

extension ColorConverter {
    /// Composites an image with alpha onto an opaque colour (8-bit units, scaled to the sample
    /// type as `SampleDepth.fromEightBit`) and drops the alpha, as pasting it with its alpha as mask onto a filled image
    /// does in Pillow: out = (colour x (max - a) + value x a) / max, rounded.
    public static func composite(_ image: PixelBuffer, on color: [Double]) -> PixelBuffer {
        guard image.hasAlpha else { return image }
        let inCh = image.channels, outCh = inCh - 1
        let count = image.width * image.height
        var out = [UInt8](repeating: 0, count: count * outCh * image.depth.byteSize)
        image.bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                for p in 0..<count {
                    for c in 0..<outCh {
                        let bg = color[outCh == 1 ? 0 : c]
                        switch image.depth {
                        case .eight:
                            let a = UInt32(src[p * inCh + outCh]), v = UInt32(src[p * inCh + c])
                            let t = UInt32(bg.rounded()) * (255 - a) + v * a + 128
                            dst[p * outCh + c] = UInt8((t + (t >> 8)) >> 8)
                        case .sixteen:
                            let s = src.bindMemory(to: UInt16.self), d = dst.bindMemory(to: UInt16.self)
                            let a = UInt64(s[p * inCh + outCh]), v = UInt64(s[p * inCh + c])
                            let t = UInt64(bg.rounded()) * 257 * (65535 - a) + v * a
                            d[p * outCh + c] = UInt16((t + 32767) / 65535)
                        case .float32:
                            let s = src.bindMemory(to: Float.self), d = dst.bindMemory(to: Float.self)
                            let a = s[p * inCh + outCh]
                            d[p * outCh + c] = Float(bg / 255) * (1 - a) + s[p * inCh + c] * a
                        case .uint32, .int32, .float64:
                            // No Pillow mode composites these: in float64, alpha over its maximum.
                            let depth = image.depth, size = depth.byteSize
                            let a = depth.value(in: UnsafeRawBufferPointer(src), at: (p * inCh + outCh) * size) / depth.unitMax
                            let v = depth.value(in: UnsafeRawBufferPointer(src), at: (p * inCh + c) * size)
                            depth.store(depth.fromEightBit(bg) * (1 - a) + v * a, in: dst, at: (p * outCh + c) * size)
                        }
                    }
                }
            }
        }
        return PixelBuffer(width: image.width, height: image.height, channels: outCh, depth: image.depth, bytes: out)
    }

    /// An image filled with one colour (8-bit units RGBA; gray uses the first value).
    public static func filled(width: Int, height: Int, channels: Int, depth: SampleDepth, color: [Double]) -> PixelBuffer {
        var pixel: [UInt8] = []
        for c in 0..<channels {
            let v = color[channels <= 2 ? (c == 0 ? 0 : 3) : c]
            switch depth {
            case .eight: pixel.append(UInt8(clamping: Int(v.rounded())))
            case .sixteen: withUnsafeBytes(of: UInt16(clamping: Int(v.rounded()) * 257)) { pixel += $0 }
            case .float32: withUnsafeBytes(of: Float(v / 255)) { pixel += $0 }
            case .uint32, .int32, .float64:
                var sample = [UInt8](repeating: 0, count: depth.byteSize)
                sample.withUnsafeMutableBytes { depth.store(depth.fromEightBit(v), in: $0, at: 0) }
                pixel += sample
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(width * height * pixel.count)
        for _ in 0..<(width * height) { bytes += pixel }
        return PixelBuffer(width: width, height: height, channels: channels, depth: depth, bytes: bytes)
    }

    /// Copies `image` into `canvas` at (x, y) (clipped).
    public static func paste(_ image: PixelBuffer, onto canvas: PixelBuffer, x: Int, y: Int) -> PixelBuffer {
        var out = canvas
        let px = image.channels * image.depth.byteSize
        out.bytes.withUnsafeMutableBytes { dst in
            image.bytes.withUnsafeBytes { src in
                for row in 0..<image.height where y + row >= 0 && y + row < canvas.height {
                    for col in 0..<image.width where x + col >= 0 && x + col < canvas.width {
                        (dst.baseAddress! + ((y + row) * canvas.width + x + col) * px)
                            .copyMemory(from: src.baseAddress! + (row * image.width + col) * px, byteCount: px)
                    }
                }
            }
        }
        return out
    }
}
