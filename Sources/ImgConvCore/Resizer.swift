import CPixels
import FoundationEssentials
import Glibc

/// Resampling filters, as Pillow names and defines them.
public enum ResizeFilter: String, Sendable, CaseIterable, Codable {
    case nearest, bilinear, bicubic, lanczos
    /// Pillow's BOX: the mean of the covered input pixels.
    case area

    var support: Double {
        switch self {
        case .nearest, .area: return 0.5
        case .bilinear: return 1
        case .bicubic: return 2
        case .lanczos: return 3
        }
    }

    func weight(_ x: Double) -> Double {
        switch self {
        case .nearest, .area:
            return x > -0.5 && x <= 0.5 ? 1 : 0
        case .bilinear:
            let a = abs(x)
            return a < 1 ? 1 - a : 0
        case .bicubic:
            let a = -0.5, t = abs(x)
            if t < 1 { return ((a + 2) * t - (a + 3)) * t * t + 1 }
            if t < 2 { return (((t - 5) * t + 8) * t - 4) * a }
            return 0
        case .lanczos:
            guard x >= -3 && x < 3 else { return 0 }
            return sinc(x) * sinc(x / 3)
        }
    }

    private func sinc(_ x: Double) -> Double {
        if x == 0 { return 1 }
        let t = x * Double.pi
        return sin(t) / t
    }
}

/// A source region to resample from, in input pixel coordinates (Pillow's `box`). Pillow passes
/// it to C as single-precision floats, so it is kept as `Float` here too.
public struct ResizeBox: Sendable, Equatable {
    public var x0, y0, x1, y1: Float
    public init(x0: Float, y0: Float, x1: Float, y1: Float) {
        self.x0 = x0
        self.y0 = y0
        self.x1 = x1
        self.y1 = y1
    }
}

/// Separable resampling that matches Pillow's `Image.resize`: on downscaling the filter support
/// grows with the scale factor (antialiasing), weights are normalised per output sample, and 8-bit
/// data uses Pillow's 22-bit fixed-point coefficients with an 8-bit intermediate image between
/// the horizontal and the vertical pass. 16-bit and float data are filtered in double precision
/// (16-bit results rounded). `nearest` picks the input pixel under each output pixel's centre.
public enum Resizer {
    struct Coefficients {
        var start: [Int]      // first input index of each output sample
        var count: [Int]      // number of taps of each output sample
        var weights: [Double] // `taps` weights per output sample
        var taps: Int
    }

    static func coefficients(inSize: Int, in0: Double, in1: Double, outSize: Int, filter: ResizeFilter) -> Coefficients {
        let scale = (in1 - in0) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = filter.support * filterScale
        let taps = Int(support.rounded(.up)) * 2 + 1
        var c = Coefficients(start: [], count: [], weights: [Double](repeating: 0, count: outSize * taps), taps: taps)
        let inv = 1 / filterScale
        for o in 0..<outSize {
            let center = in0 + (Double(o) + 0.5) * scale
            var lo = Int(center - support + 0.5)  // truncates toward zero, as C's (int) does
            if lo < 0 { lo = 0 }
            var hi = Int(center + support + 0.5)
            if hi > inSize { hi = inSize }
            let n = max(0, hi - lo)
            var sum = 0.0
            for t in 0..<n {
                let w = filter.weight((Double(t + lo) - center + 0.5) * inv)
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

    static func coefficients(inSize: Int, outSize: Int) -> Coefficients {
        coefficients(inSize: inSize, in0: 0, in1: Double(inSize), outSize: outSize, filter: .bilinear)
    }

    /// Resizes (the `box` region of) an image to `width` x `height`. 8-bit images with alpha are
    /// resampled premultiplied, as Pillow does (RGBA -> RGBa -> resize -> RGBA, and LA via La), so
    /// transparent pixels do not bleed their colour into their neighbours.
    public static func resize(_ image: PixelBuffer, width: Int, height: Int, filter: ResizeFilter = .bilinear,
                              box: ResizeBox? = nil) -> PixelBuffer {
        let b = box ?? ResizeBox(x0: 0, y0: 0, x1: Float(image.width), y1: Float(image.height))
        if filter == .nearest { return nearest(image, width: width, height: height, box: b) }
        if image.depth == .eight && image.hasAlpha {
            return unpremultiplied(separable(premultiplied(image), width: width, height: height, filter: filter, box: b))
        }
        return separable(image, width: width, height: height, filter: filter, box: b)
    }

    /// Colour samples times alpha / 255, rounded as Pillow's RGBA -> RGBa conversion does.
    static func premultiplied(_ image: PixelBuffer) -> PixelBuffer {
        var out = image
        let ch = image.channels
        out.bytes.withUnsafeMutableBufferPointer { p in
            for i in stride(from: 0, to: p.count, by: ch) {
                let alpha = UInt32(p[i + ch - 1])
                for k in 0..<(ch - 1) {
                    let t = UInt32(p[i + k]) * alpha + 128
                    p[i + k] = UInt8(((t >> 8) + t) >> 8)
                }
            }
        }
        return out
    }

    /// Back from premultiplied samples as Pillow's RGBa -> RGBA does: 255 * value / alpha,
    /// truncated and clipped; unchanged where alpha is 0 or 255.
    static func unpremultiplied(_ image: PixelBuffer) -> PixelBuffer {
        var out = image
        let ch = image.channels
        out.bytes.withUnsafeMutableBufferPointer { p in
            for i in stride(from: 0, to: p.count, by: ch) {
                let alpha = UInt32(p[i + ch - 1])
                guard alpha != 0 && alpha != 255 else { continue }
                for k in 0..<(ch - 1) { p[i + k] = UInt8(min(255, 255 * UInt32(p[i + k]) / alpha)) }
            }
        }
        return out
    }

    /// The two resampling passes (Pillow's separable convolution).
    private static func separable(_ image: PixelBuffer, width: Int, height: Int, filter: ResizeFilter, box b: ResizeBox) -> PixelBuffer {
        let fullX = b.x0 == 0 && b.x1 == Float(image.width)
        let fullY = b.y0 == 0 && b.y1 == Float(image.height)
        let needX = width != image.width || !fullX
        let needY = height != image.height || !fullY
        func horizontal(_ img: PixelBuffer) -> PixelBuffer {
            let c = coefficients(inSize: image.width, in0: Double(b.x0), in1: Double(b.x1), outSize: width, filter: filter)
            return pass(img, horizontal: true, coeffs: c, to: width)
        }
        func vertical(_ img: PixelBuffer) -> PixelBuffer {
            let c = coefficients(inSize: image.height, in0: Double(b.y0), in1: Double(b.y1), outSize: height, filter: filter)
            return pass(img, horizontal: false, coeffs: c, to: height)
        }
        // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as
        // many pixels as the width does; the 8-bit intermediate makes the order visible.
        let verticalFirst = needX && needY && height < image.height
            && image.height - height > 2 * (image.width - width)
        var current = image
        if verticalFirst {
            current = horizontal(vertical(current))
        } else {
            if needX { current = horizontal(current) }
            if needY { current = vertical(current) }
        }
        return current
    }

    /// Pillow's nearest-neighbour resize (an affine scale): the source index of output x is
    /// floor(x0 + (x + 0.5) * scale), accumulated in double precision as Pillow does.
    private static func nearest(_ image: PixelBuffer, width: Int, height: Int, box: ResizeBox) -> PixelBuffer {
        func table(_ n: Int, _ lo: Float, _ hi: Float, _ limit: Int) -> [Int] {
            let a = Double(hi - lo) / Double(n)
            var v = Double(lo) + a * 0.5
            var out: [Int] = []
            for _ in 0..<n {
                out.append(min(max(v < 0 ? 0 : Int(v), 0), limit - 1))
                v += a
            }
            return out
        }
        let xs = table(width, box.x0, box.x1, image.width)
        let ys = table(height, box.y0, box.y1, image.height)
        let px = image.channels * image.depth.byteSize
        var out = [UInt8](repeating: 0, count: width * height * px)
        image.bytes.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                for y in 0..<height {
                    for x in 0..<width {
                        (dst.baseAddress! + (y * width + x) * px)
                            .copyMemory(from: src.baseAddress! + (ys[y] * image.width + xs[x]) * px, byteCount: px)
                    }
                }
            }
        }
        return PixelBuffer(width: width, height: height, channels: image.channels, depth: image.depth, bytes: out)
    }

    private static let precisionBits = 32 - 8 - 2

    private static func pass(_ image: PixelBuffer, horizontal: Bool, coeffs: Coefficients, to size: Int) -> PixelBuffer {
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
                    let src = raw.bindMemory(to: UInt8.self).baseAddress!
                    let dst = outRaw.bindMemory(to: UInt8.self).baseAddress!
                    fixed.withUnsafeBufferPointer { kk in
                        if horizontal {
                            horizontal8(src, dst, kk.baseAddress!, coeffs, width: image.width, outW: outW, rows: outH, ch: ch)
                        } else {
                            vertical8(src, dst, kk.baseAddress!, coeffs, rowLength: image.width * ch, outH: outH)
                        }
                    }
                case .sixteen:
                    filter(raw.bindMemory(to: UInt16.self), outRaw.bindMemory(to: UInt16.self), coeffs,
                           image.width, outW, outH, ch, horizontal, tapStride) { UInt16(clamping: Int($0.rounded())) }
                case .float32:
                    filter(raw.bindMemory(to: Float.self), outRaw.bindMemory(to: Float.self), coeffs,
                           image.width, outW, outH, ch, horizontal, tapStride) { Float($0) }
                // As Pillow's modes I and F: double-precision sums, integers rounded and clamped.
                case .uint32:
                    filter(raw.bindMemory(to: UInt32.self), outRaw.bindMemory(to: UInt32.self), coeffs,
                           image.width, outW, outH, ch, horizontal, tapStride) { UInt32(clamping: Int64($0.rounded())) }
                case .int32:
                    filter(raw.bindMemory(to: Int32.self), outRaw.bindMemory(to: Int32.self), coeffs,
                           image.width, outW, outH, ch, horizontal, tapStride) { Int32(clamping: Int64($0.rounded())) }
                case .float64:
                    filter(raw.bindMemory(to: Double.self), outRaw.bindMemory(to: Double.self), coeffs,
                           image.width, outW, outH, ch, horizontal, tapStride) { $0 }
                }
            }
        }
        return PixelBuffer(width: outW, height: outH, channels: ch, depth: image.depth, bytes: out)
    }

    /// 8-bit horizontal pass: each output pixel sums its taps along the row (`imc_resize_h8`).
    private static func horizontal8(_ src: UnsafePointer<UInt8>, _ dst: UnsafeMutablePointer<UInt8>, _ kk: UnsafePointer<Int32>,
                                    _ coeffs: Coefficients, width: Int, outW: Int, rows: Int, ch: Int) {
        coeffs.start.withUnsafeBufferPointer { starts in
            coeffs.count.withUnsafeBufferPointer { counts in
                imc_resize_h8(src, dst, kk, starts.baseAddress!, counts.baseAddress!, coeffs.taps, width, outW, rows, ch,
                              Int32(precisionBits))
            }
        }
    }

    /// 8-bit vertical pass: each output row sums its taps over whole input rows (`imc_resize_v8`).
    private static func vertical8(_ src: UnsafePointer<UInt8>, _ dst: UnsafeMutablePointer<UInt8>, _ kk: UnsafePointer<Int32>,
                                  _ coeffs: Coefficients, rowLength: Int, outH: Int) {
        var acc = [Int32](repeating: 0, count: rowLength)
        acc.withUnsafeMutableBufferPointer { a in
            coeffs.start.withUnsafeBufferPointer { starts in
                coeffs.count.withUnsafeBufferPointer { counts in
                    imc_resize_v8(src, dst, kk, starts.baseAddress!, counts.baseAddress!, coeffs.taps, rowLength, outH,
                                  Int32(precisionBits), a.baseAddress!)
                }
            }
        }
    }

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
extension UInt32: DoubleConvertible { var doubleValue: Double { Double(self) } }
extension Int32: DoubleConvertible { var doubleValue: Double { Double(self) } }
extension Double: DoubleConvertible { var doubleValue: Double { self } }
