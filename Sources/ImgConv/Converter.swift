import Foundation
import ImgConvCodecs
import ImgConvCore
import ImgConvFormats

/// What a finished conversion reports.
public struct ConversionSummary: Sendable {
    public var images: Int
    public var classes: Int
    public var skipped: Int
    public var shape: [Int]
    public var dtype: DType
    public var seconds: Double
    public var outputBytes: Int
    public var manifestPath: String
}

/// Converts a folder of class subfolders into tensors: scan -> probe headers -> plan one shape ->
/// decode and conform in parallel -> write in order -> manifest.
public struct Converter {
    public var options: ConversionOptions
    /// Called with each warning (empty classes, skipped files) as it happens.
    public var warn: (String) -> Void = { _ in }

    public init(options: ConversionOptions) { self.options = options }

    /// Sniffs and reads the header of one file.
    enum Probe {
        case image(ImageHeader, ImageFormat)
        case skip(String)          // not an image we decode: skipped, not an error
        case bad(ImgConvError)     // an image we should decode but cannot
    }

    private static let probePrefix = 64 * 1024

    func probe(_ file: SourceFile, decoders: Decoders) -> Probe {
        do {
            var (bytes, size) = try readFilePrefix(file.path, count: Self.probePrefix)
            guard let format = ImageFormat.sniff(bytes[...]) else {
                return .skip(size == 0 ? "empty file" : "not an image")
            }
            guard format.isDecodable else {
                return .skip("unsupported format: \(format.rawValue.uppercased())")
            }
            do {
                return .image(try decoders.header(bytes, format: format), format)
            } catch let e as ImgConvError where e.code == .corruptInput && size > bytes.count {
                // The header may lie past the prefix (a TIFF directory at the end of the file).
                bytes = try readFile(file.path)
                return .image(try decoders.header(bytes, format: format), format)
            }
        } catch let e as ImgConvError {
            return .bad(e.at(file.relativePath))
        } catch {
            return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"))
        }
    }

    /// Converts `root` with `writer`.
    /// - Throws: `ImgConvError` naming the file at fault; the writer's output is then left as it was.
    public func convert(root: String, writer: DatasetWriter, outputName: String, formatName: String) throws -> ConversionSummary {
        let start = Date()
        let scan = try DatasetScanner().scan(root: root)
        scan.warnings.forEach(warn)
        let decoders = Decoders(limits: options.limits)

        // 1. Headers, in parallel, to plan the tensor before any pixel is decoded.
        var probes = [Probe?](repeating: nil, count: scan.files.count)
        try runOrderedPipeline(count: scan.files.count, jobs: options.jobs, window: 256,
                               work: { probe(scan.files[$0], decoders: decoders) },
                               consume: { i, r in probes[i] = try r.get() })
        var skipped = scan.skipped
        var candidates: [(SourceFile, ImageHeader, ImageFormat)] = []
        for (file, p) in zip(scan.files, probes) {
            switch p! {
            case .image(let h, let f): candidates.append((file, h, f))
            case .skip(let reason): skipped.append(SkippedFile(path: file.relativePath, reason: reason))
            case .bad(let e):
                guard options.skipBad else { throw e }
                warn("skipping \(e)")
                skipped.append(SkippedFile(path: file.relativePath, reason: e.message))
            }
        }
        let plan = try makePlan(candidates)

        // 2. Decode, conform and write, in dataset order.
        try writer.begin(plan: plan, count: candidates.count)
        var labels: [Int64] = []
        var files: [Manifest.FileRecord] = []
        var counts = [Int](repeating: 0, count: scan.classes.count)
        do {
            try runOrderedPipeline(
                count: candidates.count, jobs: options.jobs, window: max(8, options.jobs * 4),
                work: { i -> ([UInt8], String) in
                    let (file, header, format) = candidates[i]
                    return try Self.decodeAndConform(file, format: format, header: header, decoders: decoders,
                                                     plan: plan, resize: options.size != nil)
                },
                consume: { i, result in
                    let (file, _, format) = candidates[i]
                    switch result {
                    case .success(let (pixels, digest)):
                        try pixels.withUnsafeBytes { try writer.append(image: $0) }
                        labels.append(Int64(file.label))
                        counts[file.label] += 1
                        files.append(Manifest.FileRecord(path: file.relativePath, label: file.label,
                                                         format: format.rawValue, sha256: digest))
                    case .failure(let error):
                        guard options.skipBad, let e = error as? ImgConvError, e.code != .io, e.code != .internal else { throw error }
                        warn("skipping \(e)")
                        skipped.append(SkippedFile(path: file.relativePath, reason: e.message))
                    }
                })
            let tensors = try writer.finish(labels: labels, classNames: scan.classes.map(\.name))
            try writer.commit()
            var manifest = Manifest(
                tool: .init(name: ToolInfo.name, version: ToolInfo.version),
                source: .init(root: root, kind: "folders"),
                output: .init(format: formatName, name: outputName),
                options: .init(size: options.size.map { [$0.height, $0.width] }, color: options.color.rawValue,
                               compress: options.compress, skipBad: options.skipBad, resizeFilter: "bilinear"),
                classes: scan.classes.map { .init(index: $0.index, name: $0.name, count: counts[$0.index]) },
                tensors: tensors, files: files, skipped: skipped, warnings: scan.warnings,
                summary: .init(images: files.count, skipped: skipped.count, skippedByReason: [:]))
            manifest.summary.skippedByReason = Dictionary(grouping: skipped, by: { reasonKey($0.reason) }).mapValues(\.count)
            try writeFileAtomically(writer.manifestPath, try manifest.encoded())
            return ConversionSummary(images: files.count, classes: scan.classes.count, skipped: skipped.count,
                                     shape: tensors[0].shape, dtype: plan.depth.dtype,
                                     seconds: Date().timeIntervalSince(start), outputBytes: 0,
                                     manifestPath: writer.manifestPath)
        } catch {
            writer.abort()
            throw error
        }
    }

    /// Reads, hashes, decodes and conforms one file to the plan.
    /// - Returns: the image's bytes in the plan's layout and the SHA-256 of the file.
    /// - Throws: `ImgConvError` naming the file by its relative path.
    static func decodeAndConform(_ file: SourceFile, format: ImageFormat, header: ImageHeader?, decoders: Decoders,
                                 plan: ImagePlan, resize: Bool) throws -> ([UInt8], String) {
        do {
            let bytes = try readFile(file.path)
            let digest = sha256Hex(bytes)
            guard let decoder = decoders.decoder(for: format) else {
                throw ImgConvError(.unsupported, "no decoder for \(format.rawValue)")
            }
            let h = try header ?? decoders.header(bytes, format: format)
            let image = try decoder.decode(bytes, header: h)
            if !resize && (image.width != plan.width || image.height != plan.height) {
                throw ImgConvError(.shapeMismatch, "image is \(image.height)x\(image.width), expected \(plan.height)x\(plan.width)")
            }
            return (plan.conform(image), digest)
        } catch let e as ImgConvError {
            throw e.at(file.relativePath)
        }
    }

    /// One shape for the whole tensor: the requested size or the first image's; channels from
    /// the colour mode; 16-bit when any input is.
    func makePlan(_ candidates: [(SourceFile, ImageHeader, ImageFormat)]) throws -> ImagePlan {
        guard let first = candidates.first else {
            throw ImgConvError(.notFound, "no decodable images found")
        }
        let (height, width): (Int, Int)
        if let size = options.size {
            (height, width) = (size.height, size.width)
        } else {
            (height, width) = (first.1.height, first.1.width)
            for (file, h, _) in candidates where h.height != height || h.width != width {
                throw ImgConvError(.shapeMismatch, path: file.relativePath,
                                   "image is \(h.height)x\(h.width) but '\(first.0.relativePath)' is \(height)x\(width); pass --size HxW to resize all images")
            }
        }
        let channels: Int
        switch options.color {
        case .auto: channels = candidates.allSatisfy { $0.1.isGray } ? 1 : 3
        case .gray: channels = 1
        case .rgb: channels = 3
        case .rgba: channels = 4
        }
        let depth = candidates.map(\.1.depth).max() ?? .eight
        return ImagePlan(width: width, height: height, channels: channels, depth: depth)
    }
}

/// Groups skip reasons for the summary ("unsupported format: GIF" stays whole; file-specific
/// details after a colon are dropped otherwise).
func reasonKey(_ reason: String) -> String {
    if reason.hasPrefix("unsupported format") { return reason }
    return reason.split(separator: ":").first.map(String.init) ?? reason
}
