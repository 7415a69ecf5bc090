/// Channel conversions between gray (1), gray+alpha (2), RGB (3) and RGBA (4), as Pillow's
/// `convert` does them: gray from RGB with the ITU-R 601-2 weights in Pillow's fixed point,
/// alpha dropped when the target has none, gray replicated, opaque alpha added.
public enum ColorConverter {
    public static func convert(_ image: PixelBuffer, toChannels target: Int) -> PixelBuffer {
        precondition([1, 3, 4].contains(target), "target channels")
        if image.channels == target { return image }
        var out = [UInt8](repeating: 0, count: image.width * image.height * target * image.depth.byteSize)
        let count = image.width * image.height
        image.bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                switch image.depth {
                case .eight:
                    run(src.bindMemory(to: UInt8.self), dst.bindMemory(to: UInt8.self), count,
                        image.channels, target, opaque: 255)
                case .sixteen:
                    run(src.bindMemory(to: UInt16.self), dst.bindMemory(to: UInt16.self), count,
                        image.channels, target, opaque: 65535)
                case .float32:
                    run(src.bindMemory(to: Float.self), dst.bindMemory(to: Float.self), count,
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
