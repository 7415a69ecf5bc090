import FoundationEssentials
import Glibc
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// The containers imgconv writes, as `--to` names them; each is described by a `ContainerFormat`.
public enum TensorFormat: String, CaseIterable, Sendable {
    case npz, npy, h5, idx

    /// The description of this format (reader, writer, manifest place).
    public var container: ContainerFormat { ContainerFormat.named(rawValue)! }

    /// The format an output path names by its extension (`.npz`, `.h5`/`.hdf5`/`.he5`), or nil.
    public static func inferred(from path: String) -> TensorFormat? {
        ContainerFormat.inferred(from: path).flatMap { TensorFormat(rawValue: $0.name) }
    }
}

/// What `convert` does besides copying.
public struct FormatConversionOptions: Sendable {
    /// The target format; nil takes it from the output's extension.
    public var format: TensorFormat?
    /// How the input's pairs are found (IDX labels file, `--xs`/`--ys`).
    public var read = DatasetReadOptions()
    /// How the output is written (compression, IDX prefix and types).
    public var writer = WriterSettings()
    /// The label form of the output; nil keeps the input's (one-hot is refused where the target
    /// cannot hold it).
    public var labelForm: LabelForm?

    public init() {}

    /// IDX input: the labels file, when MNIST's naming does not find it.
    public var labels: String? {
        get { read.labelsFile }
        set { read.labelsFile = newValue }
    }
}

/// What a finished `convert` reports.
public struct FormatConversionSummary: Sendable {
    public var sourceFormat: String
    public var format: TensorFormat
    public var images: Int
    public var classes: Int
    /// The splits written, in order, with their image counts.
    public var splits: [(name: String, count: Int)]
    public var shape: [Int]
    public var dtype: String
    public var manifestPath: String
    public var carriedManifest: Bool
}

/// Copies a dataset between containers (`.npz`, `.npy` folder, HDF5, IDX pair or folder of
/// pairs): every split, each image tensor's bytes unchanged, streamed; labels with their values
/// and form (index or one-hot) and, where the target keeps it, their dtype (IDX chooses the
/// narrowest type for the class count; labels from IDX become int64); class names and manifest
/// carried over. What the target cannot hold (uint16, int64 or float16 images, or one-hot labels,
/// in IDX) is refused before anything is written.
///
/// Shapes: images of (N, H, W) (IDX's one-channel form) gain a channel axis, (N, H, W, 1), in
/// `.npz`/`.npy`/HDF5 so that every imgconv output is (N, H, W, C); IDX drops a channel axis of 1
/// again, so IDX -> npz -> IDX gives back the same bytes.
public struct FormatConverter {
    public var options: FormatConversionOptions
    public var warn: @Sendable (String) -> Void = { _ in }

    public init(options: FormatConversionOptions) { self.options = options }

    /// - Throws: `ImgConvError`: `.invalidArgument` when the target format is unknown,
    ///   `.unsupported` when it cannot hold the data, `.corruptInput` for a malformed input;
    ///   nothing is left at the output then.
    public func convert(input: String, output: String) throws -> FormatConversionSummary {
        guard let format = options.format ?? TensorFormat.inferred(from: output) else {
            throw ImgConvError(.invalidArgument, path: output,
                               "cannot tell the output format from the name: use .npz or .h5, or pass --to npz|npy|h5|idx")
        }
        let target = format.container
        let dataset = try LabeledDataset(path: input, options: options.read)
        try dataset.requireSplits()
        let names = dataset.classNames
        let onehot = (options.labelForm ?? dataset.labelForm) == .onehot
        if onehot && !target.holdsOnehotLabels {
            throw ImgConvError(.unsupported, path: input,
                               "has one-hot labels, which \(target.name.uppercased()) cannot hold: pass --labels index to store class indices")
        }
        // Labels keep their dtype where the target keeps it (from IDX, whose types follow the
        // class count, they become int64); one-hot rows made from indices are float32.
        var labelDType: DType?
        if target.keepsLabelDType && dataset.formatName != "idx" && (options.labelForm ?? dataset.labelForm) == dataset.labelForm {
            labelDType = dataset.splits[0].labelDType
        } else if onehot && target.keepsLabelDType {
            labelDType = .float32
        }

        var settings = options.writer
        let warn = self.warn
        settings.warn = { text in warn(text) }
        let writer = target.makeWriter(path: output, settings: settings)
        // A device, FIFO, socket or folder where an output goes is refused before any work, and
        // so is an output that would replace the input or its manifest.
        try writer.checkTargets()
        try refuseOutputsAmongInputs(writer.outputFiles, inputs: Self.inputFiles(of: dataset, labelsFile: options.read.labelsFile))
        writer.labelEncoding = LabelEncoding(dtype: labelDType, onehot: onehot, classCount: names.count)
        var tensors: [Manifest.TensorRecord] = []
        var sizes: [(name: String, count: Int)] = []
        do {
            for split in dataset.splits {
                let geometry = try dataset.geometry(split)
                // (N, H, W) images gain their channel axis; a writer that leaves a single channel
                // out (IDX) drops it again.
                var itemShape = Array(split.imagesHeader.shape.dropFirst())
                if geometry.channelAxisMissing { itemShape.append(1) }
                let channelAxis = geometry.nchw ? 0 : 2
                let layout = TensorLayout(dtype: geometry.dtype, itemShape: itemShape, channelAxis: channelAxis)
                let labels = try dataset.labels(split)
                writer.names = split.outputNames
                try writer.begin(images: layout, count: split.count)
                try Self.copyImages(of: split, in: dataset, layout: layout, to: writer)
                tensors += try writer.endPart(labels: labels)
                sizes.append((split.name, split.count))
            }
            tensors += try writer.finish(classNames: names)
            let outputName = output.split(separator: "/").last.map(String.init) ?? output
            var manifest = try dataset.manifest
                ?? Self.freshManifest(input: input, kind: dataset.formatName, names: names, splits: dataset.splits, dataset: dataset)
            manifest.output = .init(format: format.rawValue, name: outputName)
            manifest.options.compress = options.writer.compress || options.writer.gzip
            manifest.options.labels = onehot ? "onehot" : "index"
            manifest.options.labelDtype = tensors.first { $0.name == dataset.splits[0].outputNames.labels }?.dtype
            manifest.tensors = tensors
            // A carried manifest of an earlier version: its tensors now have this version's checksums.
            manifest.version = Manifest.currentVersion
            let named = sizes.count > 1 || sizes.first?.name != "train"
            manifest.summary.splits = named ? Dictionary(uniqueKeysWithValues: sizes.map { ($0.name, $0.count) }) : nil
            var json = try manifest.encoded()
            try writer.embedManifest(&json)
            // The manifest is written in full before the data replaces anything, and renamed
            // into place right after it, as a conversion commits.
            let manifestFile = try AtomicOutputFile(target: writer.manifestPath)
            do {
                try manifestFile.write(json)
                try commitWithManifest(writer, manifestFile)
            } catch {
                manifestFile.abort()
                throw error
            }
            let first = tensors.first { $0.name == dataset.splits[0].outputNames.images }!
            return FormatConversionSummary(sourceFormat: dataset.formatName, format: format, images: dataset.imageCount,
                                           classes: names.count, splits: sizes, shape: first.shape, dtype: first.dtype,
                                           manifestPath: writer.manifestPath, carriedManifest: dataset.manifest != nil)
        } catch let e as ImgConvError {
            writer.abort()
            throw e.path == nil ? e.at(input) : e
        } catch {
            writer.abort()
            throw error
        }
    }

    /// The files a conversion reads: the container (or every file of its folder), its manifest,
    /// an IDX labels file named apart.
    static func inputFiles(of dataset: LabeledDataset, labelsFile: String?) -> [(path: String, role: String)] {
        var files = isFolder(dataset.path) ? listFolder(dataset.path).map { (path: dataset.path + "/" + $0, role: "the input") }
                             : [(path: dataset.path, role: "the input")]
        files.append((dataset.container.manifestPath, "the input's manifest"))
        if let labelsFile { files.append((labelsFile, "the input's labels file")) }
        return files
    }

    /// Streams a split's image bytes to the writer, image by image; a stored source is handed over
    /// where it lies (memory-mapped).
    /// - Returns: with `hashing`, that checksum of the images' data as read (hex), for a caller
    ///   that checks it.
    @discardableResult
    static func copyImages(of split: LabeledSplit, in dataset: LabeledDataset, layout: TensorLayout, to writer: DatasetWriter,
                           hashing: TensorHashAlgorithm? = nil) throws -> String? {
        let (_, images) = try dataset.openImages(split)
        let label = dataset.storageName(split.imagesName)
        var scratch: [UInt8] = []
        let hash = hashing.map { BackgroundDigest(algorithm: $0) }
        // Where the stream lends its bytes (memory-mapped, or a slab read by libhdf5), about 8 MiB
        // of images at a time: the block is checked on a side thread while the writer writes it
        // (and hashes it on a side thread of its own).
        let perBlock = max(1, (8 << 20) / max(1, layout.bytesPerItem))
        var i = 0
        while i < split.count {
            let want = min(perBlock, split.count - i)
            if want > 1, let block = try images.borrow(upTo: want * layout.bytesPerItem, unit: layout.bytesPerItem) {
                let n = block.count / max(1, layout.bytesPerItem)
                guard n > 0, block.count == n * layout.bytesPerItem else {
                    throw ImgConvError(.corruptInput, path: dataset.path,
                                       "\(label): data ends in image \(i + n) of \(split.count)")
                }
                if let hash {
                    try hash.update(block, alongside: { try writer.append(images: block, count: n) })
                } else {
                    try writer.append(images: block, count: n)
                }
                i += n
                continue
            }
            try images.next(layout.bytesPerItem, scratch: &scratch) { image in
                guard image.count == layout.bytesPerItem else {
                    throw ImgConvError(.corruptInput, path: dataset.path, "\(label): data ends in image \(i) of \(split.count)")
                }
                hash?.update(image)
                try writer.append(image: image)
            }
            i += 1
        }
        // Reading to the end runs the stream's own checks (CRC-32, exact length).
        var probe = [UInt8](repeating: 0, count: 1)
        if try probe.withUnsafeMutableBytes({ try images.read(into: $0) }) != 0 {
            throw ImgConvError(.corruptInput, path: dataset.path, "\(label): more data than its shape holds")
        }
        return hash?.finish().digest
    }

    /// A manifest for data that came without one: classes and their counts over every split, the
    /// split sizes, no source files.
    static func freshManifest(input: String, kind: String, names: [String], splits: [LabeledSplit], dataset: LabeledDataset) throws -> Manifest {
        var counts = [Int](repeating: 0, count: names.count)
        for split in splits {
            for l in try dataset.labels(split) { counts[Int(l)] += 1 }
        }
        var manifest = Manifest(
            tool: .init(name: ToolInfo.name, version: ToolInfo.version),
            source: .init(root: input, kind: kind),
            output: .init(format: kind, name: ""),
            options: .init(size: nil, color: "auto", compress: false, skipBad: false, resizeFilter: "bilinear",
                           dtype: "auto", exifOrientation: false, allowTruncatedJpeg: false, tiffPages: "first",
                           maxPixels: DecodeLimits.defaultMaxPixels),
            classes: names.enumerated().map { .init(index: $0.offset, name: $0.element, count: counts[$0.offset]) },
            tensors: [], files: [], skipped: [], warnings: [],
            summary: .init(images: splits.reduce(0) { $0 + $1.count }, skipped: 0, skippedByReason: [:], rotated: 0, ignoredTiffPages: 0))
        manifest.options.layout = dataset.nchw ? "nchw" : nil
        return manifest
    }
}

/// Reads `count` little-endian integers of `dtype` as Int64.
/// - Throws: `.corruptInput` when the stream is short.
func readIntegers(_ stream: ByteStream, dtype: DType, count: Int, path: String, label: String) throws -> [Int64] {
    let size = dtype.byteSize
    let bytes = try stream.read(count: count * size)
    guard bytes.count == count * size else {
        throw ImgConvError(.corruptInput, path: path, "\(label): data is \(bytes.count) bytes, \(count) values need \(count * size)")
    }
    var out = [Int64](repeating: 0, count: count)
    bytes.withUnsafeBytes { raw in
        for i in 0..<count {
            switch (size, dtype.isSigned) {
            case (1, false): out[i] = Int64(raw[i])
            case (1, true): out[i] = Int64(Int8(bitPattern: raw[i]))
            case (2, false): out[i] = Int64(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
            case (2, true): out[i] = Int64(Int16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
            case (4, _): out[i] = Int64(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
            default: out[i] = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
            }
        }
    }
    return out
}
