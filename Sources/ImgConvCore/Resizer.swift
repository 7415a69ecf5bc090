/// Separable resampling with the triangle (bilinear) filter, antialiased on downscaling the way
/// Pillow's `Image.resize` is: the filter support grows with the scale factor, weights are
/// normalised per output sample, and 8-bit data uses Pillow's 22-bit fixed-point coefficients with
/// an 8-bit intermediate image between the horizontal and the vertical pass. 16-bit data is
/// and float data are filtered in double precision (16-bit results rounded).
public enum Resizer {
    struct Coefficients {
        var start: [Int]      // first input index of each output sample
        var count: [Int]      // number of taps of each output sample
        var weights: [Double] // `taps` weights per output sample
        var taps: Int
    }

    static func bilinear(_ x: Double) -> Double {
        let a = abs(x)
        return a < 1 ? 1 - a : 0
    }

    static func coefficients(inSize: Int, outSize: Int) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 1.0 * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var c = Coefficients(start: [], count: [], weights: [Double](repeating: 0, count: outSize * taps), taps: taps)
        let inv = 1 / filterScale
        for o in 0..<outSize {
            let center = (Double(o) + 0.5) * scale
            var lo = Int(center - support + 0.5)  // truncates toward zero, as C's (int) does
            if lo < 0 { lo = 0 }
            var hi = Int(center + support + 0.5)
            if hi > inSize { hi = inSize }
            let n = hi - lo
            var sum = 0.0
            for t in 0..<n {
                let w = bilinear((Double(t + lo) - center + 0.5) * inv)
                c.weights[o * taps + t] = w
                sum += w
            }
            if sum != 0 {
                for t in 0..<n { c.weights[o * taps + t] /= sum }
            }
            c.start.append(lo)
            c.count.append(n)
        }
        return c
    }

    /// Resizes to `width` x `height` (same channels and depth).
    public static func resize(_ image: PixelBuffer, width: Int, height: Int) -> PixelBuffer {
        var current = image
        if width != image.width {
            current = pass(current, horizontal: true, to: width)
        }
        if height != image.height {
            current = pass(current, horizontal: false, to: height)
        }
        return current
    }

    private static let precisionBits = 32 - 8 - 2

    private static func pass(_ image: PixelBuffer, horizontal: Bool, to size: Int) -> PixelBuffer {
        let inSize = horizontal ? image.width : image.height
        let coeffs = coefficients(inSize: inSize, outSize: size)
        let outW = horizontal ? size : image.width
        let outH = horizontal ? image.height : size
        let ch = image.channels
        var out = [UInt8](repeating: 0, count: outW * outH * ch * image.depth.byteSize)
        // Input element stride between taps, and between consecutive outputs along the other axis.
        let tapStride = horizontal ? ch : image.width * ch
        image.bytes.withUnsafeBytes { raw in
            out.withUnsafeMutableBytes { outRaw in
                switch image.depth {
                case .eight:
                    let fixed = coeffs.weights.map { w -> Int32 in
                        let v = w * Double(1 << precisionBits)
                        return Int32(v < 0 ? v - 0.5 : v + 0.5)
                    }
                    let src = raw.bindMemory(to: UInt8.self)
                    let dst = outRaw.bindMemory(to: UInt8.self)
                    let half = Int32(1 << (precisionBits - 1))
                    for y in 0..<outH {
                        for x in 0..<outW {
                            let o = horizontal ? x : y
                            let first = coeffs.start[o]
                            let base = horizontal ? (y * image.width + first) * ch : (first * image.width + x) * ch
                            let k = o * coeffs.taps
                            for c in 0..<ch {
                                var acc = half
                                var at = base + c
                                for t in 0..<coeffs.count[o] {
                                    acc &+= Int32(src[at]) &* fixed[k + t]
                                    at += tapStride
                                }
                                let v = acc >> Int32(precisionBits)
                                dst[(y * outW + x) * ch + c] = UInt8(clamping: v)
                            }
                        }
                    }
                case .sixteen:
                    filter(raw.bindMemory(to: UInt16.self), outRaw.bindMemory(to: UInt16.self), coeffs,
                           image.width, outW, outH, ch, horizontal, tapStride) { UInt16(clamping: Int($0.rounded())) }
                case .float32:
                    filter(raw.bindMemory(to: Float.self), outRaw.bindMemory(to: Float.self), coeffs,
                           image.width, outW, outH, ch, horizontal, tapStride) { Float($0) }
                }
            }
        }
        return PixelBuffer(width: outW, height: outH, channels: ch, depth: image.depth, bytes: out)
    }

    /// The double-precision pass for 16-bit and float samples.
    private static func filter<T: DoubleConvertible>(
        _ src: UnsafeBufferPointer<T>, _ dst: UnsafeMutableBufferPointer<T>, _ coeffs: Coefficients,
        _ inWidth: Int, _ outW: Int, _ outH: Int, _ ch: Int, _ horizontal: Bool, _ tapStride: Int,
        store: (Double) -> T
    ) {
        for y in 0..<outH {
            for x in 0..<outW {
                let o = horizontal ? x : y
                let first = coeffs.start[o]
                let base = horizontal ? (y * inWidth + first) * ch : (first * inWidth + x) * ch
                let k = o * coeffs.taps
                for c in 0..<ch {
                    var acc = 0.0
                    var at = base + c
                    for t in 0..<coeffs.count[o] {
                        acc += src[at].doubleValue * coeffs.weights[k + t]
                        at += tapStride
                    }
                    dst[(y * outW + x) * ch + c] = store(acc)
                }
            }
        }
    }
}

/// Sample types the double-precision filter reads.
protocol DoubleConvertible {
    var doubleValue: Double { get }
}
extension UInt16: DoubleConvertible { var doubleValue: Double { Double(self) } }
extension Float: DoubleConvertible { var doubleValue: Double { Double(self) } }
