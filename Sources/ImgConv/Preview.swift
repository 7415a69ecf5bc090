#if canImport(Glibc)
import Glibc
#endif
import ImgConvCore
import ImgConvFormats

/// What `Previewer` shows and how big.
public struct PreviewOptions: Sendable {
    /// Images per class: the first `perClass` of each class in tensor order.
    public var perClass = 8
    /// Cell side in pixels: images are scaled (nearest neighbour, aspect kept) so that their larger
    /// side is this, up for small images, down for large ones.
    public var cellSize = 96
    /// One split to show, by its images tensor (`valXs`) or split name (`val`); nil shows every split.
    public var tensor: String?
    /// Only these classes, in this order: each a class name, else a class index. nil: all classes.
    public var classes: [String]?
    /// How the input's pairs are found (IDX labels file and prefix, `--xs`/`--ys`, layout).
    public var read = DatasetReadOptions()

    public init() {}
}

/// One split's part of a contact sheet: 8-bit RGB pixels, row by row, and what it shows.
public struct PreviewSheet: Sendable {
    /// The split shown (`train`, `val`, ...) and its images tensor.
    public var split: String
    public var tensor: String
    public var layout: PreviewLayout
    /// `layout.height` rows of `layout.width` RGB pixels.
    public var pixels: [UInt8]
    /// The class index of each row.
    public var classIndices: [Int]
    public var classNames: [String]
    /// Images shown in each row (their positions in the split's tensor).
    public var imageIndices: [[Int]]
    /// The images' height, width and channels, and dtype.
    public var imageHeight: Int
    public var imageWidth: Int
    public var channels: Int
    public var dtype: DType
    /// How values became 8-bit: `as stored`, `/ 257`, or `[lo, hi] -> 0..255`.
    public var displayMapping: String
}

/// The whole contact sheet: one section per split, each under a title line, stacked.
public struct PreviewDocument: Sendable {
    public var width: Int
    public var height: Int
    /// `height` rows of `width` RGB pixels.
    public var pixels: [UInt8]
    public var sections: [PreviewSheet]
}

/// Draws a contact sheet of a dataset: for every split (or the one asked for), one row per class
/// holding the first few images of that class in tensor order, the row labelled `<index>: <name>`,
/// so a person sees at a glance that labels and pixels line up. Reads every container
/// `LabeledDataset` opens.
///
/// Images stream through once per split, a row of pixels at a time; only the chosen images,
/// already scaled to their cells, are kept, so memory follows the size of the sheet, not of the
/// tensor (the labels, 8 bytes an image, are read first). Reading stops as soon as every row is
/// full, except for types that need the tensor's range. Images are scaled with nearest neighbour
/// so their larger side fills the cell: small images (8x8, 28x28) are enlarged, large ones reduced.
///
/// Display values: uint8 as stored; uint16 divided by 257 (rounded); float and signed integer
/// images mapped linearly from the tensor's finite min/max to 0...255, or from [0, 1] (floats) or
/// [0, 255] (integers) when every value lies within it; NaN shows as 0. Gray is replicated to RGB,
/// and images with alpha (2 or 4 channels) are composited on a grey checkerboard.
public struct Previewer {
    public var options: PreviewOptions
    /// Told about classes without an image in a split.
    public var warn: (String) -> Void = { _ in }

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
    public func preview(input: String, to output: String) throws -> PreviewDocument {
        let file = try AtomicOutputFile(target: output)
        do {
            let document = try render(input: input)
            let png = try document.pixels.withUnsafeBytes {
                try PNGEncoder.encode($0, width: document.width, height: document.height, channels: 3, bitDepth: 8)
            }
            try file.write(png)
            try file.commit()
            return document
        } catch {
            file.abort()
            throw error
        }
    }

    /// Renders the sheet of `input` in memory.
    /// - Throws: as `preview(input:to:)`, but never `.io` for the output.
    public func render(input: String) throws -> PreviewDocument {
        try validateOptions()
        let dataset = try LabeledDataset(path: input, options: options.read)
        try dataset.requireSplits()
        var splits = dataset.splits
        if let wanted = options.tensor {
            guard let one = dataset.split(named: wanted) else {
                let held = dataset.splits.map { "\($0.imagesName) (\($0.name))" }.joined(separator: ", ")
                throw ImgConvError(.invalidArgument, path: input, "--tensor '\(wanted)': no such split; it holds \(held)")
            }
            splits = [one]
        }
        let rows = try rows(names: dataset.classNames, path: input)
        var sections: [PreviewSheet] = []
        var area = 0
        for split in splits {
            let sheet = try render(split, of: dataset, rows: rows)
            area += sheet.layout.width * sheet.layout.height
            guard area <= Self.maxSheetPixels else {
                throw ImgConvError(.limitExceeded, path: input,
                                   "the sheet would be over \(Self.maxSheetPixels >> 20) megapixels: show fewer with --tensor, --classes, --per-class or --cell")
            }
            for (r, picks) in sheet.imageIndices.enumerated() where picks.isEmpty {
                warn("class \(rows[r]) '\(dataset.classNames[rows[r]])' has no image in the split '\(split.name)'")
            }
            sections.append(sheet)
        }
        return PreviewCompositor.stack(sections, titled: splits.count > 1 || splits[0].name != "train" ? sections.map(Self.title) : nil)
    }

    /// The line above a section: `<split>: <tensor>, <N> images (H x W x C dtype)`.
    static func title(_ sheet: PreviewSheet) -> String {
        "\(sheet.split): \(sheet.tensor), \(sheet.imageIndices.count) classes, \(sheet.imageHeight)x\(sheet.imageWidth)x\(sheet.channels) \(sheet.dtype.rawValue)"
    }

    /// Checks the options before anything is opened.
    private func validateOptions() throws {
        guard options.perClass >= 1 else {
            throw ImgConvError(.invalidArgument, "--per-class must be at least 1, not \(options.perClass)")
        }
        guard options.cellSize >= 1 else {
            throw ImgConvError(.invalidArgument, "--cell must be at least 1 pixel, not \(options.cellSize)")
        }
        if let layout = options.read.layout, layout != "nhwc", layout != "nchw" {
            throw ImgConvError(.invalidArgument, "--layout must be nhwc or nchw, not '\(layout)'")
        }
    }

    /// The rows to draw: class indices in order, from names or indices given by the user.
    private func rows(names: [String], path: String) throws -> [Int] {
        guard let wanted = options.classes else { return Array(names.indices) }
        var rows: [Int] = []
        for item in wanted {
            let trimmed = item.trimmingSpaces()
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

    /// One split's section: its images sampled, scaled and drawn.
    private func render(_ split: LabeledSplit, of dataset: LabeledDataset, rows: [Int]) throws -> PreviewSheet {
        let path = dataset.path
        let imagesLabel = dataset.storageName(split.imagesName)
        let g = try dataset.geometry(split)
        guard (1...4).contains(g.channels) else {
            let s = split.imagesHeader.shape
            let hint = !g.nchw && s.count == 4 && (1...4).contains(s[1]) ? " (for (N, C, H, W) data pass --layout nchw)" : ""
            throw ImgConvError(.unsupported, path: path, "\(imagesLabel): shape \(s) has \(g.channels) channels; images have 1 to 4\(hint)")
        }
        guard g.height > 0, g.width > 0 else {
            throw ImgConvError(.unsupported, path: path, "\(imagesLabel): images of \(g.height)x\(g.width) pixels cannot be shown")
        }
        let labels = try dataset.labels(split)
        let names = dataset.classNames
        let (cellWidth, cellHeight) = PreviewLayout.cellSize(imageWidth: g.width, imageHeight: g.height, maxCell: options.cellSize)
        let texts = rows.map { PreviewLayout.labelText(index: $0, name: names[$0]) }
        let labelCharacters = texts.map(\.count).max() ?? 0
        // The section at its largest (every row full) must stay within the limit.
        let largest = PreviewLayout(rows: rows.count, columns: min(options.perClass, max(g.count, 1)),
                                    cellWidth: cellWidth, cellHeight: cellHeight, labelCharacters: labelCharacters)
        let (area, overflow) = largest.width.multipliedReportingOverflow(by: largest.height)
        guard !overflow, area <= Self.maxSheetPixels else {
            throw ImgConvError(.limitExceeded, path: path,
                               "the sheet would be \(largest.width)x\(largest.height) pixels, over \(Self.maxSheetPixels >> 20) megapixels: "
                                   + "show fewer with --classes, --per-class or --cell")
        }
        let (_, images) = try dataset.openImages(split)
        let sample = try PreviewSampler(geometry: g, cellWidth: cellWidth, cellHeight: cellHeight, perClass: options.perClass)
            .sample(ChunkReader(images, path: path, label: imagesLabel), labels: labels, rows: rows, classCount: names.count)
        let mapping = DisplayMapping(dtype: g.dtype, range: sample.range)
        let layout = PreviewLayout(rows: rows.count, columns: sample.picks.map(\.count).max() ?? 0,
                                   cellWidth: cellWidth, cellHeight: cellHeight, labelCharacters: labelCharacters)
        let pixels = PreviewCompositor.draw(layout: layout, texts: texts, picks: sample.picks.map { $0.map(\.pixels) },
                                            channels: g.channels, dtype: g.dtype, mapping: mapping)
        return PreviewSheet(split: split.name, tensor: split.imagesName, layout: layout, pixels: pixels, classIndices: rows,
                            classNames: names, imageIndices: sample.picks.map { $0.map(\.index) }, imageHeight: g.height,
                            imageWidth: g.width, channels: g.channels, dtype: g.dtype, displayMapping: mapping.description)
    }
}
