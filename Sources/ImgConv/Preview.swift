#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore
import ImgConvFormats

/// What `Previewer` shows and how big.
public struct PreviewOptions: Sendable {
    /// Images per class: the first `perClass` of each class in tensor order.
    public var perClass = 8
    /// Largest cell side in pixels; a larger image is scaled down (nearest neighbour, aspect kept).
    public var cellSize = 96
    /// The image tensor; its labels are the tensor of the same name ending in `Ys` instead of `Xs`.
    public var tensor = "trainXs"
    /// Only these classes, in this order: each a class name, else a class index. nil: all classes.
    public var classes: [String]?
    /// The IDX labels file, when its name does not follow MNIST's naming.
    public var labels: String?
    /// In a folder of several IDX pairs, the one whose files start with this prefix.
    public var prefix: String?
    /// `nhwc` or `nchw` for 4-D images; nil takes `nchw` when the manifest's `options.layout` says so.
    public var layout: String?

    public init() {}
}

/// Where everything lies on a contact sheet. All sizes are in pixels of the sheet.
///
/// The sheet has a white background and one row per class. A row is `rowHeight` tall; rows are
/// `gap` apart and `gap` from the edges, odd rows on a light grey band. Each row starts with the
/// label text `<index>: <name>` in a left margin `marginWidth` wide (the text centred vertically),
/// then, `gap` further right, up to `columns` cells of `cellWidth` x `cellHeight`, `gap` apart,
/// each framed by a one-pixel grey line just outside it:
///
///     width  = gap + marginWidth + gap + columns * (cellWidth + gap)
///     height = gap + rows * (rowHeight + gap)
///     cell (row r, column j) at x = 2 * gap + marginWidth + j * (cellWidth + gap),
///                               y = gap + r * (rowHeight + gap) + (rowHeight - cellHeight) / 2
public struct PreviewLayout: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    public var cellWidth: Int
    public var cellHeight: Int
    public var gap: Int
    /// Each font pixel is drawn as `fontScale` x `fontScale` sheet pixels.
    public var fontScale: Int
    /// Label characters per row at most (longer labels end in `...`).
    public var labelCharacters: Int
    public var marginWidth: Int
    public var rowHeight: Int
    public var width: Int
    public var height: Int

    /// Cells of an image of `imageWidth` x `imageHeight` with `maxCell` the largest side: the
    /// image's own size when it fits, else scaled down to fit, aspect ratio kept.
    public static func cellSize(imageWidth: Int, imageHeight: Int, maxCell: Int) -> (width: Int, height: Int) {
        guard imageWidth > maxCell || imageHeight > maxCell else { return (imageWidth, imageHeight) }
        if imageWidth >= imageHeight {
            return (maxCell, max(1, (imageHeight * maxCell + imageWidth / 2) / imageWidth))
        }
        return (max(1, (imageWidth * maxCell + imageHeight / 2) / imageHeight), maxCell)
    }

    /// - Parameter labelCharacters: the longest label, in characters (at most `PreviewLayout.maxLabelCharacters`).
    public init(rows: Int, columns: Int, cellWidth: Int, cellHeight: Int, labelCharacters: Int) {
        self.rows = rows
        self.columns = max(1, columns)
        self.cellWidth = cellWidth
        self.cellHeight = cellHeight
        gap = 4
        fontScale = cellHeight >= 24 ? 2 : 1
        self.labelCharacters = labelCharacters
        marginWidth = labelCharacters * BitmapFont.advance * fontScale
        rowHeight = max(cellHeight, BitmapFont.lineHeight * fontScale)
        width = gap + marginWidth + gap + self.columns * (cellWidth + gap)
        height = gap + rows * (rowHeight + gap)
    }

    /// Labels longer than this many characters are cut and end in `...`.
    public static let maxLabelCharacters = 40

    /// Top-left corner of the cell of `column` in `row`.
    public func cellOrigin(row: Int, column: Int) -> (x: Int, y: Int) {
        (2 * gap + marginWidth + column * (cellWidth + gap), rowTop(row) + (rowHeight - cellHeight) / 2)
    }

    /// Top-left corner of the label text of `row`.
    public func textOrigin(row: Int) -> (x: Int, y: Int) {
        (gap, rowTop(row) + (rowHeight - BitmapFont.lineHeight * fontScale) / 2)
    }

    public func rowTop(_ row: Int) -> Int { gap + row * (rowHeight + gap) }
}

/// A contact sheet: 8-bit RGB pixels, row by row, and what it shows.
public struct PreviewSheet: Sendable {
    public var layout: PreviewLayout
    /// `layout.height` rows of `layout.width` RGB pixels.
    public var pixels: [UInt8]
    /// The class index of each row.
    public var classIndices: [Int]
    public var classNames: [String]
    /// Images shown in each row (their positions in the tensor).
    public var imageIndices: [[Int]]
    /// The images' height, width and channels, and dtype.
    public var imageHeight: Int
    public var imageWidth: Int
    public var channels: Int
    public var dtype: DType
    /// How values became 8-bit: `as stored`, `/ 257`, or `[lo, hi] -> 0..255`.
    public var displayMapping: String
}

/// Draws a contact sheet of a dataset: one row per class, holding the first few images of that
/// class in tensor order, the row labelled `<index>: <name>`, so a person sees at a glance that
/// labels and pixels line up. Reads every container `openContainer` opens (`.npz`, `.npy`
/// folder, `.h5`, IDX pair).
///
/// Images stream through once, a row of pixels at a time; only the chosen images, already scaled
/// to their cells, are kept, so memory follows the size of the sheet, not of the tensor. Reading
/// stops as soon as every row is full, except for types that need the tensor's range.
///
/// Display values: uint8 as stored; uint16 divided by 257 (rounded); float and signed integer
/// images mapped linearly from the tensor's finite min/max to 0...255, or from [0, 1] (floats) or
/// [0, 255] (integers) when every value lies within it; NaN shows as 0. Gray is replicated to RGB,
/// and images with alpha (2 or 4 channels) are composited on a grey checkerboard. Layout:
/// `(N, H, W, C)`, `(N, H, W)` (IDX), or `(N, C, H, W)` when the manifest's `options.layout` is
/// `nchw` (or `PreviewOptions.layout` says so); 1 to 4 channels.
public struct Previewer {
    public var options: PreviewOptions

    /// The largest sheet drawn, in pixels (width x height): 64 megapixels.
    public static let maxSheetPixels = 64 << 20

    public init(options: PreviewOptions = PreviewOptions()) { self.options = options }

    /// Renders the sheet of `input` and writes it to `output` as an 8-bit RGB PNG, atomically
    /// (a temporary file renamed into place; an earlier file at `output` stays on failure).
    /// - Throws: `ImgConvError`: `.notFound` for a missing input, `.unsupported` for a file that
    ///   is not a tensor container or images it cannot show, `.corruptInput` for malformed data,
    ///   `.invalidArgument` for bad options, `.limitExceeded` for a sheet over `maxSheetPixels`,
    ///   `.io` when `output` cannot be written.
    @discardableResult
    public func preview(input: String, to output: String) throws -> PreviewSheet {
        let file = try AtomicOutputFile(target: output)
        do {
            let sheet = try render(input: input)
            let png = try sheet.pixels.withUnsafeBytes {
                try PNGEncoder.encode($0, width: sheet.layout.width, height: sheet.layout.height, channels: 3, bitDepth: 8)
            }
            try file.write(png)
            try file.commit()
            return sheet
        } catch {
            file.abort()
            throw error
        }
    }

    /// Renders the sheet of `input` in memory.
    /// - Throws: as `preview(input:to:)`, but never `.io` for the output.
    public func render(input: String) throws -> PreviewSheet {
        try validateOptions()
        do {
            return try render(try openContainer(input, labels: options.labels, prefix: options.prefix))
        } catch let e as ImgConvError where e.path == nil {
            throw e.at(input)
        }
    }

    /// Checks the options before anything is opened.
    private func validateOptions() throws {
        guard options.perClass >= 1 else {
            throw ImgConvError(.invalidArgument, "--per-class must be at least 1, not \(options.perClass)")
        }
        guard options.cellSize >= 1 else {
            throw ImgConvError(.invalidArgument, "--cell must be at least 1 pixel, not \(options.cellSize)")
        }
        if let layout = options.layout, layout != "nhwc", layout != "nchw" {
            throw ImgConvError(.invalidArgument, "--layout must be nhwc or nchw, not '\(layout)'")
        }
        guard options.tensor.hasSuffix("Xs") else {
            throw ImgConvError(.invalidArgument,
                               "--tensor '\(options.tensor)': an images tensor is named ...Xs (its labels ...Ys), e.g. trainXs")
        }
    }

    /// The rows to draw: class indices in order, from names or indices given by the user.
    private func rows(names: [String], path: String) throws -> [Int] {
        guard let wanted = options.classes else { return Array(names.indices) }
        var rows: [Int] = []
        for item in wanted {
            let trimmed = item.trimmingSpaces
            let index: Int
            if let k = names.firstIndex(of: item) ?? names.firstIndex(of: trimmed) {
                index = k
            } else if let k = Int(trimmed), names.indices.contains(k) {
                index = k
            } else {
                let shown = names.prefix(10).map { "'\($0)'" }.joined(separator: ", ") + (names.count > 10 ? ", ..." : "")
                throw ImgConvError(.invalidArgument, path: path,
                                   "--classes: '\(item)' is neither a class name nor a class index (the \(names.count) classes: \(shown))")
            }
            if !rows.contains(index) { rows.append(index) }
        }
        guard !rows.isEmpty else { throw ImgConvError(.invalidArgument, path: path, "--classes lists no class") }
        return rows
    }

    private func render(_ container: TensorContainer) throws -> PreviewSheet {
        let path = container.path
        let tensor = options.tensor
        let labelsName = String(tensor.dropLast(2)) + "Ys"
        let imagesLabel = container.storageName(tensor)
        let labelsLabel = container.storageName(labelsName)
        let manifest = try FormatConverter.manifest(of: container)

        // Images: (N, H, W, C), (N, C, H, W) or (N, H, W).
        let (header, images) = try container.open(tensor)
        guard let dtype = DType(npyDescr: header.descr) else {
            throw ImgConvError(.unsupported, path: path, "\(imagesLabel): dtype '\(header.descr)' is not an image type")
        }
        let nchw = options.layout.map { $0 == "nchw" } ?? (manifest?.options.layout == "nchw")
        let (count, height, width, channels): (Int, Int, Int, Int)
        let shape = header.shape
        switch shape.count {
        case 4 where nchw: (count, channels, height, width) = (shape[0], shape[1], shape[2], shape[3])
        case 4: (count, height, width, channels) = (shape[0], shape[1], shape[2], shape[3])
        case 3: (count, height, width, channels) = (shape[0], shape[1], shape[2], 1)
        default:
            throw ImgConvError(.unsupported, path: path, "\(imagesLabel): shape \(shape) is not (N, H, W, C) or (N, H, W)")
        }
        guard (1...4).contains(channels) else {
            let hint = !nchw && shape.count == 4 && (1...4).contains(shape[1]) ? " (for (N, C, H, W) data pass --layout nchw)" : ""
            throw ImgConvError(.unsupported, path: path,
                               "\(imagesLabel): shape \(shape) has \(channels) channels; images have 1 to 4\(hint)")
        }
        guard height > 0, width > 0 else {
            throw ImgConvError(.unsupported, path: path, "\(imagesLabel): images of \(height)x\(width) pixels cannot be shown")
        }
        // Labels: 1-D integers, one per image.
        let (labelsHeader, labelsStream) = try container.open(labelsName)
        guard labelsHeader.shape.count == 1, let labelType = DType(npyDescr: labelsHeader.descr), !labelType.isFloatingPoint else {
            throw ImgConvError(.unsupported, path: path,
                               "\(labelsLabel): labels must be 1-D integers, found \(labelsHeader.descr) \(labelsHeader.shape)")
        }

        guard labelsHeader.shape[0] == count else {
            throw ImgConvError(.corruptInput, path: path, "\(labelsHeader.shape[0]) labels (\(labelsLabel)) for \(count) images (\(imagesLabel))")
        }

        // Class names: the container's, else the manifest's, else "0", "1", ... up to the largest label.
        var names: [String]
        if let stored = try container.classNames() ?? manifest?.classes.map(\.name) {
            names = stored
        } else {
            let (_, stream) = try container.open(labelsName)
            let reader = ChunkReader(stream, path: path, label: labelsLabel)
            var largest: Int64 = -1
            for _ in 0..<count { largest = max(largest, try reader.integer(labelType)) }
            guard largest < 1 << 20 else {
                throw ImgConvError(.limitExceeded, path: path, "\(labelsLabel): label \(largest) without class names is too large to show")
            }
            names = (0..<Int(largest + 1)).map(String.init)
        }
        let rows = try rows(names: names, path: path)
        var rowOfClass = [Int](repeating: -1, count: names.count)
        for (r, c) in rows.enumerated() { rowOfClass[c] = r }

        // The sheet at its largest (every row full) must stay within the limit.
        let (cellWidth, cellHeight) = PreviewLayout.cellSize(imageWidth: width, imageHeight: height, maxCell: options.cellSize)
        let texts = rows.map { Self.labelText(index: $0, name: names[$0]) }
        let labelCharacters = texts.map(\.count).max() ?? 0
        let largest = PreviewLayout(rows: rows.count, columns: min(options.perClass, max(count, 1)),
                                    cellWidth: cellWidth, cellHeight: cellHeight, labelCharacters: labelCharacters)
        let (area, overflow) = largest.width.multipliedReportingOverflow(by: largest.height)
        guard !overflow, area <= Self.maxSheetPixels else {
            throw ImgConvError(.limitExceeded, path: path,
                               "the sheet would be \(largest.width)x\(largest.height) pixels, over \(Self.maxSheetPixels >> 20) megapixels: "
                                   + "show fewer with --classes, --per-class or --cell")
        }

        // One pass: the first `perClass` images of each row's class, scaled to their cells as they
        // stream by (nearest neighbour: source row/column at the centre of each cell pixel).
        let size = dtype.byteSize
        let needsRange = dtype != .uint8 && dtype != .uint16
        let unitBytes = nchw ? width * size : width * channels * size   // one row (of one plane, for NCHW)
        let units = nchw ? channels * height : height
        let imageBytes = units * unitBytes
        var targetRow = [Int](repeating: -1, count: height)
        for oy in 0..<cellHeight { targetRow[((2 * oy + 1) * height) / (2 * cellHeight)] = oy }
        let sourceColumn = (0..<cellWidth).map { ((2 * $0 + 1) * width) / (2 * cellWidth) }
        let pixelBytes = channels * size
        let sampleBytes = cellWidth * cellHeight * pixelBytes

        let imageReader = ChunkReader(images, path: path, label: imagesLabel)
        let labelReader = ChunkReader(labelsStream, path: path, label: labelsLabel)
        var picks = [[(index: Int, pixels: [UInt8])]](repeating: [], count: rows.count)
        var fullRows = 0
        var range = ValueRange()
        for i in 0..<count {
            if fullRows == rows.count && !needsRange { break }
            let label = try labelReader.integer(labelType)
            guard label >= 0 && label < names.count else {
                throw ImgConvError(.corruptInput, path: path, "\(labelsLabel): label \(label) of image \(i) is outside [0, \(names.count))")
            }
            let row = rowOfClass[Int(label)]
            let take = row >= 0 && picks[row].count < options.perClass
            if !take && !needsRange {
                try imageReader.skip(imageBytes)
                continue
            }
            var sample = [UInt8](repeating: 0, count: take ? sampleBytes : 0)
            for unit in 0..<units {
                try imageReader.withNext(unitBytes) { raw in
                    if needsRange { range.update(raw, dtype: dtype) }
                    guard take else { return }
                    let (plane, y) = nchw ? (unit / height, unit % height) : (0, unit)
                    let oy = targetRow[y]
                    guard oy >= 0 else { return }
                    sample.withUnsafeMutableBytes { out in
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
            if take {
                picks[row].append((i, sample))
                if picks[row].count == options.perClass { fullRows += 1 }
            }
        }

        let mapping = DisplayMapping(dtype: dtype, range: range)
        let layout = PreviewLayout(rows: rows.count, columns: picks.map(\.count).max() ?? 0,
                                   cellWidth: cellWidth, cellHeight: cellHeight, labelCharacters: labelCharacters)
        var canvas = [UInt8](repeating: 255, count: layout.width * layout.height * 3)
        canvas.withUnsafeMutableBufferPointer { buffer in
            let sheet = Canvas(pixels: buffer, width: layout.width, height: layout.height)
            for r in rows.indices {
                if r % 2 == 1 {
                    sheet.fill(x: 0, y: layout.rowTop(r) - layout.gap / 2, width: layout.width,
                               height: layout.rowHeight + layout.gap, gray: 240)
                }
                let text = layout.textOrigin(row: r)
                BitmapFont.draw(texts[r], on: sheet, x: text.x, y: text.y, scale: layout.fontScale, gray: 0)
                if picks[r].isEmpty {
                    let cell = layout.cellOrigin(row: r, column: 0)
                    BitmapFont.draw("(no images)", on: sheet, x: cell.x, y: text.y, scale: layout.fontScale, gray: 128)
                }
                for (j, pick) in picks[r].enumerated() {
                    let (x, y) = layout.cellOrigin(row: r, column: j)
                    sheet.frame(x: x - 1, y: y - 1, width: cellWidth + 2, height: cellHeight + 2, gray: 160)
                    pick.pixels.withUnsafeBytes { sample in
                        Self.drawCell(sample, on: sheet, x: x, y: y, width: cellWidth, height: cellHeight,
                                      channels: channels, dtype: dtype, mapping: mapping)
                    }
                }
            }
        }
        return PreviewSheet(layout: layout, pixels: canvas, classIndices: rows, classNames: names,
                            imageIndices: picks.map { $0.map(\.index) }, imageHeight: height, imageWidth: width,
                            channels: channels, dtype: dtype, displayMapping: mapping.description)
    }

    /// `<index>: <name>` as the font shows it (non-ASCII characters as `?`), cut to
    /// `PreviewLayout.maxLabelCharacters` characters.
    static func labelText(index: Int, name: String) -> String {
        let text = BitmapFont.displayable("\(index): \(name)")
        let limit = PreviewLayout.maxLabelCharacters
        return text.count <= limit ? text : String(text.prefix(limit - 3)) + "..."
    }

    /// Draws one scaled image (interleaved samples of `dtype`) at (x, y): gray replicated to RGB,
    /// alpha composited on an 8-pixel grey checkerboard.
    private static func drawCell(_ sample: UnsafeRawBufferPointer, on sheet: Canvas, x: Int, y: Int, width: Int, height: Int,
                                 channels: Int, dtype: DType, mapping: DisplayMapping) {
        let size = dtype.byteSize
        var v = [UInt8](repeating: 0, count: 4)
        for cy in 0..<height {
            for cx in 0..<width {
                let base = (cy * width + cx) * channels * size
                for c in 0..<channels { v[c] = mapping.byte(sample, at: base + c * size, dtype: dtype) }
                var rgb: (UInt8, UInt8, UInt8)
                switch channels {
                case 1: rgb = (v[0], v[0], v[0])
                case 2: rgb = (v[0], v[0], v[0])
                default: rgb = (v[0], v[1], v[2])
                }
                if channels == 2 || channels == 4 {
                    let alpha = Int(v[channels - 1])
                    let background = (cx / 8 + cy / 8) % 2 == 0 ? 255 : 204
                    func over(_ c: UInt8) -> UInt8 { UInt8((Int(c) * alpha + background * (255 - alpha) + 127) / 255) }
                    rgb = (over(rgb.0), over(rgb.1), over(rgb.2))
                }
                sheet.set(x: x + cx, y: y + cy, rgb)
            }
        }
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
        case .uint16, .int16, .int32, .int64, .float16, .float32, .float64:
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
        if buffer.count < count { buffer += [UInt8](repeating: 0, count: count - buffer.count) }
        while end < count {
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

    /// The next little-endian integer of `dtype`.
    func integer(_ dtype: DType) throws -> Int64 {
        try withNext(dtype.byteSize) { raw in
            switch dtype {
            case .uint8: return Int64(raw[0])
            case .int8: return Int64(Int8(bitPattern: raw[0]))
            case .uint16: return Int64(UInt16(littleEndian: raw.loadUnaligned(as: UInt16.self)))
            case .int16: return Int64(Int16(littleEndian: raw.loadUnaligned(as: Int16.self)))
            case .int32: return Int64(Int32(littleEndian: raw.loadUnaligned(as: Int32.self)))
            default: return Int64(littleEndian: raw.loadUnaligned(as: Int64.self))
            }
        }
    }
}

/// An RGB drawing surface over a buffer (clipped to its bounds).
struct Canvas {
    let pixels: UnsafeMutableBufferPointer<UInt8>
    let width: Int
    let height: Int

    @inline(__always)
    func set(x: Int, y: Int, _ rgb: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let p = (y * width + x) * 3
        pixels[p] = rgb.0
        pixels[p + 1] = rgb.1
        pixels[p + 2] = rgb.2
    }

    func fill(x: Int, y: Int, width w: Int, height h: Int, gray: UInt8) {
        let (x0, x1, y0, y1) = (max(0, x), min(width, x + w), max(0, y), min(height, y + h))
        guard x0 < x1, y0 < y1 else { return }
        for yy in y0..<y1 {
            for xx in x0..<x1 { set(x: xx, y: yy, (gray, gray, gray)) }
        }
    }

    func frame(x: Int, y: Int, width w: Int, height h: Int, gray: UInt8) {
        let c = (gray, gray, gray)
        for xx in x..<x + w { set(x: xx, y: y, c); set(x: xx, y: y + h - 1, c) }
        for yy in y..<y + h { set(x: x, y: yy, c); set(x: x + w - 1, y: yy, c) }
    }
}

/// A 5 x 8 pixel font of printable ASCII (U+0020 to U+007E), drawn in a 6 x 9 box (one column
/// and one row of spacing); the eighth row holds descenders (`g j p q y ,`).
enum BitmapFont {
    static let advance = 6
    static let lineHeight = 9

    /// The text as the font can show it: printable ASCII kept, every other character `?`.
    static func displayable(_ text: String) -> String {
        String(text.map { ch -> Character in
            guard ch.unicodeScalars.count == 1, let s = ch.unicodeScalars.first, (0x20...0x7E).contains(s.value) else { return "?" }
            return ch
        })
    }

    /// Draws displayable text with its top-left corner at (x, y), each font pixel `scale` x `scale`.
    static func draw(_ text: String, on canvas: Canvas, x: Int, y: Int, scale: Int, gray: UInt8) {
        var left = x
        for scalar in text.unicodeScalars {
            let code = (0x20...0x7E).contains(scalar.value) ? Int(scalar.value) : 0x3F
            let base = (code - 0x20) * 8
            for row in 0..<8 {
                let bits = glyphs[base + row]
                guard bits != 0 else { continue }
                for column in 0..<5 where bits & (0x10 >> column) != 0 {
                    for dy in 0..<scale {
                        for dx in 0..<scale {
                            canvas.set(x: left + column * scale + dx, y: y + row * scale + dy, (gray, gray, gray))
                        }
                    }
                }
            }
            left += advance * scale
        }
    }

    /// Eight rows per glyph from U+0020, bit 4 (0x10) the leftmost pixel.
    static let glyphs: [UInt8] = [
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // space
        0x04, 0x04, 0x04, 0x04, 0x04, 0x00, 0x04, 0x00,  // !
        0x0A, 0x0A, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00,  // "
        0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A, 0x00,  // #
        0x04, 0x0F, 0x14, 0x0E, 0x05, 0x1E, 0x04, 0x00,  // $
        0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03, 0x00,  // %
        0x0C, 0x12, 0x14, 0x08, 0x15, 0x12, 0x0D, 0x00,  // &
        0x0C, 0x04, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00,  // '
        0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02, 0x00,  // (
        0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08, 0x00,  // )
        0x00, 0x04, 0x15, 0x0E, 0x15, 0x04, 0x00, 0x00,  // *
        0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00, 0x00,  // +
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x04, 0x08,  // ,
        0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00, 0x00,  // -
        0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C, 0x00,  // .
        0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00, 0x00,  // /
        0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E, 0x00,  // 0
        0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00,  // 1
        0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F, 0x00,  // 2
        0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E, 0x00,  // 3
        0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02, 0x00,  // 4
        0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E, 0x00,  // 5
        0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E, 0x00,  // 6
        0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08, 0x00,  // 7
        0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E, 0x00,  // 8
        0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C, 0x00,  // 9
        0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x0C, 0x00, 0x00,  // :
        0x00, 0x0C, 0x0C, 0x00, 0x0C, 0x04, 0x08, 0x00,  // ;
        0x02, 0x04, 0x08, 0x10, 0x08, 0x04, 0x02, 0x00,  // <
        0x00, 0x00, 0x1F, 0x00, 0x1F, 0x00, 0x00, 0x00,  // =
        0x08, 0x04, 0x02, 0x01, 0x02, 0x04, 0x08, 0x00,  // >
        0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04, 0x00,  // ?
        0x0E, 0x11, 0x01, 0x0D, 0x15, 0x15, 0x0E, 0x00,  // @
        0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00,  // A
        0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E, 0x00,  // B
        0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E, 0x00,  // C
        0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C, 0x00,  // D
        0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F, 0x00,  // E
        0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10, 0x00,  // F
        0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F, 0x00,  // G
        0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11, 0x00,  // H
        0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00,  // I
        0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C, 0x00,  // J
        0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11, 0x00,  // K
        0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F, 0x00,  // L
        0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11, 0x00,  // M
        0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11, 0x00,  // N
        0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00,  // O
        0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10, 0x00,  // P
        0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D, 0x00,  // Q
        0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11, 0x00,  // R
        0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E, 0x00,  // S
        0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00,  // T
        0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E, 0x00,  // U
        0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00,  // V
        0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A, 0x00,  // W
        0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11, 0x00,  // X
        0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04, 0x00,  // Y
        0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F, 0x00,  // Z
        0x0E, 0x08, 0x08, 0x08, 0x08, 0x08, 0x0E, 0x00,  // [
        0x00, 0x10, 0x08, 0x04, 0x02, 0x01, 0x00, 0x00,  // \
        0x0E, 0x02, 0x02, 0x02, 0x02, 0x02, 0x0E, 0x00,  // ]
        0x04, 0x0A, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00,  // ^
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1F, 0x00,  // _
        0x08, 0x04, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,  // `
        0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F, 0x00,  // a
        0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1E, 0x00,  // b
        0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E, 0x00,  // c
        0x01, 0x01, 0x0D, 0x13, 0x11, 0x11, 0x0F, 0x00,  // d
        0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E, 0x00,  // e
        0x06, 0x09, 0x08, 0x1C, 0x08, 0x08, 0x08, 0x00,  // f
        0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x0E,  // g
        0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00,  // h
        0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E, 0x00,  // i
        0x02, 0x00, 0x06, 0x02, 0x02, 0x02, 0x12, 0x0C,  // j
        0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12, 0x00,  // k
        0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E, 0x00,  // l
        0x00, 0x00, 0x1A, 0x15, 0x15, 0x11, 0x11, 0x00,  // m
        0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11, 0x00,  // n
        0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E, 0x00,  // o
        0x00, 0x00, 0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10,  // p
        0x00, 0x00, 0x0F, 0x11, 0x11, 0x0F, 0x01, 0x01,  // q
        0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10, 0x00,  // r
        0x00, 0x00, 0x0E, 0x10, 0x0E, 0x01, 0x1E, 0x00,  // s
        0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06, 0x00,  // t
        0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0D, 0x00,  // u
        0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04, 0x00,  // v
        0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0A, 0x00,  // w
        0x00, 0x00, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x00,  // x
        0x00, 0x00, 0x11, 0x11, 0x11, 0x0F, 0x01, 0x0E,  // y
        0x00, 0x00, 0x1F, 0x02, 0x04, 0x08, 0x1F, 0x00,  // z
        0x02, 0x04, 0x04, 0x08, 0x04, 0x04, 0x02, 0x00,  // {
        0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04, 0x00,  // |
        0x08, 0x04, 0x04, 0x02, 0x04, 0x04, 0x08, 0x00,  // }
        0x00, 0x00, 0x08, 0x15, 0x02, 0x00, 0x00, 0x00,  // ~
    ]
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
