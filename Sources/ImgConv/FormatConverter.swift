import Foundation
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// The containers imgconv writes.
public enum TensorFormat: String, CaseIterable, Sendable {
    case npz, npy, h5, idx

    /// The format an output path names by its extension (`.npz`, `.h5`/`.hdf5`/`.he5`), or nil.
    public static func inferred(from path: String) -> TensorFormat? {
        let name = path.split(separator: "/").last.map { $0.lowercased() } ?? ""
        if name.hasSuffix(".npz") { return .npz }
        if name.hasSuffix(".h5") || name.hasSuffix(".hdf5") || name.hasSuffix(".he5") { return .h5 }
        return nil
    }
}

/// What `convert` does besides copying.
public struct FormatConversionOptions: Sendable {
    /// The target format; nil takes it from the output's extension.
    public var format: TensorFormat?
    /// IDX output: the file name prefix.
    public var prefix = "train"
    /// IDX input: the labels file, when MNIST's naming does not find it.
    public var labels: String?
    /// `.npz` members deflated, HDF5 shuffle + gzip.
    public var compress = false
    /// Deflate level (default 6 for `.npz`, 4 for HDF5, 6 for IDX `.gz`).
    public var level: Int?
    /// IDX output gzip-compressed.
    public var gzip = false
    /// IDX output: what uint16 images become (int32 or float32); nil refuses them.
    public var uint16Target: DType?

    public init() {}
}

/// What a finished `convert` reports.
public struct FormatConversionSummary: Sendable {
    public var sourceFormat: String
    public var format: TensorFormat
    public var images: Int
    public var classes: Int
    public var shape: [Int]
    public var dtype: String
    public var manifestPath: String
    public var carriedManifest: Bool
}

/// Copies a dataset between containers (`.npz`, `.npy` folder, HDF5, IDX pair): the image
/// tensor's bytes unchanged, streamed; labels with their values (int64 in `.npz`/`.npy`/HDF5,
/// the narrowest IDX type that holds the class count in IDX); class names and manifest carried
/// over. What the target cannot hold (uint16, int64 or float16 images in IDX, ...) is refused
/// before anything is written.
///
/// Shapes: images of (N, H, W) (IDX's one-channel form) gain a channel axis, (N, H, W, 1), in
/// `.npz`/`.npy`/HDF5 so that every imgconv output is (N, H, W, C); IDX drops a channel axis of 1
/// again, so IDX -> npz -> IDX gives back the same bytes.
public struct FormatConverter {
    public var options: FormatConversionOptions
    public var warn: (String) -> Void = { _ in }

    public init(options: FormatConversionOptions) { self.options = options }

    /// - Throws: `ImgConvError`: `.invalidArgument` when the target format is unknown,
    ///   `.unsupported` when it cannot hold the data, `.corruptInput` for a malformed input;
    ///   nothing is left at the output then.
    public func convert(input: String, output: String) throws -> FormatConversionSummary {
        guard let format = options.format ?? TensorFormat.inferred(from: output) else {
            throw ImgConvError(.invalidArgument, path: output,
                               "cannot tell the output format from the name: use .npz or .h5, or pass --to npz|npy|h5|idx")
        }
        let container = try openContainer(input, labels: options.labels)
        for name in ["trainXs", "trainYs"] where !container.tensorNames.contains(name) {
            _ = try container.open(name)  // throws the container's own "missing" error
            throw ImgConvError(.corruptInput, path: input, "holds no tensor '\(name)'")
        }
        let sourceManifest = try Self.manifest(of: container)

        let labels = try readLabels(container)
        let names = try classNames(container, manifest: sourceManifest, labels: labels)
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= names.count }) {
            throw ImgConvError(.corruptInput, path: input,
                               "\(container.storageName("trainYs")): label \(labels[bad]) of image \(bad) is outside [0, \(names.count))")
        }

        let (imagesHeader, images) = try container.open("trainXs")
        guard let dtype = DType(npyDescr: imagesHeader.descr) else {
            throw ImgConvError(.unsupported, path: input, "\(container.storageName("trainXs")): dtype '\(imagesHeader.descr)' is not an image type")
        }
        guard let count = imagesHeader.shape.first else {
            throw ImgConvError(.corruptInput, path: input, "\(container.storageName("trainXs")) is a scalar, not a tensor of images")
        }
        guard count == labels.count else {
            throw ImgConvError(.corruptInput, path: input, "\(labels.count) labels for \(count) images")
        }
        var itemShape = Array(imagesHeader.shape.dropFirst())
        var channelAxis: Int? = itemShape.count == 3 ? (sourceManifest?.options.layout == "nchw" ? 0 : 2) : nil
        if itemShape.count == 2 && format != .idx {
            itemShape.append(1)
            channelAxis = 2
        }
        let layout = TensorLayout(dtype: dtype, itemShape: itemShape, channelAxis: channelAxis)

        let writer: DatasetWriter
        switch format {
        case .npz: writer = NPZWriter(path: output, compress: options.compress, level: Int32(options.level ?? 6))
        case .npy: writer = NPYDirectoryWriter(directory: output)
        case .h5: writer = HDF5Writer(path: output, compress: options.compress, level: options.level ?? 4)
        case .idx:
            let idx = IDXWriter(directory: output, prefix: options.prefix, gzip: options.gzip, level: Int32(options.level ?? 6))
            idx.uint16Target = options.uint16Target
            idx.warn = warn
            writer = idx
        }

        try writer.begin(images: layout, count: count)
        do {
            // A stored source is handed to the writer where it lies (memory-mapped), image by image.
            var scratch: [UInt8] = []
            for i in 0..<count {
                try images.next(layout.bytesPerItem, scratch: &scratch) { image in
                    guard image.count == layout.bytesPerItem else {
                        throw ImgConvError(.corruptInput, path: input, "\(container.storageName("trainXs")): data ends in image \(i) of \(count)")
                    }
                    try writer.append(image: image)
                }
            }
            // Reading to the end runs the stream's own checks (CRC-32, exact length).
            var probe = [UInt8](repeating: 0, count: 1)
            if try probe.withUnsafeMutableBytes({ try images.read(into: $0) }) != 0 {
                throw ImgConvError(.corruptInput, path: input, "\(container.storageName("trainXs")): more data than its shape holds")
            }
            let tensors = try writer.finish(labels: labels, classNames: names)
            let outputName = output.split(separator: "/").last.map(String.init) ?? output
            var manifest = sourceManifest ?? Self.freshManifest(input: input, kind: container.formatName, names: names, labels: labels)
            manifest.output = .init(format: format.rawValue, name: outputName)
            manifest.options.compress = options.compress || options.gzip
            manifest.tensors = tensors
            var json = try manifest.encoded()
            try writer.embedManifest(&json)
            try writer.commit()
            try writeFileAtomically(writer.manifestPath, json)
            return FormatConversionSummary(sourceFormat: container.formatName, format: format, images: count,
                                           classes: names.count, shape: tensors[0].shape, dtype: tensors[0].dtype,
                                           manifestPath: writer.manifestPath, carriedManifest: sourceManifest != nil)
        } catch let e as ImgConvError {
            writer.abort()
            throw e.path == nil ? e.at(input) : e
        } catch {
            writer.abort()
            throw error
        }
    }

    /// The manifest beside (or, for HDF5, inside) a container; nil when it has none.
    /// - Throws: `.corruptInput` when one exists but does not parse.
    static func manifest(of container: TensorContainer) throws -> Manifest? {
        var st = stat()
        if stat(container.manifestPath, &st) == 0 {
            return try Manifest.decode(try readFile(container.manifestPath), path: container.manifestPath)
        }
        if let embedded = try container.embeddedManifest() {
            return try Manifest.decode(embedded, path: container.path)
        }
        return nil
    }

    /// A manifest for data that came without one: classes and their counts, no source files.
    static func freshManifest(input: String, kind: String, names: [String], labels: [Int64]) -> Manifest {
        var counts = [Int](repeating: 0, count: names.count)
        for l in labels { counts[Int(l)] += 1 }
        return Manifest(
            tool: .init(name: ToolInfo.name, version: ToolInfo.version),
            source: .init(root: input, kind: kind),
            output: .init(format: kind, name: ""),
            options: .init(size: nil, color: "auto", compress: false, skipBad: false, resizeFilter: "bilinear",
                           dtype: "auto", exifOrientation: false, allowTruncatedJpeg: false, tiffPages: "first",
                           maxPixels: DecodeLimits.defaultMaxPixels),
            classes: names.enumerated().map { .init(index: $0.offset, name: $0.element, count: counts[$0.offset]) },
            tensors: [], files: [], skipped: [], warnings: [],
            summary: .init(images: labels.count, skipped: 0, skippedByReason: [:], rotated: 0, ignoredTiffPages: 0))
    }

    private func readLabels(_ container: TensorContainer) throws -> [Int64] {
        let (header, stream) = try container.open("trainYs")
        guard header.shape.count == 1, let dtype = DType(npyDescr: header.descr), !dtype.isFloatingPoint else {
            throw ImgConvError(.unsupported, path: container.path,
                               "\(container.storageName("trainYs")): labels must be 1-D integers, found \(header.descr) \(header.shape)")
        }
        return try readIntegers(stream, dtype: dtype, count: header.shape[0], path: container.path, label: container.storageName("trainYs"))
    }

    /// The container's class names, else the manifest's, else "0", "1", ... up to the largest label.
    private func classNames(_ container: TensorContainer, manifest: Manifest?, labels: [Int64]) throws -> [String] {
        if let names = try container.classNames() { return names }
        if let manifest { return manifest.classes.map(\.name) }
        let count = Int((labels.max() ?? -1) + 1)
        return (0..<count).map(String.init)
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
