import FoundationEssentials
import Glibc
import ImgConvCore
import ImgConvFormats

/// What `CardBuilder` shows.
public struct CardOptions: Sendable {
    /// Thumbnails per class and split: the first `samples` of each class in tensor order.
    public var samples = 6
    /// The thumbnails' larger side in pixels at most (images are never enlarged).
    public var thumbnail = 48
    /// How the input's pairs are found.
    public var read = DatasetReadOptions()

    public init() {}
}

/// Writes the dataset card: one self-contained HTML file (no network; thumbnails as PNG data
/// URIs, script and style inline) showing the classes with sampled thumbnails from every split,
/// the tensors (shape, dtype, layout, value range, per-channel mean and std), the labels' form,
/// per-split balance, the manifest's skip list and the `check` findings.
///
/// The tensors stream through once per split (for the statistics); only the sampled thumbnails
/// are kept, each at most `thumbnail` pixels a side, with its stored values for the page's
/// magnified view. The same input gives the same bytes.
public struct CardBuilder {
    public var options: CardOptions
    public var checker: Checker?
    /// The name the card shows as its source (default: the input's path).
    public var sourceName: String?
    /// Check findings made elsewhere (a folder's `check(source:)`), shown instead of running `checker`.
    public var report: CheckReport?

    public init(options: CardOptions = CardOptions(), checker: Checker? = nil) {
        self.options = options
        self.checker = checker
    }

    /// Builds the card of `input` (a conversion output) and writes it atomically to `output`.
    /// Returns the HTML's size in bytes.
    @discardableResult
    public func write(input: String, to output: String) throws -> Int {
        let html = Array(try render(input: input).utf8)
        try writeFileAtomically(output, html)
        return html.count
    }

    /// The card's HTML.
    public func render(input: String) throws -> String {
        guard options.samples >= 1 else { throw ImgConvError(.invalidArgument, "--samples must be at least 1, not \(options.samples)") }
        guard options.thumbnail >= 1 else { throw ImgConvError(.invalidArgument, "--thumbnail must be at least 1, not \(options.thumbnail)") }
        let dataset = try LabeledDataset(path: input, options: options.read)
        try dataset.requireSplits()
        let names = dataset.classNames
        let records = dataset.manifest.flatMap { $0.files.count == dataset.imageCount ? $0.files : nil }
        var splits: [JSONValue] = []
        var offset = 0
        for split in dataset.splits {
            splits.append(try describe(split, of: dataset, records: records, offset: offset))
            offset += split.count
        }
        var root: [(String, JSONValue)] = [
            ("source", .string(sourceName ?? input)),
            ("format", .string(sourceName == nil ? dataset.formatName : "folder (dry run of the conversion)")),
            ("classes", .array(names.enumerated().map { JSONValue.obj([("index", JSONValue.int($0.offset)), ("name", .string($0.element))]) })),
            ("splits", .array(splits)),
        ]
        if let manifest = dataset.manifest {
            root.append(("skipped", try CardPage.value(manifest.skipped)))
        }
        if let report {
            root.append(("check", try CardPage.value(report)))
        } else if let checker {
            let report = try checker.check(container: input, read: options.read)
            root.append(("check", try CardPage.value(report)))
        }
        let data = try CardPage.json(JSONValue.obj(root))
            .replacing("<", with: "\\u003c")
        return CardPage.html(title: "imgconv card: " + (sourceName ?? input), data: data)
    }

    private func describe(_ split: LabeledSplit, of dataset: LabeledDataset, records: [Manifest.FileRecord]?, offset: Int) throws -> JSONValue {
        let path = dataset.path
        let label = dataset.storageName(split.imagesName)
        let g = try dataset.geometry(split)
        guard (1...4).contains(g.channels), g.height > 0, g.width > 0 else {
            throw ImgConvError(.unsupported, path: path, "\(label): shape \(split.imagesHeader.shape) is not images of 1 to 4 channels")
        }
        let labels = try dataset.labels(split)
        let classCount = dataset.classNames.count
        let side = min(options.thumbnail, max(g.height, g.width))
        let (cw, ch) = PreviewLayout.cellSize(imageWidth: g.width, imageHeight: g.height, maxCell: side)
        let (_, images) = try dataset.openImages(split)
        let sample = try PreviewSampler(geometry: g, cellWidth: cw, cellHeight: ch, perClass: options.samples)
            .sample(ChunkReader(images, path: path, label: label), labels: labels, rows: Array(0..<classCount), classCount: classCount)
        let stats = try ChannelStatistics.measure(dataset: dataset, split: split, geometry: g, label: label)
        let mapping = DisplayMapping(dtype: g.dtype, range: stats.range)
        var counts = [Int](repeating: 0, count: classCount)
        for l in labels where l >= 0 && Int(l) < classCount { counts[Int(l)] += 1 }
        var thumbs: [JSONValue] = []
        for (c, picks) in sample.picks.enumerated() {
            for pick in picks {
                var rgb = [UInt8](repeating: 0, count: cw * ch * 3)
                rgb.withUnsafeMutableBufferPointer { buffer in
                    pick.pixels.withUnsafeBytes { raw in
                        PreviewCompositor.drawCell(raw, on: Canvas(pixels: buffer, width: cw, height: ch), x: 0, y: 0,
                                                   width: cw, height: ch, channels: g.channels, dtype: g.dtype, mapping: mapping)
                    }
                }
                let png = try rgb.withUnsafeBytes { try PNGEncoder.encode($0, width: cw, height: ch, channels: 3, bitDepth: 8) }
                var fields: [(String, JSONValue)] = [
                    ("row", JSONValue.int(pick.index)), ("label", JSONValue.int(c)),
                    ("png", .string("data:image/png;base64," + Base64.encode(png))),
                    ("raw", .string(Base64.encode(pick.pixels))),
                ]
                if let records {
                    let r = records[offset + pick.index]
                    fields.append(("path", .string(r.path)))
                    fields.append(("sha256", .string(r.sha256)))
                    if let o = r.orientation { fields.append(("orientation", JSONValue.int(o))) }
                }
                thumbs.append(JSONValue.obj(fields))
            }
        }
        return JSONValue.obj([
            ("name", .string(split.name)),
            ("images", .string(split.imagesName)), ("labels", .string(split.labelsName)),
            ("shape", .array(split.imagesHeader.shape.map { JSONValue.int($0) })),
            ("dtype", .string(g.dtype.rawValue)),
            ("layout", .string(g.nchw ? "NCHW" : "NHWC")),
            ("labelsShape", .array(split.labelsHeader.shape.map { JSONValue.int($0) })),
            ("labelsDtype", .string(split.labelDType.rawValue)),
            ("labelForm", .string(split.labelForm.rawValue)),
            ("count", JSONValue.int(split.count)),
            ("height", JSONValue.int(g.height)), ("width", JSONValue.int(g.width)), ("channels", JSONValue.int(g.channels)),
            ("min", JSONValue.num(stats.range.low)), ("max", JSONValue.num(stats.range.high)),
            ("mean", .array(stats.mean.map { JSONValue.num($0) })), ("std", .array(stats.std.map { JSONValue.num($0) })),
            ("display", .string(mapping.description)),
            ("thumbWidth", JSONValue.int(cw)), ("thumbHeight", JSONValue.int(ch)),
            ("counts", .array(counts.map { JSONValue.int($0) })),
            ("thumbs", .array(thumbs)),
        ])
    }
}

/// Per-channel mean and standard deviation and the finite value range of one split's images,
/// in one streaming pass.
struct ChannelStatistics {
    var range = ValueRange()
    var mean: [Double] = []
    var std: [Double] = []

    static func measure(dataset: LabeledDataset, split: LabeledSplit, geometry g: ImageGeometry, label: String) throws -> ChannelStatistics {
        let (_, stream) = try dataset.openImages(split)
        let reader = ChunkReader(stream, path: dataset.path, label: label)
        let size = g.dtype.byteSize
        let plane = g.height * g.width
        let imageBytes = plane * g.channels * size
        var sums = [Double](repeating: 0, count: g.channels)
        var squares = [Double](repeating: 0, count: g.channels)
        var counts = [Double](repeating: 0, count: g.channels)
        var stats = ChannelStatistics()
        let rowBytes = g.width * g.channels * size
        let units = imageBytes / max(rowBytes, 1)
        for _ in 0..<g.count {
            for unit in 0..<units {
                try reader.withNext(rowBytes) { raw in
                    stats.range.update(raw, dtype: g.dtype)
                    let n = rowBytes / size
                    for k in 0..<n {
                        let c = g.nchw ? (unit * n + k) / plane : k % g.channels
                        let v = g.dtype == .uint8 ? Double(raw[k]) : g.dtype.value(in: raw, at: k * size)
                        guard v.isFinite else { continue }
                        sums[c] += v
                        squares[c] += v * v
                        counts[c] += 1
                    }
                }
            }
        }
        stats.mean = (0..<g.channels).map { counts[$0] > 0 ? sums[$0] / counts[$0] : 0 }
        stats.std = (0..<g.channels).map { c in
            guard counts[c] > 0 else { return 0 }
            let m = sums[c] / counts[c]
            return max(0, squares[c] / counts[c] - m * m).squareRoot()
        }
        return stats
    }
}

enum Base64 {
    private static let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8 | Int(bytes[i + 2])
            out += [table[n >> 18 & 63], table[n >> 12 & 63], table[n >> 6 & 63], table[n & 63]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = Int(bytes[i]) << 16
            out += [table[n >> 18 & 63], table[n >> 12 & 63], 61, 61]
        } else if rest == 2 {
            let n = Int(bytes[i]) << 16 | Int(bytes[i + 1]) << 8
            out += [table[n >> 18 & 63], table[n >> 12 & 63], table[n >> 6 & 63], 61]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension JSONValue {
    static func int(_ v: Int) -> JSONValue { .number(Double(v)) }
    static func num(_ v: Double) -> JSONValue { v.isFinite ? .number(v) : .null }
    static func obj(_ pairs: [(String, JSONValue)]) -> JSONValue {
        .object(Dictionary(pairs, uniquingKeysWith: { a, _ in a }))
    }
}
