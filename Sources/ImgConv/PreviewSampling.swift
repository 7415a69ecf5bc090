#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore
import ImgConvFormats

/// The sampling pass of a preview: the first `perClass` images of each shown class, in tensor
/// order, each scaled to its cell with nearest neighbour as it streams by (the source row and
/// column at the centre of each cell pixel), and the value range of types that need it.
struct PreviewSampler {
    let geometry: ImageGeometry
    let cellWidth: Int
    let cellHeight: Int
    let perClass: Int

    init(geometry: ImageGeometry, cellWidth: Int, cellHeight: Int, perClass: Int) throws {
        self.geometry = geometry
        self.cellWidth = cellWidth
        self.cellHeight = cellHeight
        self.perClass = perClass
    }

    /// The chosen images of each row (their index in the tensor and their cell's samples,
    /// interleaved) and the tensor's finite value range (when the type needs it).
    func sample(_ images: ChunkReader, labels: [Int64], rows: [Int], classCount: Int)
        throws -> (picks: [[(index: Int, pixels: [UInt8])]], range: ValueRange) {
        let g = geometry
        let (height, width, channels, nchw) = (g.height, g.width, g.channels, g.nchw)
        var rowOfClass = [Int](repeating: -1, count: classCount)
        for (r, c) in rows.enumerated() { rowOfClass[c] = r }
        let size = g.dtype.byteSize
        let needsRange = g.dtype != .uint8 && g.dtype != .uint16
        let unitBytes = nchw ? width * size : width * channels * size   // one row (of one plane, for NCHW)
        let units = nchw ? channels * height : height
        let imageBytes = units * unitBytes
        // The cell rows each source row fills (several when enlarging, none for rows skipped).
        var targetRows = [[Int]](repeating: [], count: height)
        for oy in 0..<cellHeight { targetRows[((2 * oy + 1) * height) / (2 * cellHeight)].append(oy) }
        let sourceColumn = (0..<cellWidth).map { ((2 * $0 + 1) * width) / (2 * cellWidth) }
        let pixelBytes = channels * size
        let sampleBytes = cellWidth * cellHeight * pixelBytes

        var picks = [[(index: Int, pixels: [UInt8])]](repeating: [], count: rows.count)
        var fullRows = 0
        var range = ValueRange()
        for i in 0..<g.count {
            if fullRows == rows.count && !needsRange { break }
            let row = rowOfClass[Int(labels[i])]
            let take = row >= 0 && picks[row].count < perClass
            if !take && !needsRange {
                try images.skip(imageBytes)
                continue
            }
            var sample = [UInt8](repeating: 0, count: take ? sampleBytes : 0)
            for unit in 0..<units {
                try images.withNext(unitBytes) { raw in
                    if needsRange { range.update(raw, dtype: g.dtype) }
                    guard take else { return }
                    let (plane, y) = nchw ? (unit / height, unit % height) : (0, unit)
                    sample.withUnsafeMutableBytes { out in
                        for oy in targetRows[y] {
                            for ox in 0..<cellWidth {
                                if nchw {
                                    (out.baseAddress! + (oy * cellWidth + ox) * pixelBytes + plane * size)
                                        .copyMemory(from: raw.baseAddress! + sourceColumn[ox] * size, byteCount: size)
                                } else {
                                    (out.baseAddress! + (oy * cellWidth + ox) * pixelBytes)
                                        .copyMemory(from: raw.baseAddress! + sourceColumn[ox] * pixelBytes, byteCount: pixelBytes)
                                }
                            }
                        }
                    }
                }
            }
            if take {
                picks[row].append((i, sample))
                if picks[row].count == perClass { fullRows += 1 }
            }
        }
        return (picks, range)
    }
}

/// The finite minimum and maximum of a tensor's values.
struct ValueRange {
    var low = Double.infinity
    var high = -Double.infinity

    mutating func update(_ raw: UnsafeRawBufferPointer, dtype: DType) {
        let n = raw.count / dtype.byteSize
        var lo = low, hi = high
        func see(_ v: Double) {
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        switch dtype {
        case .uint8: for k in 0..<n { see(Double(raw[k])) }
        case .int8: for k in 0..<n { see(Double(Int8(bitPattern: raw[k]))) }
        case .uint16, .int16, .int32, .uint32, .int64, .float16, .float32, .float64:
            for k in 0..<n {
                let v = dtype.value(in: raw, at: k * dtype.byteSize)
                if v.isFinite { see(v) }
            }
        }
        low = lo
        high = hi
    }
}

/// How a stored value becomes an 8-bit display value.
enum DisplayMapping: CustomStringConvertible {
    case asStored
    case divide257
    case linear(low: Double, high: Double)

    init(dtype: DType, range: ValueRange) {
        switch dtype {
        case .uint8: self = .asStored
        case .uint16: self = .divide257
        default:
            let (lo, hi) = (range.low, range.high)
            if lo > hi {
                self = .linear(low: 0, high: dtype.isFloatingPoint ? 1 : 255)   // no finite value
            } else if dtype.isFloatingPoint && lo >= 0 && hi <= 1 {
                self = .linear(low: 0, high: 1)
            } else if !dtype.isFloatingPoint && lo >= 0 && hi <= 255 {
                self = .linear(low: 0, high: 255)
            } else {
                self = .linear(low: lo, high: hi)
            }
        }
    }

    var description: String {
        switch self {
        case .asStored: return "as stored"
        case .divide257: return "/ 257"
        case let .linear(lo, hi): return "[\(Self.format(lo)), \(Self.format(hi))] -> 0..255"
        }
    }

    private static func format(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(Float(v))
    }

    @inline(__always)
    func byte(_ raw: UnsafeRawBufferPointer, at offset: Int, dtype: DType) -> UInt8 {
        switch self {
        case .asStored: return raw[offset]
        case .divide257:
            let v = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
            return UInt8((v + 128) / 257)
        case let .linear(lo, hi):
            let v = dtype.value(in: raw, at: offset)
            if v.isNaN { return 0 }
            guard hi > lo else { return v > hi ? 255 : v < lo ? 0 : 128 }
            let t = ((v - lo) / (hi - lo) * 255).rounded()
            return t <= 0 ? 0 : t >= 255 ? 255 : UInt8(t)
        }
    }
}

/// Reads a stream in pieces of any size through a 1 MiB buffer.
final class ChunkReader {
    private let stream: ByteStream
    private let path: String
    private let label: String
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0

    init(_ stream: ByteStream, path: String, label: String, capacity: Int = 1 << 20) {
        self.stream = stream
        self.path = path
        self.label = label
        buffer = [UInt8](repeating: 0, count: capacity)
    }

    /// Makes the next `count` bytes contiguous in the buffer.
    private func fill(_ count: Int) throws {
        if end - start >= count { return }
        if start > 0 {
            let (from, length) = (start, end - start)
            buffer.withUnsafeMutableBytes { raw in
                if length > 0 { memmove(raw.baseAddress!, raw.baseAddress! + from, length) }
            }
            (start, end) = (0, length)
        }
        while end < count {
            // Grown as the bytes arrive: a row size taken from a header never allocates more than
            // the stream holds.
            if end == buffer.count { buffer.append(contentsOf: repeatElement(0, count: min(count - end, max(1 << 20, end)))) }
            let at = end
            let n = try buffer.withUnsafeMutableBytes { try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[at...])) }
            if n == 0 { throw ImgConvError(.corruptInput, path: path, "\(label): the data ends early") }
            end += n
        }
    }

    /// Hands the next `count` bytes to `body`.
    func withNext<R>(_ count: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try fill(count)
        let from = start
        start += count
        return try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[from..<from + count])) }
    }

    func skip(_ count: Int) throws {
        var left = count
        while left > 0 {
            if start == end { try fill(min(left, buffer.count)) }
            let take = min(left, end - start)
            start += take
            left -= take
        }
    }
}
