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

/// Where the images come from.
public enum DatasetSource: Sendable {
    /// `ROOT/<class>/**/<file>`.
    case folders(String)
    /// A CSV of `path,label[,split]` rows.
    case list(String)

    var kind: String {
        switch self {
        case .folders: return "folders"
        case .list: return "list"
        }
    }
}

/// One image to convert: a file (and, for multipage TIFF, a page) with its header.
struct Candidate {
    var file: SourceFile
    var header: ImageHeader
    var format: ImageFormat
    var page: Int
}

/// Converts a folder of class subfolders into tensors: scan -> probe headers -> plan one shape ->
/// decode and conform in parallel -> write in order -> manifest.
public struct Converter {
    public var options: ConversionOptions
    /// Called with each warning (empty classes, skipped files) as it happens.
    public var warn: (String) -> Void = { _ in }
    /// Called after each image is written: (images done, images planned, image bytes written).
    public var progress: (Int, Int, Int) -> Void = { _, _, _ in }

    public init(options: ConversionOptions) { self.options = options }

    /// What the header pass learns of one file.
    enum Probe {
        case images([Candidate], ignoredPages: Int)
        case skip(String)          // not an image we decode: skipped, not an error
        case bad(ImgConvError)     // an image we should decode but cannot
    }

    // Enough for the header of almost every file; the rest are read whole on a second try.
    private static let probePrefix = 16 * 1024

    func probe(_ file: SourceFile, decoders: Decoders) -> Probe {
        do {
            let (bytes, size) = try readFilePrefix(file.path, count: Self.probePrefix)
            return classify(bytes, fileSize: size, file: file, decoders: decoders)
        } catch let e as ImgConvError {
            return .bad(e.at(file.relativePath))
        } catch {
            return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"))
        }
    }

    /// What the header pass learns of a file from its first bytes (`bytes`, of `fileSize`; the
    /// whole file is read when the header lies further on).
    func classify(_ bytes: [UInt8], fileSize size: Int, file: SourceFile, decoders: Decoders) -> Probe {
        var bytes = bytes
        do {
            guard let format = ImageFormat.sniff(bytes[...]) else {
                return .skip(size == 0 ? "empty file" : "not an image")
            }
            guard format.isDecodable else {
                return .skip("unsupported format: \(format.rawValue.uppercased())")
            }
            var header: ImageHeader
            do {
                header = try decoders.header(bytes, format: format)
            } catch let e as ImgConvError where e.code == .corruptInput && size > bytes.count {
                // The header may lie past the prefix (a TIFF directory at the end of the file).
                bytes = try readFile(file.path)
                header = try decoders.header(bytes, format: format)
            }
            let first = Candidate(file: file, header: header, format: format, page: 0)
            guard format == .tiff, header.pages > 1 else { return .images([first], ignoredPages: 0) }
            switch options.tiffPages {
            case .first:
                return .images([first], ignoredPages: header.pages - 1)
            case .error:
                throw ImgConvError(.unsupported, "TIFF has \(header.pages) pages (--tiff-pages first or all converts it)")
            case .all:
                if bytes.count < size { bytes = try readFile(file.path) }
                var pages = [first]
                for page in 1..<header.pages {
                    pages.append(Candidate(file: file, header: try decoders.header(bytes, format: format, page: page),
                                           format: format, page: page))
                }
                return .images(pages, ignoredPages: 0)
            }
        } catch let e as ImgConvError {
            return .bad(e.at(file.relativePath))
        } catch {
            return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"))
        }
    }

    /// Converts a folder of class folders with `writer`.
    /// - Throws: `ImgConvError` naming the file at fault; the writer's output is then left as it was.
    public func convert(root: String, writer: DatasetWriter, outputName: String, formatName: String) throws -> ConversionSummary {
        try convert(source: .folders(root), writer: writer, outputName: outputName, formatName: formatName)
    }

    /// Converts a dataset (class folders or a CSV list) with `writer`.
    ///
    /// Most datasets are converted in one pass that reads each file once: the tensor is planned
    /// from the first image, and every image is checked against that plan as it is decoded. An
    /// image the plan does not foresee (a colour image after gray ones with `--color auto`, a
    /// wider sample type with `--dtype auto`, another size, a multipage TIFF with `--tiff-pages
    /// all`), or any error, abandons that pass: the conversion then starts over in two passes,
    /// all headers first, which gives the same result and the same error a single pass could
    /// not. Shuffled and split datasets always take two passes (the order depends on which files
    /// turn out to be images).
    /// - Throws: `ImgConvError` naming the file at fault; the writer's output is then left as it was.
    public func convert(source: DatasetSource, writer: DatasetWriter, outputName: String, formatName: String) throws -> ConversionSummary {
        let start = Date()
        let scan: ScanResult
        let root: String
        switch source {
        case .folders(let r):
            root = r
            scan = try DatasetScanner(classes: options.classes, naturalOrder: options.classSort == .natural,
                                      skipBadNames: options.skipBad).scan(root: r)
        case .list(let csv):
            root = csv
            scan = try ListScanner(classes: options.classes, naturalOrder: options.classSort == .natural).scan(list: csv)
        }
        scan.warnings.forEach(warn)
        if options.labelDType == .uint8 && scan.classes.count > 256 {
            throw ImgConvError(.invalidArgument, "uint8 labels hold at most 256 classes; this dataset has \(scan.classes.count) (use --label-dtype int32)")
        }
        let decoders = Decoders(options: options.decode)
        var run = Run(scan: scan, root: root, source: source, writer: writer, outputName: outputName,
                      formatName: formatName, decoders: decoders, start: start)
        // Warnings are said once, even when a single pass is abandoned and the work starts over.
        var said = Set<String>()
        let warnOnce: (String) -> Void = { [warn] text in if said.insert(text).inserted { warn(text) } }
        if options.shuffleSeed == nil && options.split == nil && !scan.files.hasSplits,
           let plan = try onePassPlan(scan.files, decoders: decoders) {
            let files = scan.files
            do {
                return try write(&run, parts: [WorkPart(name: "train", count: files.count, item: { Item(file: files[$0]) })],
                                 plan: plan, planned: scan.files.count, onePass: true, warn: warnOnce)
            } catch is Replan {
                run.reset()
            }
        }

        // 1. Headers, in parallel, to plan the tensor before any pixel is decoded. What is kept of
        // each image is 24 bytes (CandidateList), so this pass too is flat in the number of files.
        var candidates = CandidateList(files: scan.files)
        try runOrderedPipeline(count: scan.files.count, jobs: options.jobs, window: 1024, batch: 32,
                               work: { probe(scan.files[$0], decoders: decoders) },
                               consume: { i, r in
            switch try r.get() {
            case .images(let found, let ignored):
                for c in found { candidates.append(fileIndex: i, c) }
                run.ignoredPages += ignored
            case .skip(let reason): run.headerSkipped.append(SkippedFile(path: scan.files.relativePath(at: i), reason: reason))
            case .bad(let e):
                guard options.skipBad else { throw e }
                warnOnce("skipping \(e)")
                run.headerSkipped.append(SkippedFile(path: scan.files.relativePath(at: i), reason: e.message))
            }
        })
        let plan = try makePlan(candidates)
        if run.ignoredPages > 0 {
            warnOnce("\(run.ignoredPages) further TIFF pages ignored (--tiff-pages all converts them)")
        }
        // 2. Decode, conform and write, split by split, in dataset order within each.
        let parts = try splitParts(candidates).map { part in
            WorkPart(name: part.name, count: part.items.count, item: { i in
                let c = candidates[Int(part.items[i])]
                return Item(file: c.file, probed: c)
            })
        }
        return try write(&run, parts: parts, plan: plan, planned: candidates.count, onePass: false, warn: warnOnce)
    }

    /// Thrown to abandon a single pass (see `convert`).
    struct Replan: Error {}

    /// One image to decode: a file, with its header when the header pass has read it.
    struct Item {
        var file: SourceFile
        var probed: Candidate?
    }

    /// A split and what to decode for it, in output order.
    struct WorkPart {
        var name: String
        var count: Int
        var item: (Int) -> Item
    }

    /// What a conversion collects for its manifest as it goes.
    struct Run {
        let scan: ScanResult
        let root: String
        let source: DatasetSource
        let writer: DatasetWriter
        let outputName: String
        let formatName: String
        let decoders: Decoders
        let start: Date
        var headerSkipped: [SkippedFile] = []
        var decodeSkipped: [SkippedFile] = []
        var ignoredPages = 0

        /// Forgets an abandoned pass (its output is already removed).
        mutating func reset() {
            headerSkipped = []
            decodeSkipped = []
            ignoredPages = 0
        }
    }

    /// What a worker hands to the writer for one item.
    enum Outcome {
        case image(Decoded, Candidate, ignoredPages: Int)
        case skip(String)
        /// `header`: the file failed before its pixels (as it would in the header pass).
        case bad(ImgConvError, header: Bool)
        case replan
    }

    /// The plan of a single pass: from the first file that is an image, when a single pass can
    /// hold to it; nil when the dataset needs two passes from the start.
    func onePassPlan(_ files: FileList, decoders: Decoders) throws -> ImagePlan? {
        for file in files {
            switch probe(file, decoders: decoders) {
            case .skip: continue
            case .bad:
                if options.skipBad { continue }
                return nil
            case .images(let found, _):
                guard found.count == 1, found[0].header.depth <= Self.sampleDepth(options.dtype, widest: found[0].header.depth) else {
                    return nil
                }
                return try? makePlan(found)
            }
        }
        return nil
    }

    /// Reads, checks against the plan, decodes and conforms one file in a single pass.
    func decodeInOnePass(_ file: SourceFile, plan: ImagePlan, decoders: Decoders) -> Outcome {
        let bytes: [UInt8]
        do {
            bytes = try readFile(file.path)
        } catch let e as ImgConvError {
            return .bad(e.at(file.relativePath), header: true)
        } catch {
            return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"), header: true)
        }
        switch classify(bytes, fileSize: bytes.count, file: file, decoders: decoders) {
        case .skip(let reason): return .skip(reason)
        case .bad(let e): return .bad(e, header: true)
        case .images(let found, let ignored):
            guard found.count == 1, fits(found[0].header, plan) else { return .replan }
            let c = found[0]
            do {
                let d = try Self.decodeAndConform(bytes, file: file, format: c.format, header: c.header, decoders: decoders,
                                                  plan: plan, resize: options.size != nil, page: 0)
                return .image(d, c, ignoredPages: ignored)
            } catch let e as ImgConvError {
                return .bad(e, header: false)
            } catch {
                return .bad(ImgConvError(.internal, path: file.relativePath, "\(error)"), header: false)
            }
        }
    }

    /// Whether an image of this header gives the same plan as the one made without it.
    func fits(_ header: ImageHeader, _ plan: ImagePlan) -> Bool {
        if options.size == nil && (header.orientedWidth != plan.width || header.orientedHeight != plan.height) { return false }
        if options.color == .auto && plan.channels == 1 && !header.isGray { return false }
        if options.color == .keep && header.channels != plan.channels { return false }
        return header.depth <= plan.depth
    }

    /// Decodes, conforms and writes the parts in order, then the manifest; commits.
    private func write(_ run: inout Run, parts: [WorkPart], plan: ImagePlan, planned: Int, onePass: Bool,
                       warn: @escaping (String) -> Void) throws -> ConversionSummary {
        let scan = run.scan, writer = run.writer, decoders = run.decoders
        // One-hot rows default to float32 (what Keras's categorical labels and PyTorch's class probabilities are).
        writer.labelEncoding = LabelEncoding(dtype: options.labelDType ?? (options.onehot ? .float32 : nil), onehot: options.onehot,
                                             classCount: scan.classes.count)
        // The manifest's entry of each image, kept on disk past 256 KiB (flat memory).
        let entries = SpillBuffer(directory: parentFolder(writer.manifestPath))
        var images = 0
        var counts = [Int](repeating: 0, count: scan.classes.count)
        var rotated = 0
        var written = 0
        var done = 0
        var tensors: [Manifest.TensorRecord] = []
        var splitSizes: [String: Int] = [:]
        let named = parts.count > 1 || parts.first?.name != "train"
        do {
            for part in parts {
                writer.names = TensorNames(prefix: part.name)
                try writer.begin(plan: plan, count: onePass ? planned : part.count)
                var labels = PagedArray<Int32>()   // no growth slack: one per image of any number
                let item = part.item
                let flow = Self.flow(bytesPerImage: TensorLayout(plan: plan).bytesPerItem, jobs: options.jobs)
                try runOrderedPipeline(
                    count: part.count, jobs: options.jobs, window: flow.window, batch: flow.batch,
                    work: { i -> Outcome in
                        let it = item(i)
                        guard let c = it.probed else { return decodeInOnePass(it.file, plan: plan, decoders: decoders) }
                        do {
                            return .image(try Self.decodeAndConform(c.file, format: c.format, header: c.header, decoders: decoders,
                                                                    plan: plan, resize: options.size != nil, page: c.page),
                                          c, ignoredPages: 0)
                        } catch let e as ImgConvError {
                            return .bad(e, header: false)
                        }
                    },
                    consume: { i, result in
                        done += 1
                        // The worker has made the image's file already; the others are rare.
                        let outcome = try result.get()
                        let file: SourceFile
                        if case .image(_, let c, _) = outcome { file = c.file } else { file = item(i).file }
                        switch outcome {
                        case .image(let d, let c, let ignored):
                            try writer.append(image: d.pixels)
                            written += d.pixels.count
                            progress(done, planned, written)
                            labels.append(Int32(file.label))
                            counts[file.label] += 1
                            run.ignoredPages += ignored
                            if c.header.orientation > 1 { rotated += 1 }
                            if let w = d.warning { warn("'\(file.relativePath)': accepted with a warning: \(w)") }
                            let record = Manifest.FileRecord(path: file.relativePath, label: file.label,
                                                             format: c.format.rawValue, sha256: d.sha256,
                                                             page: c.format == .tiff && c.header.pages > 1 && options.tiffPages == .all ? c.page : nil,
                                                             orientation: c.header.orientation > 1 ? c.header.orientation : nil,
                                                             warning: d.warning,
                                                             split: named ? part.name : nil)
                            try entries.append(Manifest.fileEntry(record, first: images == 0))
                            images += 1
                        case .skip(let reason):
                            run.headerSkipped.append(SkippedFile(path: file.relativePath, reason: reason))
                        case .bad(let e, header: true):
                            guard options.skipBad else { throw Replan() }
                            warn("skipping \(e)")
                            run.headerSkipped.append(SkippedFile(path: file.relativePath, reason: e.message))
                        case .bad(let e, header: false):
                            guard options.skipBad, e.code != .io, e.code != .internal else {
                                if onePass { throw Replan() }
                                throw e
                            }
                            warn("skipping \(e)")
                            run.decodeSkipped.append(SkippedFile(path: file.relativePath, reason: e.message))
                        case .replan:
                            throw Replan()
                        }
                    })
                tensors += try writer.endPart(labels: LabelColumn(labels))
                splitSizes[part.name] = labels.count
            }
            if onePass && run.ignoredPages > 0 {
                warn("\(run.ignoredPages) further TIFF pages ignored (--tiff-pages all converts them)")
            }
            let skipped = scan.skipped + run.headerSkipped + run.decodeSkipped
            tensors += try writer.finish(classNames: scan.classes.map(\.name))
            var manifest = Manifest(
                tool: .init(name: ToolInfo.name, version: ToolInfo.version),
                source: .init(root: run.root, kind: run.source.kind),
                output: .init(format: run.formatName, name: run.outputName),
                options: .init(size: options.size.map { [$0.height, $0.width] }, color: options.color.rawValue,
                               compress: options.compress, skipBad: options.skipBad, resizeFilter: options.filter.rawValue,
                               dtype: options.dtype.rawValue, exifOrientation: options.decode.exifOrientation,
                               allowTruncatedJpeg: options.decode.allowTruncatedJPEG, tiffPages: options.tiffPages.rawValue,
                               maxPixels: options.decode.limits.maxPixels),
                classes: scan.classes.map { .init(index: $0.index, name: $0.name, count: counts[$0.index]) },
                tensors: tensors, files: [], skipped: skipped, warnings: scan.warnings,
                summary: .init(images: images, skipped: skipped.count, skippedByReason: [:],
                               rotated: rotated, ignoredTiffPages: run.ignoredPages))
            manifest.options.fit = options.size == nil ? nil : options.fit.rawValue
            manifest.options.padColor = options.size != nil && options.fit == .pad ? options.padColor.map { Int($0) } : nil
            manifest.options.background = options.background.map { $0.prefix(3).map { Int($0) } }
            manifest.options.scale = options.normalization.unitScale ? "unit" : nil
            manifest.options.mean = options.normalization.mean
            manifest.options.std = options.normalization.std
            manifest.options.layout = options.layout.rawValue
            manifest.options.classes = options.classes
            manifest.options.sort = options.classSort.rawValue
            manifest.options.shuffleSeed = options.shuffleSeed
            manifest.options.labels = options.onehot ? "onehot" : "index"
            manifest.options.jpegDraft = options.decode.jpegDraft ? true : nil
            manifest.options.labelDtype = options.labelDType?.rawValue
            manifest.options.split = options.split.map { $0.parts.map { "\($0.name)=\($0.fraction)" }.joined(separator: ",") }
            manifest.options.stratify = options.split?.stratify
            if named { manifest.summary.splits = splitSizes }
            manifest.summary.skippedByReason = Dictionary(grouping: skipped, by: { reasonKey($0.reason) }).mapValues(\.count)
            // [issue 4, HDF5] the manifest also goes inside the output (HDF5 attribute), so commit after it.
            // The manifest is written in full before the data replaces anything, so a failure
            // (a full disk) leaves the earlier output and its manifest together.
            let manifestFile = try AtomicOutputFile(target: writer.manifestPath)
            do {
                if writer.embedsManifest {
                    var json: [UInt8] = []
                    json.reserveCapacity(entries.byteCount + (64 << 10))
                    try manifest.write(fileEntries: entries) { json += $0 }
                    try writer.embedManifest(&json)
                    try manifestFile.write(json)
                } else {
                    try manifest.write(fileEntries: entries) { try manifestFile.write($0) }
                }
                try manifestFile.flush()
                try writer.commit()
                try manifestFile.commit()
            } catch {
                manifestFile.abort()
                throw error
            }
            return ConversionSummary(images: images, classes: scan.classes.count, skipped: skipped.count,
                                     shape: tensors[0].shape, dtype: plan.dtype,
                                     seconds: Date().timeIntervalSince(run.start), outputBytes: 0,
                                     manifestPath: writer.manifestPath)
        } catch {
            writer.abort()
            throw error
        }
    }

    /// How many decoded images may be in flight, and how many a worker takes at a time: about
    /// 4 MiB of pixels in flight (at least 4 images per worker), in batches that give each
    /// worker a few turns within the window, at most 64 images.
    static func flow(bytesPerImage: Int, jobs: Int) -> (window: Int, batch: Int) {
        let jobs = max(1, jobs)
        let window = min(1024, max(jobs * 4, (16 << 20) / max(1, bytesPerImage)))
        return (window, min(64, max(1, window / (jobs * 4))))
    }

    /// A split and its images (indices into the candidate list), in output order.
    struct Part {
        var name: String
        var items: [Int32]
    }

    /// Divides the images into splits: as the dataset says (split folders, or a CSV's split
    /// column), or by `options.split`; otherwise one `train` part. Parts come in the order train,
    /// val, test; `--shuffle` shuffles within each.
    func splitParts(_ candidates: CandidateList) throws -> [Part] {
        let onDisk = candidates.files.hasSplits
        let names = options.split?.parts.map(\.name) ?? SplitPlan.knownNames
        var assigned: [UInt8] = []   // index into `names`, per candidate
        assigned.reserveCapacity(candidates.count)
        if onDisk {
            if options.split != nil {
                throw ImgConvError(.invalidArgument, "the dataset is already split (split folders or a split column); --split does not apply")
            }
            for c in candidates {
                guard let s = c.file.split else {
                    throw ImgConvError(.invalidArgument, path: c.file.relativePath, "has no split while others have one")
                }
                guard let k = names.firstIndex(of: s) else {
                    throw ImgConvError(.invalidArgument, path: c.file.relativePath, "split '\(s)' is not train, val or test")
                }
                assigned.append(UInt8(k))
            }
        } else if let plan = options.split {
            assigned = plan.assign(labels: candidates.indices.map { candidates.label(at: $0) }).map { UInt8($0) }
        } else {
            assigned = Array(repeating: UInt8(names.firstIndex(of: "train")!), count: candidates.count)
        }
        var parts: [Part] = []
        for (k, name) in names.enumerated() {
            var items: [Int32] = []
            for (i, a) in assigned.enumerated() where a == k { items.append(Int32(i)) }
            if items.isEmpty && (onDisk || options.split == nil) { continue }
            if let seed = options.shuffleSeed { items = SeededShuffle(seed: seed).shuffled(items) }
            parts.append(Part(name: name, items: items))
        }
        if parts.isEmpty { parts = [Part(name: "train", items: [])] }
        return parts
    }

    /// One decoded image, in the plan's layout.
    struct Decoded {
        var pixels: [UInt8]
        var sha256: String
        var warning: String?
    }

    /// Reads, hashes, decodes, orients and conforms one file (page) to the plan.
    /// - Throws: `ImgConvError` naming the file by its relative path.
    static func decodeAndConform(_ file: SourceFile, format: ImageFormat, header: ImageHeader?, decoders: Decoders,
                                 plan: ImagePlan, resize: Bool, page: Int = 0) throws -> Decoded {
        let bytes: [UInt8]
        do {
            bytes = try readFile(file.path)
        } catch let e as ImgConvError {
            throw e.at(file.relativePath)
        }
        return try decodeAndConform(bytes, file: file, format: format, header: header, decoders: decoders,
                                    plan: plan, resize: resize, page: page)
    }

    /// Hashes, decodes, orients and conforms one file's bytes (one page) to the plan.
    /// - Throws: `ImgConvError` naming the file by its relative path.
    static func decodeAndConform(_ bytes: [UInt8], file: SourceFile, format: ImageFormat, header: ImageHeader?, decoders: Decoders,
                                 plan: ImagePlan, resize: Bool, page: Int) throws -> Decoded {
        do {
            let digest = sha256Hex(bytes)
            let h = try header ?? decoders.header(bytes, format: format, page: page)
            let image = try decoders.decode(bytes, format: format, header: h, page: page,
                                            target: resize ? (plan.width, plan.height) : nil)
            if !resize && (image.width != plan.width || image.height != plan.height) {
                throw ImgConvError(.shapeMismatch, "image is \(image.height)x\(image.width), expected \(plan.height)x\(plan.width)")
            }
            return Decoded(pixels: try plan.conform(image), sha256: digest, warning: image.warning)
        } catch let e as ImgConvError {
            throw e.at(file.relativePath)
        }
    }

    /// The samples of `dtype` (auto: the widest of the inputs).
    static func sampleDepth(_ dtype: DTypeChoice, widest: SampleDepth) -> SampleDepth {
        switch dtype {
        case .auto: return widest
        case .uint8: return .eight
        case .uint16: return .sixteen
        case .float16, .float32: return .float32
        }
    }

    /// One shape for the whole tensor: the requested size or the first image's (upright); channels
    /// from the colour mode; the sample type from `dtype` (auto: the widest input).
    func makePlan<C: RandomAccessCollection>(_ candidates: C) throws -> ImagePlan where C.Element == Candidate {
        guard let first = candidates.first else {
            throw ImgConvError(.notFound, "no decodable images found")
        }
        let (height, width): (Int, Int)
        if let size = options.size {
            (height, width) = (size.height, size.width)
        } else {
            (height, width) = (first.header.orientedHeight, first.header.orientedWidth)
            for c in candidates where c.header.orientedHeight != height || c.header.orientedWidth != width {
                throw ImgConvError(.shapeMismatch, path: c.file.relativePath,
                                   "image is \(c.header.orientedHeight)x\(c.header.orientedWidth) but '\(first.file.relativePath)' is \(height)x\(width); pass --size HxW to resize all images")
            }
        }
        let channels: Int
        switch options.color {
        case .auto: channels = candidates.allSatisfy { $0.header.isGray } ? 1 : 3
        case .gray: channels = 1
        case .rgb: channels = 3
        case .rgba: channels = 4
        case .keep:
            channels = first.header.channels
            if let c = candidates.first(where: { $0.header.channels != channels }) {
                throw ImgConvError(.shapeMismatch, path: c.file.relativePath,
                                   "has \(c.header.channels) channels but '\(first.file.relativePath)' has \(channels) (--color keep needs them to agree)")
            }
        }
        let widest = candidates.lazy.map(\.header.depth).max() ?? .eight
        let depth = Self.sampleDepth(options.dtype, widest: widest)
        if depth < widest {
            if let c = candidates.first(where: { $0.header.depth == .float32 }) {
                throw ImgConvError(.unsupported, path: c.file.relativePath,
                                   "holds floating-point samples, which \(depth.dtype.rawValue) cannot hold (use --dtype float32 or auto)")
            }
            let narrowed = candidates.lazy.filter { $0.header.depth > depth }.count
            warn("narrowing \(narrowed) 16-bit images to uint8 by scaling (value / 257, rounded)")
        }
        if !options.normalization.isIdentity && depth != .float32 {
            throw ImgConvError(.invalidArgument, "--scale, --mean and --std need a float dtype (--dtype float32 or float16)")
        }
        var normalization = options.normalization
        for (name, values) in [("--mean", normalization.mean), ("--std", normalization.std)] {
            if let values, values.count != 1 && values.count != channels {
                throw ImgConvError(.invalidArgument, "\(name) has \(values.count) values for \(channels) channels")
            }
        }
        normalization.mean = normalization.mean.map { $0.count == 1 ? Array(repeating: $0[0], count: channels) : $0 }
        normalization.std = normalization.std.map { $0.count == 1 ? Array(repeating: $0[0], count: channels) : $0 }
        var plan = ImagePlan(width: width, height: height, channels: channels, depth: depth)
        plan.fit = options.fit
        plan.filter = options.filter
        plan.padColor = options.padColor
        plan.background = options.background
        plan.normalization = normalization
        plan.layout = options.layout
        if options.dtype == .float16 { plan.outputDType = .float16 }
        return plan
    }
}

/// The folder a path is in (`.` for a bare name).
func parentFolder(_ path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
}

/// Groups skip reasons for the summary: "unsupported format: GIF" stays whole, other reasons
/// lose their file-specific detail after the first colon.
func reasonKey(_ reason: String) -> String {
    if reason.hasPrefix("unsupported format") { return reason }
    return reason.split(separator: ":").first.map(String.init) ?? reason
}
